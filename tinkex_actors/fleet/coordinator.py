"""The fleet coordinator: one 429 window, one dispatch budget and one pause-warning debounce
per (base URL, API key) for every worker of a rollout fleet.

It is a plain thread-safe object; the fleet runs it as a Ray actor (threaded, so that blocking
calls wait side by side) or in a manager process (the process backend). Workers never ask it
once per request:

- **Windows.** A worker that gets a 429 opens its own window at once and reports it
  (`report_429`); the coordinator's limiter for that key opens the fleet's window and every
  worker's `watch` (a long poll, one per worker) returns with it, so each worker adopts the
  remaining time. Windows run their full length here (a success does not clear them early).
- **Budgets.** Capacity is handed out as leases (`lease`: requests and estimated prompt bytes)
  that a worker keeps and reuses for as long as nobody else waits; the sum of leases never
  exceeds the caps, so a worker's local budget, which admits only within its lease, keeps
  the in-flight requests and bytes of the whole fleet within them. Asks are served first come
  first served; a waiting ask is visible in `watch`, which tells the others to give back what
  they do not use. While the key is throttled (a window, then `THROTTLE_AFTER_BACKOFF_S`) new
  leases keep the fleet to `THROTTLED_MAX_CONCURRENT` requests.
- **Warnings.** `queue_state` feeds one `QueueStateDebouncer` per sampler for the whole fleet.
- **Incarnations.** `hello(worker)` from a (re)started worker returns the leases its previous
  incarnation held and records the restart, which the pool checks against its intensity.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from tinkex_actors.clients.backpressure import THROTTLED_MAX_CONCURRENT
from tinkex_actors.clients.rate_limiter import THROTTLE_AFTER_BACKOFF_S, SampleRateLimiter
from tinkex_actors.futures.queue_state import OwnerKind, QueueStateChange, QueueStateDebouncer
from tinkex_actors.types import QueueState

__all__ = ["FleetCoordinator", "Key", "fleet_key"]

Key = tuple[str, str]
"""(base URL, digest of the API key): the coordinator never sees a key itself."""

LEASE_SHARE: Final = 16
"""An uncontended ask is granted this fraction of the caps on top of its need, so that a busy
worker asks again only after a sixteenth of the budget more is in flight."""


def fleet_key(base_url: str, api_key: str | None) -> Key:
    """The coordinator's key for samplers of `base_url` authenticated with `api_key`."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:32]
    return base_url.rstrip("/"), digest


@dataclasses.dataclass
class _Pool:
    max_requests: int
    max_bytes: int
    leases: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    queue: collections.deque[object] = dataclasses.field(default_factory=collections.deque)
    requests: int = 0
    bytes: int = 0
    peak_requests: int = 0
    peak_bytes: int = 0
    grants: int = 0
    asks: int = 0


