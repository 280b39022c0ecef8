"""The `client/config` handshake: the flags the server sets for this client, asked once.

`POST client/config` on the session pool (the official SDK asks on a one-off connection of its
own; ours is the session pool, the same kind of short control call). A server without the
endpoint, or one that cannot be reached, leaves every flag at its default.
"""

from __future__ import annotations

from supervisors.library_logging import get_logger
from tinkex_actors.config import ClientFlags, PoolKind
from tinkex_actors.transport.blocking_call import call_json
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport

__all__ = ["SDK_VERSION", "fetch_client_flags"]

log = get_logger("tinkex_actors.clients.handshake")

SDK_VERSION = "tinkex-actors"
"""The `sdk_version` the flags are asked for."""


def fetch_client_flags(transport: Transport, timeout_s: float) -> ClientFlags:
    """The server's flags for this client; the defaults when it does not answer in time."""
    request = HttpRequest.json(
        "POST", "client/config", {"sdk_version": SDK_VERSION}, pool=PoolKind.SESSION
    )
    try:
        return ClientFlags.from_mapping(call_json(transport, request, timeout_s))
    except Exception as exc:
        log.info("client_config_unavailable", error=str(exc))
        return ClientFlags()
