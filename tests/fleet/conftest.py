"""Fleet tests: a server in its own process, a local Ray runtime, and leak checks.

Ray is a test requirement (`pip install -e ".[test]"` brings it): without it these tests
fail, unless TINKEX_FLEET_ALLOW_NO_RAY=1 says that skipping them is allowed.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisors.testing import stop_everything_and_check_threads
from tests.fleet._server import API_KEY, RecordedServer
from tinkex_actors.service.service_client import ServiceClient

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0


def child_pids() -> set[int]:
    """The live processes whose parent is this one (Linux /proc)."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    """Wait (on each process's pidfd, with a deadline) for `pids` to exit; those still alive."""
    deadline = time.monotonic() + timeout_s
    alive = set()
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
        if not ready:
            alive.add(pid)
    return alive


@pytest.fixture(scope="module")
def server() -> Iterator[RecordedServer]:
    srv = RecordedServer.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def sampler(server: RecordedServer) -> Iterator[Any]:
    with ServiceClient(base_url=server.url, api_key=API_KEY) as sc:
        yield sc.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
    server.control({"action": "clear"})


@pytest.fixture(scope="module")
def ray_runtime(server: RecordedServer) -> Iterator[Any]:
    """A local Ray runtime (2 CPUs, no dashboard), shut down after the module; no process
    of it may outlive the shutdown (the server starts first: it is not Ray's)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("TINKEX_FLEET_ALLOW_NO_RAY") == "1":
            pytest.skip("ray is not installed (allowed by TINKEX_FLEET_ALLOW_NO_RAY=1)")
        pytest.fail('ray is not installed: pip install -e ".[test]" brings it '
                    "(or set TINKEX_FLEET_ALLOW_NO_RAY=1 to skip these tests)")
    before = child_pids()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
    left = wait_gone(child_pids() - before, 15.0)
    assert not left, f"Ray processes outlived ray.shutdown(): {sorted(left)}"


@pytest.fixture(autouse=True)
def leak_check() -> Iterator[None]:
    """Fail a test that leaves an actor, a client thread or a worker process alive."""
    before = set(threading.enumerate())
    pids = child_pids()
    yield
    leaked = stop_everything_and_check_threads(before)
    if leaked:
        pytest.fail(f"threads left alive after the test: {[t.name for t in leaked]}")
    left = wait_gone(child_pids() - pids, 15.0)
    assert not left, f"worker processes left: {sorted(left)}"

