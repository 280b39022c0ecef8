"""Process: start handshake, exit reasons, terminate, kill as abandon, no lost replies."""

from __future__ import annotations

import queue
import threading

import pykka
import pytest
from pykka import ActorDeadError
from pykka._envelope import Envelope

import supervisors
from supervisors import (
    Crashed,
    Killed,
    Normal,
    Process,
    Shutdown,
    StartError,
    Supervisor,
    kill,
    stop,
)
from supervisors.testing import wait_for_down

from ._actors import WAIT_S, BoomError, Starts, Worker, crashed_with_boom, worker_spec


class TestStartHandshake:
    """``start`` returns only after ``init`` and reports its failures."""

    def test_start_returns_a_ref_after_init_ran(self):
        """The ref returned by start belongs to an actor whose init already ran."""
        starts = Starts()
        ref = Worker.start("a", starts)
        assert starts.count == {"a": 1}
        assert ref.ask("ping", timeout=WAIT_S) == "pong"

    def test_a_failing_init_raises_start_error_with_the_real_cause(self):
        """An exception in init surfaces from start as StartError carrying it."""
        with pytest.raises(StartError) as info:
            Worker.start("a", fail_init=lambda: True)
        assert isinstance(info.value.cause, BoomError)
        assert info.value.child_id == "Worker"

    def test_a_failing_constructor_raises_start_error(self):
        """A bad constructor argument is reported as StartError, not a bare TypeError."""
        with pytest.raises(StartError) as info:
            Worker.start("a", no_such_option=True)
        assert isinstance(info.value.cause, TypeError)

    def test_an_init_past_the_start_timeout_is_abandoned(self):
        """An init that does not return in start_timeout_s fails start and leaves no ref."""
        release = threading.Event()

        class Slow(Process):
            start_timeout_s = 0.05

            def init(self) -> None:
                release.wait(WAIT_S)

        with pytest.raises(StartError) as info:
            Slow.start()
        release.set()
        assert isinstance(info.value.cause, TimeoutError)
        assert "start_timeout_s" in str(info.value.cause)
        assert pykka.ActorRegistry.get_by_class(Slow) == []


class TestExitReasons:
    """Every way a process ends is reported with the right reason."""

    def test_pykka_stop_is_a_normal_exit(self):
        """ref.stop() ends the process with Normal and returns True."""
        ref = Worker.start("a")
        assert ref.stop(timeout=WAIT_S) is True
        assert wait_for_down(ref, WAIT_S) == Normal()

    def test_stop_defaults_to_shutdown(self):
        """supervisors.stop ends a process with Shutdown()."""
        stops: queue.Queue = queue.Queue()
        ref = Worker.start("a", stops=stops)
        assert stop(ref, timeout_s=WAIT_S) is True
        assert stops.get(timeout=WAIT_S) == ("a", Shutdown())

    def test_a_crash_in_a_tell_handler_ends_the_process(self):
        """An exception in a told message ends the process with Crashed(exc)."""
        ref = Worker.start("a")
        ref.tell("crash")
        assert crashed_with_boom(wait_for_down(ref, WAIT_S))

    def test_an_exception_in_an_ask_goes_to_the_caller_and_the_process_lives(self):
        """An exception in an asked message is raised to the caller only."""
        ref = Worker.start("a")
        with pytest.raises(BoomError):
            ref.ask("raise_in_ask", timeout=WAIT_S)
        assert ref.ask("ping", timeout=WAIT_S) == "pong"

    def test_exit_from_a_handler_ends_with_that_reason(self):
        """self.exit(reason) ends the process after the handler with that reason."""
        ref = Worker.start("a")
        ref.tell("shutdown")
        assert wait_for_down(ref, WAIT_S) == Shutdown()

    def test_terminate_gets_the_reason(self):
        """terminate is called with the exit reason before watchers are told."""
        stops: queue.Queue = queue.Queue()
        ref = Worker.start("a", stops=stops)
        ref.tell("crash")
        wait_for_down(ref, WAIT_S)
        key, reason = stops.get_nowait()  # already there: terminate ran before the Down
        assert key == "a"
        assert crashed_with_boom(reason)

    def test_pykka_proxies_work_on_a_process(self):
        """A Process keeps pykka's proxy API: method calls return futures."""

        class Adder(Process):
            def add(self, a, b):
                return a + b

        ref = Adder.start()
        assert ref.proxy().add(1, 2).get(timeout=WAIT_S) == 3

    def test_reasons_compare_by_value_and_know_whether_they_are_abnormal(self):
        """Reasons are frozen values; only crashes, kills, noproc and escalation are abnormal."""
        assert Shutdown("x") == Shutdown("x")
        assert not Normal().abnormal
        assert not Shutdown().abnormal
        assert Shutdown(supervisors.REACHED_MAX_RESTART_INTENSITY).abnormal
        assert Killed().abnormal
        assert Crashed(ValueError()).abnormal


