"""Chaos profile (a): the server SIGKILLed and restarted from its data directory during a run.

The embedded server runs as `tinkex-actors serve --port P --data-dir D` in a child process; at
random steps of a training run with recovery on, it is killed with SIGKILL and started again on
the same port and directory (an empty server that still has the checkpoints). The run must end
as an undisturbed run with the same seed does. Each profile prints its figure line.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from supervisors.testing import stop_everything_and_check_threads
from tinkex_actors import RecoveryPolicy, ServiceClient, types
from tinkex_actors.futures.future import Future

from .conftest import KEY, ServeProcess, batch

WAIT_S = 120.0
ADAM = types.AdamParams(learning_rate=1e-2)


@dataclass
class Run:
    """What a training run ended with."""

    losses: list[float]
    final: list[np.ndarray]
    settled_twice: int
    failed: int
    hung: int
    steps: int
    recoveries: int
    leaked: int
    wall_s: float


def _train(
    serve: ServeProcess, steps: int, kill_at: set[int], policy: RecoveryPolicy | None
) -> Run:
    """`steps` fb+optim steps on seed 0, the server restarted right after the steps in
    `kill_at` were sent; the user waits for each step's answers one step behind."""
    before = set(threading.enumerate())
    started = time.monotonic()
    settlements: dict[int, int] = {}
    lock = threading.Lock()

    def count(index: int) -> Any:
        def done(_: Future[Any]) -> None:
            with lock:
                settlements[index] = settlements.get(index, 0) + 1

        return done

    futures: list[Future[Any]] = []
    killers: list[threading.Thread] = []
    with ServiceClient(base_url=serve.url, api_key=KEY, recovery=policy) as service:
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
            WAIT_S
        )
        for step in range(steps):
            for future in (
                trainer.forward_backward(batch(), "cross_entropy"),
                trainer.optim_step(ADAM),
            ):
                future.add_done_callback(count(len(futures)))
                futures.append(future)
            if step in kill_at:
                killer = threading.Thread(target=serve.restart, name="chaos-restart")
                killer.start()
                killers.append(killer)
            if step >= 1:
                futures[-3].exception(WAIT_S)  # the previous step's optim_step
        deadline = time.monotonic() + WAIT_S
        for future in futures:
            future.exception(max(deadline - time.monotonic(), 0.0))
        hung = sum(not f.done() for f in futures)
        ok = [f for f in futures if f.done() and f.exception(0) is None]
        final_out = trainer.forward(batch(), "cross_entropy").result(WAIT_S)
        recoveries = service._recovery.recoveries if service._recovery else 0
    for killer in killers:
        killer.join(WAIT_S)
    leaked = stop_everything_and_check_threads(before)
    return Run(
        losses=[float(f.result(0).metrics["loss:sum"]) for f in ok[::2]],
        final=[o["logprobs"].to_numpy() for o in final_out.loss_fn_outputs],
        settled_twice=sum(n > 1 for n in settlements.values()),
        failed=len(futures) - len(ok) - hung,
        hung=hung,
        steps=sum(
            1 for f in futures[1::2] if f.done() and f.exception(0) is None
        ),
        recoveries=recoveries,
        leaked=len(leaked),
        wall_s=time.monotonic() - started,
    )


def _profile(serve: ServeProcess, steps: int, kills: int, every: int) -> None:
    seed = int(os.environ.get("TINKEX_CHAOS_SEED", time.time_ns() % 1_000_000))
    kill_at = set(random.Random(seed).sample(range(1, steps - 1), kills))
    clean = _train(serve, steps, set(), None)
    policy = RecoveryPolicy(checkpoint_every_steps=every)
    chaos = _train(serve, steps, kill_at, policy)
    identical = len(chaos.final) == len(clean.final) and all(
        np.array_equal(a, b) for a, b in zip(chaos.final, clean.final, strict=True)
    )
    print(
        f"\nchaos (a) server SIGKILL+restart: seed {seed}, faults injected {serve.kills} "
        f"(at steps {sorted(kill_at)}), recoveries {chaos.recoveries}, steps completed "
        f"{chaos.steps}/{steps}, lost {chaos.failed}, duplicated {chaos.settled_twice} "
        f"(client record), hung futures {chaos.hung}, leaked threads {chaos.leaked}, "
        f"losses equal {chaos.losses == clean.losses}, final weights identical {identical}, "
        f"wall {chaos.wall_s:.1f} s vs undisturbed {clean.wall_s:.1f} s"
    )
    assert serve.kills == kills
    assert chaos.recoveries >= 1
    assert (chaos.steps, chaos.failed, chaos.settled_twice, chaos.hung) == (steps, 0, 0, 0)
    assert chaos.leaked == 0 and clean.leaked == 0
    assert chaos.losses == clean.losses
    assert identical


class TestServerKilled:
    def test_short_profile(self, serve_process: ServeProcess) -> None:
        """30 steps, one SIGKILL and restart: nothing lost, duplicated or hung; same weights."""
        _profile(serve_process, steps=30, kills=1, every=5)

    @pytest.mark.slow
    def test_long_profile(self, serve_process: ServeProcess) -> None:
        """200 steps, three SIGKILLs and restarts: nothing lost, duplicated or hung."""
        _profile(serve_process, steps=200, kills=3, every=10)
