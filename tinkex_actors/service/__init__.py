"""The ServiceClient: the entry point, and the owner of the client's supervision tree.

`service_client` (the ServiceClient and its factories), `tree` (the supervision tree it
starts and stops), `session_calls` and `model_creation` (what it asks the server for itself),
`closing` (close, the exit hook, the teardown's order and budget).
"""

from __future__ import annotations

from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.service.service_client import ServiceClient

__all__ = ["ClientFuture", "ServiceClient"]
