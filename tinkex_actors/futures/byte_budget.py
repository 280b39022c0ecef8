"""A budget of bytes (and, optionally, of grants) in flight, admitted in strict FIFO order.

One class for every "this many bytes at once" limit of the client: the sampling dispatch
budget (`backpressure.DispatchBudget`, which adds a concurrency cap and throttling) and the
payload budget of a Poller (result bytes being fetched at once).

`try_acquire` never blocks (for actors): it returns a token, or None and queues the request so
that `on_granted(token)` is called once capacity frees (strict FIFO, so a large request is not
starved by small ones). `acquire(timeout_s)` blocks (for plain threads). Every grant is keyed
by an id and an owner, so an actor's terminate hook can release all of its grants with
`release_owner(owner)` however it died. A request is always admitted when nothing is held, so
one larger than the whole budget cannot wait forever: it is charged the whole budget and
admitted alone (the balance never goes below zero).
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import threading
from collections.abc import Callable, Hashable, Iterable

from supervisors.library_logging import get_logger

__all__ = ["BudgetStats", "ByteBudget", "DispatchToken", "require_int"]

_log = get_logger("tinkex_actors.clients.backpressure")


def require_int(field: str, value: object, minimum: int) -> int:
    """`value` if it is an int (not a bool) >= `minimum`; ValueError naming `field` if not."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an int >= {minimum}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class DispatchToken:
    """One admitted request: what it was charged, to be released exactly once."""

    request_id: Hashable
    owner: Hashable
    size_bytes: int
    """The request's bytes (a prompt's estimate, a payload's size), as given."""
    charged_bytes: int
    """What the budget counted (never more than the whole budget; x20 for a throttled prompt)."""


@dataclasses.dataclass(frozen=True, slots=True)
class BudgetStats:
    """A snapshot of a budget, for telemetry."""

    in_flight: int
    in_flight_bytes: int
    max_concurrent: int
    max_bytes: int
    waiting: int
    peak_in_flight: int
    peak_bytes: int
    granted: int
    released: int
    waits: int
    """Requests that could not be admitted at once and queued."""
    throttled_grants: int


@dataclasses.dataclass(slots=True)
class _Waiter:
    request_id: Hashable
    owner: Hashable
    size_bytes: int
    on_granted: Callable[[DispatchToken], object]


