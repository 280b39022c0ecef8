"""Argument checks of the tiny model: each failure names the field, the value and the fix."""

from __future__ import annotations

from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from tinkex_actors.types.base_models import BaseModelSpec

__all__ = ["check_adam", "check_sampling", "check_tokens", "is_integer"]


def is_integer(value: object) -> TypeGuard[int | np.integer[Any]]:
    """Whether `value` is an integer (Python or numpy), and not a boolean."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_tokens(spec: BaseModelSpec, tokens: npt.ArrayLike, where: str) -> np.ndarray:
    """Return ``tokens`` as int64 after checking shape, length and vocabulary."""
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ValueError(f"{where} has shape {array.shape}; give a flat list of token ids")
    if array.size == 0:
        raise ValueError(f"{where} is empty; give at least one token")
    if array.size > spec.max_seq_len:
        raise ValueError(
            f"{where} has {array.size} tokens, more than the {spec.max_seq_len} that "
            f"{spec.name} accepts; split or truncate the sequence"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{where} has dtype {array.dtype}; token ids must be integers")
    array = array.astype(np.int64)
    bad = np.flatnonzero((array < 0) | (array >= spec.vocab_size))
    if bad.size:
        raise ValueError(
            f"{where}[{int(bad[0])}] = {int(array[bad[0]])} is outside the vocabulary "
            f"0..{spec.vocab_size - 1}; use ids from ByteTokenizer.encode"
        )
    return array


def check_number(name: str, value: float, low: float, high: float, *, open_high: bool) -> None:
    """Raise unless ``value`` is a finite number in [low, high] (or [low, high))."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = low <= value < high if open_high else low <= value <= high
    if not ok:
        bound = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise ValueError(f"{name} = {value!r} is invalid; it must be a finite number in {bound}")


def check_adam(
    lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, clip: float
) -> None:
    check_number("learning_rate", lr, 0.0, np.inf, open_high=True)
    check_number("beta1", beta1, 0.0, 1.0, open_high=True)
    check_number("beta2", beta2, 0.0, 1.0, open_high=True)
    check_number("weight_decay", weight_decay, 0.0, np.inf, open_high=True)
    check_number("grad_clip_norm", clip, 0.0, np.inf, open_high=True)
    check_number("eps", eps, 0.0, np.inf, open_high=True)
    if eps <= 0:
        raise ValueError(f"eps = {eps!r} must be > 0 (the SDK default is 1e-12)")


def check_sampling(
    max_tokens: int, limit: int, temperature: float, top_k: int, top_p: float, num_samples: int
) -> None:
    if not is_integer(max_tokens):
        raise ValueError(f"max_tokens = {max_tokens!r} must be an integer")
    if not 0 <= max_tokens <= limit:
        raise ValueError(
            f"max_tokens = {max_tokens} does not fit: the prompt leaves room for {limit} tokens "
            "before the model's maximum sequence length; lower max_tokens or shorten the prompt"
        )
    check_number("temperature", temperature, 0.0, np.inf, open_high=True)
    if not is_integer(top_k):
        raise ValueError(f"top_k = {top_k!r} must be an integer (-1 for no limit)")
    check_number("top_p", top_p, 0.0, 1.0, open_high=False)
    if top_p <= 0:
        raise ValueError(f"top_p = {top_p!r} must be in (0, 1]; use 1.0 for no nucleus cut")
    if not is_integer(num_samples):
        raise ValueError(f"num_samples = {num_samples!r} must be an integer")
    if not 1 <= num_samples <= 1024:
        raise ValueError(f"num_samples = {num_samples} must be in 1..1024")
