"""DynamicSupervisor: children on demand, max_children, extra args, concurrent stop."""

from __future__ import annotations

import queue
import threading

import pytest

from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    MaxChildrenError,
    Shutdown,
    StartError,
    count_children,
    start_child,
    stop,
    terminate_child,
    which_children,
)
from supervisors.testing import wait_for_down

from ._actors import LOOP_FOREVER, WAIT_S, FlakyStart, Starts, Worker, worker_spec


class TestDynamicChildren:
    """start_child, restarts per spec, terminate_child, max_children, extra_args."""

    def test_children_start_on_demand_and_restart_on_their_own(self):
        """A crashed permanent child is restarted; its siblings are untouched."""
        starts = Starts()
        sup = DynamicSupervisor.start()
        a = start_child(sup, worker_spec("a", starts))
        b = start_child(sup, worker_spec("b", starts))
        starts.expect("a", "b")
        a.tell("crash")
        (a2,) = starts.expect("a")
        refs = [c.ref for c in which_children(sup)]
        assert refs == [a2, b]

    def test_temporary_children_are_forgotten_when_they_end(self):
        """A temporary child that ends is removed and not restarted."""
        starts = Starts()
        sup = DynamicSupervisor.start()
        t = start_child(sup, worker_spec("t", starts, restart="temporary"))
        t.tell("crash")
        wait_for_down(t, WAIT_S)
        assert which_children(sup) == []

    def test_max_children_is_enforced_with_the_fix(self):
        """Past max_children, start_child raises MaxChildrenError."""
        starts = Starts()
        sup = DynamicSupervisor.start(max_children=1)
        start_child(sup, worker_spec("a", starts))
        with pytest.raises(MaxChildrenError, match="max_children=1"):
            start_child(sup, worker_spec("b", starts))

    def test_extra_args_come_first(self):
        """extra_args are passed before nothing else to every child's start."""
        starts = Starts()
        sup = DynamicSupervisor.start(extra_args=("x", starts))
        ref = start_child(sup, ChildSpec(id="w", start=lambda key, st: Worker.start(key, st)))
        assert starts.expect("x") == [ref]

    def test_terminate_child_takes_a_ref(self):
        """terminate_child stops that child and forgets it."""
        starts = Starts()
        sup = DynamicSupervisor.start()
        ref = start_child(sup, worker_spec("a", starts))
        terminate_child(sup, ref)
        assert wait_for_down(ref, WAIT_S) == Shutdown()
        assert count_children(sup)["specs"] == 0
        with pytest.raises(LookupError):
            terminate_child(sup, ref)

    def test_a_failing_child_start_raises_start_error(self):
        """A child whose init fails is reported and not kept."""
        sup = DynamicSupervisor.start()
        with pytest.raises(StartError):
            start_child(sup, worker_spec("x", Starts(), fail_init=lambda: True))
        assert which_children(sup) == []

    def test_bad_options_are_refused(self):
        """max_children must be a positive int."""
        with pytest.raises(StartError, match="max_children=0"):
            DynamicSupervisor.start(max_children=0)


class TestConcurrentStop:
    """Children are stopped at once, each under its own timeout."""

    def test_children_are_stopped_concurrently(self):
        """Every child's terminate runs while the others are still stopping."""
        n = 5
        entered = threading.Barrier(n, timeout=WAIT_S)
        stops: queue.Queue = queue.Queue()

        class Sync(Worker):
            def terminate(self, reason):
                entered.wait()  # breaks (and times out) if stops were sequential
                super().terminate(reason)

        sup = DynamicSupervisor.start()
        for i in range(n):
            start_child(
                sup, ChildSpec(id=i, start=lambda i=i: Sync.start(i, stops=stops), shutdown=WAIT_S)
            )
        assert stop(sup, timeout_s=WAIT_S * 2)
        reasons = [stops.get(timeout=WAIT_S)[1] for _ in range(n)]
        assert reasons == [Shutdown()] * n


class TestDynamicRestarting:
    """A dynamic child in a restart loop (port of supervisor_SUITE's
    hanging_restart_loop_simple)."""

    def test_terminate_child_with_the_last_ref_ends_a_restart_loop(self):
        """A restarting child shows no ref and is not active; terminating it by its last ref
        forgets it; the supervisor also stops while a child loops."""
        starts = Starts()
        flaky = FlakyStart("c", starts)
        sup = DynamicSupervisor.start(**LOOP_FOREVER)
        c = start_child(sup, ChildSpec(id="c", start=flaky))
        starts.expect("c")
        flaky.arm()
        c.tell("crash")
        assert flaky.looping.wait(WAIT_S)
        assert [info.ref for info in which_children(sup)] == [None]
        assert count_children(sup) == {"specs": 1, "active": 0, "supervisors": 0, "workers": 1}
        terminate_child(sup, c)
        refused_then = flaky.refused
        assert which_children(sup) == []  # the retry queued before terminate_child did nothing
        assert flaky.refused == refused_then
        flaky.failing.clear()
        c2 = start_child(sup, ChildSpec(id="c", start=flaky))
        assert starts.expect("c") == [c2]
        flaky.arm()
        c2.tell("crash")
        assert flaky.looping.wait(WAIT_S)
        assert stop(sup, timeout_s=WAIT_S)
