"""The endpoints a client calls first: health, capabilities, client configuration, sessions.

They answer at once (no future). A session lives while its client heartbeats; finishing it
(first reason wins) or its expiry frees what it owns (see `state.py`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from supervisors.library_logging import get_logger
from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.model import BASE_MODELS
from tinkex_actors.local.request_body import body_of, need
from tinkex_actors.local.state import ServerState, Session

__all__ = ["SessionEndpoints"]

log = get_logger("tinkex_actors.local")


class SessionEndpoints:
    """`healthz`, `get_server_capabilities`, `client/*config` and the session endpoints."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def healthz(self, request: Request) -> Response:
        """`GET healthz`."""
        return json_response({"status": "ok"})

    async def capabilities(self, request: Request) -> Response:
        """`GET get_server_capabilities`: the served base models."""
        return json_response(
            {
                "supported_models": [
                    {
                        "model_name": s.name,
                        "max_context_length": s.max_seq_len,
                        "trainable": True,
                        "sampleable": True,
                    }
                    for s in BASE_MODELS.values()
                ]
            }
        )

    async def client_config(self, request: Request) -> Response:
        """`POST client/config`: the server-driven client configuration."""
        body_of(request)
        flags: dict[str, Any] = {
            "pjwt_auth_enabled": False,
            "use_pyqwest_transport": False,
            "sample_use_retrieve_futures": False,
        }
        flags.update(self.state.settings.client_config)
        return json_response(flags)

    async def dynamic_config(self, request: Request) -> Response:
        """`POST client/dynamic_config`: flags a client re-reads periodically."""
        flags: dict[str, Any] = {
            "refresh_interval_sec": 300,
            "sample_cancel_enabled": True,
            "sample_cancel_max_batch_size": 64,
        }
        flags.update(self.state.settings.dynamic_config)
        return json_response(flags)

    async def create_session(self, request: Request) -> Response:
        """`POST create_session`."""
        body = body_of(request)
        tags = need(body, "tags", list, optional=True) or []
        if not all(isinstance(t, str) for t in tags):
            raise HTTPError(400, "field 'tags' must be a list of strings")
        metadata = need(body, "user_metadata", dict, optional=True)
        sdk_version = need(body, "sdk_version", str, optional=True) or "unknown"
        session_id = f"s-{uuid.uuid4().hex[:16]}"
        with self.state.lock:
            self.state.sessions[session_id] = Session(session_id, tags, metadata, sdk_version)
        log.info("session_created", session_id=session_id, sdk_version=sdk_version)
        return json_response({"type": "create_session", "session_id": session_id})

    async def heartbeat(self, request: Request) -> Response:
        """`POST session_heartbeat`."""
        self.state.session(body_of(request).get("session_id")).heartbeats.append(time.monotonic())
        return json_response({"type": "session_heartbeat"})

    async def finish_session(self, request: Request) -> Response:
        """`POST sessions/{id}/finish {reason: {type}, detail}`: end a session (first wins)."""
        body = body_of(request)
        reason = body.get("reason")
        kind = reason.get("type") if isinstance(reason, dict) else None
        if kind not in ("success", "errored", "interrupted"):
            raise HTTPError(
                400,
                f"field 'reason.type' must be 'success', 'errored' or 'interrupted', got {kind!r}",
            )
        session_id = request.params["session_id"]
        s = self.state.sessions.get(session_id)
        if s is None and session_id in self.state.ended:
            return json_response({})  # already ended: finishing again changes nothing
        if s is None:
            raise HTTPError(404, f"session not found: {session_id!r}")
        with self.state.lock:
            first = s.finish_reason is None
            if first:
                s.finish_reason = kind
        if first:
            self.state.expire_session(session_id, finished=True)
        return json_response({})
