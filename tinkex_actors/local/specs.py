"""The named base models of the embedded server and their frozen weights.

Each base model is a size (embedding width, context window, hidden width), a LoRA
rank limit, a maximum sequence length and a description. Its weights are drawn
from ``numpy.random.default_rng`` seeded with the first 8 bytes of sha256(name), so
every process, on every machine, builds the same model; they are built once per
process and dtype, and are read-only.

Each model is also served under an ``org/model`` name (``tinkex/tiny-byte-lm``), the
form tokenizer-driven code expects (tinker-cookbook refuses a name without an org).
Both names give the same weights. A byte vocabulary has no chat template of its own,
so the chat format to use is a plain-text one (``RECOMMENDED_RENDERER``: role-colon,
``User: ...`` / ``Assistant: ...``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from .tokenizer import BYTE_VOCAB_SIZE

__all__ = [
    "BASE_MODELS",
    "DEFAULT_BASE_MODEL",
    "MODEL_ORG",
    "RECOMMENDED_RENDERER",
    "BaseModelSpec",
    "BaseWeights",
    "base_weights",
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


@dataclass(frozen=True)
class BaseWeights:
    """The frozen weight matrices of one base model."""

    emb: np.ndarray  # (vocab + 1, E); the last row is the pad read before the sequence start
    attn: np.ndarray
    mlp_in: np.ndarray
    b_in: np.ndarray
    mlp_out: np.ndarray
    unembed: np.ndarray


@lru_cache(maxsize=16)
def base_weights(spec: BaseModelSpec, dtype_name: str) -> BaseWeights:
    """Return the frozen weights of ``spec`` in ``dtype_name``, built once per process."""
    if spec.weights_of is not None:
        return base_weights(BASE_MODELS[spec.weights_of], dtype_name)  # one copy for both names
    rng = np.random.default_rng(spec.weight_seed)
    e, c, h, v = spec.embed_dim, spec.context_length, spec.hidden_dim, spec.vocab_size
    arrays = [
        rng.standard_normal((v + 1, e)),
        rng.standard_normal((e, e)) * (0.5 / np.sqrt(e)),
        rng.standard_normal((c * e, h)) * (1.5 / np.sqrt(c * e)),
        rng.standard_normal(h) * 0.1,
        rng.standard_normal((h, e)) * (1.0 / np.sqrt(h)),
        rng.standard_normal((e, v)) * (1.0 / np.sqrt(e)),
    ]
    frozen = []
    for array in arrays:
        typed = array.astype(dtype_name)
        typed.setflags(write=False)
        frozen.append(typed)
    return BaseWeights(*frozen)
