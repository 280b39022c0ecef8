"""Supervisor: a port of the matrix of Erlang's supervisor_SUITE, plus the admin API."""

from __future__ import annotations

import queue
import threading

import pytest
from structlog.testing import capture_logs

from supervisors import (
    BRUTAL_KILL,
    REACHED_MAX_RESTART_INTENSITY,
    ChildSpec,
    ChildStateError,
    Killed,
    Registry,
    Shutdown,
    StartError,
    SupervisedRef,
    Supervisor,
    count_children,
    delete_child,
    get_childspec,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)
from supervisors import stop as stop_process
from supervisors.testing import FakeClock, wait_for_down

from ._actors import (
    LOOP_FOREVER,
    WAIT_S,
    BoomError,
    FlakyStart,
    Starts,
    Worker,
    crashed_with_boom,
    worker_spec,
)


@pytest.fixture
def starts() -> Starts:
    return Starts()


@pytest.fixture
def stops() -> queue.Queue:
    return queue.Queue()


def _drain(q: queue.Queue) -> list:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def _refs(sup) -> dict:
    return {info.id: info.ref for info in which_children(sup)}


class TestStart:
    """start: ok / ignore / error / raise."""

    def test_children_start_left_to_right(self, starts):
        """Children start in spec order and start returns once all are up."""
        sup = Supervisor.start([worker_spec(k, starts) for k in "abc"])
        assert [starts.next()[0] for _ in range(3)] == ["a", "b", "c"]
        assert list(_refs(sup)) == ["a", "b", "c"]

    def test_a_start_returning_none_is_ignored(self, starts):
        """A child whose start returns None is kept as a spec without a process."""
        sup = Supervisor.start([worker_spec("a", starts), ChildSpec(id="i", start=lambda: None)])
        assert _refs(sup)["i"] is None
        assert count_children(sup) == {"specs": 2, "active": 1, "supervisors": 0, "workers": 2}

    def test_a_child_failing_to_start_stops_the_started_ones(self, starts, stops):
        """An init error stops earlier children right to left and raises StartError(id)."""
        specs = [
            worker_spec("a", starts, stops=stops),
            worker_spec("b", starts, stops=stops),
            worker_spec("c", starts, fail_init=lambda: True),
            worker_spec("d", starts),
        ]
        with pytest.raises(StartError) as info:
            Supervisor.start(specs)
        assert info.value.child_id == "c"
        assert isinstance(info.value.cause, StartError)
        assert isinstance(info.value.cause.cause, BoomError)
        assert _drain(stops) == [("b", Shutdown()), ("a", Shutdown())]
        assert "d" not in starts.count

    def test_a_start_function_raising_is_reported_as_start_error(self, starts, stops):
        """A start function that raises is wrapped with the child id and the cause."""

        def explode():
            raise RuntimeError("no")

        with pytest.raises(StartError) as info:
            Supervisor.start(
                [worker_spec("a", starts, stops=stops), ChildSpec(id="x", start=explode)]
            )
        assert info.value.child_id == "x"
        assert isinstance(info.value.cause, RuntimeError)
        assert _drain(stops) == [("a", Shutdown())]

    def test_a_start_returning_something_else_is_an_error(self):
        """A start that returns neither a ref nor None fails with a TypeError cause."""
        with pytest.raises(StartError) as info:
            Supervisor.start([ChildSpec(id="x", start=lambda: 42)])
        assert isinstance(info.value.cause, TypeError)
        assert "must return an ActorRef" in str(info.value.cause)

    def test_bad_supervisor_options_are_refused(self):
        """Strategy, intensity and duplicate ids are validated with the fix."""
        with pytest.raises(StartError, match="strategy='one_for_some'"):
            Supervisor.start([], strategy="one_for_some")
        with pytest.raises(StartError, match="max_restarts=-1"):
            Supervisor.start([], max_restarts=-1)
        with pytest.raises(StartError, match="max_seconds=0"):
            Supervisor.start([], max_seconds=0)
        spec = ChildSpec(id="a", start=lambda: None)
        with pytest.raises(StartError, match="two specs with id='a'"):
            Supervisor.start([spec, spec])


