"""The named base models of the embedded server: names, sizes, limits and vocabulary.

Each base model is a size (embedding width, context window, hidden width), a LoRA
rank limit, a maximum sequence length and a description; its vocabulary is the byte
tokenizer's. The table is shared: the client reads names and vocabulary from it (to pick
the byte tokenizer), the server also builds each model's frozen weights from it
(``tinkex_actors.local.specs``).

Each model is also served under an ``org/model`` name (``tinkex/tiny-byte-lm``), the
form tokenizer-driven code expects (tinker-cookbook refuses a name without an org).
Both names give the same weights. A byte vocabulary has no chat template of its own,
so the chat format to use is a plain-text one (``RECOMMENDED_RENDERER``: role-colon,
``User: ...`` / ``Assistant: ...``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from .byte_tokenizer import BYTE_VOCAB_SIZE

__all__ = [
    "BASE_MODELS",
    "DEFAULT_BASE_MODEL",
    "MODEL_ORG",
    "RECOMMENDED_RENDERER",
    "BaseModelSpec",
    "get_base_model",
]


@dataclass(frozen=True)
class BaseModelSpec:
    """A named base model: its sizes, limits and description."""

    name: str
    embed_dim: int
    context_length: int
    hidden_dim: int
    max_lora_rank: int
    max_seq_len: int
    description: str
    vocab_size: int = BYTE_VOCAB_SIZE
    weights_of: str | None = None  # an alias: the model whose weights it serves

    @property
    def weight_seed(self) -> int:
        """The seed of the frozen weights: the first 8 bytes of sha256(name of the weights)."""
        owner = self.weights_of or self.name
        return int.from_bytes(hashlib.sha256(owner.encode("utf-8")).digest()[:8], "big")

    def layer_shape(self, layer: str) -> tuple[int, int]:
        """Return (in, out) of the weight matrix a LoRA adapter on ``layer`` wraps."""
        e, c, h, v = self.embed_dim, self.context_length, self.hidden_dim, self.vocab_size
        return {"attn": (e, e), "mlp_in": (c * e, h), "mlp_out": (h, e), "unembed": (e, v)}[layer]


_SHORT_NAMED = (
    BaseModelSpec(
        "tiny-byte-lm",
        32,
        8,
        64,
        64,
        8192,
        "Default. 8-byte window, 32-wide embeddings: fast enough for any benchmark.",
    ),
    BaseModelSpec(
        "small-byte-lm",
        64,
        16,
        256,
        128,
        16384,
        "16-byte window, 64-wide embeddings: a bigger adapter, still quick.",
    ),
    BaseModelSpec(
        "base-byte-lm",
        128,
        32,
        512,
        256,
        32768,
        "32-byte window, 128-wide embeddings: the largest, for memory and speed tests.",
    ),
)

MODEL_ORG = "tinkex"
RECOMMENDED_RENDERER = "role_colon"


def _org_named(spec: BaseModelSpec) -> BaseModelSpec:
    return replace(
        spec,
        name=f"{MODEL_ORG}/{spec.name}",
        description=f"{spec.name} under an org/model name (same weights).",
        weights_of=spec.name,
    )


# Each model, then its org/model alias (sizes stay in increasing order).
BASE_MODELS: dict[str, BaseModelSpec] = {
    named.name: named for spec in _SHORT_NAMED for named in (spec, _org_named(spec))
}
DEFAULT_BASE_MODEL = "tiny-byte-lm"


def get_base_model(name: str) -> BaseModelSpec:
    """Return the spec named ``name`` or raise a ValueError listing the known models."""
    spec = BASE_MODELS.get(name)
    if spec is None:
        raise ValueError(
            f"base_model = {name!r} is not served here; use one of: {', '.join(BASE_MODELS)}"
        )
    return spec
