"""Timers: send_after, send_interval and cancel, under a FakeClock and for real."""

from __future__ import annotations

import queue
import threading
import time

import pytest
from structlog.testing import capture_logs

from supervisors import (
    ChildSpec,
    Process,
    Registry,
    SupervisedRef,
    Supervisor,
    TimerService,
    cancel,
    restart_child,
    send_after,
    stop,
    terminate_child,
)
from supervisors.testing import FakeClock, wait_for_down

from ._actors import WAIT_S, Collector


def _received(ref, inbox: queue.Queue) -> list:
    """Everything the collector got so far (a sync ask flushes its mailbox first)."""
    ref.ask("sync", timeout=WAIT_S)
    items = []
    while True:
        item = inbox.get_nowait()
        if item == "sync":
            return items
        items.append(item)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(clock) -> TimerService:
    return TimerService(clock=clock)


@pytest.fixture
def collector():
    inbox: queue.Queue = queue.Queue()
    return Collector.start(inbox), inbox


class TestFakeClockTimers:
    """Timers fire exactly when the fake clock reaches them."""

    def test_send_after_fires_at_its_due_time_and_not_before(self, clock, service, collector):
        """A one-shot timer fires once the clock reaches its delay."""
        ref, inbox = collector
        timer = service.send_after(1.0, ref, "tick")
        clock.advance(0.9)
        assert _received(ref, inbox) == []
        clock.advance(0.1)
        assert _received(ref, inbox) == ["tick"]
        assert cancel(timer) is False

    def test_send_interval_fires_every_period_even_within_one_advance(
        self, clock, service, collector
    ):
        """Three periods in one advance send three ticks, without drift."""
        ref, inbox = collector
        timer = service.send_interval(1.0, ref, "tick")
        clock.advance(3.5)
        assert _received(ref, inbox) == ["tick"] * 3
        clock.advance(0.5)
        assert _received(ref, inbox) == ["tick"]
        assert cancel(timer) is True
        clock.advance(5.0)
        assert _received(ref, inbox) == []
        assert cancel(timer) is False

    def test_timers_fire_in_due_order(self, clock, service, collector):
        """Timers set out of order arrive in the order of their due times."""
        ref, inbox = collector
        service.send_after(3.0, ref, "c")
        service.send_after(1.0, ref, "a")
        service.send_after(2.0, ref, "b")
        clock.advance(10.0)
        assert _received(ref, inbox) == ["a", "b", "c"]

    def test_a_timer_to_a_dead_actor_cancels_itself(self, clock, service, collector):
        """An interval aimed at a dead plain actor is dropped on its next firing."""
        ref, _ = collector
        service.send_interval(1.0, ref, "tick")
        ref.stop(timeout=WAIT_S)
        clock.advance(1.0)
        assert service.pending() == 0

    def test_bad_delays_are_refused_with_the_field(self, service, collector):
        """Negative delays and non-positive periods raise errors naming the argument."""
        ref, _ = collector
        with pytest.raises(ValueError, match="delay_s=-1"):
            service.send_after(-1, ref, "x")
        with pytest.raises(ValueError, match="period_s=0"):
            service.send_interval(0, ref, "x")
        with pytest.raises(TypeError, match="delay_s='1'"):
            service.send_after("1", ref, "x")  # type: ignore[arg-type]

    def test_the_fake_clock_refuses_to_go_back(self, clock):
        """advance with a negative value is an error."""
        with pytest.raises(ValueError, match="cannot go back"):
            clock.advance(-1)


class Heartbeat(Process):
    """Beats to a collector every second, using a timer set in init."""

    def __init__(self, service: TimerService, sink) -> None:
        super().__init__()
        self.service, self.sink = service, sink

    def init(self) -> None:
        self.service.send_interval(1.0, self.actor_ref, "beat")

    def on_receive(self, message):
        if message == "beat":
            self.sink.tell(("beat", self.actor_urn))
        elif message == "crash":
            raise RuntimeError("heart failure")


class TestProcessTimers:
    """A process's timers end with it."""

    def test_a_restarted_heartbeat_never_beats_twice_as_often(self, clock, service, collector):
        """After a crash and restart, one second brings exactly one beat, from the new one."""
        sink, inbox = collector
        sup = Supervisor.start([ChildSpec(id="hb", start=lambda: Heartbeat.start(service, sink))])
        from supervisors import which_children

        (first,) = [c.ref for c in which_children(sup)]
        clock.advance(1.0)
        first.tell("crash")
        wait_for_down(first, WAIT_S)
        (second,) = [c.ref for c in which_children(sup)]
        assert second is not first
        assert _received(sink, inbox) == [("beat", first.actor_urn)]
        # the beat is delivered to the heartbeat, which forwards it: sync through it too
        clock.advance(1.0)
        second.ask("ping", timeout=WAIT_S)
        assert _received(sink, inbox) == [("beat", second.actor_urn)]
        assert service.pending() == 1


class TestRealTimers:
    """The default service runs one thread, only while timers are pending."""

    def test_send_after_delivers_and_the_thread_ends_when_idle(self, collector):
        """A real timer arrives, then the scheduler thread exits."""
        from supervisors import default_timer_service

        ref, inbox = collector
        send_after(0.01, ref, "hello")
        assert inbox.get(timeout=WAIT_S) == "hello"
        assert default_timer_service().join_idle(WAIT_S)

    def test_a_cancelled_real_timer_never_arrives(self, collector):
        """Cancelling before the due time drops the message and the thread ends."""
        from supervisors import default_timer_service

        ref, inbox = collector
        timer = send_after(60.0, ref, "never")
        assert cancel(timer) is True
        assert default_timer_service().join_idle(WAIT_S)
        assert _received(ref, inbox) == []


