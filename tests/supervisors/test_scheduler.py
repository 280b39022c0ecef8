"""Pooled processes: many actors on a few shared workers, with actor semantics kept."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

from supervisors import (
    ChildSpec,
    Crashed,
    Killed,
    Process,
    Scheduler,
    StartError,
    Supervisor,
    kill,
    link,
    stop,
)
from supervisors.testing import wait_for_down

from ._actors import WAIT_S, BoomError


def pooled_class(scheduler: Scheduler, slice_messages: int = 64) -> type[Process]:
    """A pooled Process class on ``scheduler`` that records what it handled."""

    class Pooled(Process):
        pooled = True
        journal: ClassVar[list[tuple[Any, Any]]] = []
        journal_lock: ClassVar[threading.Lock] = threading.Lock()

        def __init__(
            self,
            key: Any,
            gate: threading.Event | None = None,
            entered: threading.Event | None = None,
        ) -> None:
            super().__init__()
            self.key = key
            self.gate = gate
            self.entered = entered
            self.inside = 0
            self.max_inside = 0
            self.seen: list[Any] = []
            self.threads: set[str] = set()

        def on_receive(self, message: Any) -> Any:
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
            self.threads.add(threading.current_thread().name)
            try:
                with self.journal_lock:
                    self.journal.append((self.key, message))
                if message == "wait_gate":
                    assert self.gate is not None
                    if self.entered is not None:
                        self.entered.set()
                    self.gate.wait(WAIT_S)
                if message == "crash":
                    raise BoomError(f"{self.key} crashed")
                if message == "report":
                    return (list(self.seen), self.max_inside, set(self.threads))
                if message == "fail_ask":
                    raise BoomError("asked to fail")
                self.seen.append(message)
                return message
            finally:
                self.inside -= 1

    Pooled.pool_scheduler = scheduler
    Pooled.slice_messages = slice_messages
    return Pooled


def workers_of(scheduler: Scheduler) -> list[threading.Thread]:
    """The scheduler's live worker threads, by name."""
    return [t for t in threading.enumerate() if t.name.startswith(scheduler.name + "-")]


def wait_until_no_workers(scheduler: Scheduler) -> None:
    """Join every worker of ``scheduler`` (with a deadline); fail if one is left."""
    for thread in workers_of(scheduler):
        thread.join(WAIT_S)
    assert workers_of(scheduler) == []


class TestManyOnFew:
    def test_two_hundred_processes_share_at_most_the_configured_workers(self) -> None:
        """200 pooled actors answer asks while no more than 3 worker threads ever exist."""
        scheduler = Scheduler(3, name="pool-many")
        cls = pooled_class(scheduler)
        refs = [cls.start(i) for i in range(200)]
        answers = [ref.ask(("hello", i), timeout=WAIT_S) for i, ref in enumerate(refs)]
        assert answers == [("hello", i) for i in range(200)]
        assert 1 <= len(workers_of(scheduler)) <= 3
        assert scheduler.stats()["members"] == 200
        for ref in refs:
            stop(ref)
        wait_until_no_workers(scheduler)
        assert scheduler.stats()["members"] == 0

    def test_messages_of_one_process_are_handled_in_order_and_never_at_once(self) -> None:
        """Tells from several threads to one pooled actor: per-sender order, one at a time."""
        scheduler = Scheduler(4, name="pool-order")
        ref = pooled_class(scheduler, slice_messages=3).start("solo")
        go = threading.Barrier(4)

        def send(sender: int) -> None:
            go.wait(WAIT_S)
            for n in range(300):
                ref.tell((sender, n))

        senders = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(WAIT_S)
        seen, max_inside, threads = ref.ask("report", timeout=WAIT_S)
        assert len(seen) == 1200
        for sender in range(4):
            assert [n for s, n in seen if s == sender] == list(range(300))
        assert max_inside == 1
        assert threads <= {t.name for t in workers_of(scheduler)} | {
            f"pool-order-{i}" for i in range(1, 10)
        }
        stop(ref)
        wait_until_no_workers(scheduler)

    def test_a_busy_process_yields_its_worker_after_a_slice(self) -> None:
        """With one worker, a process holding 500 queued messages lets another one in after 8."""
        scheduler = Scheduler(1, name="pool-fair")
        cls = pooled_class(scheduler, slice_messages=8)
        gate = threading.Event()
        busy = cls.start("busy", gate)
        other = cls.start("other")
        busy.tell("wait_gate")
        for n in range(500):
            busy.tell(n)
        reply = other.ask("ping", block=False)
        gate.set()
        assert reply.get(timeout=WAIT_S) == "ping"
        assert busy.ask("report", timeout=WAIT_S)[0] == ["wait_gate", *range(500)]
        journal = [entry for entry in cls.journal if entry[1] != "report"]
        position = journal.index(("other", "ping"))
        assert position < 20, f"the other process waited for {position} messages"
        stop(busy)
        stop(other)
        wait_until_no_workers(scheduler)


