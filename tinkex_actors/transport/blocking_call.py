"""One blocking API call: send a request through the transport and wait for its answer.

For callers on a thread of their own (a creation method's background thread, a recovery, a
command): never on an actor's mailbox, and never without a timeout.
"""

from __future__ import annotations

from typing import Any

from tinkex_actors.transport.messages import HttpRequest, HttpResponse
from tinkex_actors.transport.retry import ProgressTracker
from tinkex_actors.transport.transport import Transport

__all__ = ["CALL_TIMEOUT_S", "call", "call_json"]

CALL_TIMEOUT_S = 60.0
"""How long a blocking call waits for its answer unless told otherwise."""


def call(
    transport: Transport,
    request: HttpRequest,
    timeout_s: float = CALL_TIMEOUT_S,
    *,
    progress: ProgressTracker | None = None,
) -> HttpResponse:
    """Send `request` and wait up to `timeout_s` for its answer (raises the typed error).

    With `progress`, retryable failures are retried until that tracker's progress timeout
    (see `Transport.submit`): give such a call a `timeout_s` longer than that.
    """
    if progress is None:
        return transport.submit(request).result(timeout_s)
    return transport.submit(request, progress=progress).result(timeout_s)


def call_json(
    transport: Transport,
    request: HttpRequest,
    timeout_s: float = CALL_TIMEOUT_S,
    *,
    progress: ProgressTracker | None = None,
) -> Any:
    """`call`, and the answer's decoded JSON body."""
    return call(transport, request, timeout_s, progress=progress).json()
