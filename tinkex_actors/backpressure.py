"""Sampling backpressure: the shared 429 backoff window and the per-client dispatch budget.

Two pieces, each usable on its own, that a sampling client consults before every dispatch:

- `SampleRateLimiter`: one per (base URL, API key) in the process (`rate_limiter_for`). A 429
  on `asample` opens a backoff window (the official size-based delay: 1 s, or 5 s for a prompt
  estimated above 128 KiB); every sampler sharing the limiter waits it out before its next
  dispatch; a success of a request dispatched after the window opened clears it. For
  `THROTTLE_AFTER_BACKOFF_S` after a window ends the limiter reports `is_throttled()`, and
  budgets then admit fewer requests (as the official SDK's "throttled" dispatch does).
- `DispatchBudget`: a cap on concurrent requests and on estimated prompt bytes in flight.
  `try_acquire` never blocks (for actors): it returns a token, or None and queues the request
  so that `on_granted(token)` is called once capacity frees (strict FIFO, so a large prompt is
  not starved by small ones). `acquire(timeout_s)` blocks (for plain threads). Every grant is
  keyed by request id and owner, so an actor's terminate hook can release all of its grants
  with `release_owner(owner)` however it died.

The recipe for a dispatcher: wait until `limiter.backoff_remaining_s() == 0` (an actor sets a
timer for that long), take a token from the budget, send; on a 429 call
`limiter.on_rate_limited(size_bytes)` and go back to waiting; on success call
`limiter.on_success(dispatched_at)`; in every case `budget.release(request_id)`.

Differences from the official SDK, on purpose: the byte budget never goes below zero (a prompt
larger than the whole budget is charged the whole budget and admitted alone, where the
official semaphore lets the balance go negative); the concurrency cap is the server's
`sample_max_concurrent_requests` flag (the official holder hard-codes 400); a success clears
the window early; a Retry-After longer than the size-based delay is honoured (capped at 60 s).

A seam for fleets (`tinkex_actors.fleet`): `install_provider` lets a worker process hand every
sampler it builds a limiter and a budget that take their window and capacity from a fleet-wide
coordinator (a `SampleRateLimiter` that also adopts remote windows with `adopt_window`, and a
`DispatchBudget` subclass whose `_fits` admits within leased capacity). With no provider
installed (the default) nothing changes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Final, Protocol

from supervisors.library_logging import get_logger
from tinkex_actors.config import ClientFlags
from tinkex_actors.types import (
    DmelChunk,
    EncodedTextChunk,
    ImageAssetPointerChunk,
    ImageChunk,
    ModelInput,
)

__all__ = [
    "LARGE_PROMPT_BYTES",
    "SAMPLING_BACKPRESSURE_HEADER",
    "THROTTLED_BYTES_FACTOR",
    "THROTTLED_MAX_CONCURRENT",
    "THROTTLE_AFTER_BACKOFF_S",
    "BackpressureProvider",
    "BudgetStats",
    "DispatchBudget",
    "DispatchToken",
    "RateLimiterStats",
    "SampleRateLimiter",
    "backoff_delay_s",
    "estimate_prompt_bytes",
    "install_provider",
    "rate_limiter_for",
    "registry_keys",
]

Clock = Callable[[], float]

SMALL_PROMPT_BACKOFF_S: Final = 1.0
LARGE_PROMPT_BACKOFF_S: Final = 5.0
LARGE_PROMPT_BYTES: Final = 128 * 1024
"""Official: a prompt estimated above this many bytes backs off 5 s instead of 1 s."""
THROTTLE_AFTER_BACKOFF_S: Final = 10.0
"""Official: how long after a backoff window ends dispatch stays throttled."""
THROTTLED_MAX_CONCURRENT: Final = 10
"""Official: requests in flight while throttled."""
THROTTLED_BYTES_FACTOR: Final = 20
"""Official: while throttled, each prompt counts this many times against the byte budget."""
MAX_RETRY_AFTER_S: Final = 60.0
SAMPLING_BACKPRESSURE_HEADER: Final = "X-Tinker-Sampling-Backpressure"
"""Official: `asample` is sent with this header set to "1" and no HTTP-level retries, so a 429
comes back to the sampler, which reports it to the limiter instead of retrying blindly."""
_TOKEN_BYTES: Final = 10  # official estimate per text token

_log = get_logger("tinkex_actors.backpressure")


def estimate_prompt_bytes(prompt: ModelInput) -> int:
    """The official estimate of a prompt's size: 10 bytes per token, images by their data."""
    total = 0
    for chunk in prompt.chunks:
        if isinstance(chunk, ImageChunk):
            total += len(chunk.data)
        elif isinstance(chunk, ImageAssetPointerChunk):
            total += len(chunk.location)
        elif isinstance(chunk, DmelChunk):
            total += len(chunk.dmel)
        elif isinstance(chunk, EncodedTextChunk):
            total += chunk.length * _TOKEN_BYTES
    return total


