"""`ServerSettings`: what a test or the command line can tune on the embedded server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinkex_actors.local.guard import MAX_BODY_BYTES

__all__ = ["ServerSettings"]


@dataclass
class ServerSettings:
    """What a test or the CLI can tune on the embedded server."""

    long_poll_timeout_s: float = 30.0
    """How long `retrieve_future` holds a poll before answering 408 (the client waits 45 s)."""
    session_timeout_s: float = 120.0
    """Silence after which a session expires and its models, samplers and futures are freed."""
    gap_timeout_s: float = 30.0
    """How long a request waits for a missing earlier seq_id before the gap is skipped."""
    client_config: dict[str, Any] = field(default_factory=dict)
    """Flags merged into the answer of `client/config` (server-driven client configuration)."""
    dynamic_config: dict[str, Any] = field(default_factory=dict)
    """Flags merged into the answer of `client/dynamic_config`."""
    max_body_bytes: int = MAX_BODY_BYTES
    """Largest request body accepted (413 past it), and largest a zstd body may inflate to."""
    ended_sessions_kept: int = 10_000
    """How many ended sessions are remembered, so their late requests get 410 rather than 404."""