class TestStop:
    """stop: infinity / timeout / brutal_kill, children right to left."""

    def test_children_stop_right_to_left_with_shutdown(self, starts, stops):
        """Stopping the supervisor stops c, b, a in that order with Shutdown()."""
        sup = Supervisor.start([worker_spec(k, starts, stops=stops) for k in "abc"])
        assert stop_process(sup, timeout_s=WAIT_S)
        assert _drain(stops) == [("c", Shutdown()), ("b", Shutdown()), ("a", Shutdown())]

    def test_shutdown_none_waits_for_the_child(self, starts, stops):
        """With shutdown=None the supervisor waits until the child's terminate returns."""
        release, entered = threading.Event(), threading.Event()

        class Slow(Worker):
            def terminate(self, reason):
                entered.set()
                release.wait(WAIT_S)
                super().terminate(reason)

        spec = ChildSpec(id="s", start=lambda: Slow.start("s", starts, stops=stops), shutdown=None)
        sup = Supervisor.start([spec])
        stopper = threading.Thread(target=stop_process, args=(sup,), kwargs={"timeout_s": WAIT_S})
        stopper.start()
        assert entered.wait(WAIT_S)
        assert stops.empty()
        release.set()
        stopper.join(WAIT_S)
        assert _drain(stops) == [("s", Shutdown())]
        assert wait_for_down(sup, WAIT_S) == Shutdown()

    def test_a_child_past_its_shutdown_timeout_is_killed(self, starts):
        """A child that does not stop within shutdown seconds is abandoned as Killed."""
        ignore = threading.Event()
        sup = Supervisor.start([worker_spec("a", starts, ignore_stop=ignore, shutdown=0.05)])
        (child,) = starts.expect("a")
        with capture_logs() as logs:
            assert stop_process(sup, timeout_s=WAIT_S)
        ignore.set()
        assert wait_for_down(child, WAIT_S) == Killed()
        assert any(e["event"] == "child_shutdown_timed_out" for e in logs)

    def test_brutal_kill_abandons_the_child_at_once(self, starts, stops):
        """shutdown=BRUTAL_KILL kills the child: Killed, and its terminate never runs."""
        sup = Supervisor.start([worker_spec("a", starts, stops=stops, shutdown=BRUTAL_KILL)])
        (child,) = starts.expect("a")
        assert stop_process(sup, timeout_s=WAIT_S)
        assert wait_for_down(child, WAIT_S) == Killed()
        assert stops.empty()


# restart type x exit reason: was the child restarted?
MATRIX = [
    ("permanent", "normal", True),
    ("permanent", "shutdown", True),
    ("permanent", "crash", True),
    ("transient", "normal", False),
    ("transient", "shutdown", False),
    ("transient", "crash", True),
    ("temporary", "normal", False),
    ("temporary", "shutdown", False),
    ("temporary", "crash", False),
]


class TestRestartTypes:
    """{permanent, transient, temporary} x {normal, shutdown, abnormal}."""

    @pytest.mark.parametrize(("restart", "how", "restarted"), MATRIX)
    def test_restart_matrix(self, starts, restart, how, restarted):
        """Each restart type restarts exactly after the exits OTP restarts it after."""
        sup = Supervisor.start([worker_spec("a", starts, restart=restart)])
        (first,) = starts.expect("a")
        first.tell(how)
        wait_for_down(first, WAIT_S)
        children = which_children(sup)  # answered after the Exit, which overtakes it
        if restarted:
            (second,) = starts.expect("a")
            assert children[0].ref is second
        elif restart == "temporary":
            assert children == []
        else:
            assert children[0].ref is None
        assert starts.nothing_more()


