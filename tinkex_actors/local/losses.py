"""The Tinker loss functions on per-token log-probabilities, with exact gradients.

Each loss maps the model's log-probability of every target token (``logp``) and the
datum's ``loss_fn_inputs`` to a per-token loss whose sum is reported as ``loss:sum``,
and to ``d loss / d logp``; the model turns the latter into parameter gradients.
Formulas follow the Tinker documentation, with ``ratio = exp(logp - sampling_logp)``:

- ``cross_entropy``: ``-weights * logp`` (``weights`` default to 1; targets may be
  ``(N,)`` or ``(N, K)`` for top-K distillation).
- ``importance_sampling``: ``-ratio * advantages``.
- ``ppo``: ``-min(ratio * A, clip(ratio, low, high) * A)``, token-wise.
- ``cispo``: ``-stopgrad(clip(ratio, low, high)) * logp * A``.
- ``dro``: ``-(logp * A - beta / 2 * (logp - sampling_logp) ** 2)``.

``low``/``high`` are ratio bounds (``clip_low_threshold``/``clip_high_threshold``,
default 0.8 and 1.2, that is epsilon 0.2 as the service documents) taken from
``loss_fn_config`` or, per token, from ``loss_fn_inputs`` arrays of the same names.
``beta`` defaults to 0.05: the service documents the key but not its default.
The policy-gradient losses accept a ``weights`` input and ignore it, as the
documented formulas do. The arithmetic runs in float64 (it is O(tokens), so cheap)
so that a ratio far from 1 cannot overflow float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "LOSS_FUNCTIONS",
    "LossDefinition",
    "check_loss_fn",
    "check_loss_fn_inputs",
    "flatten_targets",
    "loss_and_grad",
    "resolve_loss_fn_config",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LossDefinition:
    """Which ``loss_fn_inputs`` and ``loss_fn_config`` keys one loss function reads."""

    required_inputs: tuple[str, ...]
    optional_inputs: tuple[str, ...]
    config_defaults: Mapping[str, float]


_CLIP_DEFAULTS = {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2}
_CLIP_INPUTS = ("weights", "clip_low_threshold", "clip_high_threshold")
_RL_INPUTS = ("target_tokens", "logprobs", "advantages")

LOSS_FUNCTIONS: Mapping[str, LossDefinition] = {
    "cross_entropy": LossDefinition(("target_tokens",), ("weights",), {}),
    "importance_sampling": LossDefinition(_RL_INPUTS, ("weights",), {}),
    "ppo": LossDefinition(_RL_INPUTS, _CLIP_INPUTS, _CLIP_DEFAULTS),
    "cispo": LossDefinition(_RL_INPUTS, _CLIP_INPUTS, _CLIP_DEFAULTS),
    "dro": LossDefinition(_RL_INPUTS, ("weights",), {"beta": 0.05}),
}


def check_loss_fn(loss_fn: str) -> LossDefinition:
    """Return the definition of ``loss_fn`` or raise a ValueError listing the known ones."""
    definition = LOSS_FUNCTIONS.get(loss_fn)
    if definition is None:
        known = ", ".join(LOSS_FUNCTIONS)
        raise ValueError(
            f"loss_fn = {loss_fn!r} is not supported by the embedded server; use one of: {known}"
        )
    return definition


def resolve_loss_fn_config(
    loss_fn: str, loss_fn_config: Mapping[str, float | str] | None
) -> dict[str, float]:
    """Return the config of ``loss_fn`` with defaults filled in, after checking every key."""
    definition = check_loss_fn(loss_fn)
    config = dict(definition.config_defaults)
    for key, value in (loss_fn_config or {}).items():
        if key not in definition.config_defaults:
            allowed = ", ".join(definition.config_defaults) or "no keys"
            raise ValueError(
                f"loss_fn_config[{key!r}] is not understood by {loss_fn}; it accepts {allowed}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"loss_fn_config[{key!r}] = {value!r} must be a number; pass a float")
        if not np.isfinite(value):
            raise ValueError(f"loss_fn_config[{key!r}] = {value!r} must be finite")
        config[key] = float(value)
    if "beta" in config and config["beta"] < 0:
        raise ValueError(f"loss_fn_config['beta'] = {config['beta']} must be >= 0")
    if "clip_low_threshold" in config:
        _check_clip(config["clip_low_threshold"], config["clip_high_threshold"], "loss_fn_config")
    return config


def _check_clip(low: float, high: float, where: str) -> None:
    if not 0.0 <= low <= high:
        raise ValueError(
            f"{where} clip thresholds low = {low}, high = {high} are invalid; they are ratio "
            "bounds and need 0 <= clip_low_threshold <= clip_high_threshold (e.g. 0.8 and 1.2)"
        )


def check_loss_fn_inputs(
    loss_fn: str,
    datum_index: int,
    n_tokens: int,
    loss_fn_inputs: Mapping[str, npt.ArrayLike],
    vocab_size: int,
) -> dict[str, np.ndarray]:
    """Validate one datum's inputs for ``loss_fn`` and return them as typed arrays.

    ``target_tokens`` becomes int64 of shape ``(N,)`` (or ``(N, K)`` for
    cross_entropy); every other input becomes float64 of the target shape.
    """
    definition = check_loss_fn(loss_fn)
    where = f"data[{datum_index}].loss_fn_inputs"
    accepted = definition.required_inputs + definition.optional_inputs
    for key in loss_fn_inputs:
        if key not in accepted:
            raise ValueError(
                f"{where}[{key!r}] is not an input of {loss_fn}; it accepts "
                f"{', '.join(accepted)} (remove the extra key)"
            )
    for key in definition.required_inputs:
        if key not in loss_fn_inputs:
            raise ValueError(
                f"{where} lacks {key!r}, which {loss_fn} requires; it needs "
                f"{', '.join(definition.required_inputs)}"
            )
    targets = np.asarray(loss_fn_inputs["target_tokens"])
    max_ndim = 2 if loss_fn == "cross_entropy" else 1
    if targets.ndim < 1 or targets.ndim > max_ndim or targets.shape[0] != n_tokens:
        expected = f"({n_tokens},)" + (f" or ({n_tokens}, K)" if max_ndim == 2 else "")
        raise ValueError(
            f"{where}['target_tokens'] has shape {targets.shape} but the model input has "
            f"{n_tokens} tokens; give one target per input token, shape {expected}"
        )
    integral = np.issubdtype(targets.dtype, np.integer) or (
        np.all(np.isfinite(targets)) and np.all(targets == np.round(targets))
    )
    if not integral:
        raise ValueError(
            f"{where}['target_tokens'] has dtype {targets.dtype} with non-integer values; "
            "give integer token ids"
        )
    targets = targets.astype(np.int64)
    bad = np.flatnonzero((targets < 0) | (targets >= vocab_size))
    if bad.size:
        value = int(targets.reshape(-1)[bad[0]])
        raise ValueError(
            f"{where}['target_tokens'] holds {value}, outside the vocabulary 0..{vocab_size - 1}; "
            "use ids from ByteTokenizer.encode"
        )
    result: dict[str, np.ndarray] = {"target_tokens": targets}
    for key in accepted:
        if key == "target_tokens" or key not in loss_fn_inputs:
            continue
        try:
            array = np.asarray(loss_fn_inputs[key], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}[{key!r}] is not numeric ({exc}); give an array of floats"
            ) from exc
        if array.shape != targets.shape:
            raise ValueError(
                f"{where}[{key!r}] has shape {array.shape} but target_tokens has "
                f"{targets.shape}; give one value per target token"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"{where}[{key!r}] holds a NaN or infinite value; every entry must be finite"
            )
        result[key] = array
    if "clip_low_threshold" in result or "clip_high_threshold" in result:
        low = result.get("clip_low_threshold")
        high = result.get("clip_high_threshold")
        if low is not None and high is not None and np.any(low > high):
            raise ValueError(f"{where} has clip_low_threshold > clip_high_threshold somewhere")
        if low is not None and np.any(low < 0):
            raise ValueError(f"{where}['clip_low_threshold'] must be >= 0")
    return result


def loss_and_grad(
    loss_fn: str,
    logp: F64,
    inputs: Mapping[str, np.ndarray],
    config: Mapping[str, float],
) -> tuple[F64, F64]:
    """Return the per-token loss and ``d loss / d logp`` for flat (concatenated) inputs.

    ``inputs`` holds float64 arrays aligned with ``logp`` (``target_tokens`` excluded);
    ``config`` is the output of ``resolve_loss_fn_config``.
    """
    if loss_fn == "cross_entropy":
        weights = inputs.get("weights")
        if weights is None:
            weights = np.ones_like(logp)
        return -weights * logp, -weights
    sampling_logp = inputs["logprobs"]
    advantages = inputs["advantages"]
    if loss_fn == "dro":
        beta = config["beta"]
        delta = logp - sampling_logp
        loss = -(logp * advantages - 0.5 * beta * delta * delta)
        return loss, -(advantages - beta * delta)
    # exp of a float64 difference above ~709 overflows; such ratios are already absurd,
    # so they are capped rather than allowed to turn the step into NaN.
    ratio = np.exp(np.minimum(logp - sampling_logp, 700.0))
    if loss_fn == "importance_sampling":
        return -ratio * advantages, -ratio * advantages
    low = inputs.get("clip_low_threshold", config["clip_low_threshold"])
    high = inputs.get("clip_high_threshold", config["clip_high_threshold"])
    clipped = np.clip(ratio, low, high)
    if loss_fn == "ppo":
        unclipped_obj = ratio * advantages
        clipped_obj = clipped * advantages
        use_unclipped = unclipped_obj <= clipped_obj
        loss = -np.where(use_unclipped, unclipped_obj, clipped_obj)
        # The clipped branch is constant in logp when it binds; inside the bounds both
        # branches coincide and carry the unclipped gradient.
        inside = (ratio >= low) & (ratio <= high)
        grad = np.where(use_unclipped | inside, -ratio * advantages, 0.0)
        return loss, grad
    if loss_fn == "cispo":
        return -clipped * logp * advantages, -clipped * advantages
    raise ValueError(f"loss_fn = {loss_fn!r} is not supported")  # pragma: no cover


def flatten_targets(
    token_arrays: list[np.ndarray],
    input_dicts: list[dict[str, np.ndarray]],
    config: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """Concatenate every datum's targets and float inputs, with the position each reads.

    Inputs some datums lack get their default: weights 1, clip bounds from ``config``.
    """
    offsets = np.cumsum([0] + [t.size for t in token_arrays[:-1]])
    positions, targets = [], []
    float_keys = sorted({k for d in input_dicts for k in d if k != "target_tokens"})
    floats: dict[str, list[np.ndarray]] = {k: [] for k in float_keys}
    for offset, inputs in zip(offsets, input_dicts, strict=True):
        tgt = inputs["target_tokens"]
        per_row = 1 if tgt.ndim == 1 else tgt.shape[1]
        positions.append(np.repeat(np.arange(tgt.shape[0]) + offset, per_row))
        targets.append(tgt.reshape(-1))
        for key in float_keys:
            default = 1.0 if key == "weights" else config.get(key, 0.0)
            value = inputs.get(key)
            floats[key].append(
                value.reshape(-1) if value is not None else np.full(tgt.size, default)
            )
    flat = {k: np.concatenate(v) for k, v in floats.items()}
    flat["position"] = np.concatenate(positions)
    flat["target_tokens"] = np.concatenate(targets)
    return flat
