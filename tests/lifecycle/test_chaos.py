"""Chaos profiles against the embedded server, each ending with a figure line:

(b) a share of all requests dropped or answered 503 / 408 / 429 while a model trains: nothing
    lost, nothing applied twice (the server's own count of Adam steps and its record of applied
    seq_ids), final weights identical to an undisturbed run with the same seed;
(e) the server goes away for good: every pending future fails within connection_lost_after_s
    plus a few seconds.

The short profiles run by default; the long one needs --run-slow.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

import tinkex_actors as tx
from supervisors.testing import stop_everything_and_check_threads
from tests.lifecycle.conftest import KEY, ServerProcess
from tinkex_actors import types
from tinkex_actors.errors import ConnectionLostError
from tinkex_actors.local import Fault, LocalServer

WAIT_S = 60.0
SEED = 7
# Four faults on every path, each hitting one request in 40: about 10% of requests.
FAULTS = (
    {"kind": "drop"},
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 408},
    {"kind": "status", "status": 429, "headers": {"retry-after-ms": "20"}},
)


def batch(step: int) -> list[types.Datum]:
    """A deterministic batch for one step."""
    rng = np.random.default_rng(step)
    tokens = rng.integers(1, 200, size=9)
    return [
        types.Datum(
            model_input=types.ModelInput.from_ints(tokens[:-1].tolist()),
            loss_fn_inputs={"target_tokens": types.TensorData.from_numpy(tokens[1:])},
        )
    ]


class Run:
    """What one training run left: the server's record and the client's outcomes."""

    def __init__(self) -> None:
        self.completed = 0
        self.hung = 0
        self.applied: list[int] = []
        self.adam_steps = 0
        self.weights: dict[str, np.ndarray] = {}


def train(server: LocalServer, steps: int) -> Run:
    """Train `steps` steps (forward_backward + optim_step, pipelined) and read the server's
    record of the model before the session ends."""
    run = Run()
    futures: list[tx.Future[Any]] = []
    with tx.ServiceClient(base_url=server.url, api_key=KEY) as service:
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=SEED).result(
            WAIT_S
        )
        adam = types.AdamParams(learning_rate=1e-2)
        for step in range(steps):
            futures.append(trainer.forward_backward(batch(step), "cross_entropy"))
            futures.append(trainer.optim_step(adam))
        for future in futures:
            try:
                future.result(WAIT_S)
                run.completed += 1
            except TimeoutError:
                run.hung += 1
        entry = server.service.models[trainer.model_id]
        run.applied = sorted(entry.worker._applied)  # the server's record of applied seq_ids
        run.adam_steps = entry.model.adam_step
        run.weights = {k: v.copy() for k, v in entry.model.params.items()}
    return run


def run_profile_b(steps: int) -> str:
    """Profile (b); returns its figure line (asserting what it reports)."""
    before = set(threading.enumerate())
    with LocalServer(api_key=KEY) as calm:
        reference = train(calm, steps)
    with LocalServer(api_key=KEY) as server:
        faults = [Fault(path="*", times=1_000_000, every=40, **spec) for spec in FAULTS]
        for fault in faults:
            server.faults.add(fault)
        started = time.monotonic()
        run = train(server, steps)
        wall_s = time.monotonic() - started
        injected = sum(1_000_000 - f.times for f in faults)
        requests = server.app.request_count
        server.faults.clear()
    duplicated = run.adam_steps - steps
    lost = 2 * steps - run.completed - run.hung
    identical = reference.weights.keys() == run.weights.keys() and all(
        np.array_equal(reference.weights[k], v) for k, v in run.weights.items()
    )
    server_threads = {t for t in threading.enumerate() if t.name.startswith("tinkex-local")}
    leaked = len(stop_everything_and_check_threads(before | server_threads))
    line = (
        f"chaos (b) {steps} steps: faults injected {injected} of {requests} requests, "
        f"steps completed {run.completed // 2}, lost {lost}, duplicated {duplicated}, "
        f"hung futures {run.hung}, leaked threads {leaked}, weights identical {identical}, "
        f"wall {wall_s:.1f} s"
    )
    print(line)
    assert injected >= requests // 20, line
    assert (lost, duplicated, run.hung, leaked) == (0, 0, 0, 0), line
    assert run.applied == list(range(1, 2 * steps + 1)), line
    assert identical, line
    return line


class TestChaos:
    def test_profile_b_ten_percent_faults_short(self) -> None:
        """20 steps under ~10% dropped/503/408/429 requests: 0 lost, 0 duplicated, same weights."""
        run_profile_b(20)

    @pytest.mark.slow
    def test_profile_b_ten_percent_faults_long(self) -> None:
        """200 steps under ~10% dropped/503/408/429 requests: 0 lost, 0 duplicated."""
        run_profile_b(200)

    def test_profile_e_the_server_never_comes_back(self, server_process: ServerProcess) -> None:
        """SIGKILL mid-run, connection_lost_after_s=2: every pending future fails with
        ConnectionLostError within 2 s plus one backoff step."""
        lost_after_s = 2.0
        before = set(threading.enumerate())
        with tx.ServiceClient(
            base_url=server_process.url, api_key=KEY, connection_lost_after_s=lost_after_s
        ) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            adam = types.AdamParams(learning_rate=1e-2)
            trainer.forward_backward(batch(0), "cross_entropy").result(WAIT_S)
            server_process.kill()
            killed = time.monotonic()
            pending: list[tx.Future[Any]] = []
            for step in range(30):
                pending.append(trainer.forward_backward(batch(step), "cross_entropy"))
                pending.append(trainer.optim_step(adam))
            outcomes = [f.exception(WAIT_S) for f in pending]
            all_failed_s = time.monotonic() - killed
        failed = sum(isinstance(e, ConnectionLostError) for e in outcomes)
        hung = sum(not f.done() for f in pending)
        leaked = len(stop_everything_and_check_threads(before))
        line = (
            f"chaos (e) server gone: {len(pending)} pending futures, failed "
            f"{failed} with ConnectionLostError in {all_failed_s:.1f} s "
            f"(connection_lost_after_s={lost_after_s:g}), hung futures {hung}, "
            f"leaked threads {leaked}"
        )
        print(line)
        assert failed == len(pending) and hung == 0 and leaked == 0, line
        assert all_failed_s < lost_after_s + 10.0, line