class TestKillIsAbandon:
    """kill marks a process dead at once without waiting for its thread."""

    def test_kill_fails_the_ask_in_flight_and_never_delivers_the_late_result(self):
        """The caller of a hanging ask gets ActorDeadError, not the late 'late'."""
        hang = threading.Event()
        stops: queue.Queue = queue.Queue()
        ref = Worker.start("a", hang=hang, stops=stops)
        future = ref.ask("block", block=False)
        queued = ref.ask("ping", block=False)
        assert kill(ref) is True
        assert wait_for_down(ref, WAIT_S) == Killed()
        with pytest.raises(ActorDeadError):
            queued.get(timeout=WAIT_S)
        hang.set()
        with pytest.raises(ActorDeadError):
            future.get(timeout=WAIT_S)
        assert not ref.is_alive()
        assert stops.empty()  # terminate is not called on a killed process

    def test_stop_abandons_a_process_that_does_not_stop_in_time(self):
        """stop returns False and reports Killed when terminate hangs past the timeout."""
        ignore = threading.Event()
        ref = Worker.start("a", ignore_stop=ignore)
        assert stop(ref, timeout_s=0.05) is False
        assert wait_for_down(ref, WAIT_S) == Killed()
        ignore.set()

    def test_killing_a_dead_process_returns_false(self):
        """kill on a dead process is a no-op."""
        ref = Worker.start("a")
        ref.stop(timeout=WAIT_S)
        assert kill(ref) is False


class TestNoLostReplies:
    """An ask to a dying process is always answered."""

    def test_an_ask_enqueued_after_the_mailbox_drained_gets_actor_dead_error(self):
        """The race pykka loses (put after the final drain) is answered by our mailbox."""
        ref = Worker.start("a")
        ref.stop(timeout=WAIT_S)
        future = pykka.ThreadingFuture()
        ref.actor_inbox.put(Envelope("ping", reply_to=future))  # as if is_alive() raced
        with pytest.raises(ActorDeadError):
            future.get(timeout=WAIT_S)

    def test_an_ask_whose_liveness_check_raced_with_the_death_is_answered(self):
        """ask() that saw the process alive, then enqueued after its end, gets ActorDeadError."""
        ref = Worker.start("a")
        ref.stop(timeout=WAIT_S)
        ref.is_alive = lambda: True  # freeze the interleaving: the check passed just before
        with pytest.raises(ActorDeadError):
            ref.ask("ping", timeout=WAIT_S)

    def test_plain_pykka_loses_that_reply(self):
        """For contrast: a plain pykka actor leaves the same late ask unanswered."""

        class Plain(pykka.ThreadingActor):
            pass

        ref = Plain.start()
        ref.stop(timeout=WAIT_S)
        future = pykka.ThreadingFuture()
        ref.actor_inbox.put(Envelope("ping", reply_to=future))
        with pytest.raises(pykka.Timeout):
            future.get(timeout=0.05)

    def test_asks_racing_with_stop_are_all_answered(self):
        """Thousands of asks sent while the process stops all resolve, value or error."""
        unanswered = 0
        for _ in range(300):
            ref = Worker.start()
            go = threading.Event()
            futures: list = []

            def ask_many(ref=ref, go=go, futures=futures):
                go.wait(WAIT_S)
                for _ in range(20):
                    futures.append(ref.ask("ping", block=False))

            asker = threading.Thread(target=ask_many)
            asker.start()
            go.set()
            ref.stop(block=False)
            asker.join(WAIT_S)
            for future in futures:
                try:
                    assert future.get(timeout=WAIT_S) == "pong"
                except ActorDeadError:
                    pass
                except pykka.Timeout:
                    unanswered += 1
        assert unanswered == 0


class TestSystemExit:
    """A KeyboardInterrupt in an actor stops everything and restarts nothing."""

    def test_keyboard_interrupt_stops_all_actors_without_restarts(self):
        """After a KeyboardInterrupt in a child, the supervisor stops and no child restarts."""
        starts = Starts()

        class Interrupted(Worker):
            def on_receive(self, message):
                if message == "interrupt":
                    raise KeyboardInterrupt
                return super().on_receive(message)

        sup = Supervisor.start(
            [
                worker_spec("a", starts),
                supervisors.ChildSpec(id="b", start=lambda: Interrupted.start("b", starts)),
            ],
            max_restarts=100,
        )
        a, b = starts.expect("a", "b")
        b.tell("interrupt")
        wait_for_down(sup, WAIT_S)
        wait_for_down(a, WAIT_S)
        assert starts.nothing_more()
        assert starts.count == {"a": 1, "b": 1}

    def test_keyboard_interrupt_in_a_plain_pykka_child_restarts_nothing(self):
        """pykka's own stop_all after a KeyboardInterrupt also blocks restarts."""
        import queue as queue_module

        from ._actors import Collector

        class PlainInterrupted(Collector):
            def on_receive(self, message):
                if message == "interrupt":
                    raise KeyboardInterrupt
                return super().on_receive(message)

        starts = Starts()
        plain_starts: queue_module.Queue = queue_module.Queue()

        def start_plain():
            ref = PlainInterrupted.start(queue_module.Queue())
            plain_starts.put(ref)
            return ref

        sup = Supervisor.start(
            [worker_spec("a", starts), supervisors.ChildSpec(id="p", start=start_plain)],
            max_restarts=100,
        )
        (a,) = starts.expect("a")
        plain = plain_starts.get(timeout=WAIT_S)
        plain.tell("interrupt")
        wait_for_down(sup, WAIT_S)
        wait_for_down(a, WAIT_S)
        assert plain_starts.empty()
        assert starts.nothing_more()

    def test_supervisors_started_after_a_stop_all_restart_normally(self):
        """The no-restart rule applies to supervisors alive at stop_all, not to later ones."""
        pykka.ActorRegistry.stop_all(block=True, timeout=WAIT_S)
        starts = Starts()
        Supervisor.start([worker_spec("a", starts)])
        (a,) = starts.expect("a")
        a.tell("crash")
        starts.expect("a")


