"""Sampling backpressure: the dispatch budget, and where each sampler takes it and its limiter.

A sampling client consults two things before every dispatch:

- a `SampleRateLimiter` (see `rate_limiter`), one per (base URL, API key) in the process
  (`rate_limiter_for`): the shared 429 backoff window, and the throttle after it;
- a `DispatchBudget`: a `ByteBudget` (see `byte_budget`) of estimated prompt bytes in flight,
  with a cap on concurrent requests (the server's `sample_max_concurrent_requests` flag; the
  official holder hard-codes 400) and, while its limiter `is_throttled()`, at most
  `THROTTLED_MAX_CONCURRENT` in flight with each prompt charged `THROTTLED_BYTES_FACTOR` times.

The recipe for a dispatcher: wait until `limiter.backoff_remaining_s() == 0` (an actor sets a
timer for that long), take a token from the budget, send; on a 429 call
`limiter.on_rate_limited(size_bytes)` and go back to waiting; on success call
`limiter.on_success(dispatched_at)`; in every case `budget.release(request_id)`.

A seam for fleets (`tinkex_actors.fleet`): `install_provider` lets a worker process hand every
sampler it builds a limiter and a budget that take their window and capacity from a fleet-wide
coordinator (a `SampleRateLimiter` that also adopts remote windows with `adopt_window`, and a
`DispatchBudget` subclass whose `_fits` admits within leased capacity). With no provider
installed (the default) nothing changes.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from typing import Final, Protocol

from tinkex_actors.clients.rate_limiter import (
    SampleRateLimiter,
)
from tinkex_actors.config import ClientFlags
from tinkex_actors.futures.byte_budget import ByteBudget

__all__ = [
    "THROTTLED_BYTES_FACTOR",
    "THROTTLED_MAX_CONCURRENT",
    "BackpressureProvider",
    "DispatchBudget",
    "install_provider",
    "rate_limiter_for",
    "registry_keys",
]

THROTTLED_MAX_CONCURRENT: Final = 10
"""Official: requests in flight while throttled."""
THROTTLED_BYTES_FACTOR: Final = 20
"""Official: while throttled, each prompt counts this many times against the byte budget."""


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


class DispatchBudget(ByteBudget):
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
        """At most `max_concurrent` requests and `max_bytes` prompt bytes in flight."""
        if max_concurrent is None:  # ByteBudget reads None as "no cap": a dispatch needs one
            raise ValueError(f"max_concurrent must be an int >= 1, got {max_concurrent!r}")
        super().__init__(max_bytes, max_concurrent=max_concurrent)
        self._limiter = rate_limiter

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

    def _terms(self, size_bytes: int) -> tuple[int, int, bool]:
        """While the limiter is throttled: the throttled cap, and the prompt charged x20."""
        if self._limiter is None or not self._limiter.is_throttled():
            return super()._terms(size_bytes)
        cap = min(self._max_concurrent, THROTTLED_MAX_CONCURRENT)
        return cap, min(size_bytes * THROTTLED_BYTES_FACTOR, self._max_bytes), True
