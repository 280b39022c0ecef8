"""The embedded server's newer official 0.38 endpoints: copies, admin reports, session tools.

- `POST copy_weights`: a copy of a checkpoint in a new, untrainable training run, owned by a
  project (`destination_project_id`) or a session (`session_id` + `model_seq_id`).
- `GET audit`, `GET billing/usage/events`, `GET billing/usage/checkpoints/current`: reports
  computed from the server's own records (checkpoint saves and copies, project moves, stored
  bytes). There is one local user and one organization; sessions without a project belong to
  the project `DEFAULT_PROJECT`.
- `GET sessions/{id}/trace_export`: builds a trace of the session (Chrome trace-event JSON,
  which Perfetto opens); the first ask answers `pending`, later ones `ready` with a URL under
  `/_traces/` (signed, like the service's URL: it needs no API key).
- `POST sessions/search`, `PUT sessions/{id}/project`.

`create_session` is routed through here to remember each session's `project_id` and
`display_name` (the session itself is created by `SessionEndpoints.create_session`).
Bad input is a 400 naming the field, unknown ids a 404, in the service's error shape.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import msgspec

from tinkex_actors import types
from tinkex_actors.local.asgi import Router
from tinkex_actors.local.guard import Guard
from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.request_body import body_of, need, storage_errors
from tinkex_actors.local.service import TinkerService
from tinkex_actors.local.state import Session
from tinkex_actors.local.storage import iso, parse_tinker_path

__all__ = ["DEFAULT_PROJECT", "RestExtras"]

DEFAULT_PROJECT: Final = "default"
TTL_MIN_S: Final = 3600
TTL_MAX_S: Final = 10 * 365 * 24 * 3600
BILLING_MAX_WINDOW: Final = timedelta(days=14)
_AUDIT_KINDS: Final = {
    "all": ("",),
    "checkpoints": ("checkpoint_",),
    "projects": ("project_", "session_project"),
    "teams": ("team_",),
    "organizations": ("organization_",),
}


def _instant(request: Request, name: str) -> datetime:
    value = request.query.get(name)
    if not value:
        raise HTTPError(400, f"query '{name}' is required (an RFC 3339 time on a UTC hour)")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HTTPError(400, f"query '{name}' is not an RFC 3339 time: {value!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if (when.minute, when.second, when.microsecond) != (0, 0, 0):
        raise HTTPError(400, f"query '{name}' must be on a UTC hour boundary, got {value!r}")
    return when


class RestExtras:
    """Copies, admin reports and session tools over the service's state and checkpoint store."""

    def __init__(self, service: TinkerService, guard: Guard) -> None:
        self.service = service
        self.guard = guard
        self.storage = service.storage
        self.lock = threading.Lock()
        self.projects: dict[str, str] = {}
        self.display_names: dict[str, str] = {}
        self.audit: list[dict[str, Any]] = []
        self.traces: dict[str, bytes] = {}
        self.trace_asks: Counter[str] = Counter()

    def register(self, router: Router) -> None:
        """Add every endpoint of this module to a router (after `TinkerService.register`)."""
        session = "/api/v1/sessions/{session_id}"
        for method, path, handler in (
            ("POST", "/api/v1/create_session", self.create_session),
            ("POST", "/api/v1/copy_weights", self.copy_weights),
            ("GET", "/api/v1/audit", self.audit_log),
            ("GET", "/api/v1/billing/usage/events", self.billing_usage),
            ("GET", "/api/v1/billing/usage/checkpoints/current", self.storage_usage),
            ("POST", "/api/v1/sessions/search", self.search_sessions),
            ("PUT", session + "/project", self.assign_project),
            ("GET", session + "/trace_export", self.trace_export),
            ("GET", "/_traces/{name}", self.trace_file),
        ):
            router.add(method, path, handler)

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(self, request: Request) -> Response:
        """`POST create_session`: as the service, remembering project and display name."""
        body = body_of(request)
        project = need(body, "project_id", str, optional=True)
        name = need(body, "display_name", str, optional=True)
        if name is not None and not name.strip():
            raise HTTPError(400, "field 'display_name' must not be empty; leave it out instead")
        response = await self.service.session_endpoints.create_session(request)
        session_id = json.loads(response.body)["session_id"]
        with self.lock:
            self.projects[session_id] = project or DEFAULT_PROJECT
            if name is not None:
                self.display_names[session_id] = name
        return response

    def _session(self, session_id: str) -> Session:
        s = self.service.sessions.get(session_id) or self.service.ended_sessions.get(session_id)
        if s is None:
            raise HTTPError(404, f"session not found: {session_id!r}")
        return s

    def _project_of(self, session_id: str | None) -> str:
        return self.projects.get(session_id or "", DEFAULT_PROJECT)

    async def assign_project(self, request: Request) -> Response:
        """`PUT sessions/{id}/project {project_id}`: move a session into a project."""
        project = need(body_of(request), "project_id", str)
        if not project.strip():
            raise HTTPError(400, "field 'project_id' must not be empty")
        session_id = request.params["session_id"]
        self._session(session_id)
        with self.lock:
            before = self.projects.get(session_id, DEFAULT_PROJECT)
            self.projects[session_id] = project
        self._record(
            "session_project_set",
            {"session_id": session_id, "from_project_id": before, "project_id": project},
        )
        return Response(204, b"")

    async def search_sessions(self, request: Request) -> Response:
        """`POST sessions/search`: one page of matching sessions, newest first."""
        try:
            query = types.convert(body_of(request), types.SessionSearchRequest)
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            raise HTTPError(400, f"bad session search: {exc}") from exc
        owner = self._owner_urn()
        if isinstance(query.owner, types.UserSearchOwner) and owner not in query.owner.owner_urns:
            return json_response({"sessions": [], "next_cursor": None})
        with self.service.lock:
            known = [*self.service.sessions.values(), *self.service.ended_sessions.values()]
        found = [s for s in known if self._matches(s, query)]
        found.sort(key=lambda s: (s.created_s, s.session_id), reverse=True)
        if query.cursor is not None:
            # Compared as the cursor was written (microseconds), not as raw floats.
            after = (query.cursor.last_created_at, query.cursor.last_session_id)
            found = [
                s
                for s in found
                if (datetime.fromtimestamp(s.created_s, UTC), s.session_id) < after
            ]
        page = found[: query.limit]
        cursor = None
        if len(found) > query.limit:
            last = page[-1]
            cursor = {"last_created_at": iso(last.created_s), "last_session_id": last.session_id}
        return json_response(
            {"sessions": [self._summary(s) for s in page], "next_cursor": cursor}
        )

    def _matches(self, s: Session, query: types.SessionSearchRequest) -> bool:
        named = self.display_names.get(s.session_id, "")
        if query.session_id is not None or query.display_name is not None:
            by_id = query.session_id == s.session_id
            words = (query.display_name or "").lower().split()
            by_name = bool(words) and all(w in named.lower() for w in words)
            if not (by_id or by_name):
                return False
        if query.project_ids is not None and self._project_of(s.session_id) not in set(
            query.project_ids
        ):
            return False
        metadata = s.user_metadata or {}
        if any(metadata.get(k) != v for k, v in query.user_metadata.items()):
            return False
        if query.statuses is not None:
            status = self._status(s)
            kind = status["type"] if status else None
            for wanted in query.statuses:
                if wanted.type != kind:
                    continue
                reasons = getattr(wanted, "reasons", None)
                if reasons is None or (status and status["reason"]["type"] in reasons):
                    return True
            return False
        return True

    @staticmethod
    def _status(s: Session) -> dict[str, Any] | None:
        if s.finish_reason is not None:
            return {"type": "client_finished", "reason": {"type": s.finish_reason}}
        if s.expired:
            return None  # neither finished nor known to be running
        return {"type": "active"}

    def _summary(self, s: Session) -> dict[str, Any]:
        checkpoints = [c for run in s.model_ids for c in self._checkpoints_of(run)]
        out: dict[str, Any] = {
            "session_id": s.session_id,
            "created_at": iso(s.created_s),
            "owner": self._owner_urn(),
            "project_id": self._project_of(s.session_id),
            "status": self._status(s),
            "checkpoints_count": len(checkpoints),
            "user_metadata": s.user_metadata,
            "checkpoint_storage_bytes": sum(int(c.get("size_bytes") or 0) for c in checkpoints),
        }
        if s.session_id in self.display_names:
            out["display_name"] = self.display_names[s.session_id]
        return out

    def _checkpoints_of(self, run_id: str) -> list[dict[str, Any]]:
        return self.storage.list_checkpoints(run_id) if self.storage.get_run(run_id) else []

    def _owner_urn(self) -> str:
        return f"urn:tinkex-local:user:{self.storage.owner}"

    # -- session traces ----------------------------------------------------------------------

    async def trace_export(self, request: Request) -> Response:
        """`GET sessions/{id}/trace_export`: pending on the first ask, then ready with a URL."""
        session_id = request.params["session_id"]
        s = self._session(session_id)
        with self.lock:
            self.trace_asks[session_id] += 1
            first = self.trace_asks[session_id] == 1
        if first:
            return json_response({"status": "pending"})
        self.traces[session_id] = self._trace(s)
        # Signed, as the service's URL is: it downloads without the key for an hour.
        path = f"/_traces/{session_id}.json"
        expires, signature = self.guard.sign(path)
        host = request.headers.get("host", "127.0.0.1")  # checked against the bound address
        return json_response(
            {
                "status": "ready",
                "url": f"http://{host}{path}?expires={expires}&signature={signature}",
            }
        )

    def _trace(self, s: Session) -> bytes:
        """The session as Chrome trace events (microseconds since the session began)."""
        start = s.created_s
        events: list[dict[str, Any]] = [
            {"name": "session", "ph": "i", "ts": 0, "pid": 1, "tid": 0, "s": "g",
             "args": {"session_id": s.session_id}},
        ]
        for tid, run in enumerate(s.model_ids, start=1):
            for c in self._checkpoints_of(run):
                events.append(
                    {"name": f"save {c['checkpoint_id']}", "ph": "i", "pid": 1, "tid": tid,
                     "ts": int((c.get("created_s", start) - start) * 1e6),
                     "args": {"tinker_path": c["tinker_path"]}}
                )
        return json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}).encode()

    async def trace_file(self, request: Request) -> Response:
        """`GET /_traces/<session_id>.json`: a trace built by `trace_export`."""
        name = request.params["name"]
        data = self.traces.get(name.removesuffix(".json"))
        if data is None:
            raise HTTPError(404, f"no trace {name!r}; ask sessions/<id>/trace_export first")
        return Response(200, data, "application/json")

    # -- copies -------------------------------------------------------------------------------

    async def copy_weights(self, request: Request) -> Response:
        """`POST copy_weights`: copy a checkpoint into a new training run."""
        body = body_of(request)
        source = need(body, "source_path", str)
        ttl = need(body, "ttl_seconds", int, optional=True)
        if ttl is not None and not TTL_MIN_S <= ttl <= TTL_MAX_S:
            raise HTTPError(
                400,
                f"field 'ttl_seconds' must be between {TTL_MIN_S} (1 hour) and {TTL_MAX_S} "
                "(10 years), or null for no expiry",
            )
        token = request.headers.get("x-tinker-weights-access-token")
        if token is not None and not token.strip():
            raise HTTPError(400, "header 'X-Tinker-Weights-Access-Token' is empty; leave it out")
        if body.get("session_id") is not None:
            session = self.service.session(body["session_id"])
            seq = need(body, "model_seq_id", int)
            run_id = f"{session.session_id}:train:{seq}"
            project = self._project_of(session.session_id)
            owner_session: str | None = session.session_id
        elif body.get("destination_project_id") is not None:
            project = need(body, "destination_project_id", str)
            run_id = f"copy-{uuid.uuid4().hex[:16]}"
            owner_session = None
        else:
            raise HTTPError(
                400,
                "give 'destination_project_id', or 'session_id' and 'model_seq_id', "
                "to say who owns the copy",
            )
        if self.storage.get_run(run_id) is not None or run_id in self.service.models:
            raise HTTPError(409, f"training run {run_id} exists; use the next model_seq_id")
        with storage_errors("source_path"):
            parsed = parse_tinker_path(source)
            arrays, meta = self.storage.load(source)
        lora = meta.get("lora") or {}
        self.storage.put_run(
            run_id,
            {
                "base_model": meta.get("base_model"),
                "model_owner": self.storage.owner,
                "is_lora": True,
                "lora_rank": lora.get("rank"),
                "created_s": time.time(),
                "session_id": owner_session,
                "project_id": project,
                "user_metadata": None,
                "corrupted": False,
                "trainable": False,
                "copied_from": source,
            },
        )
        if owner_session is not None:
            self.service.sessions[owner_session].model_ids.append(run_id)
        copied = self.storage.save(
            run_id,
            parsed.kind,
            parsed.name,
            arrays,
            {"base_model": meta.get("base_model"), "lora": lora, "user_metadata": None},
            ttl_seconds=ttl,
        )
        self._record(
            "checkpoint_copy",
            {"source_path": source, "project_id": project},
            tinker_path=copied.tinker_path,
            model_id=run_id,
        )
        return json_response({"tinker_path": copied.tinker_path})

    # -- admin reports ----------------------------------------------------------------------

    def _record(self, event: str, details: dict[str, Any], **legacy: Any) -> None:
        entry = {"timestamp": iso(time.time()), "event": event, "event_details": details}
        entry.update(legacy)
        with self.lock:
            self.audit.append(entry)
            del self.audit[:-10_000]

    async def audit_log(self, request: Request) -> Response:
        """`GET audit?event_type&day`: checkpoint saves and copies, project moves."""
        kind = request.query.get("event_type", "all")
        if kind not in _AUDIT_KINDS:
            raise HTTPError(
                400, f"query 'event_type' must be one of {', '.join(_AUDIT_KINDS)}, got {kind!r}"
            )
        day: date | None = None
        if "day" in request.query:
            try:
                day = date.fromisoformat(request.query["day"])
            except ValueError as exc:
                raise HTTPError(400, "query 'day' must be a date like 2025-01-15") from exc
        entries = [
            {
                "timestamp": c["time"],
                "event": "checkpoint_create",
                "event_details": {"tinker_path": c["tinker_path"], "type": c["checkpoint_type"]},
                "tinker_path": c["tinker_path"],
                "model_id": c["tinker_path"][len("tinker://") :].split("/")[0],
            }
            for c in self.storage.list_checkpoints()
        ]
        with self.lock:
            entries.extend(self.audit)
        prefixes = _AUDIT_KINDS[kind]
        kept = [
            e
            for e in entries
            if e["event"].startswith(prefixes)
            and (day is None or e["timestamp"][:10] == day.isoformat())
        ]
        kept.sort(key=lambda e: e["timestamp"])
        return json_response({"entries": kept})

    async def billing_usage(self, request: Request) -> Response:
        """`GET billing/usage/events?starting_on&ending_before`: checkpoints saved per hour."""
        start = _instant(request, "starting_on")
        end = _instant(request, "ending_before")
        if start > datetime.now(UTC):
            raise HTTPError(400, "query 'starting_on' is in the future")
        if not start < end <= start + BILLING_MAX_WINDOW:
            raise HTTPError(
                400, "query 'ending_before' must be after 'starting_on' and at most 14 days later"
            )
        buckets: Counter[tuple[float, str | None, str | None]] = Counter()
        for c in self.storage.list_checkpoints():
            created = float(c.get("created_s", 0.0))
            if not start.timestamp() <= created < end.timestamp():
                continue
            run = self.storage.get_run(c["tinker_path"][len("tinker://") :].split("/")[0]) or {}
            hour = created - created % 3600
            buckets[(hour, run.get("session_id"), c.get("base_model"))] += 1
        data = []
        sessions: dict[str, dict[str, Any]] = {}
        for (hour, session_id, base_model), count in sorted(
            buckets.items(), key=lambda item: (item[0][0], -item[1])
        ):
            data.append(
                {
                    "bucket_start": iso(hour),
                    "bucket_end": iso(hour + 3600),
                    "base_model": base_model,
                    "user_id": self._owner_urn(),
                    "session_id": session_id,
                    "project_id": self._project_of(session_id),
                    "event_info": {"type": "checkpoint", "count": count},
                }
            )
            if session_id is not None:
                s = self.service.sessions.get(session_id)
                sessions[session_id] = {"user_metadata": s.user_metadata if s else None}
        return json_response({"data": data, "sessions": sessions})

    async def storage_usage(self, request: Request) -> Response:
        """`GET billing/usage/checkpoints/current?project_id`: stored checkpoints per project."""
        only = request.query.get("project_id")
        if only is not None and not only.strip():
            raise HTTPError(400, "query 'project_id' is empty; leave it out for every project")
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for c in self.storage.list_checkpoints():
            run = self.storage.get_run(c["tinker_path"][len("tinker://") :].split("/")[0]) or {}
            project = run.get("project_id") or self._project_of(run.get("session_id"))
            if only is not None and project != only:
                continue
            counts[project] += 1
            sizes[project] += int(c.get("size_bytes") or 0)
        data = [
            {
                "project_id": project,
                "org_user_urn": self._owner_urn(),
                "user_name": self.storage.owner,
                "checkpoint_count": counts[project],
                "size_bytes": sizes[project],
                "size_gigabytes": sizes[project] / 1e9,
            }
            for project in sorted(counts)
        ]
        return json_response({"data": data})
