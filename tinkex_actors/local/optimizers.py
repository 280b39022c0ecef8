"""Optimizers of the embedded server besides AdamW: Dimuon (`types.DimuonOptimizerConfig`).

`OptimizerEndpoints` routes `create_model` and `optim_step` through here: a model remembers
the `optimizer_config.type` it was made with, and `optim_step` applies `optimizer_params` of
that family (Adam ones go on to `TrainingEndpoints.optim_step`); a step of the wrong family is a
400 naming the fix.

Dimuon here is momentum SGD whose update of every 2-D weight is orthogonalised (the Muon
recipe: a few Newton-Schulz iterations towards the nearest semi-orthogonal matrix, scaled by
`sqrt(max(1, rows / cols))`); 1-D weights take the plain momentum update. The momentum
lives in the model's first-moment buffers, so checkpoints keep it like Adam's state.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import numpy as np

from tinkex_actors import types
from tinkex_actors.local.asgi import Router
from tinkex_actors.local.http_messages import HTTPError, Request, Response
from tinkex_actors.local.model import LoraModel, NonFiniteGradientError
from tinkex_actors.local.queueing import queue
from tinkex_actors.local.request_body import body_of, need
from tinkex_actors.local.service import TinkerService

__all__ = ["NEWTON_SCHULZ_STEPS", "OptimizerEndpoints", "dimuon_step", "orthogonalize"]

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
        squares = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in model.grads.values())
        grad_norm = math.sqrt(squares)
        if not math.isfinite(grad_norm):
            model.zero_grad()
            raise NonFiniteGradientError(
                "the accumulated gradient holds NaN or inf, so the step was refused and the "
                "gradient discarded; check the loss inputs and lower the learning rate"
            )
        clip = grad_clip_norm / grad_norm if 0 < grad_clip_norm < grad_norm else 1.0
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


class OptimizerEndpoints:
    """`create_model` and `optim_step` with the optimizer family of each model."""

    def __init__(self, service: TinkerService) -> None:
        self.service = service
        self.optimizers: dict[str, str] = {}
        """model_id -> its optimizer family, for models not made with AdamW."""

    def register(self, router: Router) -> None:
        """Route the two endpoints here (after `TinkerService.register`, which it wraps)."""
        router.add("POST", "/api/v1/create_model", self.create_model)
        router.add("POST", "/api/v1/optim_step", self.optim_step)

    async def create_model(self, request: Request) -> Response:
        """`POST create_model`: as the service, remembering a non-Adam optimizer."""
        config = need(body_of(request), "optimizer_config", dict, optional=True) or {}
        family = config.get("type", "adamw")
        if family not in ("adamw", "dimuon"):
            raise HTTPError(
                400, f"field 'optimizer_config.type' must be 'adamw' or 'dimuon', got {family!r}"
            )
        response = await self.service.model_endpoints.create_model(request)
        if family != "adamw" and response.status == 200:
            self.optimizers[json.loads(response.body)["model_id"]] = family
        return response

    async def optim_step(self, request: Request) -> Response:
        """`POST optim_step`: Dimuon params for a Dimuon model; Adam ones to the service."""
        body = body_of(request)
        family = self.optimizers.get(body.get("model_id"), "adamw")  # type: ignore[arg-type]
        raw = body.get("optimizer_params")
        if family == "adamw":
            if raw is not None:
                raise HTTPError(
                    400,
                    f"model {body.get('model_id')} was created with AdamW; send 'adam_params' "
                    "(or create the model with optimizer_config {type: dimuon})",
                )
            return await self.service.training_endpoints.optim_step(request)
        if not isinstance(raw, dict) or raw.get("type") != family:
            raise HTTPError(
                400,
                f"model {body.get('model_id')} was created with {family}; send "
                f"'optimizer_params' of type {family!r}",
            )
        try:
            params = types.convert(raw, types.DimuonParams)
        except (msgspec.ValidationError, ValueError) as exc:
            raise HTTPError(400, f"field 'optimizer_params': {exc}") from exc
        entry = self.service.model(body.get("model_id"))

        def run() -> tuple[Any, bytes | None]:
            metrics = dimuon_step(
                entry.model, params.learning_rate, params.beta1, params.grad_clip_norm
            )
            return {"metrics": metrics}, None

        return queue(self.service, request, entry, body.get("seq_id"), "OptimStep", run)
