"""The embedded server's REST endpoints: runs, checkpoints, sessions, samplers, telemetry, control.

Listings page with `limit` / `offset` and answer a `cursor {offset, limit, total_count}` as the
service does. The `/_control/*` endpoints (fault plan, expiry, stats, synthetic futures) drive
the server from another process for tests and benchmarks; they exist only when the server is
started with `control=True` (`serve --control`), and need the key like everything else.
Archive and file links are signed (`?expires=&signature=`) so they download without the key,
as the service's signed URLs do.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any
from urllib.parse import quote

from tinkex_actors.local.asgi import Router
from tinkex_actors.local.guard import SIGNED_URL_TTL_S, Guard
from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.request_body import body_of, need, storage_errors
from tinkex_actors.local.service import TinkerService
from tinkex_actors.local.storage import StorageError, checkpoint_view, iso


def _page(request: Request, default_limit: int = 20) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", default_limit))
        offset = int(request.query.get("offset", 0))
    except ValueError as exc:
        raise HTTPError(400, "query 'limit' and 'offset' must be integers") from exc
    if limit < 0 or offset < 0:
        raise HTTPError(400, "query 'limit' and 'offset' must be >= 0")
    return limit, offset


class RestEndpoints:
    """REST listings and management over the service's state and checkpoint store."""

    def __init__(self, service: TinkerService, guard: Guard) -> None:
        self.service = service
        self.storage = service.storage
        self._guard = guard

    def register(self, router: Router, *, control: bool = False) -> None:
        """Add every endpoint of this module to a router (`/_control/*` only with `control`)."""
        run = "/api/v1/training_runs/{run_id}"
        ckpt = run + "/checkpoints/{checkpoint_id:path}"
        for method, path, handler in (
            ("GET", "/api/v1/training_runs", self.list_runs),
            ("GET", run, self.get_run),
            ("GET", run + "/checkpoints", self.list_run_checkpoints),
            ("GET", "/api/v1/checkpoints", self.list_checkpoints),
            ("DELETE", ckpt, self.checkpoint_delete),
            ("POST", ckpt, self.checkpoint_post),
            ("PUT", ckpt, self.checkpoint_put),
            ("GET", ckpt, self.checkpoint_get),
            ("GET", "/api/v1/sessions", self.list_sessions),
            ("GET", "/api/v1/sessions/{session_id}", self.get_session),
            ("GET", "/api/v1/samplers/{sampler_id}", self.get_sampler),
            ("GET", "/api/v1/whoami", self.whoami),
            ("GET", "/_files/{run_id}/{checkpoint_id:path}", self.download),
            ("POST", "/api/v1/telemetry", self.telemetry),
        ):
            router.add(method, path, handler)
        if not control:
            return
        for method, path, handler in (
            ("POST", "/_control/faults", self.control_faults),
            ("POST", "/_control/expire_session", self.control_expire_session),
            ("GET", "/_control/stats", self.control_stats),
            ("GET", "/_control/heartbeats/{session_id}", self.control_heartbeats),
            ("POST", "/_control/make_futures", self.control_make_futures),
        ):
            router.add(method, path, handler)

    def _run_view(self, meta: dict[str, Any]) -> dict[str, Any]:
        run_id = meta["training_run_id"]
        out = {
            "training_run_id": run_id,
            "base_model": meta.get("base_model"),
            "model_owner": meta.get("model_owner", self.storage.owner),
            "is_lora": bool(meta.get("is_lora", True)),
            "corrupted": bool(meta.get("corrupted", False)),
            "lora_rank": meta.get("lora_rank"),
            "last_request_time": meta.get("last_request_time") or _iso(meta.get("created_s")),
            "user_metadata": meta.get("user_metadata"),
        }
        for key in ("last_checkpoint", "last_sampler_checkpoint"):
            cid = meta.get(key)
            view = None
            if cid:
                try:
                    view = checkpoint_view(self.storage.meta(f"tinker://{run_id}/{cid}"))
                except (StorageError, ValueError):
                    view = None
            out[key] = view
        return out

    async def list_runs(self, request: Request) -> Response:
        """`GET training_runs?limit&offset`."""
        limit, offset = _page(request)
        runs = self.storage.list_runs()
        page = runs[offset : offset + limit]
        return json_response(
            {
                "training_runs": [self._run_view(r) for r in page],
                "cursor": {"offset": offset, "limit": limit, "total_count": len(runs)},
            }
        )

    def _known_run(self, run_id: str) -> dict[str, Any]:
        meta = self.storage.get_run(run_id)
        if meta is None:
            raise HTTPError(404, f"training run not found: {run_id!r}")
        return meta

    async def get_run(self, request: Request) -> Response:
        """`GET training_runs/{id}`."""
        return json_response(self._run_view(self._known_run(request.params["run_id"])))

    async def list_run_checkpoints(self, request: Request) -> Response:
        """`GET training_runs/{id}/checkpoints`."""
        run_id = request.params["run_id"]
        self._known_run(run_id)
        items = [checkpoint_view(c) for c in self.storage.list_checkpoints(run_id)]
        return json_response({"checkpoints": items})

    async def list_checkpoints(self, request: Request) -> Response:
        """`GET checkpoints?limit&offset`: every checkpoint of the user."""
        limit, offset = _page(request, 100)
        items = self.storage.list_checkpoints()
        return json_response(
            {
                "checkpoints": [checkpoint_view(c) for c in items[offset : offset + limit]],
                "cursor": {"offset": offset, "limit": limit, "total_count": len(items)},
            }
        )

    def _split(self, request: Request) -> tuple[str, str, str | None]:
        """(run_id, checkpoint_id, action) from a checkpoint path with an optional action."""
        run_id = request.params["run_id"]
        cid = request.params["checkpoint_id"]
        for action in ("publish", "ttl", "archive", "external_weights_urls"):
            if cid.endswith("/" + action):
                return run_id, cid[: -len(action) - 1], action
        return run_id, cid, None

    async def checkpoint_delete(self, request: Request) -> Response:
        """`DELETE .../checkpoints/{ckpt}` and `DELETE .../publish`."""
        run_id, cid, action = self._split(request)
        if action == "publish":
            with storage_errors():
                self.storage.update(run_id, cid, public=False)
        elif action is None:
            with storage_errors():
                self.storage.delete(run_id, cid)
        else:
            raise HTTPError(405, f"DELETE is not allowed on {action}")
        return Response(204, b"")

    async def checkpoint_post(self, request: Request) -> Response:
        """`POST .../publish`."""
        run_id, cid, action = self._split(request)
        if action != "publish":
            raise HTTPError(405, "POST is allowed only on .../publish")
        with storage_errors():
            self.storage.update(run_id, cid, public=True)
        return Response(204, b"")

    async def checkpoint_put(self, request: Request) -> Response:
        """`PUT .../ttl {ttl_seconds}`."""
        run_id, cid, action = self._split(request)
        if action != "ttl":
            raise HTTPError(405, "PUT is allowed only on .../ttl")
        ttl = need(body_of(request), "ttl_seconds", int, optional=True)
        with storage_errors():
            record = self.storage.set_ttl(run_id, cid, ttl)
        return json_response(checkpoint_view(record))

    async def checkpoint_get(self, request: Request) -> Response:
        """`GET .../archive` (the archive bytes) or a checkpoint's record."""
        run_id, cid, action = self._split(request)
        if action == "archive":
            # As the service: a redirect to where the archive can be downloaded.
            with storage_errors():
                self.storage.meta(f"tinker://{run_id}/{cid}")
            location = self._signed_url(request, f"/_files/{run_id}/{cid}/archive.tar.gz")
            expires = email.utils.formatdate(time.time() + SIGNED_URL_TTL_S, usegmt=True)
            return Response(302, b"", "text/plain", {"location": location, "expires": expires})
        if action == "external_weights_urls":
            with storage_errors():
                self.storage.meta(f"tinker://{run_id}/{cid}")
            urls = {
                name: self._signed_url(request, f"/_files/{run_id}/{cid}/{name}")
                for name in ("arrays.npz", "meta.json")
            }
            return json_response({"urls": urls, "expires": iso(time.time() + SIGNED_URL_TTL_S)})
        if action is not None:
            raise HTTPError(404, f"{action} is not offered by the embedded server")
        with storage_errors():
            record = self.storage.meta(f"tinker://{run_id}/{cid}")
        return json_response(checkpoint_view(record))

    def _signed_url(self, request: Request, path: str) -> str:
        """An absolute download URL of `path` that works without the key for an hour."""
        expires, signature = self._guard.sign(path)
        # The Host header was checked against the bound address before the handler ran.
        origin = f"http://{request.headers.get('host', '127.0.0.1')}"
        return f"{origin}{quote(path)}?expires={expires}&signature={signature}"

    async def download(self, request: Request) -> Response:
        """`GET /_files/<run>/<checkpoint>/<file>`: where archive and file URLs point."""
        # The ASGI path is percent-decoded once already: decoding again would let `%252E`
        # through as `.`.
        run_id = request.params["run_id"]
        cid, _, name = request.params["checkpoint_id"].rpartition("/")
        if name == "archive.tar.gz":
            with storage_errors():
                data = self.storage.archive(run_id, cid)
            return Response(
                200,
                data,
                "application/gzip",
                {"content-disposition": "attachment; filename=checkpoint.tar.gz"},
            )
        with storage_errors():
            data = self.storage.file(run_id, cid, name)
        return Response(200, data, "application/octet-stream")

    async def whoami(self, request: Request) -> Response:
        """`GET whoami`: the one local user."""
        return json_response(
            {
                "user_urn": f"urn:tinkex-local:user:{self.storage.owner}",
                "org_urn": "urn:tinkex-local:org:local",
            }
        )

    async def list_sessions(self, request: Request) -> Response:
        """`GET sessions?limit&offset`."""
        limit, offset = _page(request)
        ids = list(self.service.sessions)[::-1]
        return json_response({"sessions": ids[offset : offset + limit]})

    async def get_session(self, request: Request) -> Response:
        """`GET sessions/{id}`."""
        s = self.service.sessions.get(request.params["session_id"])
        if s is None:
            raise HTTPError(404, f"session not found: {request.params['session_id']!r}")
        return json_response(
            {
                "training_run_ids": s.model_ids,
                "sampler_ids": s.sampler_ids,
                "user_metadata": s.user_metadata,
            }
        )

    async def get_sampler(self, request: Request) -> Response:
        """`GET samplers/{id}`."""
        entry = self.service.samplers.get(request.params["sampler_id"])
        if entry is None:
            raise HTTPError(404, f"sampler not found: {request.params['sampler_id']!r}")
        out: dict[str, Any] = {
            "sampler_id": entry.sampling_session_id,
            "base_model": entry.base_model,
        }
        if entry.model_path is not None:
            out["model_path"] = entry.model_path
        return json_response(out)

    async def telemetry(self, request: Request) -> Response:
        """`POST telemetry`: events are kept in memory (the last 10,000) for inspection."""
        body = body_of(request)
        events = need(body, "events", list)
        if len(events) > 100:
            raise HTTPError(
                400, f"field 'events' holds {len(events)} events; send at most 100 per request"
            )
        kept = self.service.telemetry_events
        kept.extend(e for e in events if isinstance(e, dict))
        del kept[:-10_000]
        return json_response({"status": "accepted"})

    async def control_faults(self, request: Request) -> Response:
        """`POST /_control/faults`: add a fault, pause / resume a queue, or clear everything."""
        try:
            self.service.faults.apply_control(body_of(request))
        except TypeError as exc:
            raise HTTPError(400, f"bad fault: {exc}") from exc
        return json_response({"status": "ok"})

    async def control_stats(self, request: Request) -> Response:
        """`GET /_control/stats`: counts for benchmarks and tests."""
        store = self.service.store
        return json_response(
            {
                "waiting_polls": store.waiting_count(),
                "pending_futures": store.pending_count(),
                "futures": len(store),
                "sessions": len(self.service.sessions),
                "models": len(self.service.models),
                "requests": dict(self.service.request_counts),
            }
        )

    async def control_heartbeats(self, request: Request) -> Response:
        """`GET /_control/heartbeats/{session_id}`: arrival times of its heartbeats (seconds)."""
        sid = request.params["session_id"]
        s = self.service.sessions.get(sid)
        times = list(s.heartbeats) if s is not None else self.service.ended_heartbeats.get(sid)
        if times is None:
            raise HTTPError(404, f"session not found: {sid!r}")
        return json_response({"times": times})

    async def control_make_futures(self, request: Request) -> Response:
        """`POST /_control/make_futures {count, resolve_after_s, result?, spread_s?}`.

        Makes `count` futures that complete with `result` (default `{"metrics": {}}`, an
        OptimStepResponse) `resolve_after_s` from now, spread evenly over `spread_s` more:
        load for poll benchmarks and tests without model work.
        """
        body = body_of(request)
        count = need(body, "count", int)
        if not 1 <= count <= 100_000:
            raise HTTPError(400, "field 'count' must be 1..100000")
        after = float(body.get("resolve_after_s", 0.0))
        spread = float(body.get("spread_s", 0.0))
        result = body.get("result", {"metrics": {}})
        store = self.service.store
        ids = [store.create("OptimStep", "control").request_id for _ in range(count)]
        loop = asyncio.get_running_loop()
        for i, rid in enumerate(ids):
            delay = after + (spread * i / count if count > 1 else 0.0)
            loop.call_later(delay, store.complete, rid, result)
        return json_response({"request_ids": ids})

    async def control_expire_session(self, request: Request) -> Response:
        """`POST /_control/expire_session {session_id}`: expire a session now."""
        session_id = need(body_of(request), "session_id", str)
        if session_id not in self.service.sessions:
            raise HTTPError(404, f"session not found: {session_id!r}")
        self.service.expire_session(session_id)
        return json_response({"status": "ok"})


def _iso(ts: Any) -> str | None:
    return iso(float(ts)) if ts is not None else None
