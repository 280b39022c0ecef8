"""Fixtures: a scripted loopback server, and transports that are always closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.transport._server import ScriptedServer
from tinkex_actors.config import Config
from tinkex_actors.transport.transport import Transport

SECRET_KEY = "tml-TestSecretKeyDoNotLog0123456789WXYZ"


class RecordingSleep:
    """An injected sleep: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def sleeper() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_transport(
    server: ScriptedServer, sleeper: RecordingSleep
) -> Iterator[Callable[..., Transport]]:
    made: list[Transport] = []

    def make(config: Config | None = None, **kwargs: Any) -> Transport:
        cfg = config or Config(api_key=SECRET_KEY, base_url=server.url)
        kwargs.setdefault("sleep", sleeper)
        kwargs.setdefault("random", lambda: 0.0)
        transport = Transport(cfg, **kwargs)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close(timeout_s=5.0)
