"""The training steps: `forward_backward`, `forward` and `optim_step` (AdamW), queued in order.

Each is checked when it arrives (a bad datum or Adam setting is a 400 naming it) and then
queued on its model's worker at its `seq_id` (see `queueing.py`); the answer is its future.
Optimizers other than AdamW are routed through `optimizers.py`.
"""

from __future__ import annotations

from typing import Any

from tinkex_actors import types
from tinkex_actors.local import wire
from tinkex_actors.local.checks import check_adam
from tinkex_actors.local.http_messages import HTTPError, Request, Response
from tinkex_actors.local.queueing import queue, refusing
from tinkex_actors.local.request_body import body_of
from tinkex_actors.local.state import ServerState

__all__ = ["TrainingEndpoints"]


class TrainingEndpoints:
    """`forward_backward`, `forward` and `optim_step`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def forward_backward(self, request: Request) -> Response:
        """`POST forward_backward` (protobuf or JSON); also forward when `forward_only`."""
        fb = wire.read_forward_backward(request, max_size_bytes=self.state.settings.max_body_bytes)
        return self._queue_forward(request, fb)

    async def forward(self, request: Request) -> Response:
        """`POST forward` (JSON, older SDKs)."""
        fb = wire.read_forward_backward(
            request, max_size_bytes=self.state.settings.max_body_bytes, forward_only=True
        )
        return self._queue_forward(request, fb)

    def _queue_forward(self, request: Request, fb: wire.ForwardBackwardCall) -> Response:
        entry = self.state.model(fb.model_id)
        with refusing(entry, fb.seq_id):
            datums = wire.model_datums(fb.data, entry.model.spec.vocab_size)

        def run() -> tuple[Any, bytes | None]:
            result = entry.model.forward_backward(
                datums, fb.loss_fn, fb.loss_fn_config, backward=not fb.forward_only
            )
            return wire.forward_output(result)

        kind = "Forward" if fb.forward_only else "ForwardBackward"
        return queue(self.state, request, entry, fb.seq_id, kind, run)

    async def optim_step(self, request: Request) -> Response:
        """`POST optim_step {adam_params, model_id, seq_id}`."""
        body = body_of(request)
        entry = self.state.model(body.get("model_id"))
        with refusing(entry, body.get("seq_id")):
            raw = body.get("adam_params", body.get("optim_params"))
            if not isinstance(raw, dict):
                raise HTTPError(
                    400, "field 'adam_params' is required (an object of Adam settings)"
                )
            adam = types.convert(raw, types.AdamParams)
            check_adam(
                adam.learning_rate,
                adam.beta1,
                adam.beta2,
                adam.eps,
                adam.weight_decay,
                adam.grad_clip_norm,
            )

        def run() -> tuple[Any, bytes | None]:
            metrics = entry.model.optim_step(
                learning_rate=adam.learning_rate,
                beta1=adam.beta1,
                beta2=adam.beta2,
                eps=adam.eps,
                weight_decay=adam.weight_decay,
                grad_clip_norm=adam.grad_clip_norm,
            )
            return {"metrics": metrics}, None

        return queue(self.state, request, entry, body.get("seq_id"), "OptimStep", run)
