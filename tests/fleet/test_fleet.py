"""Rollout fleets on Ray and on a process pool, against the embedded server in its own process."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from tests.fleet._server import API_KEY, SAMPLE_PATH, RecordedServer
from tests.fleet.conftest import WAIT_S
from tests.fleet.rollouts import sample_and_grade, sample_and_report, sample_prompt_of
from tinkex_actors.fleet import RolloutFleet

WINDOW_S = 1.0  # the official backoff after a 429 for a small prompt
NEWS_S = 0.3  # time for a window opened by one worker to reach the others, on a busy machine


def one_in_five_429(server: RecordedServer) -> None:
    server.control({"action": "add", "fault": {
        "path": SAMPLE_PATH, "kind": "status", "status": 429, "times": 10_000, "every": 5}})


def slow_samples(server: RecordedServer, delay_s: float) -> None:
    server.control({"action": "add", "fault": {
        "path": SAMPLE_PATH, "kind": "delay", "delay_s": delay_s, "times": 10_000}})


def peak_overlap_bytes(records: list[dict[str, Any]]) -> int:
    """The most prompt bytes the server was handling at once."""
    edges = sorted([(r["arrived"], r["bytes"]) for r in records]
                   + [(r["answered"], -r["bytes"]) for r in records],
                   key=lambda e: (e[0], e[1]))  # an answer before an arrival at the same instant
    peak = current = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


def run_with_a_kill(fleet: RolloutFleet[Any, Any], items: list[dict[str, Any]], started: Any,
                    held: int, kill: Any) -> tuple[list[Any], list[tuple[int, int]], list[int]]:
    """Run `items` while the server holds every sample; once `held` rollouts started, `kill()`
    and let the server go on. Returns the results, every start (item, pid), the progress."""
    box: dict[str, Any] = {}
    progress: list[int] = []

    def run() -> None:
        try:
            box["results"] = fleet.run(items, progress=lambda done, _: progress.append(done),
                                       timeout_s=WAIT_S)
        except BaseException as exc:
            box["error"] = exc

    runner = threading.Thread(target=run, name="fleet-test-run")
    runner.start()
    starts = [started.get(timeout=WAIT_S) for _ in range(held)]
    kill(starts)
    runner.join(WAIT_S * 2)
    assert not runner.is_alive(), "the run did not finish"
    if "error" in box:
        raise box["error"]
    while not started.empty():
        starts.append(started.get(timeout=WAIT_S))
    return box["results"], starts, progress


def wait_all_saw_the_pause(fleet: RolloutFleet[Any, Any], workers: int) -> None:
    """Block (on the coordinator's watch, with a deadline) until `workers` workers reported
    the paused queue state."""
    deadline = time.monotonic() + WAIT_S
    epoch = -1
    while len(fleet.backend.call("stats")["queue_state_from"]) < workers:
        assert time.monotonic() < deadline, "not every worker saw the paused queue"
        epoch, _ = fleet.backend.call("watch", epoch, 1.0)


class TestRayFleet:
    def test_one_429_window_holds_the_whole_fleet(self, ray_runtime, server, sampler):
        """1 sample in 5 answered 429: the server sees no request inside any window; the
        results of 4 Ray workers come back in order, with progress 1..n."""
        seen_before = len(server.record())
        one_in_five_429(server)
        progress: list[int] = []
        with RolloutFleet(sampler, sample_and_grade, backend="ray", workers=4, concurrency=4,
                          api_key=API_KEY) as fleet:
            results = fleet.run(range(32), progress=lambda done, _: progress.append(done),
                                timeout_s=WAIT_S * 2)
            stats = fleet.stats()
        reports = stats["coordinator"]["reports_429"]
        pids = {w["pid"] for w in stats["workers"]}
        assert [r["item"] for r in results] == list(range(32))
        assert progress == list(range(1, 33))
        assert len(pids) == 4 and os.getpid() not in pids
        assert {r["pid"] for r in results} == pids
        records = server.record()[seen_before:]
        limited = [r for r in records if r["status"] == 429]
        assert len(limited) >= 4
        assert reports == len(limited)  # every 429 fed the one window
        inside = [
            r for r in records for w in limited
            if w["answered"] + NEWS_S < r["arrived"] < w["answered"] + WINDOW_S - 0.05
        ]
        assert len(inside) <= 1, f"{len(inside)} requests arrived inside a backoff window"

    def test_the_byte_budget_holds_fleet_wide(self, ray_runtime, server, sampler):
        """Prompts of 1000 bytes, a budget of 2500: the server never holds more than 2."""
        seen_before = len(server.record())
        slow_samples(server, 0.2)
        with RolloutFleet(sampler, sample_prompt_of, backend="ray", workers=4, concurrency=3,
                          max_in_flight_bytes=2500, api_key=API_KEY) as fleet:
            assert fleet.run([100] * 24, timeout_s=WAIT_S) == [100] * 24
            pool = next(iter(fleet.stats()["coordinator"]["pools"].values()))
        records = server.record()[seen_before:]
        assert len(records) == 24
        assert peak_overlap_bytes(records) == 2000
        assert pool["peak_bytes"] <= 2500

    def test_a_killed_worker_reruns_its_rollouts_exactly_once(self, ray_runtime, server,
                                                             sampler):
        """ray.kill a worker mid-rollout: Ray restarts it, its 2 rollouts run once more,
        every result comes back once and in order, and the pause is warned once."""
        from ray.util.queue import Queue

        started = Queue()
        server.control({"action": "pause", "target": "sampling", "state": "paused_capacity",
                        "reason": "fleet test"})
        with RolloutFleet(sampler, sample_and_report, backend="ray", workers=4, concurrency=2,
                          api_key=API_KEY) as fleet:
            victim = fleet.stats()["workers"][1]["pid"]

            def kill(_starts: list[tuple[int, int]]) -> None:
                wait_all_saw_the_pause(fleet, 4)
                ray_runtime.kill(fleet.backend.actors[1], no_restart=False)
                server.control({"action": "resume", "target": "sampling"})

            items = [{"i": i, "started": started} for i in range(12)]
            results, starts, progress = run_with_a_kill(fleet, items, started, 8, kill)
            stats = fleet.stats()
        assert [r["i"] for r in results] == list(range(12))
        assert progress == list(range(1, 13))
        killed = sorted(i for i, pid in starts[:8] if pid == victim)
        assert len(killed) == 2
        assert sorted(i for i, _ in starts) == sorted([*range(12), *killed])
        assert all(results[i]["pid"] != victim for i in killed)
        assert stats["coordinator"]["incarnations"][1] == 2
        assert stats["coordinator"]["warnings"] == 1  # 4 workers saw it, 1 warning


class TestProcessFleet:
    def test_same_api_without_ray_and_a_killed_process(self, server, sampler):
        """backend="process": results in order; a SIGKILLed worker's rollouts run once more."""
        import multiprocessing

        with multiprocessing.get_context("spawn").Manager() as manager:
            started = manager.Queue()
            server.control({"action": "pause", "target": "sampling",
                            "state": "paused_capacity"})
            with RolloutFleet(sampler, sample_and_report, backend="process", workers=2,
                              concurrency=2, api_key=API_KEY) as fleet:
                victim = fleet.backend.pids()[1]

                def kill(_starts: list[tuple[int, int]]) -> None:
                    os.kill(victim, signal.SIGKILL)
                    server.control({"action": "resume", "target": "sampling"})

                items = [{"i": i, "started": started} for i in range(8)]
                results, starts, progress = run_with_a_kill(fleet, items, started, 4, kill)
                stats = fleet.stats()
        assert [r["i"] for r in results] == list(range(8))
        assert progress == list(range(1, 9))
        killed = sorted(i for i, pid in starts[:4] if pid == victim)
        assert len(killed) == 2
        assert sorted(i for i, _ in starts) == sorted([*range(8), *killed])
        assert stats["coordinator"]["incarnations"][1] == 2
        assert victim not in {w["pid"] for w in stats["workers"]}

    def test_the_byte_budget_holds_across_processes(self, server, sampler):
        """The same budget test on the process backend: never more than 2 prompts at once."""
        seen_before = len(server.record())
        slow_samples(server, 0.2)
        with RolloutFleet(sampler, sample_prompt_of, backend="process", workers=2,
                          concurrency=3, max_in_flight_bytes=2500, api_key=API_KEY) as fleet:
            assert fleet.run([100] * 12, timeout_s=WAIT_S) == [100] * 12
        records = server.record()[seen_before:]
        assert len(records) == 12
        assert peak_overlap_bytes(records) == 2000


class TestArguments:
    def test_bad_arguments_name_the_field(self, sampler):
        """Bad backend, counts or handle are refused at construction, naming the field."""
        with pytest.raises(ValueError, match="backend"):
            RolloutFleet(sampler, sample_and_grade, backend="threads")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="workers"):
            RolloutFleet(sampler, sample_and_grade, workers=0)
        with pytest.raises(ValueError, match="handle"):
            RolloutFleet("not a handle", sample_and_grade)
        with pytest.raises(TypeError, match="rollout"):
            RolloutFleet(sampler, "not callable")  # type: ignore[arg-type]

    def test_the_api_key_never_shows(self, sampler):
        """The key given to the workers is in no repr."""
        fleet = RolloutFleet(sampler, sample_and_grade, api_key="tml-secret-fleet-key")
        assert "tml-secret" not in repr(fleet)
        assert "tml-secret" not in repr(vars(fleet))


