"""Tokenizers for training and sampling clients, and for code that looks them up by name.

The embedded server's byte models use the byte tokenizer (no download). For a model of the real
service, the Hugging Face tokenizer it names is loaded when `transformers` is installed.

`register_tokenizers()` makes the byte models' Hugging Face-format tokenizer findable by their
`org/model` names with no hub access: `transformers.AutoTokenizer.from_pretrained(
"tinkex/tiny-byte-lm")` (offline, from the hub cache) and tinker-cookbook's `get_tokenizer`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from tinkex_actors.types.base_models import BASE_MODELS, MODEL_ORG
from tinkex_actors.types.byte_tokenizer import (
    HF_TOKENIZER_DIR,
    ByteTokenizer,
    hf_tokenizer_config,
    write_hf_tokenizer,
)

__all__ = ["ByteTokenizer", "get_tokenizer", "hub_cache_dir", "register_tokenizers"]


def get_tokenizer(base_model: str, tokenizer_id: str | None = None) -> Any:
    """The tokenizer of a base model: bytes for the embedded models, else the hub's."""
    if base_model in BASE_MODELS or (tokenizer_id or "").endswith("byte-lm"):
        return ByteTokenizer(base_model)
    name = tokenizer_id or base_model
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise RuntimeError(
            f"the tokenizer of {base_model!r} comes from the Hugging Face hub: install "
            f"`transformers` (and allow it to download {name!r})"
        ) from exc
    return AutoTokenizer.from_pretrained(name)


def hub_cache_dir() -> Path:
    """Where the Hugging Face hub keeps downloads (HF_HUB_CACHE, HF_HOME/hub, or the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def register_tokenizers(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Make every embedded `org/model` name resolve to its tokenizer offline; returns the dirs.

    Writes each tokenizer into the hub cache (`cache_dir`, default `hub_cache_dir()`) as a
    snapshot of the repository `tinkex/<model>`, so `AutoTokenizer.from_pretrained(name)`
    finds it when the hub is not reachable or `HF_HUB_OFFLINE=1`; and, when tinker-cookbook
    is installed, registers each name with its `register_tokenizer` (checked before the hub).
    Calling it again rewrites nothing that is already in place.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
    shared = (HF_TOKENIZER_DIR / "tokenizer.json").read_bytes()
    found: dict[str, Path] = {}
    for name, spec in BASE_MODELS.items():
        if not name.startswith(MODEL_ORG + "/"):
            continue
        # A content hash as the revision: a changed tokenizer is a new snapshot.
        digest = hashlib.sha1(shared + repr(hf_tokenizer_config(spec.max_seq_len)).encode())
        revision = digest.hexdigest()
        repo = root / ("models--" + name.replace("/", "--"))
        snapshot = write_hf_tokenizer(repo / "snapshots" / revision, spec.max_seq_len)
        refs = repo / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        if not (refs / "main").exists() or (refs / "main").read_text() != revision:
            (refs / "main").write_text(revision)
        found[name] = snapshot
    _register_with_cookbook(found)
    return found


def _register_with_cookbook(directories: dict[str, Path]) -> None:
    if importlib.util.find_spec("tinker_cookbook") is None:
        return
    from tinker_cookbook.tokenizer_utils import (  # type: ignore[import-not-found, unused-ignore]
        register_tokenizer,
    )

    for name, directory in directories.items():
        register_tokenizer(name, _loader(directory))


def _loader(directory: Path) -> Any:
    def load() -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(directory))

    return load
