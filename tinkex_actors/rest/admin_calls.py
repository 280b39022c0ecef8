"""The RestClient's newer official 0.38 calls: copies, admin reports, session management.

`RestClient` inherits these from `RestAdminCalls`; they use the plumbing of `rest_base` (`_send`,
`_get`, `_in_worker`) and, like the rest of it, return a `Future` at once with an `_async` twin.

- `copy_weights`: `POST copy_weights` (a copy of a checkpoint in another project or session;
  the weights access token travels in `X-Tinker-Weights-Access-Token`, never in the body).
- `get_audit_log`, `get_billing_usage`, `get_current_checkpoint_storage_usage`: the reports
  official 0.38 keeps on `RestClient` (deprecated there in favour of its `AdminClient`).
- `export_session_trace`: asks `GET sessions/{id}/trace_export` until the trace is ready
  (waiting `TRACE_POLL_INTERVAL_S` between asks on a worker thread), then gives its URL.
- `search_sessions`, `assign_session_project`.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import quote

import msgspec

from tinkex_actors import types
from tinkex_actors.config import PoolKind
from tinkex_actors.futures.future import Future, combine
from tinkex_actors.rest.base import RestBase
from tinkex_actors.transport.messages import HttpRequest

if TYPE_CHECKING:
    import threading

    from tinkex_actors.clients.extras import Telemetry

__all__ = ["TRACE_POLL_INTERVAL_S", "AuditEventType", "RestAdminCalls"]

AuditEventType = Literal["all", "checkpoints", "projects", "teams", "organizations"]
TRACE_POLL_INTERVAL_S: Final = 5.0
"""Between two asks for a session trace still being built (as the official SDK waits)."""
WEIGHTS_ACCESS_TOKEN_HEADER: Final = "X-Tinker-Weights-Access-Token"
_AUDIT_EVENT_TYPES: Final = ("all", "checkpoints", "projects", "teams", "organizations")


class _TraceExportPoll(msgspec.Struct, frozen=True):
    status: Literal["pending", "ready", "failed"]
    url: str | None = None
    error: str | None = None


def _id(field: str, value: object) -> str:
    if not isinstance(value, str) or not value or "/" in value or value.strip() != value:
        raise ValueError(f"{field} must be a non-empty id without '/' or spaces, got {value!r}")
    return quote(value, safe=":")


def _instant(field: str, value: object) -> str:
    """An RFC 3339 time from a datetime or a string (naive times are taken as UTC)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(
                f"{field}={value!r} is not an ISO 8601 time; pass e.g. '2025-01-15T00:00:00Z'"
            ) from exc
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{field} must be a datetime or an ISO 8601 string, got {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class RestAdminCalls(RestBase):
    """Copies, admin reports and session management; mixed into `RestClient`."""

    # -- copies ----------------------------------------------------------------------------

    def copy_weights(
        self,
        path: str,
        destination_project_id: str | None = None,
        *,
        ttl_seconds: int | None = None,
        weights_access_token: str | None = None,
    ) -> Future[str]:
        """Copy a checkpoint into a project; a Future of the copy's tinker path.

        The project defaults to `TINKER_PROJECT_ID`. Storage is shared with the source; the
        copy belongs to a new training run that cannot be trained on.
        """
        if destination_project_id is None:
            destination_project_id = os.environ.get("TINKER_PROJECT_ID") or None
        if destination_project_id is None:
            raise ValueError(
                "copy_weights needs a destination: pass destination_project_id or set "
                "TINKER_PROJECT_ID"
            )
        request = types.CopyWeightsRequest(
            source_path=path,
            destination_project_id=destination_project_id,
            ttl_seconds=ttl_seconds,
        )
        return self._copy_weights(request, weights_access_token)

    def _copy_weights(
        self, request: types.CopyWeightsRequest, weights_access_token: str | None
    ) -> Future[str]:
        if not isinstance(request.source_path, str) or not request.source_path.startswith(
            "tinker://"
        ):
            raise ValueError(
                f"path={request.source_path!r} is not a tinker path; pass 'tinker://<run>/...'"
            )
        ttl = request.ttl_seconds
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
            raise ValueError(f"ttl_seconds={ttl!r} must be a positive int, or None: no expiry")
        headers = {}
        if weights_access_token is not None:
            headers[WEIGHTS_ACCESS_TOKEN_HEADER] = weights_access_token
        http = HttpRequest(
            "POST",
            "copy_weights",
            types.to_json(request),
            headers=headers,
            pool=PoolKind.TRAIN,
        )
        copied: Future[types.CopyWeightsResponse] = self._send(http, types.CopyWeightsResponse)
        return combine([copied], lambda answers: answers[0].tinker_path)

    async def copy_weights_async(
        self,
        path: str,
        destination_project_id: str | None = None,
        *,
        ttl_seconds: int | None = None,
        weights_access_token: str | None = None,
    ) -> str:
        """`await` form of `copy_weights`."""
        return await self.copy_weights(
            path,
            destination_project_id,
            ttl_seconds=ttl_seconds,
            weights_access_token=weights_access_token,
        )

    # -- admin reports ---------------------------------------------------------------------

    def get_audit_log(
        self, event_type: AuditEventType = "all", day: dt.date | None = None
    ) -> Future[types.AuditLogResponse]:
        """The organization's audit log (one day, or the latest), oldest entry first."""
        if event_type not in _AUDIT_EVENT_TYPES:
            raise ValueError(f"event_type must be one of {_AUDIT_EVENT_TYPES}, got {event_type!r}")
        params: dict[str, str | int] = {"event_type": event_type}
        if day is not None:
            if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
                raise TypeError(f"day must be a datetime.date, got {day!r}")
            params["day"] = day.isoformat()
        return self._get("audit", types.AuditLogResponse, params)

    async def get_audit_log_async(
        self, event_type: AuditEventType = "all", day: dt.date | None = None
    ) -> types.AuditLogResponse:
        """`await` form of `get_audit_log`."""
        return await self.get_audit_log(event_type, day)

    def get_billing_usage(
        self, starting_on: dt.datetime | str, ending_before: dt.datetime | str
    ) -> Future[types.BillingUsageResponse]:
        """Hourly usage buckets in `[starting_on, ending_before)` (UTC hours, at most 14 days)."""
        params: dict[str, str | int] = {
            "starting_on": _instant("starting_on", starting_on),
            "ending_before": _instant("ending_before", ending_before),
        }
        return self._get("billing/usage/events", types.BillingUsageResponse, params)

    async def get_billing_usage_async(
        self, starting_on: dt.datetime | str, ending_before: dt.datetime | str
    ) -> types.BillingUsageResponse:
        """`await` form of `get_billing_usage`."""
        return await self.get_billing_usage(starting_on, ending_before)

    def get_current_checkpoint_storage_usage(
        self, project_id: str | None = None
    ) -> Future[types.CurrentCheckpointStorageUsageResponse]:
        """Checkpoint storage in use now, by project and owner (one project if given)."""
        params: dict[str, str | int] = {}
        if project_id is not None:
            params["project_id"] = _id("project_id", project_id)
        return self._get(
            "billing/usage/checkpoints/current",
            types.CurrentCheckpointStorageUsageResponse,
            params,
        )

    async def get_current_checkpoint_storage_usage_async(
        self, project_id: str | None = None
    ) -> types.CurrentCheckpointStorageUsageResponse:
        """`await` form of `get_current_checkpoint_storage_usage`."""
        return await self.get_current_checkpoint_storage_usage(project_id)

    # -- sessions --------------------------------------------------------------------------

    def export_session_trace(self, session_id: str) -> Future[str]:
        """The signed URL of a Perfetto trace of a session's requests (built on demand)."""
        route = f"sessions/{_id('session_id', session_id)}/trace_export"

        def work(stop: threading.Event) -> str:
            while True:
                answer = self._get(route, _TraceExportPoll).result(self._wait_s())
                if answer.status == "ready" and answer.url:
                    return answer.url
                if answer.status == "failed":
                    raise RuntimeError(
                        f"trace export of session {session_id} failed: {answer.error}"
                    )
                if stop.is_set():
                    raise RuntimeError(f"trace export of session {session_id} was cancelled")
                self._sleep(TRACE_POLL_INTERVAL_S)

        return self._in_worker("export_session_trace", work)

    async def export_session_trace_async(self, session_id: str) -> str:
        """`await` form of `export_session_trace`."""
        return await self.export_session_trace(session_id)

    def search_sessions(
        self, request: types.SessionSearchRequest
    ) -> Future[types.SessionSearchResponse]:
        """One page of the organization's sessions matching `request`, newest first.

        Pass a page's `next_cursor` as the next request's `cursor` to go on.
        """
        if not isinstance(request, types.SessionSearchRequest):
            raise TypeError(
                f"request is a {type(request).__name__}; pass a "
                "types.SessionSearchRequest(display_name=..., limit=...)"
            )
        http = HttpRequest("POST", "sessions/search", types.to_json(request), pool=PoolKind.TRAIN)
        found: Future[types.SessionSearchResponse] = self._send(http, types.SessionSearchResponse)
        return found

    def assign_session_project(self, session_id: str, project_id: str) -> Future[None]:
        """Move a session (and its training runs and samplers) into a project."""
        route = f"sessions/{_id('session_id', session_id)}/project"
        body = {"project_id": _id("project_id", project_id)}
        done: Future[None] = self._send(
            HttpRequest.json("PUT", route, body, pool=PoolKind.TRAIN), None
        )
        return done

    async def assign_session_project_async(self, session_id: str, project_id: str) -> None:
        """`await` form of `assign_session_project`."""
        await self.assign_session_project(session_id, project_id)

    def get_telemetry(self) -> Telemetry | None:
        """None: a RestClient has no session, so nothing to report telemetry into."""
        return None
