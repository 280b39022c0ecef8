"""Optimizer families on the wire: `create_model` and `optim_step` for AdamW and Dimuon.

`OptimizerEndpoints` routes `create_model` and `optim_step` through here: a model remembers
the `optimizer_config.type` it was made with, and `optim_step` applies `optimizer_params` of
that family (Dimuon, see `dimuon.py`; Adam ones go on to `TrainingEndpoints.optim_step`); a
step of the wrong family is a 400 naming the fix.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from tinkex_actors import types
from tinkex_actors.local.asgi import Router
from tinkex_actors.local.dimuon import dimuon_step
from tinkex_actors.local.http_messages import HTTPError, Request, Response
from tinkex_actors.local.queueing import queue
from tinkex_actors.local.request_body import body_of, need
from tinkex_actors.local.service import TinkerService

__all__ = ["OptimizerEndpoints"]


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
