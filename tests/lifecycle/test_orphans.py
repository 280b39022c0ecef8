"""No orphans: after a lost create_model answer the client ends with exactly the models it
asked for, also on servers that do not dedupe by idempotency key."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import numpy as np

import tinkex_actors as tx
from tests.lifecycle.conftest import KEY
from tinkex_actors import types
from tinkex_actors.local import LocalServer
from tinkex_actors.local.http_messages import Request, Response

WAIT_S = 30.0
CREATE = "/api/v1/create_model"


class NoDedupe:
    """An idempotency cache that remembers nothing: every retry is applied again."""

    def get(self, key: str) -> Response | None:
        """Never a remembered answer."""
        return None

    def put(self, key: str, response: Response) -> None:
        """Forget at once."""


class LoseAnswers:
    """The server applies the next `times` requests to `path`, then fails instead of answering
    (the client sees a 5xx or a dropped connection: it cannot know the request landed).

    `fresh_ids`: every attempt gets a model_seq_id of its own, as on a server that numbers
    models itself, so a repeated create_model makes a second model instead of a 409.
    """

    def __init__(self, server: LocalServer, path: str, times: int, *, fresh_ids: bool) -> None:
        self.left = times
        self.attempts = 0
        app: Any = server.app
        app.idempotency = NoDedupe()
        applied: Callable[[Request], Awaitable[Response]] = app._dispatch

        async def dispatch(request: Request) -> Response:
            if request.path != path:
                return await applied(request)
            self.attempts += 1
            if fresh_ids:
                body = msgspec.json.decode(request.body)
                body["model_seq_id"] = body["model_seq_id"] * 1000 + self.attempts
                request = dataclasses.replace(request, body=msgspec.json.encode(body))
            response = await applied(request)
            if self.left > 0 and response.status < 300:
                self.left -= 1
                raise ConnectionAbortedError(f"the answer to {path} was lost (test fault)")
            return response

        app._dispatch = dispatch


def live_models(server: LocalServer, session_id: str) -> set[str]:
    """The models the server still holds for a session (its own record)."""
    return {m for m, e in server.service.models.items() if e.session_id == session_id}


def train_once(trainer: Any) -> None:
    """One forward_backward and optim_step: the model is usable."""
    datum = types.Datum(
        model_input=types.ModelInput.from_ints([1, 2, 3, 4]),
        loss_fn_inputs={"target_tokens": types.TensorData.from_numpy(np.array([2, 3, 4, 5]))},
    )
    trainer.forward_backward([datum], "cross_entropy").result(WAIT_S)
    trainer.optim_step(types.AdamParams(learning_rate=1e-3)).result(WAIT_S)


class TestNoOrphanModels:
    def test_a_lost_answer_on_a_server_that_makes_a_model_per_attempt_leaves_one_model(
        self, server: LocalServer
    ) -> None:
        """Two attempts, two models on the server: the one we were not answered is unloaded."""
        lost = LoseAnswers(server, CREATE, times=1, fresh_ids=True)
        with tx.ServiceClient(base_url=server.url, api_key=KEY) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            assert lost.attempts == 2
            assert live_models(server, service.session_id) == {trainer.model_id}
            train_once(trainer)
            second = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            assert live_models(server, service.session_id) == {trainer.model_id, second.model_id}

    def test_a_lost_answer_on_a_server_that_refuses_the_repeated_seq_id_adopts_the_model(
        self, server: LocalServer
    ) -> None:
        """The retry is refused (409, model_seq_id used): the model the first attempt made is
        ours, and it works."""
        lost = LoseAnswers(server, CREATE, times=1, fresh_ids=False)
        with tx.ServiceClient(base_url=server.url, api_key=KEY) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            assert lost.attempts >= 2
            assert live_models(server, service.session_id) == {trainer.model_id}
            train_once(trainer)

    def test_several_lost_answers_in_a_row_still_leave_one_model(
        self, server: LocalServer
    ) -> None:
        """Three answers lost on a server that makes a model per attempt: one model left."""
        lost = LoseAnswers(server, CREATE, times=3, fresh_ids=True)
        with tx.ServiceClient(base_url=server.url, api_key=KEY) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            assert lost.attempts == 4
            assert live_models(server, service.session_id) == {trainer.model_id}
            train_once(trainer)