class TestStrategies:
    """Each strategy restarts the right group, and escalates past intensity."""

    def test_one_for_one_restarts_only_the_dead_child(self, starts, stops):
        """b crashes: only b is restarted."""
        sup = Supervisor.start([worker_spec(k, starts, stops=stops) for k in "abc"])
        a, b, c = starts.expect("a", "b", "c")
        b.tell("crash")
        starts.expect("b")
        refs = _refs(sup)
        assert refs["a"] is a and refs["c"] is c

    def test_one_for_all_restarts_everyone_in_order(self, starts, stops):
        """b crashes: c then a are stopped, then a, b, c start again."""
        sup = Supervisor.start(
            [worker_spec(k, starts, stops=stops) for k in "abc"], strategy="one_for_all"
        )
        starts.expect("a", "b", "c")
        _refs(sup)["b"].tell("crash")
        starts.expect("a", "b", "c")
        got = [stops.get(timeout=WAIT_S) for _ in range(3)]
        assert crashed_with_boom(got[0][1]) and got[0][0] == "b"
        assert got[1:] == [("c", Shutdown()), ("a", Shutdown())]

    def test_rest_for_one_restarts_the_dead_child_and_those_after_it(self, starts, stops):
        """b crashes: c is stopped, then b and c start again; a is untouched."""
        sup = Supervisor.start(
            [worker_spec(k, starts, stops=stops) for k in "abc"], strategy="rest_for_one"
        )
        a, b, _ = starts.expect("a", "b", "c")
        b.tell("crash")
        starts.expect("b", "c")
        assert _refs(sup)["a"] is a
        assert [k for k, _ in _drain(stops)] == ["b", "c"]

    @pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
    def test_more_than_max_restarts_in_the_window_escalates(self, starts, stops, strategy):
        """The (max_restarts+1)th crash within max_seconds ends the supervisor abnormally."""
        clock = FakeClock()
        sup = Supervisor.start(
            [worker_spec(k, starts, stops=stops) for k in "ab"],
            strategy=strategy,
            max_restarts=2,
            max_seconds=5.0,
            clock=clock,
        )
        starts.expect("a", "b")
        with capture_logs() as logs:
            for _ in range(2):
                _refs(sup)["b"].tell("crash")
                starts.expect(*(["b"] if strategy != "one_for_all" else ["a", "b"]))
            _refs(sup)["b"].tell("crash")
            reason = wait_for_down(sup, WAIT_S)
        assert reason == Shutdown(REACHED_MAX_RESTART_INTENSITY)
        assert reason.abnormal
        assert any(e["event"] == "restart_intensity_reached" for e in logs)
        assert starts.nothing_more()

    def test_restarts_older_than_the_window_are_forgotten(self, starts):
        """With time moving past max_seconds between crashes, the supervisor survives."""
        clock = FakeClock()
        sup = Supervisor.start(
            [worker_spec("a", starts)], max_restarts=1, max_seconds=5.0, clock=clock
        )
        starts.expect("a")
        for _ in range(4):
            _refs(sup)["a"].tell("crash")
            starts.expect("a")
            clock.advance(5.1)
        assert sup.is_alive()

    def test_escalation_restarts_the_child_supervisor_in_its_parent(self, starts):
        """A child supervisor that gives up is restarted by its parent (abnormal exit)."""
        inner = ChildSpec(
            id="inner",
            type="supervisor",
            start=lambda: Supervisor.start([worker_spec("leaf", starts)], max_restarts=0),
        )
        top = Supervisor.start([inner], max_restarts=5)
        (leaf,) = starts.expect("leaf")
        first_inner = _refs(top)["inner"]
        leaf.tell("crash")
        assert wait_for_down(first_inner, WAIT_S) == Shutdown(REACHED_MAX_RESTART_INTENSITY)
        starts.expect("leaf")
        assert _refs(top)["inner"] is not first_inner


