"""Dimuon (`types.DimuonOptimizerConfig`): momentum SGD with orthogonalised 2-D updates.

The update of every 2-D weight is orthogonalised (the Muon recipe: a few Newton-Schulz
iterations towards the nearest semi-orthogonal matrix, scaled by `sqrt(max(1, rows / cols))`);
1-D weights take the plain momentum update. The momentum lives in the model's first-moment
buffers, so checkpoints keep it like Adam's state.
"""

from __future__ import annotations

import math

import numpy as np

from tinkex_actors.local.model import LoraModel

__all__ = ["NEWTON_SCHULZ_STEPS", "dimuon_step", "orthogonalize"]

NEWTON_SCHULZ_STEPS = 5
_A, _B, _C = 3.4445, -4.7750, 2.0315  # the quintic's coefficients, as in Muon


def orthogonalize(matrix: np.ndarray, steps: int = NEWTON_SCHULZ_STEPS) -> np.ndarray:
    """An approximately semi-orthogonal matrix with `matrix`'s singular vectors."""
    x = matrix.astype(np.float64)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = _A * x + (_B * gram + _C * gram @ gram) @ x
    return (x.T if tall else x).astype(matrix.dtype)


def dimuon_step(
    model: LoraModel, learning_rate: float, beta1: float = 0.9, grad_clip_norm: float = 0.0
) -> dict[str, float]:
    """Apply the accumulated gradient with Dimuon and clear it; return step metrics."""
    if not learning_rate >= 0 or not 0 <= beta1 < 1:
        raise ValueError(
            f"Dimuon needs learning_rate >= 0 and 0 <= beta1 < 1, got {learning_rate}, {beta1}"
        )
    with model.changing_weights():
        grad_norm, clip = model.clipped_grad_norm(grad_clip_norm)
        for key, p in model.params.items():
            momentum = model.adam_m[key]
            momentum *= beta1
            momentum += (1.0 - beta1) * clip * model.grads[key]
            if p.ndim == 2:
                rows, cols = p.shape
                p -= learning_rate * math.sqrt(max(1.0, rows / cols)) * orthogonalize(momentum)
            else:
                p -= learning_rate * momentum
        model.zero_grad()
    return {"grad_norm:mean": grad_norm, "learning_rate:mean": float(learning_rate)}