def backoff_delay_s(size_bytes: int) -> float:
    """The official size-based backoff after a 429: 1 s, or 5 s above 128 KiB."""
    return SMALL_PROMPT_BACKOFF_S if size_bytes <= LARGE_PROMPT_BYTES else LARGE_PROMPT_BACKOFF_S


def _require_int(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an int >= {minimum}, got {value!r}")
    return value


# -- the shared backoff window ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimiterStats:
    """A snapshot of a limiter, for telemetry."""

    backing_off: bool
    backoff_remaining_s: float
    throttled: bool
    backoffs: int
    """429s that opened or extended the window."""
    total_backoff_s: float
    """Sum of the delays the window was opened or extended by."""
    clears: int
    """Windows a success closed early."""


class SampleRateLimiter:
    """The backoff window shared by every sampler of one (base URL, API key). Thread-safe.

    Get the shared instance with `rate_limiter_for`; construct one directly only in tests
    (with a fake `clock`, seconds on a monotonic scale).
    """

    def __init__(
        self, *, clock: Clock = time.monotonic, throttle_s: float = THROTTLE_AFTER_BACKOFF_S
    ) -> None:
        self._clock = clock
        self._throttle_s = throttle_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._opened_at: float | None = None
        self._until: float | None = None
        self._throttled_until: float | None = None
        self._backoffs = 0
        self._total_backoff_s = 0.0
        self._clears = 0

    def now(self) -> float:
        """The limiter's clock: pass its value as `dispatched_at` to `on_success`."""
        return self._clock()

    def backoff_remaining_s(self) -> float:
        """Seconds to wait before the next dispatch (0.0 when no window is open)."""
        with self._lock:
            return self._remaining(self._clock())

    def is_throttled(self) -> bool:
        """True during a window and for `throttle_s` after it: dispatch fewer requests."""
        with self._lock:
            now = self._clock()
            if self._remaining(now) > 0:
                return True
            return self._throttled_until is not None and now < self._throttled_until

    def on_rate_limited(self, size_bytes: int, retry_after_s: float | None = None) -> float:
        """A 429 for a prompt of `size_bytes`: open (or extend) the window; returns its delay."""
        _require_int("size_bytes", size_bytes, 0)
        delay_s = backoff_delay_s(size_bytes)
        if retry_after_s is not None and retry_after_s > delay_s:
            delay_s = min(float(retry_after_s), MAX_RETRY_AFTER_S)
        with self._changed:
            now = self._clock()
            until = now + delay_s
            if self._until is None or self._until <= now:
                self._opened_at = now
            if self._until is None or until > self._until:
                self._until = until
            self._throttled_until = max(self._throttled_until or 0.0, until + self._throttle_s)
            self._backoffs += 1
            self._total_backoff_s += delay_s
            self._changed.notify_all()
        _log.info("sample_backoff", delay_s=delay_s, size_bytes=size_bytes)
        return delay_s

    def on_success(self, dispatched_at: float | None = None) -> None:
        """A sample request succeeded: close an open window, unless the request was
        dispatched before the window opened (`dispatched_at`, from `now()`), which says
        nothing about the server's state since. The throttle lasts `throttle_s` from now."""
        with self._changed:
            now = self._clock()
            if self._remaining(now) <= 0 or self._opened_at is None:
                return
            if dispatched_at is not None and dispatched_at < self._opened_at:
                return
            self._until = None
            self._opened_at = None
            self._throttled_until = now + self._throttle_s
            self._clears += 1
            self._changed.notify_all()

    def adopt_window(self, remaining_s: float, throttle_remaining_s: float = 0.0) -> None:
        """Take on a window opened elsewhere (a fleet's coordinator): wait at least
        `remaining_s` from now, stay throttled at least `throttle_remaining_s`. Not counted
        as a backoff of this limiter."""
        with self._changed:
            now = self._clock()
            if remaining_s > 0:
                until = now + remaining_s
                if self._until is None or self._until <= now:
                    self._opened_at = now
                if self._until is None or until > self._until:
                    self._until = until
            if throttle_remaining_s > 0:
                throttled_until = now + throttle_remaining_s
                self._throttled_until = max(self._throttled_until or 0.0, throttled_until)
            self._changed.notify_all()

    def wait_clear(self, timeout_s: float) -> bool:
        """Block a plain thread until no window is open; False if `timeout_s` ran out first."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                remaining = self._remaining(self._clock())
                if remaining <= 0:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(remaining, left))

    def stats(self) -> RateLimiterStats:
        """Counters and the current state, for telemetry."""
        with self._lock:
            now = self._clock()
            remaining = self._remaining(now)
            throttled = remaining > 0 or (
                self._throttled_until is not None and now < self._throttled_until
            )
            return RateLimiterStats(
                backing_off=remaining > 0,
                backoff_remaining_s=remaining,
                throttled=throttled,
                backoffs=self._backoffs,
                total_backoff_s=self._total_backoff_s,
                clears=self._clears,
            )

    def _remaining(self, now: float) -> float:
        if self._until is None:
            return 0.0
        return max(0.0, self._until - now)


_registry: weakref.WeakValueDictionary[tuple[str, str], SampleRateLimiter] = (
    weakref.WeakValueDictionary()
)
_registry_lock = threading.Lock()


def _registry_key(base_url: str, api_key: str | None) -> tuple[str, str]:
    # Keyed by a digest: the registry must never hold the key itself.
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:32]
    return base_url.rstrip("/"), digest


def rate_limiter_for(base_url: str, api_key: str | None) -> SampleRateLimiter:
    """The process-wide limiter shared by every sampler of this base URL and API key.

    It lives as long as someone holds it (samplers keep a reference).
    """
    if not isinstance(base_url, str) or not base_url:
        raise ValueError(f"base_url must be a non-empty str, got {base_url!r}")
    provider = _provider
    if provider is not None:
        provided = provider.rate_limiter_for(base_url, api_key)
        if provided is not None:
            return provided
    key = _registry_key(base_url, api_key)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = SampleRateLimiter()
            _registry[key] = limiter
        return limiter


class BackpressureProvider(Protocol):
    """Where the samplers of this process take their limiter and budget from (a fleet worker).

    Either method may return None to fall back to the process-local default.
    """

    def rate_limiter_for(self, base_url: str, api_key: str | None) -> SampleRateLimiter | None:
        """The limiter for samplers of this base URL and key."""
        ...

    def budget_for(
        self, flags: ClientFlags, rate_limiter: SampleRateLimiter | None
    ) -> DispatchBudget | None:
        """The dispatch budget for a client sized by `flags` and throttled by `rate_limiter`."""
        ...


_provider: BackpressureProvider | None = None


def install_provider(provider: BackpressureProvider | None) -> BackpressureProvider | None:
    """Make `provider` the source of limiters and budgets built from now on in this process
    (None restores the process-local default); returns the provider it replaced."""
    global _provider
    with _registry_lock:
        previous, _provider = _provider, provider
    return previous


def registry_keys() -> list[tuple[str, str]]:
    """The registry's keys (base URL, key digest): for tests and diagnostics."""
    with _registry_lock:
        return list(_registry.keys())


# -- the dispatch budget ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DispatchToken:
    """One admitted request: what it was charged, to be released exactly once."""

    request_id: Hashable
    owner: Hashable
    size_bytes: int
    """The prompt's estimated bytes, as given."""
    charged_bytes: int
    """What the budget counted (x20 while throttled; never more than the whole budget)."""


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


class DispatchBudget:
    """Caps requests and estimated prompt bytes in flight. Thread-safe; callbacks run unlocked.

    `rate_limiter`, when given, throttles admissions while it `is_throttled()`: at most
    `THROTTLED_MAX_CONCURRENT` in flight, and each prompt charged `THROTTLED_BYTES_FACTOR`
    times its size. A request is always admitted when nothing is in flight, so a prompt larger
    than the budget cannot wait forever.
    """

    def __init__(
        self,
        max_concurrent: int,
        max_bytes: int,
        *,
        rate_limiter: SampleRateLimiter | None = None,
    ) -> None:
        self._max_concurrent = _require_int("max_concurrent", max_concurrent, 1)
        self._max_bytes = _require_int("max_bytes", max_bytes, 1)
        self._limiter = rate_limiter
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

    @classmethod
    def from_flags(
        cls, flags: ClientFlags, *, rate_limiter: SampleRateLimiter | None = None
    ) -> DispatchBudget:
        """A budget sized by the server's flags (`sample_max_concurrent_requests`,
        `sample_dispatch_bytes_semaphore_size`); an installed provider's budget if it has one."""
        provider = _provider
        if provider is not None:
            provided = provider.budget_for(flags, rate_limiter)
            if provided is not None:
                return provided
        return cls(
            flags.sample_max_concurrent_requests,
            flags.sample_dispatch_bytes_semaphore_size,
            rate_limiter=rate_limiter,
        )

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
        _require_int("size_bytes", size_bytes, 0)
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
            f"DispatchBudget(in_flight={s.in_flight}/{s.max_concurrent}, "
            f"bytes={s.in_flight_bytes}/{s.max_bytes}, waiting={s.waiting})"
        )

    # -- under the lock ----------------------------------------------------------------------

    def _admit(
        self, request_id: Hashable, owner: Hashable, size_bytes: int
    ) -> DispatchToken | None:
        throttled = self._limiter is not None and self._limiter.is_throttled()
        cap = (
            min(self._max_concurrent, THROTTLED_MAX_CONCURRENT)
            if throttled
            else (self._max_concurrent)
        )
        charge = size_bytes * THROTTLED_BYTES_FACTOR if throttled else size_bytes
        charge = min(charge, self._max_bytes)
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
