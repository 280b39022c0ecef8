"""supervisors.testing: the leak check itself, and wait_for_down."""

from __future__ import annotations

import threading

import pytest

from supervisors import NoProc, Normal, Supervisor, kill
from supervisors.testing import stop_everything_and_check_threads, wait_for_down

from ._actors import WAIT_S, Starts, Worker, worker_spec


class TestLeakCheck:
    """The leak check stops actors and reports threads that outlive them."""

    def test_it_stops_every_actor_and_reports_a_stray_thread(self):
        """Actors are stopped; a thread that will not end is reported by name."""
        before = set(threading.enumerate())
        ref = Worker.start("a")
        release = threading.Event()
        stray = threading.Thread(target=release.wait, args=(WAIT_S,), name="stray")
        stray.start()
        leaked = stop_everything_and_check_threads(before, timeout_s=0.2)
        release.set()
        stray.join(WAIT_S)
        assert [t.name for t in leaked] == ["stray"]
        assert not ref.is_alive()

    def test_it_reports_nothing_when_everything_ended(self):
        """A clean run reports no thread."""
        before = set(threading.enumerate())
        Worker.start("a")
        assert stop_everything_and_check_threads(before, timeout_s=WAIT_S) == []


class TestWaitForDown:
    """wait_for_down returns the reason, or raises after its timeout."""

    def test_it_returns_the_reason_even_after_the_death(self):
        """A process already dead still reports its own exit reason."""
        ref = Worker.start("a")
        ref.tell("normal")
        assert wait_for_down(ref, WAIT_S) == Normal()
        assert wait_for_down(ref, WAIT_S) == Normal()

    def test_it_times_out_on_a_live_process(self):
        """A live process makes wait_for_down raise TimeoutError."""
        ref = Worker.start("a")
        with pytest.raises(TimeoutError):
            wait_for_down(ref, 0.01)

    def test_a_plain_actor_gone_before_the_wait_is_noproc(self):
        """For a plain pykka actor that is already gone the reason is NoProc."""
        import queue

        from ._actors import Collector

        ref = Collector.start(queue.Queue())
        ref.stop(timeout=WAIT_S)
        assert wait_for_down(ref, WAIT_S) == NoProc()


class TestAbandonedSupervisor:
    """Killing a supervisor takes its linked children down."""

    def test_children_of_a_killed_supervisor_die_with_killed(self):
        """The Killed exit signal reaches every child through its link."""
        starts = Starts()
        sup = Supervisor.start([worker_spec(k, starts) for k in "ab"])
        a, b = starts.expect("a", "b")
        kill(sup)
        assert wait_for_down(a, WAIT_S).abnormal
        assert wait_for_down(b, WAIT_S).abnormal
