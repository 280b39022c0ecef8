"""Fixtures: one embedded server per module, a transport and a Poller pool per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from supervisors.testing import FakeClock, actors_cleanup
from tests.futures._support import CountingTransport, FakeTimers
from tinkex_actors.config import Config
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.local.server import LocalServer, ServerSettings
from tinkex_actors.transport.transport import Transport

__all__ = ["actors_cleanup"]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(settings=ServerSettings(long_poll_timeout_s=0.2),
                     api_key="tml-futures-tests", control=True) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _leak_check(server: LocalServer, actors_cleanup: None) -> None:
    """Every test stops its actors and threads (checked after the test; the module's server
    starts before the snapshot)."""


@pytest.fixture
def local(server: LocalServer) -> Iterator[LocalServer]:
    """The module's server, with this test's faults cleared at the end."""
    try:
        yield server
    finally:
        server.faults.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def timers(clock: FakeClock) -> FakeTimers:
    return FakeTimers(clock)


@pytest.fixture
def transport(local: LocalServer) -> Iterator[CountingTransport]:
    inner = Transport(Config(api_key="tml-futures-tests", base_url=local.url))
    try:
        yield CountingTransport(inner)
    finally:
        inner.close(timeout_s=5.0)


@pytest.fixture
def pool(
    transport: CountingTransport, timers: FakeTimers, clock: FakeClock
) -> Iterator[PollerPool]:
    with PollerPool(
        transport, size=2, timers=timers, clock=clock.monotonic, random=lambda: 0.0
    ) as started:
        yield started