class ByteBudget:
    """Caps bytes (and grants, if `max_concurrent` is given) in flight. Thread-safe; callbacks
    run unlocked. A request is always admitted when nothing is in flight, so one larger than
    the budget cannot wait forever: it is charged the whole budget.

    A subclass may change what a request is charged and the cap in force (`_terms`), or narrow
    what fits (`_fits`).
    """

    def __init__(self, max_bytes: int, *, max_concurrent: int | None = None) -> None:
        """A budget of `max_bytes` bytes; `max_concurrent` grants at once (None: no cap)."""
        self._max_concurrent = (
            sys.maxsize
            if max_concurrent is None
            else require_int("max_concurrent", max_concurrent, 1)
        )
        self._max_bytes = require_int("max_bytes", max_bytes, 1)
        self._lock = threading.Lock()
        self._tokens: dict[Hashable, DispatchToken] = {}
        self._bytes = 0
        self._waiters: collections.OrderedDict[Hashable, _Waiter] = collections.OrderedDict()
        self._peak_in_flight = 0
        self._peak_bytes = 0
        self._granted = 0
        self._released = 0
        self._waits = 0
        self._throttled_grants = 0

    def try_acquire(
        self,
        request_id: Hashable,
        size_bytes: int,
        *,
        owner: Hashable = None,
        on_granted: Callable[[DispatchToken], object] | None = None,
    ) -> DispatchToken | None:
        """Admit `request_id` now (a token), or return None.

        With `on_granted`, a refused request joins the FIFO queue and `on_granted(token)` is
        called (in the thread that freed the capacity) once it is admitted; `release`
        of its id leaves the queue. Without it, nothing is queued.
        """
        require_int("size_bytes", size_bytes, 0)
        with self._lock:
            if request_id in self._tokens or request_id in self._waiters:
                raise ValueError(
                    f"request_id {request_id!r} already holds or awaits this budget; "
                    "release it first or use a fresh id"
                )
            if not self._waiters:
                token = self._admit(request_id, owner, size_bytes)
                if token is not None:
                    return token
            if on_granted is not None:
                self._waiters[request_id] = _Waiter(request_id, owner, size_bytes, on_granted)
                self._waits += 1
            return None

    def acquire(
        self, request_id: Hashable, size_bytes: int, timeout_s: float, *, owner: Hashable = None
    ) -> DispatchToken:
        """Block a plain thread until admitted; TimeoutError after `timeout_s` (nothing held)."""
        granted: list[DispatchToken] = []
        ready = threading.Event()

        def on_granted(token: DispatchToken) -> None:
            granted.append(token)
            ready.set()

        token = self.try_acquire(request_id, size_bytes, owner=owner, on_granted=on_granted)
        if token is not None:
            return token
        if ready.wait(timeout_s):
            return granted[0]
        self.release(request_id)
        raise TimeoutError(
            f"request {request_id!r} waited {timeout_s} s for the dispatch budget "
            f"({self.stats().in_flight} requests in flight); raise timeout_s or the caps"
        )

    def release(self, request_id: Hashable) -> bool:
        """Give back `request_id`'s grant, or drop it from the queue. False if it held neither.

        Safe to call on every exit path (success, error, cancel, terminate): only the first
        call counts.
        """
        with self._lock:
            if self._waiters.pop(request_id, None) is not None:
                return True
            token = self._tokens.pop(request_id, None)
            if token is None:
                return False
            self._bytes -= token.charged_bytes
            self._released += 1
            grants = self._grant_waiters()
        self._notify(grants)
        return True

    def release_owner(self, owner: Hashable) -> int:
        """Release every grant and wait of `owner` (an actor's terminate hook); returns how many.

        The owner's waits leave the queue first, so none of them is granted by the release.
        """
        with self._lock:
            waiting = [rid for rid, w in self._waiters.items() if w.owner == owner]
            for rid in waiting:
                del self._waiters[rid]
            held = [t for t in self._tokens.values() if t.owner == owner]
            for token in held:
                del self._tokens[token.request_id]
                self._bytes -= token.charged_bytes
            self._released += len(held)
            grants = self._grant_waiters()
        self._notify(grants)
        return len(waiting) + len(held)

    def release_many(self, request_ids: Iterable[Hashable]) -> int:
        """Release several ids; returns how many held something."""
        return sum(self.release(rid) for rid in list(request_ids))

    def retry_waiters(self) -> int:
        """Admit queued requests that fit now (call when a throttle ends); returns how many."""
        with self._lock:
            grants = self._grant_waiters()
        self._notify(grants)
        return len(grants)

    def held_by(self, owner: Hashable) -> list[Hashable]:
        """The request ids `owner` holds grants for."""
        with self._lock:
            return [rid for rid, t in self._tokens.items() if t.owner == owner]

    def stats(self) -> BudgetStats:
        """Counters and the current state, for telemetry."""
        with self._lock:
            return BudgetStats(
                in_flight=len(self._tokens),
                in_flight_bytes=self._bytes,
                max_concurrent=self._max_concurrent,
                max_bytes=self._max_bytes,
                waiting=len(self._waiters),
                peak_in_flight=self._peak_in_flight,
                peak_bytes=self._peak_bytes,
                granted=self._granted,
                released=self._released,
                waits=self._waits,
                throttled_grants=self._throttled_grants,
            )

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"{type(self).__name__}(in_flight={s.in_flight}/{s.max_concurrent}, "
            f"bytes={s.in_flight_bytes}/{s.max_bytes}, waiting={s.waiting})"
        )

    # -- under the lock ----------------------------------------------------------------------

    def _terms(self, size_bytes: int) -> tuple[int, int, bool]:
        """(concurrency cap in force, bytes to charge, throttled) for a request of
        `size_bytes`: the whole cap, its size (never more than the budget), not throttled."""
        return self._max_concurrent, min(size_bytes, self._max_bytes), False

    def _admit(
        self, request_id: Hashable, owner: Hashable, size_bytes: int
    ) -> DispatchToken | None:
        cap, charge, throttled = self._terms(size_bytes)
        if not self._fits(charge, cap):
            return None
        token = DispatchToken(request_id, owner, size_bytes, charge)
        self._tokens[request_id] = token
        self._bytes += charge
        self._granted += 1
        self._throttled_grants += throttled
        self._peak_in_flight = max(self._peak_in_flight, len(self._tokens))
        self._peak_bytes = max(self._peak_bytes, self._bytes)
        return token

    def _fits(self, charge: int, cap: int) -> bool:
        """Whether one more request charged `charge` fits now (`cap`: the concurrency cap in
        force). A subclass may narrow this (a leased share of a fleet's budget)."""
        if not self._tokens:
            return True
        return len(self._tokens) < cap and self._bytes + charge <= self._max_bytes

    def _grant_waiters(self) -> list[tuple[_Waiter, DispatchToken]]:
        grants: list[tuple[_Waiter, DispatchToken]] = []
        while self._waiters:
            waiter = next(iter(self._waiters.values()))
            token = self._admit(waiter.request_id, waiter.owner, waiter.size_bytes)
            if token is None:
                break
            del self._waiters[waiter.request_id]
            grants.append((waiter, token))
        return grants

    def _notify(self, grants: list[tuple[_Waiter, DispatchToken]]) -> None:
        for waiter, token in grants:
            try:
                waiter.on_granted(token)
            except Exception as exc:
                # Nobody will use the grant: give it back rather than leak it.
                _log.error(
                    "dispatch_grant_callback_failed",
                    request_id=repr(token.request_id),
                    error=repr(exc),
                    exc_info=exc,
                )
                self.release(token.request_id)
