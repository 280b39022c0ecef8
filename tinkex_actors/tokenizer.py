"""Tokenizers for training and sampling clients.

The embedded server's byte models use the byte tokenizer (no download). For a model of the real
service, the Hugging Face tokenizer it names is loaded when `transformers` is installed.
"""

from __future__ import annotations

from typing import Any

from tinkex_actors.local.specs import BASE_MODELS
from tinkex_actors.local.tokenizer import ByteTokenizer

__all__ = ["ByteTokenizer", "get_tokenizer"]


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
