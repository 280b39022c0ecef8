"""One answer per client to "is the server there?" (DESIGN.md section 4b).

The Transport reports every attempt here: an HTTP answer below 500 means the server is there;
a connection error, a timeout or a 5xx means it is failing. While it fails:

- one request at a time (the *probe*: the first to meet the failure, or the first to wait
  after the probe ended) talks to the server; every other request waits at the gate without
  sending, so queued work waits behind the head of the queue instead of each operation
  spending its own retries. Once the probe ends, the next waiter is let through after the
  outage backoff (exponential, at most 10 s), so a client sends at most one attempt per
  backoff step during an outage, whatever its number of futures;
- the first answer opens the gate for everyone;
- failing for longer than `lost_after_s` (the client's `connection_lost_after_s`) declares the
  connection lost: a `ConnectionLostError` saying since when and why goes to every listener,
  waiters fail with it at once, and so does every later request.

Listeners of a loss subscribe with `on_lost` (the ServiceClient's single `_on_lost`, where a
heartbeat answered 404/410 lands too). The clock is injectable (`clock=FakeClock().monotonic`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import threading
import time
from collections.abc import Callable

from supervisors.library_logging import get_logger
from tinkex_actors.errors import ConnectionLostError, SessionExpiredError
from tinkex_actors.transport.retry import backoff_s

__all__ = ["LostListener", "ServerHealth"]

_log = get_logger("tinkex_actors.transport.server_health")

LostListener = Callable[[SessionExpiredError], None]
"""Called once, in a short-lived thread of its own (or the caller's, if already lost)."""


def _when(wall_s: float) -> str:
    return datetime.datetime.fromtimestamp(wall_s, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class ServerHealth:
    """Failure bookkeeping and the outage gate of one client (see the module docstring).

    Bookkeeping is thread-safe; `admit` and `release` run on the Transport's event loop.
    """

    def __init__(
        self,
        lost_after_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.lost_after_s = lost_after_s
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self._last_ok_wall = wall()
        self._failures = 0
        self._last_error: str | None = None
        self._lost: SessionExpiredError | None = None
        self._listeners: list[LostListener] = []
        self._probe: object | None = None
        self._next_probe_s = 0.0
        self._changed: asyncio.Event | None = None
        self._waiting = 0

    # -- state ----------------------------------------------------------------------------

    @property
    def lost(self) -> SessionExpiredError | None:
        """The error the session was given up with, or None while it is not."""
        return self._lost

    @property
    def failing_for_s(self) -> float | None:
        """How long the server has been failing (None: its last answer was fine)."""
        since = self._failing_since
        return None if since is None else self._clock() - since

    @property
    def waiting(self) -> int:
        """How many requests are held at the gate now, behind the probe."""
        return self._waiting

    def on_lost(self, listener: LostListener) -> None:
        """Call `listener(error)` once when the session is declared lost (at once if it is)."""
        with self._lock:
            lost = self._lost
            if lost is None and listener not in self._listeners:
                self._listeners.append(listener)
        if lost is not None:
            _call(listener, lost)

    def declare_lost(self, error: SessionExpiredError) -> bool:
        """Give the session up with `error` (first caller wins); False if it was already."""
        with self._lock:
            if self._lost is not None:
                return False
            self._lost = error
            listeners, self._listeners = self._listeners, []
        _log.warning("session_lost", error=str(error))
        self._wake()
        if listeners:
            # Not in the finder's thread (often the Transport's loop): listeners settle user
            # futures, whose callbacks may block on the transport.
            threading.Thread(
                target=_call_all, args=(listeners, error), name="tinkex-session-lost", daemon=True
            ).start()
        return True

    def reset(self) -> None:
        """Forget a loss and any outage (a new session was opened): requests go out again;
        listeners must subscribe again."""
        with self._lock:
            self._lost = None
            self._failing_since = None
            self._failures = 0
            self._last_ok_wall = self._wall()

    def answered(self) -> None:
        """The server answered (any status below 500): the outage, if any, is over."""
        with self._lock:
            self._last_ok_wall = self._wall()
            was = self._failing_since
            self._failing_since = None
            self._failures = 0
            self._last_error = None
        if was is not None:
            self._wake()

    def failed(self, what: str, token: object | None = None) -> None:
        """An attempt met a connection error, a timeout or a 5xx (`what` says which). The
        request of `token` (if no other is) becomes the probe: others wait behind it."""
        now = self._clock()
        with self._lock:
            if token is not None and self._probe is None:
                self._probe = token
            if self._failing_since is None:
                self._failing_since = now
            self._failures += 1
            self._last_error = what
            failing_for = now - self._failing_since
            pause = backoff_s(self._failures - 1, jitter=0.0)  # no jitter: one probe at a time
            self._next_probe_s = now + pause
            since_wall = self._last_ok_wall
            due = failing_for >= self.lost_after_s and self._lost is None
        if due:
            self.declare_lost(
                ConnectionLostError(
                    f"connection lost: the server has not answered since {_when(since_wall)} "
                    f"({failing_for:.0f} s, past connection_lost_after_s="
                    f"{self.lost_after_s:g}); last error: {what}. Every pending operation "
                    "fails; check the server, then make a new ServiceClient and resume from "
                    "your last checkpoint",
                    since=since_wall,
                    failing_for_s=failing_for,
                    last_error=what,
                )
            )

    # -- the gate (on the Transport's loop) --------------------------------------------------

    async def admit(self, token: object) -> None:
        """Wait until `token`'s request may be sent; raises the lost error once given up.

        A request that finds no probe out goes at once (it has waited its own backoff); one
        that had to wait behind a probe goes, as the next probe, once the outage backoff
        since the last failure has passed.
        """
        waited = False
        while True:
            if self._lost is not None:
                raise self._lost
            if self._failing_since is None or self._probe is token:
                return
            wait_s: float | None = None
            if self._probe is None:
                wait_s = self._next_probe_s - self._clock() if waited else 0.0
                if wait_s <= 0:
                    self._probe = token
                    return
            waited = True
            changed = self._event()
            self._waiting += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait_s)
            finally:
                self._waiting -= 1

    def release(self, token: object) -> None:
        """`token`'s request ended (answered, failed or cancelled): let the next one probe."""
        if self._probe is token:
            self._probe = None
            self._wake()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake(self) -> None:
        changed = self._changed
        if changed is None:
            return
        self._changed = None
        loop = _loop_of(changed)
        if loop is None:
            changed.set()
        else:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                changed.set()
            else:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(changed.set)


def _loop_of(event: asyncio.Event) -> asyncio.AbstractEventLoop | None:
    loop = getattr(event, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def _call_all(listeners: list[LostListener], error: SessionExpiredError) -> None:
    for listener in listeners:
        _call(listener, error)


def _call(listener: LostListener, error: SessionExpiredError) -> None:
    try:
        listener(error)
    except Exception:
        _log.exception("session_lost_listener_failed")