class TestLifeCycle:
    def test_init_failure_and_ask_errors_behave_as_for_threaded_processes(self) -> None:
        """A failing init raises StartError; an ask that raises returns the error and lives on."""
        scheduler = Scheduler(2, name="pool-life")

        class Refuses(Process):
            pooled = True

            def init(self) -> None:
                raise BoomError("no")

        Refuses.pool_scheduler = scheduler
        with pytest.raises(StartError) as info:
            Refuses.start()
        assert isinstance(info.value.cause, BoomError)
        ref = pooled_class(scheduler).start("asks")
        with pytest.raises(BoomError):
            ref.ask("fail_ask", timeout=WAIT_S)
        assert ref.ask("still here", timeout=WAIT_S) == "still here"
        stop(ref)
        wait_until_no_workers(scheduler)

    def test_a_crashed_pooled_child_is_restarted_by_its_supervisor(self) -> None:
        """one_for_one restarts a pooled child that crashed; a link carries the crash."""
        scheduler = Scheduler(2, name="pool-sup")
        cls = pooled_class(scheduler)
        top = Supervisor.start(
            [ChildSpec(id="kid", start=lambda: cls.start("kid"), name="pooled-kid")],
            strategy="one_for_one",
        )
        from supervisors import SupervisedRef

        kid = SupervisedRef("pooled-kid")
        first = kid.resolve(WAIT_S)
        partner = cls.start("partner")
        link(first, partner)
        first.tell("crash")
        assert isinstance(wait_for_down(partner, WAIT_S), Crashed)
        assert kid.resolve(WAIT_S) is not first or not first.is_alive()
        assert kid.ask("back", timeout=WAIT_S) == "back"
        stop(top, timeout_s=WAIT_S)
        wait_until_no_workers(scheduler)

    def test_killing_a_process_stuck_in_a_handler_lends_the_pool_a_worker(self) -> None:
        """With one worker stuck in a killed process's handler, other processes still run."""
        scheduler = Scheduler(1, name="pool-stuck")
        cls = pooled_class(scheduler)
        gate, entered = threading.Event(), threading.Event()
        stuck = cls.start("stuck", gate, entered)
        other = cls.start("other")
        stuck.tell("wait_gate")
        assert entered.wait(WAIT_S)
        reply = other.ask("ping", block=False)
        kill(stuck)
        assert isinstance(wait_for_down(stuck, WAIT_S), Killed)
        assert reply.get(timeout=WAIT_S) == "ping"
        assert scheduler.stats()["lent"] == 1
        gate.set()
        stop(other)
        wait_until_no_workers(scheduler)
        assert scheduler.stats()["lent"] == 0

    def test_killing_an_idle_pooled_process_reports_killed_and_frees_its_membership(
        self,
    ) -> None:
        """kill on an idle pooled process: Killed at once, asks fail, workers end afterwards."""
        scheduler = Scheduler(2, name="pool-idle")
        ref = pooled_class(scheduler).start("idle")
        assert ref.ask("x", timeout=WAIT_S) == "x"
        kill(ref)
        assert isinstance(wait_for_down(ref, WAIT_S), Killed)
        from pykka import ActorDeadError

        with pytest.raises(ActorDeadError):
            ref.ask("y", timeout=WAIT_S)
        wait_until_no_workers(scheduler)
        assert scheduler.stats()["members"] == 0


