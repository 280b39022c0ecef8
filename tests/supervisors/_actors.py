"""Small actors the supervisors tests start: a scriptable worker and a message collector."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import pykka

from supervisors import Crashed, Normal, Process, Shutdown

WAIT_S = 5.0


class BoomError(Exception):
    """The exception our workers crash with."""


class Starts:
    """A thread-safe journal of worker starts: (child id, ref) in start order."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Any, pykka.ActorRef[Any]]] = queue.Queue()
        self.lock = threading.Lock()
        self.count: dict[Any, int] = {}

    def record(self, key: Any, ref: pykka.ActorRef[Any]) -> None:
        with self.lock:
            self.count[key] = self.count.get(key, 0) + 1
        self.queue.put((key, ref))

    def next(self, timeout: float = WAIT_S) -> tuple[Any, pykka.ActorRef[Any]]:
        return self.queue.get(timeout=timeout)

    def expect(self, *keys: Any) -> list[pykka.ActorRef[Any]]:
        got = [self.next() for _ in keys]
        assert [k for k, _ in got] == list(keys)
        return [ref for _, ref in got]

    def nothing_more(self) -> bool:
        return self.queue.empty()


class Worker(Process):
    """A worker that records its start, answers ``ping``, and dies on command.

    Messages (tell): "crash" raises, "normal" exits Normal, "shutdown" exits Shutdown.
    ``fail_init`` makes init raise; ``stops`` collects terminate reasons; ``hang`` blocks the
    next ``block`` message until the event is set.
    """

    def __init__(
        self,
        key: Any = None,
        starts: Starts | None = None,
        *,
        fail_init: Callable[[], bool] | None = None,
        stops: queue.Queue[Any] | None = None,
        hang: threading.Event | None = None,
        ignore_stop: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.key = key
        self.starts = starts
        self.fail_init = fail_init
        self.stops = stops
        self.hang = hang
        self.ignore_stop = ignore_stop

    def init(self) -> None:
        if self.fail_init is not None and self.fail_init():
            raise BoomError(f"init of {self.key} refused")
        if self.starts is not None:
            self.starts.record(self.key, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return "pong"
        if message == "crash":
            raise BoomError(f"{self.key} crashed")
        if message == "normal":
            self.exit(Normal())
        elif message == "die":  # abnormal exit without a logged traceback (fast, for stress)
            self.exit(Crashed(BoomError(f"{self.key} died")))
        elif message == "shutdown":
            self.exit(Shutdown())
        elif message == "block":
            assert self.hang is not None
            self.hang.wait(WAIT_S)
            return "late"
        elif message == "raise_in_ask":
            raise BoomError("ask failed")
        return None

    def terminate(self, reason: Any) -> None:
        if self.ignore_stop is not None:
            self.ignore_stop.wait(WAIT_S)
        if self.stops is not None:
            self.stops.put((self.key, reason))


class PooledWorker(Worker):
    """The same worker as a pooled process (on the default scheduler's shared threads)."""

    pooled = True


class Collector(pykka.ThreadingActor):
    """A plain pykka actor that puts every message it gets on a queue."""

    def __init__(self, inbox: queue.Queue[Any]) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> Any:
        self.inbox.put(message)
        return None


def worker_spec(key: Any, starts: Starts, **options: Any):
    """A ChildSpec starting a Worker; ``options`` split between spec fields and the worker."""
    from supervisors import ChildSpec

    fields = ("restart", "shutdown", "type", "name")
    spec_fields = {k: options.pop(k) for k in fields if k in options}
    actor = PooledWorker if options.pop("pooled", False) else Worker
    return ChildSpec(id=key, start=lambda: actor.start(key, starts, **options), **spec_fields)


def crashed_with_boom(reason: Any) -> bool:
    """True if the reason is a crash by our BoomError exception."""
    return isinstance(reason, Crashed) and isinstance(reason.exc, BoomError)


class FlakyStart:
    """A child start that raises while ``failing`` is set, counting its refused attempts;
    ``looping`` is set once the refusal was retried (the child is then ``restarting``)."""

    def __init__(self, key: str, starts: Starts) -> None:
        self.key, self.starts = key, starts
        self.failing = threading.Event()
        self.looping = threading.Event()
        self.refused = 0

    def arm(self) -> None:
        """From now on every start is refused; ``looping`` waits for a fresh loop."""
        self.refused = 0
        self.looping.clear()
        self.failing.set()

    def __call__(self):
        if self.failing.is_set():
            self.refused += 1
            if self.refused >= 2:
                self.looping.set()
            raise BoomError(f"start of {self.key} refused")
        return Worker.start(self.key, self.starts)


# A restart loop retries as fast as the supervisor's mailbox turns; a 1 ms window with room
# for a million restarts keeps it looping (never giving up) for as long as a test needs.
LOOP_FOREVER = {"max_restarts": 1_000_000, "max_seconds": 0.001}
