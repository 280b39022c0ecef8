"""Timers: ``send_after``, ``send_interval`` and ``cancel``, on one scheduler thread per service.

The default service (used by the module functions) runs one daemon thread for the whole
Python process, started when a timer is set and ended as soon as no timer is pending, so an
idle program keeps no timer thread. A service built on a manual clock (``FakeClock``) has no
thread at all: ``clock.advance()`` fires its due timers in the caller's thread.

A target is anything that can be told: an ``ActorRef``, a ``SupervisedRef`` (each firing goes
to the incarnation registered at that moment), any object with a ``tell(message)`` method, or
a name registered in the service's ``Registry`` (the default registry unless one is given).

One timer never takes the others down: a target that is not valid is refused when the timer
is set, before anything changes; a ``tell`` that raises is logged (``timer_send_failed``) and
cancels that timer only. The service's thread is watched: if it dies anyway (a clock that
raises, a bug), it is logged (``timer_service_crashed``) and a new thread takes over the
pending timers (``timer_service_restarted``); setting a timer also revives a dead thread.

Differences from OTP:

- A timer sends with ``tell``; a message to a dead ``ActorRef`` is dropped and cancels the
  timer (OTP's ``erlang:send_after`` to a dead pid is silently dropped too). A message to a
  name or ``SupervisedRef`` with no live process behind it is dropped and the timer stays,
  so an interval keeps beating across a restart (as ``timer:send_interval`` to a name).
- Interval timers are fixed-rate (the next firing is due one period after the previous *due*
  time, never drifting), like ``timer:send_interval``; if the scheduler falls behind, missed
  firings are sent back to back.
- A timer dies with its target (when the target is a ``Process`` ref) and with the
  ``Process`` that set it (as ``timer:send_after``/``send_interval``, which are linked to their
  caller), so a restarted actor never receives its predecessor's ticks. Timers set from a
  thread that runs no process live until they fire or are cancelled.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pykka import ActorDeadError

from supervisors import _context
from supervisors._logging import get_logger
from supervisors.registry import Registry, SupervisedRef

__all__ = [
    "Clock",
    "ManualClock",
    "MonotonicClock",
    "Target",
    "Teller",
    "Timer",
    "TimerService",
    "cancel",
    "cancel_all_for",
    "default_timer_service",
    "send_after",
    "send_interval",
]

_log = get_logger("supervisors")

_CRASH_WINDOW_S = 1.0
_MAX_CRASHES = 5
"""More than this many thread deaths within the window: stop reviving until the next timer."""


@runtime_checkable
class Teller(Protocol):
    """Anything a message can be told to (``ActorRef``, ``SupervisedRef``)."""

    def tell(self, message: Any) -> None:
        """Deliver ``message`` without waiting for an answer."""
        ...


Target = Teller | Hashable
"""What a timer sends to: something with ``tell``, or a registered name."""


class Clock(Protocol):
    """Anything with a ``monotonic()`` reading in seconds."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...


@runtime_checkable
class ManualClock(Protocol):
    """A clock that only moves when told to, and tells subscribers when it did."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...

    def subscribe(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` after every move of the clock."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic``."""

    def monotonic(self) -> float:
        """Seconds from ``time.monotonic``."""
        return time.monotonic()


_seq = itertools.count()


@dataclass(eq=False)
class Timer:
    """A pending send; pass it to ``cancel``. ``period_s`` is None for one-shot timers."""

    due: float
    target: Teller
    message: Any
    period_s: float | None
    service: TimerService = field(repr=False)
    cancelled: bool = False
    fired: int = 0
    keys: tuple[str, ...] = field(default=(), repr=False)
    """Urns whose exit cancels the timer: a ``Process`` target and the process that set it."""
    dies_with_target: bool = field(default=True, repr=False)
    """A dead target cancels the timer (raw refs); False for names, whose holder may change."""