class TestRestartFailures:
    """A child failing to restart, bystanders, and a hanging restart loop."""

    def test_a_failed_restart_is_retried_and_counts_against_intensity(self, starts):
        """A child whose restart fails once is retried by message and comes back."""
        attempts = iter([False, True, False])
        sup = Supervisor.start(
            [worker_spec("a", starts, fail_init=lambda: next(attempts))], max_restarts=3
        )
        (a,) = starts.expect("a")
        with capture_logs() as logs:
            a.tell("crash")
            starts.expect("a")
            which_children(sup)  # the restart is logged once start returned: sync on it
        events = [e["event"] for e in logs]
        assert "child_restart_failed" in events
        assert events.count("child_restarted") == 1
        assert sup.is_alive()

    def test_a_child_that_never_restarts_makes_the_supervisor_give_up(self, starts):
        """Retries of an always-failing restart exhaust intensity; the supervisor exits."""
        first = iter([False])
        sup = Supervisor.start(
            [worker_spec("a", starts, fail_init=lambda: next(first, True))],
            max_restarts=3,
            clock=FakeClock(),
        )
        (a,) = starts.expect("a")
        a.tell("crash")
        assert wait_for_down(sup, WAIT_S) == Shutdown(REACHED_MAX_RESTART_INTENSITY)

    def test_temporary_bystanders_are_not_restarted(self, starts):
        """In one_for_all, a temporary sibling taken down by the restart stays down."""
        sup = Supervisor.start(
            [worker_spec("a", starts), worker_spec("t", starts, restart="temporary")],
            strategy="one_for_all",
        )
        a, t = starts.expect("a", "t")
        a.tell("crash")
        starts.expect("a")
        assert wait_for_down(t, WAIT_S) == Shutdown()
        assert list(_refs(sup)) == ["a"]
        assert starts.nothing_more()

    def test_transient_bystanders_are_restarted_with_the_group(self, starts):
        """In rest_for_one, a transient sibling after the crashed child is restarted."""
        sup = Supervisor.start(
            [worker_spec("a", starts), worker_spec("t", starts, restart="transient")],
            strategy="rest_for_one",
        )
        a, _ = starts.expect("a", "t")
        a.tell("crash")
        starts.expect("a", "t")
        assert all(ref is not None for ref in _refs(sup).values())

    def test_a_hanging_restart_loop_ends_by_intensity(self, starts):
        """A child that crashes right after every start is given up on, not looped forever."""

        class Doomed(Worker):
            def init(self):
                super().init()
                self.actor_ref.tell("crash")

        sup = Supervisor.start(
            [ChildSpec(id="d", start=lambda: Doomed.start("d", starts))],
            max_restarts=3,
            clock=FakeClock(),
        )
        assert wait_for_down(sup, WAIT_S) == Shutdown(REACHED_MAX_RESTART_INTENSITY)
        assert starts.count["d"] == 4


    def test_a_restart_whose_init_hangs_is_abandoned_and_counted(self, starts):
        """An init that hangs on restart times out, is retried, and intensity ends the loop."""
        release = threading.Event()
        first = iter([False])

        class Hanging(Worker):
            start_timeout_s = 0.05

            def init(self):
                if next(first, True):
                    release.wait(WAIT_S)
                super().init()

        sup = Supervisor.start(
            [ChildSpec(id="h", start=lambda: Hanging.start("h", starts))],
            max_restarts=2,
            clock=FakeClock(),
        )
        (h,) = starts.expect("h")
        with capture_logs() as logs:
            h.tell("crash")
            assert wait_for_down(sup, WAIT_S) == Shutdown(REACHED_MAX_RESTART_INTENSITY)
        release.set()
        failures = [e for e in logs if e["event"] == "child_restart_failed"]
        assert len(failures) == 2
        assert "start_timeout_s" in failures[0]["error"]