class TestSupervision:
    def test_too_many_restarts_crash_the_fleet_and_its_supervisor_restarts_it(self, server,
                                                                              sampler):
        """max_restarts=0: a worker's death fails the run with FleetIntensityError, the fleet's
        process crashes, and the user's supervisor starts a fresh fleet that runs."""
        import multiprocessing

        from supervisors import Supervisor, stop
        from tinkex_actors.fleet import FleetIntensityError

        fleet = RolloutFleet(sampler, sample_and_report, backend="process", workers=2,
                             concurrency=1, max_restarts=0, max_seconds=60.0, api_key=API_KEY)
        top = Supervisor.start([fleet.child_spec("rollouts")], strategy="one_for_one",
                               max_restarts=3, max_seconds=60.0)
        try:
            with multiprocessing.get_context("spawn").Manager() as manager:
                started = manager.Queue()
                generation = fleet.wait_started(0, WAIT_S)
                victim = fleet.backend.pids()[1]
                server.control({"action": "pause", "target": "sampling",
                                "state": "paused_capacity"})

                def kill(_starts: list[tuple[int, int]]) -> None:
                    os.kill(victim, signal.SIGKILL)
                    server.control({"action": "resume", "target": "sampling"})

                items = [{"i": i, "started": started} for i in range(4)]
                with pytest.raises(FleetIntensityError, match="max_restarts=0"):
                    run_with_a_kill(fleet, items, started, 2, kill)
                assert fleet.wait_started(generation, WAIT_S) == generation + 1
                results = fleet.run([{"i": i, "started": started} for i in range(4)],
                                    timeout_s=WAIT_S)
            assert [r["i"] for r in results] == list(range(4))
            assert victim not in fleet.backend.pids()
        finally:
            stop(top, timeout_s=WAIT_S)
        assert fleet.generation == 2
        with pytest.raises(RuntimeError, match="not running"):
            fleet.backend  # noqa: B018