def _check_delay(name: str, value: float, *, positive: bool) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name}={value!r} is not a number; pass seconds as a float")
    if value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} is out of range; pass seconds {need}")
    return float(value)


class TimerService:
    """Schedules sends to actors. Without a manual clock it owns one thread, alive only while
    timers are pending; see the module docstring for targets and failures."""

    def __init__(self, clock: Clock | None = None, *, registry: Registry | None = None) -> None:
        self.clock: Clock = MonotonicClock() if clock is None else clock
        self.registry = registry
        """Where names given as targets are looked up; None means ``default_registry()``."""
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._by_urn: dict[str, set[Timer]] = {}
        self._live: set[Timer] = set()
        self._thread: threading.Thread | None = None
        self._crashes: deque[float] = deque()
        self._manual = isinstance(self.clock, ManualClock)
        if isinstance(self.clock, ManualClock):
            self.clock.subscribe(self.run_due)
        _services.add(self)

    def send_after(self, delay_s: float, target: Target, message: Any) -> Timer:
        """Tell ``message`` to ``target`` once, ``delay_s`` seconds from now."""
        delay = _check_delay("delay_s", delay_s, positive=False)
        return self._add(delay, None, target, message)

    def send_interval(self, period_s: float, target: Target, message: Any) -> Timer:
        """Tell ``message`` to ``target`` every ``period_s`` seconds until cancelled."""
        period = _check_delay("period_s", period_s, positive=True)
        return self._add(period, period, target, message)

    def cancel(self, timer: Timer) -> bool:
        """Stop a timer; True if it was still pending (a one-shot that fired returns False)."""
        with self._cond:
            if timer.cancelled or (timer.period_s is None and timer.fired):
                return False
            timer.cancelled = True
            self._forget(timer)
            self._cond.notify()
            return True

    def cancel_all_for(self, urn: str) -> int:
        """Cancel every pending timer aimed at, or set by, the actor ``urn``; returns how many."""
        with self._cond:
            timers = self._by_urn.pop(urn, set())
            for timer in timers:
                timer.cancelled = True
                self._forget(timer)
            if timers:
                self._cond.notify()
            return len(timers)

    def pending(self) -> int:
        """How many timers are pending."""
        with self._cond:
            return len(self._live)

    def run_due(self) -> int:
        """Send every timer due at the clock's current reading; returns how many were sent."""
        sent = 0
        while True:
            with self._cond:
                timer = self._pop_due(self.clock.monotonic())
            if timer is None:
                return sent
            self._send(timer)
            sent += 1

    def _resolve(self, target: Target) -> tuple[Teller, tuple[str, ...], bool]:
        """The object to tell, the urns whose exit cancels the timer, and whether a dead
        target cancels it; raises before anything is scheduled if ``target`` is not valid."""
        owner = _context.current_urn()
        keys: tuple[str, ...] = () if owner is None else (owner,)
        if isinstance(target, SupervisedRef):
            return target, keys, False
        if isinstance(target, Teller):
            urn = getattr(target, "actor_urn", None)
            if isinstance(urn, str) and urn != owner:
                keys = (*keys, urn)
            return target, keys, isinstance(urn, str)
        try:
            hash(target)
        except TypeError:
            raise TypeError(
                f"target={target!r} cannot be told; pass an ActorRef, a SupervisedRef, an "
                "object with tell(message), or a name registered in the Registry"
            ) from None
        return SupervisedRef(target, self.registry), keys, False

    def _add(self, delay: float, period: float | None, target: Target, message: Any) -> Timer:
        teller, keys, dies_with_target = self._resolve(target)
        timer = Timer(
            self.clock.monotonic() + delay, teller, message, period, self, keys=keys,
            dies_with_target=dies_with_target,
        )
        with self._cond:
            heapq.heappush(self._heap, (timer.due, next(_seq), timer))
            self._live.add(timer)
            for key in keys:
                self._by_urn.setdefault(key, set()).add(timer)
            if not self._manual:
                thread = self._thread
                if thread is None or not thread.is_alive():
                    self._start_thread()
                else:
                    self._cond.notify()
        return timer

    def _start_thread(self) -> None:
        """Start the scheduler thread (lock held)."""
        self._thread = threading.Thread(target=self._run, name="supervisors-timers", daemon=True)
        self._thread.start()

    def _forget(self, timer: Timer) -> None:
        self._live.discard(timer)
        for key in timer.keys:
            timers = self._by_urn.get(key)
            if timers is not None:
                timers.discard(timer)
                if not timers:
                    del self._by_urn[key]

    def _pop_due(self, now: float) -> Timer | None:
        """Under the lock: take the next due live timer, rescheduling intervals."""
        heap = self._heap
        while heap:
            due, _, timer = heap[0]
            if timer.cancelled:
                heapq.heappop(heap)
                continue
            if due > now:
                return None
            heapq.heappop(heap)
            timer.fired += 1
            if timer.period_s is None:
                self._forget(timer)
            else:
                timer.due = due + timer.period_s
                heapq.heappush(heap, (timer.due, next(_seq), timer))
            return timer
        return None

    def _send(self, timer: Timer) -> None:
        """Tell one timer's message; a failure ends this timer at most, never the service."""
        try:
            timer.target.tell(timer.message)
        except ActorDeadError:
            if timer.dies_with_target:
                self.cancel(timer)
        except Exception as exc:
            _log.error(
                "timer_send_failed", target=repr(timer.target), error=repr(exc), exc_info=exc
            )
            self.cancel(timer)

    def _run(self) -> None:
        """The thread: run the loop; if it dies, say so and let a new thread take over."""
        try:
            self._loop()
        except BaseException as exc:
            _log.error("timer_service_crashed", error=repr(exc), exc_info=exc)
            self._revive()

    def _revive(self) -> None:
        now = time.monotonic()
        with self._cond:
            if self._thread is not threading.current_thread():
                return
            self._thread = None
            self._crashes.append(now)
            while self._crashes and self._crashes[0] < now - _CRASH_WINDOW_S:
                self._crashes.popleft()
            if len(self._crashes) > _MAX_CRASHES:
                _log.error("timer_service_gave_up", crashes=len(self._crashes))
                return  # the next timer set starts a thread again
            if self._live:
                self._start_thread()
                _log.warning("timer_service_restarted", pending=len(self._live))

    def _loop(self) -> None:
        while True:
            with self._cond:
                timer = None
                while timer is None:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._thread = None  # a new timer starts a new thread
                        return
                    now = self.clock.monotonic()
                    timer = self._pop_due(now)
                    if timer is None:
                        self._cond.wait(self._heap[0][0] - now)
            self._send(timer)

    def join_idle(self, timeout_s: float) -> bool:
        """Wait until the scheduler thread has ended (no pending timers); False on timeout."""
        with self._cond:
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()


_services: weakref.WeakSet[TimerService] = weakref.WeakSet()
_default: TimerService | None = None
_default_lock = threading.Lock()


def default_timer_service() -> TimerService:
    """The process-wide service behind ``send_after``/``send_interval``/``cancel``."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TimerService()
        return _default


def send_after(delay_s: float, target: Target, message: Any) -> Timer:
    """Tell ``message`` to ``target`` once after ``delay_s`` seconds (default service)."""
    return default_timer_service().send_after(delay_s, target, message)


def send_interval(period_s: float, target: Target, message: Any) -> Timer:
    """Tell ``message`` to ``target`` every ``period_s`` seconds (default service)."""
    return default_timer_service().send_interval(period_s, target, message)


def cancel(timer: Timer) -> bool:
    """Cancel a timer made by any service; True if it was still pending."""
    return timer.service.cancel(timer)


def cancel_all_for(urn: str) -> int:
    """Cancel the timers of every service aimed at actor ``urn`` (done when a Process exits)."""
    return sum(service.cancel_all_for(urn) for service in list(_services))
