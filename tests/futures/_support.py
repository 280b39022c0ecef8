"""Test doubles for the futures layer: timer services, transports, an owner, waiting helpers."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from pykka import ActorRef

from supervisors import Process
from supervisors.testing import FakeClock
from tinkex_actors.config import Config
from tinkex_actors.futures.queue_state import QueueStateChange, QueueStateDebouncer
from tinkex_actors.local.server import LocalServer
from tinkex_actors.transport.messages import Headers, HttpRequest, HttpResponse

DEADLINE_S = 10.0


def wait_until(predicate: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    """Wait (on a condition, polled at most every 2 ms) until predicate() is true."""
    deadline = time.monotonic() + timeout_s
    event = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        event.wait(0.002)


class FakeTimers:
    """An injected timer service: records each delay; fires at once (`auto`) or when told.

    In auto mode it first moves `clock` by the delay, so that time-based rules (the progress
    timeout) see the time the delays add up to. `on_fire` runs before each firing.
    """

    def __init__(self, clock: FakeClock, *, auto: bool = True) -> None:
        self.clock = clock
        self.auto = auto
        self.delays: list[float] = []
        self.pending: list[tuple[float, ActorRef[Any], Any]] = []
        self.cancelled = 0
        self.on_fire: Callable[[], None] | None = None
        self._lock = threading.Condition()

    def send_after(self, delay_s: float, target: ActorRef[Any], message: Any) -> object:
        """Record, then fire now (auto) or keep for `fire_all`."""
        with self._lock:
            self.delays.append(delay_s)
            if not self.auto:
                handle = (delay_s, target, message)
                self.pending.append(handle)
                self._lock.notify_all()
                return handle
        self.clock.advance(delay_s)
        if self.on_fire is not None:
            self.on_fire()
        target.tell(message)
        return None

    def cancel(self, timer: Any) -> bool:
        """Forget a pending firing."""
        with self._lock:
            if timer in self.pending:
                self.pending.remove(timer)
                self.cancelled += 1
                return True
            return False

    def wait_pending(self, count: int = 1, timeout_s: float = DEADLINE_S) -> list[float]:
        """Wait until `count` firings are held; their delays."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.pending) >= count, timeout_s):
                raise AssertionError(f"no {count} pending timers within {timeout_s} s")
            return [delay for delay, _, _ in self.pending]

    def fire_all(self) -> None:
        """Send every held message now."""
        with self._lock:
            held, self.pending = self.pending, []
        for _delay, target, message in held:
            target.tell(message)


class CountingTransport:
    """Wraps a real Transport: records every request the Poller submits."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.config: Config = inner.config
        self.requests: list[HttpRequest] = []
        self._lock = threading.Lock()

    def submit(self, request: HttpRequest) -> concurrent.futures.Future[HttpResponse]:
        """Record, then send for real."""
        with self._lock:
            self.requests.append(request)
        result: concurrent.futures.Future[HttpResponse] = self.inner.submit(request)
        return result

    @property
    def count(self) -> int:
        """How many polls were sent."""
        with self._lock:
            return len(self.requests)


Answer = HttpResponse | BaseException


class ScriptedTransport:
    """Answers polls from a script, without HTTP; the last answer repeats forever."""

    def __init__(self, *answers: Answer | Callable[[], Answer]) -> None:
        self.config = Config(api_key="tml-scripted", base_url="http://127.0.0.1:9")
        self.answers = list(answers)
        self.requests: list[HttpRequest] = []

    def submit(self, request: HttpRequest) -> concurrent.futures.Future[HttpResponse]:
        """Answer at once with the next scripted answer."""
        self.requests.append(request)
        index = min(len(self.requests) - 1, len(self.answers) - 1)
        answer = self.answers[index]
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer()
        future: concurrent.futures.Future[HttpResponse] = concurrent.futures.Future()
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
        return future


def json_answer(body: bytes, status: int = 200) -> HttpResponse:
    """An HttpResponse with a JSON body."""
    return HttpResponse(status, Headers({"content-type": "application/json"}), body)


class Owner(Process):
    """A stand-in client actor: records every QueueStateChange and hands it to a debouncer."""

    def __init__(self, debouncer: QueueStateDebouncer | None = None) -> None:
        super().__init__()
        self.debouncer = debouncer
        self.changes: list[QueueStateChange] = []
        self.lock = threading.Lock()

    def on_receive(self, message: Any) -> Any:
        """Record queue-state changes (and report them, when a debouncer is set)."""
        if isinstance(message, QueueStateChange):
            with self.lock:
                self.changes.append(message)
            if self.debouncer is not None:
                self.debouncer.handle(message)
            return None
        if message == "changes":
            with self.lock:
                return list(self.changes)
        return super().on_receive(message)


def make_futures(server: LocalServer, count: int = 1, resolve_after_s: float = 0.0,
                 spread_s: float = 0.0) -> list[str]:
    """Synthetic futures on the embedded server; their request ids."""
    answer = httpx.post(
        server.url + "/_control/make_futures",
        json={"count": count, "resolve_after_s": resolve_after_s, "spread_s": spread_s},
        timeout=10.0,
        headers=server.headers,
    )
    answer.raise_for_status()
    ids: list[str] = answer.json()["request_ids"]
    return ids