class Sink(Process):
    """Puts every message it gets on a queue, tagged with its own urn."""

    def __init__(self, inbox: queue.Queue) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message):
        if message == "crash":
            raise RuntimeError("sink crashed")
        self.inbox.put((message, self.actor_urn))


class Setter(Process):
    """Sets an interval timer aimed at another actor when told to."""

    def __init__(self, service: TimerService, target) -> None:
        super().__init__()
        self.service, self.target = service, target

    def on_receive(self, message):
        if message == "arm":
            self.service.send_interval(1.0, self.target, "tick")
            return "armed"
        return None


class PooledSetter(Setter):
    """The same setter on the shared scheduler's workers."""

    pooled = True


class Refusing:
    """A target whose ``tell`` always raises."""

    def tell(self, message) -> None:
        raise RuntimeError("this target refuses everything")


class BreaksInTimerThread:
    """A real clock that raises once, inside the timer thread, after ``arm()``."""

    def __init__(self) -> None:
        self.armed = threading.Event()

    def arm(self) -> None:
        self.armed.set()

    def monotonic(self) -> float:
        if threading.current_thread().name == "supervisors-timers" and self.armed.is_set():
            self.armed.clear()
            raise RuntimeError("clock broke")
        return time.monotonic()


class TestTimerTargets:
    """Timers go to anything that can be told: refs, SupervisedRefs and registered names."""

    def test_an_interval_to_a_supervised_ref_follows_restarts(self, clock, collector):
        """Ticks reach each incarnation; while no process is registered they are dropped and
        the timer stays."""
        registry, inbox = Registry(), queue.Queue()
        service = TimerService(clock=clock, registry=registry)
        sup = Supervisor.start(
            [ChildSpec(id="sink", start=lambda: Sink.start(inbox), name="sink")],
            registry=registry,
        )
        timer = service.send_interval(1.0, SupervisedRef("sink", registry), "tick")
        first = registry.whereis("sink")
        clock.advance(1.0)
        assert inbox.get(timeout=WAIT_S) == ("tick", first.actor_urn)
        terminate_child(sup, "sink")
        clock.advance(1.0)
        assert service.pending() == 1 and not timer.cancelled
        second = restart_child(sup, "sink")
        clock.advance(1.0)
        assert inbox.get(timeout=WAIT_S) == ("tick", second.actor_urn)
        assert inbox.empty()

    def test_a_registered_name_is_a_target(self, clock):
        """A name is looked up in the service's registry when the timer fires."""
        registry, inbox = Registry(), queue.Queue()
        service = TimerService(clock=clock, registry=registry)
        sink = Sink.start(inbox)
        registry.register(("sink", 1), sink)
        service.send_after(1.0, ("sink", 1), "hello")
        clock.advance(1.0)
        assert inbox.get(timeout=WAIT_S) == ("hello", sink.actor_urn)

    @pytest.mark.parametrize("setter", [Setter, PooledSetter])
    def test_a_timer_dies_with_the_process_that_set_it(self, clock, service, collector, setter):
        """A process's timer aimed at another actor is cancelled when the process exits."""
        ref, inbox = collector
        owner = setter.start(service, ref)
        assert owner.ask("arm", timeout=WAIT_S) == "armed"
        clock.advance(1.0)
        assert _received(ref, inbox) == ["tick"]
        assert stop(owner, timeout_s=WAIT_S)
        assert service.pending() == 0
        clock.advance(5.0)
        assert _received(ref, inbox) == []


class TestTimerFailures:
    """One bad timer never stops the others, and a dead timer thread is replaced."""

    def test_a_target_that_cannot_be_told_is_refused_and_others_still_fire(self, collector):
        """An unhashable, tell-less target raises naming the field; the service carries on."""
        ref, inbox = collector
        service = TimerService()
        with pytest.raises(TypeError, match=r"target=\[\] cannot be told"):
            service.send_after(0.0, [], "x")
        assert service.pending() == 0
        service.send_after(0.01, ref, "hello")
        assert inbox.get(timeout=WAIT_S) == "hello"
        assert service.join_idle(WAIT_S)

    def test_a_tell_that_raises_ends_only_that_timer(self, clock, service, collector):
        """A target raising in tell is logged and cancelled; other intervals keep firing."""
        ref, inbox = collector
        bad = service.send_interval(1.0, Refusing(), "x")
        service.send_interval(1.0, ref, "tick")
        with capture_logs() as logs:
            clock.advance(3.0)
        assert _received(ref, inbox) == ["tick"] * 3
        assert bad.cancelled
        assert [e["event"] for e in logs] == ["timer_send_failed"]

    def test_a_dead_timer_thread_is_replaced_and_the_timers_still_fire(self, collector):
        """The thread dying on a clock error is logged; a new thread delivers the timer."""
        ref, inbox = collector
        clock = BreaksInTimerThread()
        service = TimerService(clock=clock)
        clock.arm()
        with capture_logs() as logs:
            service.send_after(0.01, ref, "still here")
            assert inbox.get(timeout=WAIT_S) == "still here"
            assert service.join_idle(WAIT_S)
        events = [e["event"] for e in logs]
        assert events == ["timer_service_crashed", "timer_service_restarted"]
