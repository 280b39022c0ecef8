"""The shared 429 backoff window of sampling: `SampleRateLimiter`, and the official sizes.

One limiter per (base URL, API key) in the process (`backpressure.rate_limiter_for`). A 429 on
`asample` opens a backoff window (the official size-based delay: 1 s, or 5 s for a prompt
estimated above 128 KiB); every sampler sharing the limiter waits it out before its next
dispatch; a success of a request dispatched after the window opened clears it. For
`THROTTLE_AFTER_BACKOFF_S` after a window ends the limiter reports `is_throttled()`, and
dispatch budgets then admit fewer requests (as the official SDK's "throttled" dispatch does).

Differences from the official SDK, on purpose: a success clears the window early; a
Retry-After longer than the size-based delay is honoured (capped at 60 s). A fleet's limiter
also adopts windows opened elsewhere (`adopt_window`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Final

from supervisors.library_logging import get_logger
from tinkex_actors.futures.byte_budget import require_int
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
    "THROTTLE_AFTER_BACKOFF_S",
    "RateLimiterStats",
    "SampleRateLimiter",
    "backoff_delay_s",
    "estimate_prompt_bytes",
]

Clock = Callable[[], float]

SMALL_PROMPT_BACKOFF_S: Final = 1.0
LARGE_PROMPT_BACKOFF_S: Final = 5.0
LARGE_PROMPT_BYTES: Final = 128 * 1024
"""Official: a prompt estimated above this many bytes backs off 5 s instead of 1 s."""
THROTTLE_AFTER_BACKOFF_S: Final = 10.0
"""Official: how long after a backoff window ends dispatch stays throttled."""
MAX_RETRY_AFTER_S: Final = 60.0
SAMPLING_BACKPRESSURE_HEADER: Final = "X-Tinker-Sampling-Backpressure"
"""Official: `asample` is sent with this header set to "1" and no HTTP-level retries, so a 429
comes back to the sampler, which reports it to the limiter instead of retrying blindly."""
_TOKEN_BYTES: Final = 10  # official estimate per text token

_log = get_logger("tinkex_actors.clients.backpressure")


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
        require_int("size_bytes", size_bytes, 0)
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