class TestFailedInit:
    """A failed init leaves nothing behind and does not call terminate."""

    def test_terminate_is_not_called_after_a_failed_init(self):
        """As in OTP, terminate runs only for processes that started."""
        stops: queue.Queue = queue.Queue()
        with pytest.raises(StartError):
            Worker.start("a", fail_init=lambda: True, stops=stops)
        assert stops.empty()

    def test_a_failing_constructor_leaves_no_watch_behind(self):
        """A constructor error does not leak a death watch."""
        from supervisors import _watch

        before = _watch.live_watch_count()
        with pytest.raises(StartError):
            Worker.start("a", no_such_option=True)
        assert _watch.live_watch_count() == before

    def test_a_supervisor_whose_name_is_taken_stops_its_children(self):
        """A name clash in Supervisor.init stops the children it already started."""
        from supervisors import Registry

        registry, stops, starts = Registry(), queue.Queue(), Starts()
        registry.register("top", Worker.start("holder"))
        with pytest.raises(StartError):
            Supervisor.start(
                [worker_spec("a", starts, stops=stops)], name="top", registry=registry
            )
        assert stops.get(timeout=WAIT_S) == ("a", Shutdown())


class TestPykkaApi:
    """pykka's own API on a Process, with nothing of pykka patched."""

    def test_proxy_attributes_can_be_read_and_set_and_stop_called(self):
        """A proxy reads and sets attributes, and proxy.stop() ends the process Normal()."""

        class Holder(Process):
            value = 1

        ref = Holder.start()
        proxy = ref.proxy()
        assert proxy.value.get(timeout=WAIT_S) == 1
        proxy.value = 5
        assert proxy.value.get(timeout=WAIT_S) == 5
        proxy.stop()
        assert wait_for_down(ref, WAIT_S) == Normal()

    def test_ref_stop_answers_like_pykka(self):
        """ref.stop() is True once stopped and False on a dead process; block=False gives a
        future of the same answer."""
        ref = Worker.start("a")
        assert ref.stop(timeout=WAIT_S) is True
        assert ref.stop(timeout=WAIT_S) is False
        other = Worker.start("b")
        assert other.stop(block=False).get(timeout=WAIT_S) is True

    def test_a_child_stopped_by_ref_stop_is_restarted(self):
        """Outside stop_all, pykka's stop of a permanent child is an exit it restarts from."""
        starts = Starts()
        Supervisor.start([worker_spec("a", starts)])
        (a,) = starts.expect("a")
        assert a.stop(timeout=WAIT_S) is True
        starts.expect("a")

    @pytest.mark.parametrize("block", [True, False])
    def test_stop_all_stops_a_tree_and_restarts_nothing(self, block):
        """pykka's stop_all, blocking or not, stops every child and supervisor, no restart."""
        starts = Starts()
        inner = supervisors.ChildSpec(
            id="inner",
            type="supervisor",
            start=lambda: Supervisor.start([worker_spec("c", starts)]),
        )
        sup = Supervisor.start([worker_spec("a", starts), inner, worker_spec("b", starts)])
        a, c, b = starts.expect("a", "c", "b")
        answers = pykka.ActorRegistry.stop_all(block=block, timeout=WAIT_S)
        if not block:
            answers = [future.get(timeout=WAIT_S) for future in answers]
        assert len(answers) == 5
        for ref in (sup, a, b, c):
            wait_for_down(ref, WAIT_S)
        assert starts.nothing_more()
        assert pykka.ActorRegistry.get_all() == []

    def test_a_process_runs_on_a_daemon_thread(self):
        """A Process never holds the interpreter open (pykka's actors do by default)."""
        seen: queue.Queue = queue.Queue()

        class Reporter(Process):
            def on_receive(self, message):
                seen.put(threading.current_thread().daemon)

        Reporter.start().tell("where")
        assert seen.get(timeout=WAIT_S) is True
