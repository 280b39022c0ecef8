"""The byte-level tokenizer of the embedded server's tiny models, shared by client and server.

Every UTF-8 byte is one token (ids 0..255) and two special tokens follow:
``<bos>`` (256) and ``<eos>`` (257). Nothing is downloaded; the surface mimics
the few members of a Hugging Face tokenizer that training code reaches for
(``encode``, ``decode``, ``eos_token_id``, ``bos_token_id``, ``vocab_size``).
The same vocabulary also ships in the Hugging Face format (end of this module, and the
``hf_byte_tokenizer`` folder next to it).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BOS_TOKEN_ID",
    "BYTE_VOCAB_SIZE",
    "EOS_TOKEN_ID",
    "HF_TOKENIZER_DIR",
    "ByteTokenizer",
    "build_hf_tokenizer_json",
    "hf_tokenizer_config",
    "write_hf_tokenizer",
]

BOS_TOKEN_ID = 256
EOS_TOKEN_ID = 257
BYTE_VOCAB_SIZE = 258
_SPECIAL_IDS = {"<bos>": BOS_TOKEN_ID, "<eos>": EOS_TOKEN_ID}
_SPECIAL_SPLIT = re.compile("(<bos>|<eos>)")


class ByteTokenizer:
    """Maps text to UTF-8 byte ids plus ``<bos>``/``<eos>``, and back."""

    bos_token = "<bos>"
    eos_token = "<eos>"
    bos_token_id = BOS_TOKEN_ID
    eos_token_id = EOS_TOKEN_ID
    pad_token_id = EOS_TOKEN_ID
    vocab_size = BYTE_VOCAB_SIZE

    def __init__(self, name_or_path: str = "byte") -> None:
        """Create a tokenizer; ``name_or_path`` is only a label, as for a hub tokenizer."""
        self.name_or_path = name_or_path

    def __len__(self) -> int:
        """Return the vocabulary size (as ``len(tokenizer)`` does for HF tokenizers)."""
        return BYTE_VOCAB_SIZE

    def __repr__(self) -> str:
        return f"ByteTokenizer(name_or_path={self.name_or_path!r}, vocab_size={BYTE_VOCAB_SIZE})"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Return the UTF-8 bytes of ``text``, preceded by ``<bos>`` if ``add_special_tokens``.

        Like most causal-LM tokenizers, only the beginning marker is added; append
        ``eos_token_id`` yourself where a sequence should end. The strings ``<bos>`` and
        ``<eos>`` inside ``text`` encode to the special ids, as in the Hugging Face form.
        """
        if not isinstance(text, str):
            raise TypeError(
                f"text must be a str, got {type(text).__name__}; decode bytes first or pass "
                "token ids directly"
            )
        ids = self._encode_with_specials(text) if "<" in text else list(text.encode("utf-8"))
        return [BOS_TOKEN_ID, *ids] if add_special_tokens else ids

    def _encode_with_specials(self, text: str) -> list[int]:
        # As a Hugging Face tokenizer does, `<bos>`/`<eos>` written in the text are the special
        # tokens (chat renderers encode `tokenizer.bos_token` to find its id).
        ids: list[int] = []
        for part in _SPECIAL_SPLIT.split(text):
            special = _SPECIAL_IDS.get(part)
            if special is not None:
                ids.append(special)
            else:
                ids.extend(part.encode("utf-8"))
        return ids

    def decode(self, token_ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Return the text of ``token_ids``; invalid UTF-8 becomes U+FFFD.

        Special tokens render as ``<bos>``/``<eos>`` unless ``skip_special_tokens``.
        """
        parts: list[str] = []
        pending = bytearray()
        for position, raw in enumerate(token_ids):
            token = int(raw)
            if 0 <= token < 256:
                pending.append(token)
                continue
            if token not in (BOS_TOKEN_ID, EOS_TOKEN_ID):
                raise ValueError(
                    f"token_ids[{position}] = {token} is outside the byte vocabulary "
                    f"(0..{BYTE_VOCAB_SIZE - 1}); pass ids produced by ByteTokenizer.encode"
                )
            if pending:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            if not skip_special_tokens:
                parts.append(self.bos_token if token == BOS_TOKEN_ID else self.eos_token)
        if pending:
            parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)

    def batch_decode(
        self, sequences: Sequence[Iterable[int]], skip_special_tokens: bool = False
    ) -> list[str]:
        """Decode each sequence of ``sequences``."""
        return [self.decode(seq, skip_special_tokens=skip_special_tokens) for seq in sequences]

    def convert_ids_to_tokens(self, token_ids: Iterable[int]) -> list[str]:
        """Return a printable name per id: the byte as ``<0xNN>`` or the special token."""
        names: list[str] = []
        for raw in token_ids:
            token = int(raw)
            if token == BOS_TOKEN_ID:
                names.append(self.bos_token)
            elif token == EOS_TOKEN_ID:
                names.append(self.eos_token)
            elif 0 <= token < 256:
                names.append(f"<0x{token:02X}>")
            else:
                raise ValueError(
                    f"token id {token} is outside the byte vocabulary (0..{BYTE_VOCAB_SIZE - 1})"
                )
        return names


# ---- the same vocabulary as a Hugging Face tokenizer ------------------------------------------
#
# `hf_byte_tokenizer/tokenizer.json` (shipped) is what `build_hf_tokenizer_json()` writes with
# the `tokenizers` library: one token per byte (ids 0..255, the byte's value), `<bos>` 256 and
# `<eos>` 257 as special tokens, `<bos>` prepended when special tokens are added. Tokenizer-
# driven code (transformers, tinker-cookbook) then reads the embedded models' ids offline.

HF_TOKENIZER_DIR = Path(__file__).resolve().parent / "hf_byte_tokenizer"


def _byte_symbols() -> list[str]:
    """The printable character standing for each byte in byte-level BPE vocabularies."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def build_hf_tokenizer_json() -> str:
    """The byte vocabulary as a `tokenizer.json` document; needs the `tokenizers` package."""
    try:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    except ImportError as exc:
        raise ImportError(
            "building the byte tokenizer needs the `tokenizers` package: "
            "pip install 'tinkex-actors[hf]'"
        ) from exc
    vocab = {symbol: byte for byte, symbol in enumerate(_byte_symbols())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [
            AddedToken(ByteTokenizer.bos_token, special=True),
            AddedToken(ByteTokenizer.eos_token, special=True),
        ]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{ByteTokenizer.bos_token} $A",
        pair=f"{ByteTokenizer.bos_token} $A {ByteTokenizer.bos_token} $B",
        special_tokens=[(ByteTokenizer.bos_token, BOS_TOKEN_ID)],
    )
    text: str = tokenizer.to_str(pretty=True)
    return text


def hf_tokenizer_config(model_max_length: int) -> dict[str, Any]:
    """`tokenizer_config.json` for a byte model whose sequences hold `model_max_length` tokens."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": ByteTokenizer.bos_token,
        "eos_token": ByteTokenizer.eos_token,
        "pad_token": ByteTokenizer.eos_token,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
    }


def write_hf_tokenizer(directory: Path, model_max_length: int) -> Path:
    """Write the files of a Hugging Face tokenizer directory; returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    specials = {
        "bos_token": ByteTokenizer.bos_token,
        "eos_token": ByteTokenizer.eos_token,
        "pad_token": ByteTokenizer.eos_token,
    }
    files = {
        "tokenizer.json": (HF_TOKENIZER_DIR / "tokenizer.json").read_text(encoding="utf-8"),
        "tokenizer_config.json": json.dumps(hf_tokenizer_config(model_max_length), indent=2),
        "special_tokens_map.json": json.dumps(specials, indent=2),
        # transformers reads a model config before the tokenizer's; a minimal one will do.
        "config.json": json.dumps(
            {
                "vocab_size": BYTE_VOCAB_SIZE,
                "bos_token_id": BOS_TOKEN_ID,
                "eos_token_id": EOS_TOKEN_ID,
                "max_position_embeddings": model_max_length,
            },
            indent=2,
        ),
    }
    for name, text in files.items():
        target = directory / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            # Written aside then renamed, so a concurrent reader never sees half a file.
            partial = directory / f".{name}.{os.getpid()}.tmp"
            partial.write_text(text, encoding="utf-8")
            partial.replace(target)
    return directory
