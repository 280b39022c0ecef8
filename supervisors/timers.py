"""Timers: ``send_after``, ``send_interval`` and ``cancel``, on one scheduler thread per service.

The default service (used by the module functions) runs one daemon thread for the whole
Python process, started when a timer is set and ended as soon as no timer is pending, so an
idle program keeps no timer thread. A service built on a manual clock (``FakeClock``) has no
thread at all: ``clock.advance()`` fires its due timers in the caller's thread.

Differences from OTP:

- A timer sends with pykka's ``tell``; a message to a dead actor is dropped and cancels the
  timer (OTP's ``erlang:send_after`` to a dead pid is silently dropped too).
- Interval timers are fixed-rate (the next firing is due one period after the previous *due*
  time, never drifting), like ``timer:send_interval``; if the scheduler falls behind, missed
  firings are sent back to back.
- When a ``Process`` exits, every timer whose target is that process is cancelled, so a
  restarted actor never receives its predecessor's ticks.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pykka import ActorDeadError, ActorRef

__all__ = [
    "Clock",
    "ManualClock",
    "MonotonicClock",
    "Timer",
    "TimerService",
    "cancel",
    "cancel_all_for",
    "default_timer_service",
    "send_after",
    "send_interval",
]


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
    target: ActorRef[Any]
    message: Any
    period_s: float | None
    service: TimerService = field(repr=False)
    cancelled: bool = False
    fired: int = 0


def _check_delay(name: str, value: float, *, positive: bool) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name}={value!r} is not a number; pass seconds as a float")
    if value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} is out of range; pass seconds {need}")
    return float(value)


class TimerService:
    """Schedules sends to actors. Without a manual clock it owns one thread, alive only while
    timers are pending."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = MonotonicClock() if clock is None else clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._by_target: dict[str, set[Timer]] = {}
        self._thread: threading.Thread | None = None
        self._manual = isinstance(self.clock, ManualClock)
        if isinstance(self.clock, ManualClock):
            self.clock.subscribe(self.run_due)
        _services.add(self)

    def send_after(self, delay_s: float, target: ActorRef[Any], message: Any) -> Timer:
        """Tell ``message`` to ``target`` once, ``delay_s`` seconds from now."""
        delay = _check_delay("delay_s", delay_s, positive=False)
        return self._add(Timer(self.clock.monotonic() + delay, target, message, None, self))

    def send_interval(self, period_s: float, target: ActorRef[Any], message: Any) -> Timer:
        """Tell ``message`` to ``target`` every ``period_s`` seconds until cancelled."""
        period = _check_delay("period_s", period_s, positive=True)
        return self._add(Timer(self.clock.monotonic() + period, target, message, period, self))

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
        """Cancel every pending timer aimed at the actor ``urn``; returns how many."""
        with self._cond:
            timers = self._by_target.pop(urn, set())
            for timer in timers:
                timer.cancelled = True
            if timers:
                self._cond.notify()
            return len(timers)

    def pending(self) -> int:
        """How many timers are pending."""
        with self._cond:
            return sum(len(s) for s in self._by_target.values())

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

    def _add(self, timer: Timer) -> Timer:
        with self._cond:
            heapq.heappush(self._heap, (timer.due, next(_seq), timer))
            self._by_target.setdefault(timer.target.actor_urn, set()).add(timer)
            if not self._manual:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="supervisors-timers", daemon=True
                    )
                    self._thread.start()
                else:
                    self._cond.notify()
        return timer

    def _forget(self, timer: Timer) -> None:
        targets = self._by_target.get(timer.target.actor_urn)
        if targets is not None:
            targets.discard(timer)
            if not targets:
                del self._by_target[timer.target.actor_urn]

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
        try:
            timer.target.tell(timer.message)
        except ActorDeadError:
            self.cancel(timer)

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


def send_after(delay_s: float, target: ActorRef[Any], message: Any) -> Timer:
    """Tell ``message`` to ``target`` once after ``delay_s`` seconds (default service)."""
    return default_timer_service().send_after(delay_s, target, message)


def send_interval(period_s: float, target: ActorRef[Any], message: Any) -> Timer:
    """Tell ``message`` to ``target`` every ``period_s`` seconds (default service)."""
    return default_timer_service().send_interval(period_s, target, message)


def cancel(timer: Timer) -> bool:
    """Cancel a timer made by any service; True if it was still pending."""
    return timer.service.cancel(timer)


def cancel_all_for(urn: str) -> int:
    """Cancel the timers of every service aimed at actor ``urn`` (done when a Process exits)."""
    return sum(service.cancel_all_for(urn) for service in list(_services))
