"""No stall on a rejected request, the client's side: every reserved seq_id reaches the server
(as the official SDK does, a refused request consumes its seq_id), so the client never leaves a
gap a strict server would wait on."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest

import tinkex_actors as tx
from tests.lifecycle.conftest import KEY
from tinkex_actors import types
from tinkex_actors.errors import NotFoundError
from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.local.http_messages import Request, Response

WAIT_S = 30.0
ORDERED = ("/api/v1/optim_step", "/api/v1/load_weights", "/api/v1/save_weights")


class WireLog:
    """The seq_id and status of every ordered JSON request the server got, in arrival order;
    `bare_400(n)` answers the next n of them with a bodiless 400 (a proxy refusing them)."""

    def __init__(self, server: LocalServer) -> None:
        self.seen: list[tuple[str, int, int]] = []
        self._bare = 0
        app: Any = server.app
        applied: Callable[[Request], Awaitable[Response]] = app._dispatch

        async def dispatch(request: Request) -> Response:
            if request.path not in ORDERED:
                return await applied(request)
            seq_id = int(msgspec.json.decode(request.body)["seq_id"])
            if self._bare > 0:
                self._bare -= 1
                response = Response(400, b"")
            else:
                response = await applied(request)
            self.seen.append((request.path.rsplit("/", 1)[1], seq_id, response.status))
            return response

        app._dispatch = dispatch

    def bare_400(self, times: int) -> None:
        """Refuse the next `times` ordered requests with a 400 that has no body."""
        self._bare = times


@pytest.fixture
def strict_server() -> Iterator[LocalServer]:
    """A server that waits at most 2 s for a missing seq_id (30 s by default): a gap left by
    the client shows as a step taking 2 s or more."""
    with LocalServer(api_key=KEY, settings=ServerSettings(gap_timeout_s=2.0)) as local:
        yield local


class TestRejectedRequests:
    def test_a_refused_request_carries_its_seq_id_and_the_next_step_follows(
        self, strict_server: LocalServer
    ) -> None:
        """optim_step, a load_state refused (404), optim_step: seq_ids 1, 2, 3 on the wire."""
        wire = WireLog(strict_server)
        with tx.ServiceClient(base_url=strict_server.url, api_key=KEY) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            adam = types.AdamParams(learning_rate=1e-3)
            trainer.optim_step(adam).result(WAIT_S)
            with pytest.raises(NotFoundError, match="missing"):
                trainer.load_state(f"tinker://{trainer.model_id}/weights/missing").result(WAIT_S)
            trainer.optim_step(adam).result(WAIT_S)
        assert wire.seen == [
            ("optim_step", 1, 200),
            ("load_weights", 2, 404),
            ("optim_step", 3, 200),
        ]

    def test_an_ordered_request_refused_by_a_proxy_is_sent_again_with_its_seq_id(
        self, strict_server: LocalServer
    ) -> None:
        """Two bodiless 400s (the request never reached the service): the step is resent with
        the same seq_id and succeeds; the next one follows without waiting on a gap."""
        wire = WireLog(strict_server)
        with tx.ServiceClient(base_url=strict_server.url, api_key=KEY) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            adam = types.AdamParams(learning_rate=1e-3)
            wire.bare_400(2)
            trainer.optim_step(adam).result(WAIT_S)
            started = time.monotonic()
            trainer.optim_step(adam).result(WAIT_S)
            assert time.monotonic() - started < 2.0
        assert wire.seen == [
            ("optim_step", 1, 400),
            ("optim_step", 1, 400),
            ("optim_step", 1, 200),
            ("optim_step", 2, 200),
        ]