class TestRestartingState:
    """OTP's ``restarting`` state and group retries (ports of supervisor_SUITE's
    hanging_restart_loop and hanging_restart_loop_rest_for_one, plus try_again_restart)."""

    def test_a_child_in_a_restart_loop_is_restarting_until_terminated(self, starts):
        """restart_child and delete_child answer restarting; terminate_child ends the loop,
        after which the child can be restarted; the supervisor stops while looping."""
        flaky = FlakyStart("c", starts)
        spec = ChildSpec(id="c", start=flaky)
        sup = Supervisor.start([spec], **LOOP_FOREVER)
        (c,) = starts.expect("c")
        flaky.arm()
        c.tell("crash")
        assert flaky.looping.wait(WAIT_S)
        with pytest.raises(ValueError, match="already present but not running"):
            start_child(sup, spec)
        with pytest.raises(ChildStateError, match="'c' is restarting") as refused:
            restart_child(sup, "c")
        assert refused.value.state == "restarting"
        with pytest.raises(ChildStateError, match="'c' is restarting"):
            delete_child(sup, "c")
        assert _refs(sup) == {"c": None}
        assert count_children(sup) == {"specs": 1, "active": 0, "supervisors": 0, "workers": 1}
        terminate_child(sup, "c")
        refused_then = flaky.refused
        assert _refs(sup) == {"c": None}  # the retry queued before terminate_child did nothing
        assert flaky.refused == refused_then
        flaky.failing.clear()
        c2 = restart_child(sup, "c")
        assert starts.expect("c") == [c2]
        flaky.arm()
        c2.tell("crash")
        assert flaky.looping.wait(WAIT_S)
        assert stop_process(sup, timeout_s=WAIT_S)

    def test_rest_for_one_restarting_child_leaves_the_rest_down(self, starts):
        """b loops: a runs, b is restarting, c waits down; terminate_child b ends the loop."""
        flaky = FlakyStart("b", starts)
        sup = Supervisor.start(
            [worker_spec("a", starts), ChildSpec(id="b", start=flaky), worker_spec("c", starts)],
            strategy="rest_for_one",
            **LOOP_FOREVER,
        )
        a, b, c = starts.expect("a", "b", "c")
        flaky.arm()
        b.tell("crash")
        assert flaky.looping.wait(WAIT_S)
        assert wait_for_down(c, WAIT_S) == Shutdown()
        assert _refs(sup) == {"a": a, "b": None, "c": None}
        assert count_children(sup) == {"specs": 3, "active": 1, "supervisors": 0, "workers": 3}
        with pytest.raises(ChildStateError, match="restarting"):
            restart_child(sup, "b")
        with pytest.raises(ChildStateError, match="restarting"):
            delete_child(sup, "b")
        terminate_child(sup, "b")
        flaky.failing.clear()
        b2 = restart_child(sup, "b")
        assert starts.expect("b") == [b2]
        assert _refs(sup) == {"a": a, "b": b2, "c": None}

    def test_one_for_all_stops_the_siblings_restarted_before_a_failure(self, starts, stops):
        """c crashes; a restarts, b fails: the retry stops that new a and starts a, b, c."""
        refuse_b = iter([False, True])  # b's first start works, its first restart fails
        sup = Supervisor.start(
            [
                worker_spec("a", starts, stops=stops),
                worker_spec("b", starts, fail_init=lambda: next(refuse_b, False)),
                worker_spec("c", starts),
            ],
            strategy="one_for_all",
            clock=FakeClock(),
        )
        _, _, c = starts.expect("a", "b", "c")
        with capture_logs() as logs:
            c.tell("crash")
            (a_between,) = starts.expect("a")
            a3, b3, c3 = starts.expect("a", "b", "c")
            refs = _refs(sup)  # the last restart is logged once start returned: sync on it
        assert wait_for_down(a_between, WAIT_S) == Shutdown()
        assert refs == {"a": a3, "b": b3, "c": c3}
        events = [e["event"] for e in logs if e["event"].startswith("child_re")]
        assert events == ["child_restarted", "child_restart_failed"] + ["child_restarted"] * 3

    def test_rest_for_one_retries_from_the_child_that_failed(self, starts):
        """b crashes; b restarts, c fails: the retry restarts c and d, and keeps the new b."""
        refuse_c = iter([False, True])
        sup = Supervisor.start(
            [
                worker_spec("a", starts),
                worker_spec("b", starts),
                worker_spec("c", starts, fail_init=lambda: next(refuse_c, False)),
                worker_spec("d", starts),
            ],
            strategy="rest_for_one",
            clock=FakeClock(),
        )
        a, b, _, _ = starts.expect("a", "b", "c", "d")
        b.tell("crash")
        (b2,) = starts.expect("b")
        c2, d2 = starts.expect("c", "d")
        assert _refs(sup) == {"a": a, "b": b2, "c": c2, "d": d2}
        assert b2.is_alive()

    def test_the_group_retry_counts_against_intensity(self, starts):
        """With max_restarts=1, the crash's restart plus one retry is too many: give up."""
        refuse_b = iter([False])
        sup = Supervisor.start(
            [
                worker_spec("a", starts),
                worker_spec("b", starts, fail_init=lambda: next(refuse_b, True)),
            ],
            strategy="one_for_all",
            max_restarts=1,
            clock=FakeClock(),
        )
        a, _ = starts.expect("a", "b")
        a.tell("crash")
        (a2,) = starts.expect("a")
        assert wait_for_down(sup, WAIT_S) == Shutdown(REACHED_MAX_RESTART_INTENSITY)
        assert wait_for_down(a2, WAIT_S) == Shutdown()
        assert starts.nothing_more()


