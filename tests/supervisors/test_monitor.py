"""Monitors and links: deaths delivered as Down and Exit messages."""

from __future__ import annotations

import queue

import pykka
import pytest

from supervisors import (
    Down,
    Exit,
    Killed,
    NoProc,
    Normal,
    Process,
    Shutdown,
    Unknown,
    demonitor,
    kill,
    link,
    monitor,
    trap_exits,
    unlink,
)
from supervisors.testing import wait_for_down

from ._actors import WAIT_S, Collector, Worker, crashed_with_boom


class Trapper(Process):
    """Traps exits and forwards every message to a queue."""

    def __init__(self, inbox: queue.Queue) -> None:
        super().__init__()
        self.inbox = inbox

    def init(self) -> None:
        trap_exits(self.actor_ref)

    def on_receive(self, message):
        self.inbox.put(message)


@pytest.fixture
def inbox() -> queue.Queue:
    return queue.Queue()


class TestMonitor:
    """monitor sends one Down with the exit reason."""

    def test_a_crash_arrives_as_down_with_crashed(self, inbox):
        """A monitored crash sends Down(mref, target, Crashed(exc)) to the watcher."""
        watcher = Collector.start(inbox)
        target = Worker.start("t")
        mref = monitor(target, watcher)
        target.tell("crash")
        down = inbox.get(timeout=WAIT_S)
        assert isinstance(down, Down)
        assert down.ref == mref
        assert down.target is target
        assert crashed_with_boom(down.reason)

    def test_monitoring_a_dead_actor_sends_noproc_at_once(self, inbox):
        """A monitor placed on a dead actor delivers Down(..., NoProc()) immediately."""
        watcher = Collector.start(inbox)
        target = Worker.start("t")
        target.stop(timeout=WAIT_S)
        monitor(target, watcher)
        assert inbox.get(timeout=WAIT_S).reason == NoProc()

    def test_a_plain_pykka_actor_can_be_monitored_with_an_unknown_reason(self, inbox):
        """A plain pykka actor's stop is seen, with reason Unknown()."""
        watcher = Collector.start(inbox)
        plain = Collector.start(queue.Queue())
        monitor(plain, watcher)
        plain.stop(timeout=WAIT_S)
        assert inbox.get(timeout=WAIT_S).reason == Unknown()

    def test_two_monitors_get_two_downs(self, inbox):
        """Each monitor delivers its own Down."""
        watcher = Collector.start(inbox)
        target = Worker.start("t")
        first, second = monitor(target, watcher), monitor(target, watcher)
        target.tell("normal")
        got = {inbox.get(timeout=WAIT_S).ref, inbox.get(timeout=WAIT_S).ref}
        assert got == {first, second}

    def test_demonitor_cancels_the_down(self, inbox):
        """After demonitor no Down is sent (checked after the death is certain)."""
        watcher = Collector.start(inbox)
        target = Worker.start("t")
        mref = monitor(target, watcher)
        assert demonitor(mref) is True
        target.tell("crash")
        wait_for_down(target, WAIT_S)
        watcher.ask("sync", timeout=WAIT_S)
        assert inbox.get_nowait() == "sync"
        assert inbox.empty()
        assert demonitor(mref) is False

    def test_kill_reports_killed(self, inbox):
        """An abandoned process is reported as Killed."""
        watcher = Collector.start(inbox)
        target = Worker.start("t")
        monitor(target, watcher)
        kill(target)
        assert inbox.get(timeout=WAIT_S).reason == Killed()


class TestLink:
    """Links propagate abnormal exits or deliver Exit to a trapping process."""

    def test_an_abnormal_exit_takes_the_linked_process_down(self):
        """A crash of one side ends the other with the same reason."""
        a, b = Worker.start("a"), Worker.start("b")
        link(a, b)
        a.tell("crash")
        assert crashed_with_boom(wait_for_down(b, WAIT_S))

    def test_a_normal_exit_does_not_end_the_linked_process(self):
        """Normal and Shutdown exits leave the partner alive."""
        a, b, c = Worker.start("a"), Worker.start("b"), Worker.start("c")
        link(a, b)
        link(c, b)
        a.tell("normal")
        c.tell("shutdown")
        wait_for_down(a, WAIT_S)
        wait_for_down(c, WAIT_S)
        assert b.ask("ping", timeout=WAIT_S) == "pong"

    def test_a_trapping_process_receives_exit_messages(self, inbox):
        """With trap_exits the partner's death arrives as Exit(sender, reason)."""
        trapper = Trapper.start(inbox)
        worker = Worker.start("w")
        link(trapper, worker)
        worker.tell("shutdown")
        message = inbox.get(timeout=WAIT_S)
        assert message == Exit(worker, Shutdown())
        assert trapper.is_alive()

    def test_linking_to_a_dead_process_sends_noproc(self, inbox):
        """A link to a dead process is an immediate exit signal NoProc."""
        trapper = Trapper.start(inbox)
        dead = Worker.start("d")
        dead.stop(timeout=WAIT_S)
        link(trapper, dead)
        assert inbox.get(timeout=WAIT_S) == Exit(dead, NoProc())

    def test_unlink_removes_the_link_both_ways(self):
        """After unlink a crash of one side leaves the other alive."""
        a, b = Worker.start("a"), Worker.start("b")
        link(a, b)
        assert unlink(b, a) is True
        a.tell("crash")
        wait_for_down(a, WAIT_S)
        assert b.ask("ping", timeout=WAIT_S) == "pong"
        assert unlink(a, b) is False

    def test_a_plain_pykka_actor_linked_to_a_crash_is_stopped(self):
        """A plain pykka partner of a crashing process is stopped (it cannot trap)."""
        plain = Collector.start(queue.Queue())
        worker = Worker.start("w")
        link(worker, plain)
        worker.tell("crash")
        assert wait_for_down(plain, WAIT_S) == Unknown()

    def test_trap_exits_refuses_plain_pykka_actors(self):
        """trap_exits on a plain actor raises a TypeError naming the fix."""
        plain = Collector.start(queue.Queue())
        with pytest.raises(TypeError, match=r"inherit from supervisors\.Process"):
            trap_exits(plain)

    def test_a_process_cannot_link_to_itself(self):
        """link(a, a) is refused."""
        a = Worker.start("a")
        with pytest.raises(ValueError, match="itself"):
            link(a, a)

    def test_normal_stop_of_linked_plain_actor_is_seen_by_a_trapper(self, inbox):
        """A trapping process learns that a linked plain actor stopped (reason Unknown)."""
        trapper = Trapper.start(inbox)
        plain = Collector.start(queue.Queue())
        link(trapper, plain)
        plain.stop(timeout=WAIT_S)
        assert inbox.get(timeout=WAIT_S) == Exit(plain, Unknown())
        assert Normal() != Unknown()
        assert pykka.ActorRegistry.get_by_urn(plain.actor_urn) is None
