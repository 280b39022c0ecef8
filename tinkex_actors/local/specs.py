"""The frozen weights of the embedded server's named base models.

The models themselves (names, sizes, limits, the ``org/model`` aliases) are the shared
table ``tinkex_actors.types.base_models``, re-exported here. A model's weights are drawn
from ``numpy.random.default_rng`` seeded with the first 8 bytes of sha256(name), so
every process, on every machine, builds the same model; they are built once per
process and dtype, and are read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tinkex_actors.types.base_models import (
    BASE_MODELS,
    BaseModelSpec,
)

__all__ = [
    "BaseWeights",
    "base_weights",
]


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