class FleetCoordinator:
    """Fleet-wide backpressure state (see the module docstring). Thread-safe.

    `max_requests` / `max_bytes` override the caps the workers propose (their server's
    `sample_max_concurrent_requests` and `sample_dispatch_bytes_semaphore_size` flags).
    """

    def __init__(
        self,
        *,
        max_requests: int | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("max_requests", max_requests), ("max_bytes", max_bytes)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._epoch = 0
        self._limiters: dict[Key, SampleRateLimiter] = {}
        self._throttled_until: dict[Key, float] = {}
        self._pools: dict[Key, _Pool] = {}
        self._debouncers: dict[tuple[str, str], QueueStateDebouncer] = {}
        self._starts: dict[int, list[float]] = {}
        self._reports = 0
        self._warnings = 0
        self._state_reporters: set[int] = set()

    # -- incarnations ------------------------------------------------------------------------

    def hello(self, worker: int) -> int:
        """A worker (re)started: free its predecessor's leases; returns its incarnation (0..)."""
        with self._changed:
            starts = self._starts.setdefault(worker, [])
            starts.append(self._clock())
            for pool in self._pools.values():
                self._drop_lease(pool, worker)
            self._changed.notify_all()
            return len(starts) - 1

    def restarts_within(self, seconds: float) -> int:
        """Restarts of any worker in the last `seconds` (first starts are not restarts)."""
        with self._lock:
            since = self._clock() - seconds
            return sum(sum(t >= since for t in starts[1:]) for starts in self._starts.values())

    # -- windows -----------------------------------------------------------------------------

    def report_429(self, key: Key, size_bytes: int, retry_after_s: float | None) -> float:
        """A worker got a 429: open (or extend) the fleet's window; returns its delay."""
        with self._changed:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = SampleRateLimiter(clock=self._clock)
            delay_s = limiter.on_rate_limited(size_bytes, retry_after_s)
            until = self._clock() + delay_s + THROTTLE_AFTER_BACKOFF_S
            self._throttled_until[key] = max(self._throttled_until.get(key, 0.0), until)
            self._reports += 1
            self._epoch += 1
            self._changed.notify_all()
            return delay_s

    def watch(self, seen_epoch: int, timeout_s: float) -> tuple[int, dict[Key, Any]]:
        """Wait until something changed since `seen_epoch` (or `timeout_s`); returns the epoch
        and per key: (window remaining s, throttle remaining s, asks waiting)."""
        with self._changed:
            self._changed.wait_for(lambda: self._epoch != seen_epoch, timeout_s)
            now = self._clock()
            state: dict[Key, Any] = {}
            for key in self._limiters.keys() | self._pools.keys():
                limiter = self._limiters.get(key)
                remaining = limiter.backoff_remaining_s() if limiter is not None else 0.0
                throttle = max(0.0, self._throttled_until.get(key, 0.0) - now)
                pool = self._pools.get(key)
                state[key] = (remaining, throttle, len(pool.queue) if pool is not None else 0)
            return self._epoch, state

    # -- budgets -----------------------------------------------------------------------------

    def lease(
        self,
        worker: int,
        key: Key,
        caps: tuple[int, int],
        requests: int,
        size_bytes: int,
        timeout_s: float,
    ) -> tuple[int, int]:
        """Lease `requests` more requests and `size_bytes` more bytes to `worker`, waiting up to
        `timeout_s` for them; returns what was granted ((0, 0): nothing, ask again)."""
        with self._changed:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _Pool(
                    self._max_requests or caps[0], self._max_bytes or caps[1]
                )
            size_bytes = min(size_bytes, pool.max_bytes)
            ticket = object()
            pool.queue.append(ticket)
            pool.asks += 1
            self._epoch += 1  # the others learn that someone waits
            self._changed.notify_all()
            try:
                granted = self._changed.wait_for(
                    lambda: pool.queue[0] is ticket and self._fits(pool, key, requests, size_bytes),
                    timeout_s,
                )
            finally:
                pool.queue.remove(ticket)
                self._changed.notify_all()
            if not granted:
                return 0, 0
            extra_r = extra_b = 0
            if not pool.queue:
                extra_r = max(0, min(pool.max_requests // LEASE_SHARE,
                                     self._request_cap(pool, key) - pool.requests - requests))
                extra_b = max(0, min(pool.max_bytes // LEASE_SHARE,
                                     pool.max_bytes - pool.bytes - size_bytes))
            got_r, got_b = requests + extra_r, size_bytes + extra_b
            lease = pool.leases.setdefault(worker, [0, 0])
            lease[0] += got_r
            lease[1] += got_b
            pool.requests += got_r
            pool.bytes += got_b
            pool.peak_requests = max(pool.peak_requests, pool.requests)
            pool.peak_bytes = max(pool.peak_bytes, pool.bytes)
            pool.grants += 1
            return got_r, got_b

    def give_back(self, worker: int, key: Key, requests: int, size_bytes: int) -> None:
        """Return part of a lease."""
        with self._changed:
            pool = self._pools.get(key)
            lease = pool.leases.get(worker) if pool is not None else None
            if pool is None or lease is None:
                return
            requests, size_bytes = min(requests, lease[0]), min(size_bytes, lease[1])
            lease[0] -= requests
            lease[1] -= size_bytes
            pool.requests -= requests
            pool.bytes -= size_bytes
            self._changed.notify_all()

    # -- warnings ----------------------------------------------------------------------------

    def queue_state(
        self,
        kind: OwnerKind,
        identifier: str,
        state: str,
        reason: str | None,
        request_id: str,
        worker: int,
    ) -> bool:
        """A worker's sampler saw a queue-state change: debounce it fleet-wide; True if a
        warning was logged (here, in the coordinator's process)."""
        with self._changed:
            self._state_reporters.add(worker)
            self._epoch += 1
            self._changed.notify_all()
            debouncer = self._debouncers.get((kind, identifier))
            if debouncer is None:
                debouncer = QueueStateDebouncer(kind, identifier, clock=self._clock)
                self._debouncers[(kind, identifier)] = debouncer
            logged = debouncer.handle(
                QueueStateChange(request_id, "Sample", QueueState.parse(state), reason)
            )
            self._warnings += logged
            return logged

    def stats(self) -> dict[str, Any]:
        """Counters for tests and benchmarks (JSON-friendly)."""
        with self._lock:
            return {
                "reports_429": self._reports,
                "cpu_s": time.process_time(),  # this process is the coordinator's own
                "warnings": self._warnings,
                "queue_state_from": sorted(self._state_reporters),
                "epoch": self._epoch,
                "incarnations": {w: len(s) for w, s in self._starts.items()},
                "pools": {
                    f"{k[0]}#{k[1][:8]}": {
                        "max_requests": p.max_requests,
                        "max_bytes": p.max_bytes,
                        "leased_requests": p.requests,
                        "leased_bytes": p.bytes,
                        "peak_requests": p.peak_requests,
                        "peak_bytes": p.peak_bytes,
                        "grants": p.grants,
                        "asks": p.asks,
                    }
                    for k, p in self._pools.items()
                },
            }

    # -- under the lock ----------------------------------------------------------------------

    def _request_cap(self, pool: _Pool, key: Key) -> int:
        if self._clock() < self._throttled_until.get(key, 0.0):
            return min(pool.max_requests, THROTTLED_MAX_CONCURRENT)
        return pool.max_requests

    def _fits(self, pool: _Pool, key: Key, requests: int, size_bytes: int) -> bool:
        if pool.requests == 0 and pool.bytes == 0:
            return True  # alone, anything fits (a prompt larger than the budget included)
        return (
            pool.requests + requests <= self._request_cap(pool, key)
            and pool.bytes + size_bytes <= pool.max_bytes
        )

    def _drop_lease(self, pool: _Pool, worker: int) -> None:
        lease = pool.leases.pop(worker, None)
        if lease is not None:
            pool.requests -= lease[0]
            pool.bytes -= lease[1]
