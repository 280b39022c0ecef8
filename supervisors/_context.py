"""Which process is running in the current thread, for things that belong to their creator.

A ``Process`` records its urn here while its code runs (for the whole life of its own thread,
or for each slice of a pooled process on a worker), so that a timer set from its handlers can
die with it. Threads that run no process see None.
"""

from __future__ import annotations

import threading

__all__ = ["current_urn", "set_current"]

_local = threading.local()


def current_urn() -> str | None:
    """The urn of the process whose code is running in this thread, or None."""
    urn: str | None = getattr(_local, "urn", None)
    return urn


def set_current(urn: str | None) -> None:
    """Record the process now running in this thread (None when it leaves the thread)."""
    _local.urn = urn
