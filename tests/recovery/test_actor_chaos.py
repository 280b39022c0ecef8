"""Chaos profile (d): TrainingClient, Poller and SessionManager actors killed mid-run.

Each kill goes through the supervisors API (`supervisors.kill`, an untrappable exit) at a
random step of a run with recovery on; the supervisors restart the actors with their state.
The run must end as an undisturbed run with the same seed does, and the server must have
applied every seq_id of the model exactly once.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import numpy as np

from supervisors import kill, which_children
from supervisors.testing import stop_everything_and_check_threads
from tinkex_actors import RecoveryPolicy, ServiceClient, types
from tinkex_actors.futures.future import Future
from tinkex_actors.local import LocalServer

from .conftest import KEY, batch

WAIT_S = 60.0
ADAM = types.AdamParams(learning_rate=1e-2)
VICTIMS = ("training_client", "poller", "session_manager")


def _victim(service: ServiceClient, model_id: str, kind: str) -> Any:
    if kind == "training_client":
        return service.registry.whereis(("training", model_id))
    if kind == "session_manager":
        return service.registry.whereis("session_manager")
    assert service.pollers.supervisor is not None
    children = [c.ref for c in which_children(service.pollers.supervisor) if c.ref is not None]
    return children[0]


def _run(
    server: LocalServer, steps: int, kills: dict[int, str]
) -> tuple[list[np.ndarray], list[float], int, int, list[int]]:
    """Returns final logprobs, losses, futures failed or hung, successful kills, and the
    seq_ids the server applied for the model (its own record, read before the close)."""
    futures: list[Future[Any]] = []
    killed = 0
    with ServiceClient(
        base_url=server.url, api_key=KEY, recovery=RecoveryPolicy(checkpoint_every_steps=5)
    ) as service:
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
            WAIT_S
        )
        model_id = trainer.model_id
        for step in range(steps):
            futures.append(trainer.forward_backward(batch(), "cross_entropy"))
            futures.append(trainer.optim_step(ADAM))
            if step in kills:
                victim = _victim(service, model_id, kills[step])
                killed += bool(victim is not None and kill(victim))
        deadline = time.monotonic() + WAIT_S
        bad = sum(f.exception(max(deadline - time.monotonic(), 0.0)) is not None for f in futures)
        losses = [float(f.result(0).metrics["loss:sum"]) for f in futures[::2]]
        out = trainer.forward(batch(), "cross_entropy").result(WAIT_S)
        assert trainer.model_id == model_id, "actor kills must not need a session recovery"
        applied = list(server.service.models[model_id].worker._applied)
    final = [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]
    return final, losses, bad, killed, applied


class TestActorsKilled:
    def test_kills_lose_and_repeat_nothing(self) -> None:
        """One kill of each actor kind at random steps: nothing lost, duplicated or hung,
        and the same weights as an undisturbed run."""
        seed = int(os.environ.get("TINKEX_CHAOS_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        steps = 30
        kills = dict(zip(rng.sample(range(1, steps - 1), len(VICTIMS)), VICTIMS, strict=True))
        before = set(threading.enumerate())
        with LocalServer(api_key=KEY) as server:
            clean, clean_losses, _, _, _ = _run(server, steps, {})
            started = time.monotonic()
            final, losses, bad, killed, applied = _run(server, steps, kills)
            wall = time.monotonic() - started
        leaked = stop_everything_and_check_threads(before | {
            t for t in threading.enumerate() if t.name.startswith("tinkex-local")
        })
        expected = 2 * steps + steps // 5 + 1  # fb + optim, automatic checkpoints, forward
        identical = all(np.array_equal(a, b) for a, b in zip(final, clean, strict=True))
        print(
            f"\nchaos (d) actors killed: seed {seed}, faults injected {killed} "
            f"({sorted(kills.items())}), steps completed {steps - bad // 2}/{steps}, "
            f"lost {bad}, duplicated {len(applied) - expected} (server: {len(applied)} seq_ids "
            f"applied for {expected} operations), hung futures 0, leaked threads {len(leaked)}, "
            f"losses equal {losses == clean_losses}, final weights identical {identical}, "
            f"wall {wall:.1f} s"
        )
        assert killed == len(VICTIMS)
        assert bad == 0 and losses == clean_losses and identical and not leaked
        assert applied == list(range(1, expected + 1))