class TestBlockingCallers:
    def test_a_pooled_handler_can_ask_a_supervisor_to_start_a_pooled_child(self) -> None:
        """start_child from inside a pooled handler returns: the child's init runs on
        another worker while the caller's worker waits (OTP's common start_child pattern)."""
        from supervisors import DynamicSupervisor, start_child

        scheduler = Scheduler(2, name="pool-nested", stall_s=0.1)
        child_cls = pooled_class(scheduler)
        sup = DynamicSupervisor.start()

        class Starter(Process):
            pooled = True

            def on_receive(self, message: Any) -> Any:
                spec = ChildSpec(id=message, start=lambda: child_cls.start(message))
                child = start_child(sup, spec, timeout_s=WAIT_S)
                return child.ask(("hello", message), timeout=WAIT_S)

        Starter.pool_scheduler = scheduler
        starter = Starter.start()
        assert starter.ask("kid-1", timeout=WAIT_S) == ("hello", "kid-1")
        assert starter.ask("kid-2", timeout=WAIT_S) == ("hello", "kid-2")
        stop(starter)
        stop(sup, timeout_s=WAIT_S)
        wait_until_no_workers(scheduler)


    def test_with_every_worker_blocked_the_watchdog_adds_one_for_the_waiting_work(
        self,
    ) -> None:
        """One worker, held by a handler that waits for another pooled process's answer:
        after stall_s the watchdog lends a worker and both finish."""
        scheduler = Scheduler(1, name="pool-watchdog", stall_s=0.1)
        answerer = pooled_class(scheduler).start("answerer")

        class Waiter(Process):
            pooled = True

            def on_receive(self, message: Any) -> Any:
                return answerer.ask(message, timeout=WAIT_S)

        Waiter.pool_scheduler = scheduler
        waiter = Waiter.start()
        assert waiter.ask("echo me", timeout=WAIT_S) == "echo me"
        assert scheduler.stats()["lent"] == 0  # given back once the handler returned
        stop(waiter)
        stop(answerer)
        wait_until_no_workers(scheduler)


class TestConfiguration:
    @pytest.mark.parametrize("workers", [0, -1, 1.5, True])
    def test_a_bad_worker_count_is_refused_with_the_fix(self, workers: Any) -> None:
        """Scheduler(workers=...) takes a whole number >= 1 and says so."""
        with pytest.raises(ValueError, match="whole number >= 1"):
            Scheduler(workers)

    @pytest.mark.parametrize("stall_s", [0, -1.0, True, "1"])
    def test_a_bad_stall_time_is_refused_with_the_fix(self, stall_s: Any) -> None:
        """Scheduler(stall_s=...) takes seconds > 0 and says so."""
        with pytest.raises(ValueError, match="seconds > 0"):
            Scheduler(2, stall_s=stall_s)

    def test_a_bad_environment_value_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SUPERVISORS_POOL_WORKERS must be a number; the error names it."""
        import supervisors.scheduler as module

        monkeypatch.setattr(module, "_default", None)
        monkeypatch.setenv("SUPERVISORS_POOL_WORKERS", "many")
        with pytest.raises(ValueError, match="SUPERVISORS_POOL_WORKERS"):
            module.default_scheduler()
        monkeypatch.setenv("SUPERVISORS_POOL_WORKERS", "3")
        assert module.default_scheduler().workers == 3
