"""HTTP to the Tinker service: one event loop thread, the wires under it, retries, server health.

Bottom-up: `messages` (HttpRequest in, HttpResponse out), `wires` (aiohttp or httpx under the
transport), `loop_thread` (the one asyncio loop), `http_retry` and `retry` (what retries, and
when), `server_health` (one answer per client to "is the server there?"), `transport` (the
`Transport` the clients submit requests to). The names below are the ones clients use.
"""

from __future__ import annotations

from tinkex_actors.transport.blocking_call import CALL_TIMEOUT_S, call, call_json
from tinkex_actors.transport.messages import (
    API_PREFIX,
    JSON_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
    Headers,
    HttpRequest,
    HttpResponse,
)
from tinkex_actors.transport.transport import BARE_400_RETRIES, SleepFn, Transport
from tinkex_actors.transport.wires import TransportFactory

__all__ = [
    "API_PREFIX",
    "BARE_400_RETRIES",
    "CALL_TIMEOUT_S",
    "JSON_CONTENT_TYPE",
    "PROTOBUF_CONTENT_TYPE",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "SleepFn",
    "Transport",
    "TransportFactory",
    "call",
    "call_json",
]
