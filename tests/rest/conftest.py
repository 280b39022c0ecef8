"""Fixtures: one embedded server per module, and REST clients that are always closed."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tinkex_actors.config import Config
from tinkex_actors.local import LocalServer
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport

BASE_MODEL = "tiny-byte-lm"
WAIT_S = 10.0


async def no_sleep(_delay_s: float) -> None:
    """The transport's retry pause, skipped."""


class RecordingSleep:
    """The RestClient's archive-retry pause: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


class Seeder:
    """Puts training runs and checkpoints straight into the server's store."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.storage = server.service.storage

    def run(self, checkpoints: int = 1, kind: str = "training") -> tuple[str, list[str]]:
        """A new training run with `checkpoints` checkpoints; returns (run_id, tinker paths)."""
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        self.storage.put_run(
            run_id,
            {"base_model": BASE_MODEL, "is_lora": True, "lora_rank": 4, "created_s": time.time()},
        )
        paths = []
        for i in range(checkpoints):
            parsed = self.storage.save(
                run_id,
                kind,  # type: ignore[arg-type]
                f"step-{i:04d}",
                {"w": np.arange(4, dtype=np.float32) + i},
                {"base_model": BASE_MODEL, "lora": {"rank": 4, "train_mlp": True}},
            )
            paths.append(parsed.tinker_path)
        return run_id, paths


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def seed(server: LocalServer) -> Iterator[Seeder]:
    yield Seeder(server)
    server.faults.clear()


@pytest.fixture
def archive_sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def make_client(
    server: LocalServer, archive_sleep: RecordingSleep
) -> Iterator[Callable[..., RestClient]]:
    """Builds RestClients on their own Transports; closes both and checks no thread is left."""
    before = set(threading.enumerate())
    made: list[tuple[RestClient, Transport]] = []

    def make(max_retries: int = 3, **kwargs: Any) -> RestClient:
        transport = Transport(
            Config(base_url=server.url, api_key=server.api_key, max_retries=max_retries,
                   timeout_s=10.0),
            sleep=no_sleep,
            random=lambda: 0.0,
        )
        kwargs.setdefault("sleep", archive_sleep)
        client = RestClient(transport, **kwargs)
        made.append((client, transport))
        return client

    yield make
    for client, transport in made:
        client.close()
        transport.close()
    leaked = [
        t
        for t in set(threading.enumerate()) - before
        if t.is_alive() and t.name.startswith(("tinkex-rest", "tinkex-transport"))
    ]
    assert not leaked, f"threads left behind: {leaked}"


@pytest.fixture
def rest(make_client: Callable[..., RestClient]) -> RestClient:
    return make_client()


def count(server: LocalServer, path: str) -> int:
    """How many requests the server received on `path`."""
    return int(server.app.path_counts.get(path, 0))


def new_session(server: LocalServer) -> str:
    """A session created over HTTP, as a ServiceClient would."""
    with Transport(Config(base_url=server.url, api_key=server.api_key)) as transport:
        answer = transport.submit(
            HttpRequest.json(
                "POST",
                "create_session",
                {
                    "tags": ["rest"],
                    "user_metadata": {"who": "test"},
                    "sdk_version": "t",
                    "type": "create_session",
                },
            )
        ).result(WAIT_S)
        return str(answer.json()["session_id"])


def new_sampler(server: LocalServer, session_id: str) -> str:
    """A sampling session of `session_id` on the base model."""
    with Transport(Config(base_url=server.url, api_key=server.api_key)) as transport:
        answer = transport.submit(
            HttpRequest.json(
                "POST",
                "create_sampling_session",
                {"session_id": session_id, "sampling_session_seq_id": 0, "base_model": BASE_MODEL},
            )
        ).result(WAIT_S)
        return str(answer.json()["sampling_session_id"])
