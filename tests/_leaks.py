"""The leak check shared by the client-level test folders: no actor or client thread may
outlive a test (the embedded server's own threads, started by module fixtures, may)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from supervisors.testing import stop_everything_and_check_threads


@pytest.fixture(autouse=True)
def leak_check() -> Iterator[None]:
    """Fail a test that leaves an actor or a client thread alive."""
    before = set(threading.enumerate())
    yield
    server_threads = {t for t in threading.enumerate() if t.name.startswith("tinkex-local")}
    leaked = stop_everything_and_check_threads(before | server_threads)
    if leaked:
        pytest.fail(f"threads left alive after the test: {[t.name for t in leaked]}")