class TestPlainPykkaChildren:
    """Plain pykka actors can be supervised through monitors."""

    def test_a_crashed_plain_pykka_child_is_restarted_and_stopped_with_the_tree(self):
        """A plain actor's crash (reason Unknown) restarts it; stop ends the new one."""
        from ._actors import Collector

        class Fragile(Collector):
            def on_receive(self, message):
                if message == "crash":
                    raise BoomError("plain crash")
                return super().on_receive(message)

        made: queue.Queue = queue.Queue()

        def start_fragile():
            ref = Fragile.start(queue.Queue())
            made.put(ref)
            return ref

        sup = Supervisor.start([ChildSpec(id="p", start=start_fragile)])
        first = made.get(timeout=WAIT_S)
        first.tell("crash")
        second = made.get(timeout=WAIT_S)
        assert _refs(sup)["p"] is second
        assert stop_process(sup, timeout_s=WAIT_S)
        assert not second.is_alive()


class TestAdminApi:
    """start_child, terminate_child, restart_child, delete_child, counts and specs."""

    def test_the_admin_calls_follow_otp(self, starts):
        """A child can be added, stopped, restarted, deleted, counted and inspected."""
        sup = Supervisor.start([worker_spec("a", starts)])
        spec_b = worker_spec("b", starts)
        b = start_child(sup, spec_b)
        assert starts.expect("a", "b")[1] is b
        assert list(_refs(sup)) == ["a", "b"]
        with pytest.raises(ValueError, match="already running"):
            start_child(sup, spec_b)
        with pytest.raises(ValueError, match="is running; terminate_child it first"):
            delete_child(sup, "b")
        terminate_child(sup, "b")
        assert wait_for_down(b, WAIT_S) == Shutdown()
        assert _refs(sup)["b"] is None
        assert count_children(sup) == {"specs": 2, "active": 1, "supervisors": 0, "workers": 2}
        new_b = restart_child(sup, "b")
        assert starts.expect("b")[0] is new_b
        with pytest.raises(ValueError, match="is running"):
            restart_child(sup, "b")
        terminate_child(sup, "b")
        delete_child(sup, "b")
        assert list(_refs(sup)) == ["a"]
        assert get_childspec(sup, "a").id == "a"
        with pytest.raises(LookupError, match="no child with id='zz'"):
            get_childspec(sup, "zz")

    def test_a_failing_start_child_raises_start_error_and_keeps_nothing(self, starts):
        """start_child with a failing init raises and leaves no spec behind."""
        sup = Supervisor.start([])
        with pytest.raises(StartError):
            start_child(sup, worker_spec("x", starts, fail_init=lambda: True))
        assert which_children(sup) == []

    def test_count_children_counts_supervisors_and_workers(self, starts):
        """count_children reports specs, active, supervisors and workers."""
        inner = ChildSpec(id="inner", type="supervisor", start=lambda: Supervisor.start([]))
        sup = Supervisor.start(
            [inner, worker_spec("w", starts), ChildSpec(id="i", start=lambda: None)]
        )
        assert count_children(sup) == {"specs": 3, "active": 2, "supervisors": 1, "workers": 2}


