"""Test tools: a fake clock, waiting for a death, and a fixture that catches leaked threads.

- ``FakeClock``: time moves only on ``advance(seconds)``, which fires the due timers of every
  ``TimerService`` built on it and moves the restart-intensity windows of supervisors given
  ``clock=fake``. (trio's ``MockClock`` jumps idle time; ours never moves by itself, which
  keeps tests deterministic.)
- ``wait_for_down(ref, timeout_s)``: block until an actor ended and return its exit reason.
- ``stop_everything_and_check_threads``: stop every pykka actor, then wait (with a deadline,
  never a sleep) for every thread started since a snapshot to end; report the leaked ones.
- ``actors_cleanup``: a pytest fixture doing the above after each test and failing the test
  if an actor or timer thread is left alive. Use it with
  ``pytest_plugins = ["supervisors.testing"]`` or by importing it into a ``conftest.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pykka import ActorRef, ActorRegistry

from supervisors import _watch
from supervisors._process import stop
from supervisors._reasons import ExitReason, NoProc, Shutdown

__all__ = [
    "FakeClock",
    "actors_cleanup",
    "stop_everything_and_check_threads",
    "wait_for_down",
]


class FakeClock:
    """A manual clock for timers and restart intensity: it moves only on ``advance``."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[], object]] = []

    def monotonic(self) -> float:
        """The current fake time, in seconds."""
        return self._now

    def subscribe(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` after every ``advance`` (timer services subscribe here)."""
        with self._lock:
            self._subscribers.append(callback)

    def advance(self, seconds: float) -> None:
        """Move time forward and fire everything that became due, in the caller's thread."""
        if seconds < 0:
            raise ValueError(f"advance(seconds={seconds!r}): time cannot go back; pass >= 0")
        with self._lock:
            self._now += seconds
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback()


def wait_for_down(ref: ActorRef[Any], timeout_s: float) -> ExitReason:
    """Wait until the actor has ended and return its exit reason (``NoProc`` if it was
    already gone); raises ``TimeoutError`` after ``timeout_s``."""
    got: list[ExitReason] = []
    done = threading.Event()

    def record(reason: ExitReason) -> None:
        got.append(reason)
        done.set()

    if _watch.add_callback(ref, record) is None:
        reason: ExitReason | None = getattr(ref, "exit_reason", None)
        return reason if reason is not None else NoProc()
    if not done.wait(timeout_s):
        raise TimeoutError(f"{ref} still alive after {timeout_s} s")
    return got[0]


def stop_everything_and_check_threads(
    threads_before: set[threading.Thread], *, timeout_s: float = 10.0
) -> list[threading.Thread]:
    """Stop all pykka actors (no restarts meanwhile), then return threads still alive that
    were not in ``threads_before`` after waiting up to ``timeout_s`` for them to end."""
    _watch.mark_system_stopping()
    deadline = time.monotonic() + timeout_s
    for ref in reversed(ActorRegistry.get_all()):
        stop(ref, Shutdown(), timeout_s=max(0.0, min(5.0, deadline - time.monotonic())))
    leaked = []
    for thread in threading.enumerate():
        if thread in threads_before or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread)
    return leaked


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is a test-only dependency
    pass
else:

    @pytest.fixture
    def actors_cleanup() -> Iterator[None]:
        """Stop every actor after the test and fail it if any new thread is left alive."""
        before = set(threading.enumerate())
        yield
        leaked = stop_everything_and_check_threads(before)
        if leaked:
            pytest.fail(f"threads left alive after the test: {[t.name for t in leaked]}")
