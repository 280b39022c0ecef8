"""The byte-level tokenizer of the embedded server's tiny models.

Every UTF-8 byte is one token (ids 0..255) and two special tokens follow:
``<bos>`` (256) and ``<eos>`` (257). Nothing is downloaded; the surface mimics
the few members of a Hugging Face tokenizer that training code reaches for
(``encode``, ``decode``, ``eos_token_id``, ``bos_token_id``, ``vocab_size``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["BOS_TOKEN_ID", "BYTE_VOCAB_SIZE", "EOS_TOKEN_ID", "ByteTokenizer"]

BOS_TOKEN_ID = 256
EOS_TOKEN_ID = 257
BYTE_VOCAB_SIZE = 258


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
        ``eos_token_id`` yourself where a sequence should end.
        """
        if not isinstance(text, str):
            raise TypeError(
                f"text must be a str, got {type(text).__name__}; decode bytes first or pass "
                "token ids directly"
            )
        ids = list(text.encode("utf-8"))
        return [BOS_TOKEN_ID, *ids] if add_special_tokens else ids

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
