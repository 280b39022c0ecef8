"""TaskSupervisor: run and map_unordered."""

from __future__ import annotations

import threading

import pytest
from pykka import ActorDeadError

from supervisors import TaskSupervisor, map_unordered, run, stop

from ._actors import WAIT_S


class TestRun:
    """run returns a future; a crash becomes its exception."""

    def test_the_result_arrives_in_the_future(self):
        """run(fn, *args) resolves with fn's return value."""
        sup = TaskSupervisor.start()
        assert run(sup, pow, 2, 10).get(timeout=WAIT_S) == 1024

    def test_a_crash_is_the_futures_exception_and_the_supervisor_lives(self):
        """An exception in the task is raised from get; the supervisor keeps serving."""
        sup = TaskSupervisor.start()

        def fail():
            raise KeyError("lost")

        with pytest.raises(KeyError):
            run(sup, fail).get(timeout=WAIT_S)
        assert run(sup, len, "abc").get(timeout=WAIT_S) == 3

    def test_a_dead_supervisor_fails_the_future(self):
        """run on a stopped supervisor gives a future holding ActorDeadError."""
        sup = TaskSupervisor.start()
        stop(sup, timeout_s=WAIT_S)
        with pytest.raises(ActorDeadError):
            run(sup, len, "abc").get(timeout=WAIT_S)

    def test_a_task_abandoned_at_stop_fails_its_future(self):
        """A task still running past shutdown_s when the supervisor stops ends ActorDeadError."""
        sup = TaskSupervisor.start(shutdown_s=0.05)
        release, running = threading.Event(), threading.Event()

        def hang():
            running.set()
            release.wait(WAIT_S)

        future = run(sup, hang)
        assert running.wait(WAIT_S)
        assert stop(sup, timeout_s=WAIT_S)
        with pytest.raises(ActorDeadError):
            future.get(timeout=WAIT_S)
        release.set()


class TestMapUnordered:
    """map_unordered yields every result with bounded concurrency."""

    def test_all_results_arrive_with_at_most_max_concurrency_running(self):
        """Twenty items, never more than three at once."""
        sup = TaskSupervisor.start()
        lock, running, peak = threading.Lock(), [0], [0]

        def square(x):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            with lock:
                running[0] -= 1
            return x * x

        got = sorted(map_unordered(sup, square, range(20), max_concurrency=3))
        assert got == [x * x for x in range(20)]
        assert 1 <= peak[0] <= 3

    def test_the_first_failure_is_raised(self):
        """An exception in one item is raised from the iterator."""
        sup = TaskSupervisor.start()

        def inverse(x):
            return 1 / x

        with pytest.raises(ZeroDivisionError):
            list(map_unordered(sup, inverse, [1, 0, 2], max_concurrency=1))

    def test_max_concurrency_is_validated(self):
        """max_concurrency must be a positive int."""
        sup = TaskSupervisor.start()
        with pytest.raises(ValueError, match="max_concurrency=0"):
            list(map_unordered(sup, abs, [1], max_concurrency=0))
