"""Client tests run under the leak check: every actor stopped, no thread of theirs left.

The embedded server is shared by a module and grows its own worker threads on demand
(`tinkex-local...`); those belong to the server's lifetime, not to a test's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._leaks import leak_check as leak_check  # the shared autouse fixture
from tests.clients._live import BASE, KEY, WAIT_S
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.service.service_client import ServiceClient

# The official-surface modules' fixtures (a module that defines its own `server` overrides them).


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """The embedded server of one test module (short long-polls keep the tests quick)."""
    with LocalServer(api_key=KEY, settings=ServerSettings(long_poll_timeout_s=1.0)) as srv:
        yield srv


@pytest.fixture
def service(server: LocalServer) -> Iterator[ServiceClient]:
    """A ServiceClient of that server, closed after the test."""
    with ServiceClient(base_url=server.url, api_key=KEY) as sc:
        yield sc


@pytest.fixture
def trainer(service: ServiceClient) -> TrainingClient:
    """A small LoRA training client with a fixed seed."""
    return service.create_lora_training_client(BASE, rank=4, seed=3).result(WAIT_S)