class TestTreesAndNames:
    """A three-level tree, names kept across restarts, and the log events."""

    def test_a_three_level_tree_starts_restarts_and_stops_in_order(self, starts, stops):
        """Leaves restart locally; stopping the root stops everything right to left."""

        def mid(name):
            return ChildSpec(
                id=name,
                type="supervisor",
                start=lambda: Supervisor.start(
                    [worker_spec(f"{name}.{i}", starts, stops=stops) for i in (1, 2)]
                ),
            )

        root = Supervisor.start([mid("x"), mid("y")])
        refs = dict(
            zip(
                ["x.1", "x.2", "y.1", "y.2"], starts.expect("x.1", "x.2", "y.1", "y.2"), strict=True
            )
        )
        refs["x.2"].tell("crash")
        starts.expect("x.2")
        _drain(stops)
        assert stop_process(root, timeout_s=WAIT_S)
        assert [k for k, _ in _drain(stops)] == ["y.2", "y.1", "x.2", "x.1"]

    def test_a_named_child_keeps_its_name_across_restarts(self, starts):
        """A SupervisedRef reaches the new incarnation after a restart."""
        registry = Registry()
        sup = Supervisor.start([worker_spec("a", starts, name="svc")], registry=registry)
        (first,) = starts.expect("a")
        handle = SupervisedRef("svc", registry)
        assert handle.ask("ping", timeout=WAIT_S) == "pong"
        first.tell("crash")
        (second,) = starts.expect("a")
        which_children(sup)
        assert handle.resolve(WAIT_S) is second
        assert handle.ask("ping", timeout=WAIT_S) == "pong"

    def test_supervisor_reports_are_structured_log_events(self, starts):
        """child_started, child_terminated and child_restarted carry stable keys."""
        with capture_logs() as logs:
            sup = Supervisor.start([worker_spec("a", starts)], name="top", registry=Registry())
            (a,) = starts.expect("a")
            a.tell("crash")
            starts.expect("a")
            which_children(sup)
        by_event = {e["event"]: e for e in logs}
        assert by_event["child_started"]["supervisor"] == "top"
        assert by_event["child_started"]["child_id"] == "a"
        assert "Crashed(BoomError" in by_event["child_terminated"]["reason"]
        assert by_event["child_restarted"]["child_id"] == "a"


class TestRaces:
    """Deaths that cross the supervisor's own actions."""

    def test_a_child_dying_while_the_supervisor_stops_it_is_not_taken_for_a_parent(self, starts):
        """A crash notice that arrives after the supervisor shut that child down is dropped."""
        entered, release = threading.Event(), threading.Event()

        class SlowStop(Worker):
            def terminate(self, reason):
                entered.set()
                release.wait(WAIT_S)

        specs = [
            worker_spec("a", starts),
            worker_spec("b", starts),
            ChildSpec(id="c", start=lambda: SlowStop.start("c", starts)),
        ]
        sup = Supervisor.start(specs, strategy="one_for_all", max_restarts=10)
        a, b, _ = starts.expect("a", "b", "c")
        b.tell("crash")
        assert entered.wait(WAIT_S)  # the supervisor is busy stopping c
        entered.clear()
        a.tell("crash")
        wait_for_down(a, WAIT_S)  # a died on its own before the supervisor reached it
        release.set()
        starts.expect("a", "b", "c")
        assert all(ref is not None for ref in _refs(sup).values())
        assert sup.is_alive()
        assert starts.nothing_more()
