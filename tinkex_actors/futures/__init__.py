"""Futures and polling: the public Future, the retrieve_future state machine, its Poller pool.

Bottom-up: `future` (the `Future` every operation returns), `client_future` (a creation
method's future of a client), `byte_budget` (bytes in flight, first come first served),
`queue_state` (why the server is not running queued work), `poll_ledger` (what each Poller
tracks), `poller_actor` (the retrieve_future state machine of one Poller actor) and
`poller_pool` (the fixed pool of Pollers a ServiceClient runs, under its own supervisor).
"""

from __future__ import annotations

from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.futures.future import CancelledError, Future, FutureTimeoutError

__all__ = ["CancelledError", "ClientFuture", "Future", "FutureTimeoutError"]
