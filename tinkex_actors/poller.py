"""Polling futures: the public names of the poller pool, its specs and its Poller actor.

Three modules, one idea each: `poll_ledger` (what is tracked: `PollSpec`, the per-slot
ledgers a restarted Poller adopts), `poller_actor` (the `Poller` and its `retrieve_future`
answer -> action table) and `poller_pool` (`PollerPool`: supervision, `track`, stopping).
Import from here or from the module that holds a name.
"""

from __future__ import annotations

from tinkex_actors.poll_ledger import PollSpec
from tinkex_actors.poller_actor import POLL_TIMEOUT_S, Poller, Timers
from tinkex_actors.poller_pool import (
    DEFAULT_INFLIGHT_RESPONSE_BYTES,
    DEFAULT_POLLERS,
    PollerPool,
    PollerStoppedError,
)

__all__ = [
    "DEFAULT_INFLIGHT_RESPONSE_BYTES",
    "DEFAULT_POLLERS",
    "POLL_TIMEOUT_S",
    "PollSpec",
    "Poller",
    "PollerPool",
    "PollerStoppedError",
    "Timers",
]
