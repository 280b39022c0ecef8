"""HTTP-level retry rules and the platform headers, as pure functions.

The rules are the official SDK's (`tinker/_base_client.py`, 0.38): a server
delay (`retry-after-ms`, else `Retry-After` as seconds or an HTTP date) is
honoured when it lies in (0, 60] seconds; otherwise the delay is
`min(0.5 * 2**retries_taken, 10)` seconds times a jitter factor in [0.75, 1]
(`retry.backoff_s`; the server delay is read by `retry.parse_retry_after_s`).
Kept free of I/O so tests can check every rule without a server.
"""

from __future__ import annotations

import functools
import platform
import sys
from collections.abc import Callable, Mapping

from tinkex_actors.transport.retry import backoff_s, parse_retry_after_s

__all__ = [
    "MAX_SERVER_DELAY_S",
    "platform_headers",
    "retry_delay_s",
]

MAX_SERVER_DELAY_S = 60.0
"""A server-asked delay above this is ignored in favour of our own backoff."""


def retry_delay_s(
    retries_taken: int,
    headers: Mapping[str, str] | None,
    *,
    random: Callable[[], float],
    now: Callable[[], float],
) -> float:
    """The delay before the next attempt: the server's if reasonable, else our backoff."""
    if headers is not None:
        asked = parse_retry_after_s(headers, now)
        if asked is not None and 0 < asked <= MAX_SERVER_DELAY_S:
            return asked
    return backoff_s(retries_taken, random=random)


def _os_name() -> str:
    system = platform.system().lower()
    described = platform.platform().lower()
    if "iphone" in described or "ipad" in described:
        return "iOS"
    named = {"darwin": "MacOS", "windows": "Windows", "freebsd": "FreeBSD", "openbsd": "OpenBSD"}
    if system in named:
        return named[system]
    if "android" in described:
        return "Android"
    if system == "linux":
        return "Linux"
    return f"Other:{described}" if described else "Unknown"


def _arch_name() -> str:
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    if machine == "arm":
        return "arm"
    if machine in ("x86_64", "amd64"):
        return "x64"
    if sys.maxsize <= 2**32:
        return "x32"
    return f"other:{machine}" if machine else "unknown"


@functools.lru_cache(maxsize=4)
def platform_headers(package_version: str) -> Mapping[str, str]:
    """The `x-stainless-*` description of this process, computed once per version."""
    return {
        "X-Stainless-Package-Version": package_version,
        "X-Stainless-OS": _os_name(),
        "X-Stainless-Arch": _arch_name(),
        "X-Stainless-Runtime": platform.python_implementation(),
        "X-Stainless-Runtime-Version": platform.python_version(),
        "X-Stainless-Async": "async:asyncio",
    }
