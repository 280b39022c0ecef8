"""How long to wait before trying again: the one backoff rule, RetryPolicy, progress tracking.

`backoff_s` is the project's only exponential backoff with jitter: the HTTP retries, the
pollers, the samplers and the outage gate all compute their delays with it.
`parse_retry_after_s` reads a server-asked delay from `Retry-After`/`retry-after-ms`.

Retries of long operations are not counted: a client keeps retrying while it makes progress,
and gives up only when nothing of its own has completed for `progress_timeout_s` (120 min,
as the official SDK's retry handler). Any completed request of the same client counts as
progress, so a quiet future behind a busy client is never failed for waiting. The clock is
injectable: `ProgressTracker(clock=fake.monotonic)` in tests.

Delays, all documented here and chosen by `RetryPolicy`:

- backoff (5xx after the first immediate retry, connection errors, 429 without a server
  delay, 400, a pending answer): `min(base_delay_s * 2**n, max_delay_s)` times a jitter
  factor drawn from `[1 - jitter, 1]`, `n` counting consecutive failures of that kind;
- a server-asked delay (`retry_after_ms` in a try_again body, `Retry-After`/`retry-after-ms`
  headers on 429) is honoured when in `(0, max_server_delay_s]`, else backoff is used;
- try_again without `retry_after_ms`: `try_again_delay_s` (1 s; official 0.38 re-polls at
  once, which is a tight loop against a paused queue that answers at once);
- HTTP 408 (the server held the long poll until it expired): poll again at once.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random as random_module
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

from tinkex_actors.config import INITIAL_RETRY_DELAY_S, MAX_RETRY_DELAY_S, RETRY_JITTER
from tinkex_actors.errors import APIConnectionError

__all__ = [
    "DEFAULT_PROGRESS_TIMEOUT_S",
    "ProgressTimeoutError",
    "ProgressTracker",
    "RetryPolicy",
    "backoff_s",
    "parse_retry_after_s",
]

DEFAULT_PROGRESS_TIMEOUT_S: Final = 120 * 60.0
"""Give up after this long without progress (official `RetryConfig.progress_timeout`)."""


_MAX_EXPONENT: Final = 64
"""Doubling stops here: far past any cap, and no float overflow for huge failure counts."""


def backoff_s(
    failures: int,
    *,
    base_s: float = INITIAL_RETRY_DELAY_S,
    max_s: float = MAX_RETRY_DELAY_S,
    jitter: float = RETRY_JITTER,
    random: Callable[[], float] = random_module.random,
) -> float:
    """The delay after `failures` consecutive failures (0 = before the first retry):
    `min(base_s * 2**failures, max_s)` times a jitter factor drawn from `[1 - jitter, 1]`.

    With `jitter=0` no random number is drawn (a plain capped exponential backoff).
    """
    exponent = min(max(failures, 0), _MAX_EXPONENT)
    delay = min(base_s * 2.0**exponent, max_s)
    if jitter:
        delay *= 1.0 - jitter * random()
    return max(delay, 0.0)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


def parse_retry_after_s(headers: Mapping[str, str], now: Callable[[], float]) -> float | None:
    """Seconds the server asks us to wait, or None when it does not say.

    `retry-after-ms` wins (more precise), then `retry-after` as a number of
    seconds (floats allowed), then `retry-after` as an HTTP date, measured
    against `now()` (seconds since the epoch).
    """
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000.0
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return float(email.utils.mktime_tz(parsed) - now())


class ProgressTimeoutError(APIConnectionError):
    """Nothing completed for the client within its progress timeout: requests look stuck.

    A subclass of APIConnectionError, as the official SDK raises that type for this case.
    """


def _seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"RetryPolicy.{name}={value!r} is not a number; pass seconds")
    if value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"RetryPolicy.{name}={value!r} is out of range; pass seconds {need}")
    return float(value)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client waits between attempts, and how long it waits for progress at all."""

    base_delay_s: float = INITIAL_RETRY_DELAY_S
    max_delay_s: float = MAX_RETRY_DELAY_S
    jitter: float = RETRY_JITTER
    """Each backoff delay is multiplied by a factor drawn from [1 - jitter, 1]."""
    progress_timeout_s: float = DEFAULT_PROGRESS_TIMEOUT_S
    try_again_delay_s: float = 1.0
    max_server_delay_s: float = 60.0
    """A server-asked delay above this is replaced by our own backoff."""
    max_bad_request_retries: int = 3
    """HTTP 400 answers to a poll are retried this many times, then fail (official value)."""

    def __post_init__(self) -> None:
        _seconds("base_delay_s", self.base_delay_s, allow_zero=False)
        _seconds("max_delay_s", self.max_delay_s, allow_zero=False)
        if self.max_delay_s < self.base_delay_s:
            raise ValueError(
                f"RetryPolicy.max_delay_s={self.max_delay_s!r} is below base_delay_s="
                f"{self.base_delay_s!r}; pass max_delay_s >= base_delay_s"
            )
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise ValueError(
                f"RetryPolicy.jitter={jitter!r} is out of range; pass a fraction in [0, 1]"
            )
        _seconds("progress_timeout_s", self.progress_timeout_s, allow_zero=False)
        _seconds("try_again_delay_s", self.try_again_delay_s)
        _seconds("max_server_delay_s", self.max_server_delay_s)
        retries = self.max_bad_request_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(
                f"RetryPolicy.max_bad_request_retries={retries!r} is not valid; pass an int >= 0"
            )

    def backoff_s(self, failures: int, random: Callable[[], float] = random_module.random) -> float:
        """The delay after `failures` consecutive failures (0 = the first retry): capped,
        exponential, jittered."""
        return backoff_s(
            failures,
            base_s=self.base_delay_s,
            max_s=self.max_delay_s,
            jitter=self.jitter,
            random=random,
        )

    def server_delay_s(self, asked_s: float | None) -> float | None:
        """A server-asked delay if it is reasonable, else None (use backoff)."""
        if asked_s is not None and 0 < asked_s <= self.max_server_delay_s:
            return asked_s
        return None

    def retry_after_s(
        self,
        headers: Mapping[str, str] | None,
        failures: int,
        *,
        random: Callable[[], float] = random_module.random,
        now: Callable[[], float] = time.time,
    ) -> float:
        """The delay after an answer with Retry-After/retry-after-ms headers (429)."""
        asked = parse_retry_after_s(headers, now) if headers else None
        chosen = self.server_delay_s(asked)
        return chosen if chosen is not None else self.backoff_s(failures, random)

    def try_again_s(self, retry_after_ms: int | None) -> float:
        """The delay after a try_again answer: the server's `retry_after_ms` if reasonable."""
        chosen = self.server_delay_s(retry_after_ms / 1000.0 if retry_after_ms else None)
        return chosen if chosen is not None else self.try_again_delay_s


class ProgressTracker:
    """When a client last made progress; shared by all of its futures (thread-safe).

    Progress is any completed request of the client. `deadline(started)` is when a request
    started at `started` gives up: `progress_timeout_s` after the later of its start and the
    client's last progress.
    """

    def __init__(
        self,
        progress_timeout_s: float = DEFAULT_PROGRESS_TIMEOUT_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress_timeout_s = _seconds(
            "progress_timeout_s", progress_timeout_s, allow_zero=False
        )
        self.clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    @property
    def last_progress(self) -> float:
        """The clock reading of the last progress (creation counts as progress)."""
        return self._last

    def note_progress(self) -> None:
        """Record that a request of this client completed now."""
        now = self.clock()
        with self._lock:
            if now > self._last:
                self._last = now

    def deadline(self, started: float) -> float:
        """The clock reading past which a request started at `started` is stuck."""
        return max(self._last, started) + self.progress_timeout_s

    def expired(self, started: float) -> bool:
        """True when a request started at `started` has waited too long without progress."""
        return self.clock() > self.deadline(started)
