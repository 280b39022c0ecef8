"""The embedded server's ASGI app: routes, scripted faults, idempotent replays, error shapes.

No web framework: the server's handlers are plain async functions from a `Request` to a
`Response` (`http_messages.py`), looked up in a table of exact paths and a few patterned REST
paths. This layer also applies scripted faults (see `faults.py`), replays answers for a
repeated `x-idempotency-key` (so a client's retry of a POST whose answer was lost applies the
request once), and answers every error in the service's shape: `{"detail": "<message>"}`.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from supervisors.library_logging import get_logger
from tinkex_actors.local.faults import FaultPlan
from tinkex_actors.local.guard import Guard
from tinkex_actors.local.http_messages import (
    JSON,
    HTTPError,
    Request,
    Response,
    error_response,
    json_response,
)

__all__ = ["App", "Handler", "IdempotencyCache", "Request", "Response", "Router"]
# Request and Response are re-exported: handlers and tests name them with the app.

log = get_logger("tinkex_actors.local")

MAX_COUNTED_PATHS = 10_000
"""Distinct paths counted one by one in `App.path_counts` before counting by route."""

Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Exact paths first, then patterned ones (`{name}` matches one segment, `{name:path}` many)."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Handler]] = []
        self._templates: list[tuple[re.Pattern[str], str]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        """Register a handler for a method and a path (or path pattern)."""
        if "{" not in path:
            self._exact[(method, path)] = handler
            return
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", path)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self._patterns.append((method, re.compile(f"^{regex}$"), handler))
        self._templates.append((re.compile(f"^{regex}$"), path))

    def routes(self) -> list[tuple[str, str]]:
        """Every (method, path or pattern) registered, for listings and fuzz tests."""
        exact = list(self._exact)
        templates = (t for _, t in self._templates)
        patterned = [(m, t) for (m, _, _), t in zip(self._patterns, templates, strict=True)]
        return exact + patterned

    def route_name(self, path: str) -> str:
        """The path if routed exactly, else its pattern (`{id}` kept), else `<unknown>`.

        Counting requests by this name keeps the counter bounded however many ids clients use.
        """
        if any(p == path for _, p in self._exact):
            return path
        return next((t for regex, t in self._templates if regex.match(path)), "<unknown>")

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        """The handler and captured parameters for a request, or None."""
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler, {}
        for m, regex, h in self._patterns:
            if m == method:
                match = regex.match(path)
                if match:
                    return h, match.groupdict()
        return None

    def knows_path(self, path: str) -> bool:
        """Whether some method is routed at this path (to answer 405 rather than 404)."""
        if any(p == path for _, p in self._exact):
            return True
        return any(regex.match(path) for _, regex, _ in self._patterns)


class IdempotencyCache:
    """Answers remembered by `x-idempotency-key`, so a retried POST is applied once."""

    def __init__(self, capacity: int = 20_000, ttl_s: float = 3600.0) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Response]] = OrderedDict()
        self._capacity = capacity
        self._ttl_s = ttl_s

    def get(self, key: str) -> Response | None:
        """The remembered answer for a key, if still fresh."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > self._ttl_s:
                return None
            return entry[1]

    def put(self, key: str, response: Response) -> None:
        """Remember an answer (only successful answers are worth replaying)."""
        with self._lock:
            self._entries[key] = (time.monotonic(), response)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


class App:
    """The ASGI application: routes, faults, idempotency replays and error shapes."""

    def __init__(self, router: Router, faults: FaultPlan, guard: Guard) -> None:
        self.router = router
        self.faults = faults
        self.guard = guard
        self.idempotency = IdempotencyCache()
        self.request_count = 0
        self.path_counts: Counter[str] = Counter()
        """Requests seen per path (content-encoding appended when the body was compressed)."""
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query: dict[str, str] = {}
        for part in scope.get("query_string", b"").decode("latin-1").split("&"):
            if part:
                k, _, v = part.partition("=")
                query[k] = v
        refusal = self.guard.refusal(scope["method"], scope["path"], headers, query)
        if refusal is not None:
            # Read what was sent (discarding it, up to the size limit) before answering: closing
            # on unread bytes makes TCP reset the connection, and the client would never see
            # the answer.
            if refusal.status == 413 or not await _drain(receive, self.guard.max_body_bytes):
                refusal = _closing(refusal)
            await _send(send, refusal)
            return
        body = await _read_body(receive, self.guard.max_body_bytes)
        if body is None:
            await _send(send, _closing(self.guard.too_large()))
            return
        if body and "content-type" not in headers:
            await _send(
                send, error_response(415, "a request body needs a Content-Type: application/json")
            )
            return
        request = Request(scope["method"], scope["path"], query, headers, body)
        self.request_count += 1
        encoding = headers.get("content-encoding")
        name = f"{request.path}+{encoding}" if encoding else request.path
        if name not in self.path_counts and len(self.path_counts) >= MAX_COUNTED_PATHS:
            # Past this many distinct paths (ids in REST paths), count by route, so the
            # counter stays bounded however many clients come and go.
            name = self.router.route_name(request.path)
        self.path_counts[name] += 1

        fault = self.faults.take(request.path, ("status", "drop", "delay"))
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
        elif fault is not None and fault.kind == "drop":
            # Start an answer and then fail: the server closes the connection mid-response,
            # which a client sees as a dropped connection.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", JSON.encode())],
                }
            )
            raise ConnectionAbortedError(f"injected dropped connection on {request.path}")
        elif fault is not None:
            payload = fault.body if fault.body is not None else {"detail": "injected fault"}
            await _send(send, json_response(payload, fault.status, fault.headers))
            return

        response = await self._dispatch(request)
        await _send(send, response)

    async def _dispatch(self, request: Request) -> Response:
        key = request.headers.get("x-idempotency-key") if request.method == "POST" else None
        if key:
            cached = self.idempotency.get(f"{request.path}\0{key}")
            if cached is not None:
                return cached
        resolved = self.router.resolve(request.method, request.path)
        if resolved is None:
            if self.router.knows_path(request.path):
                return error_response(405, f"method {request.method} not allowed here")
            return error_response(404, f"no such endpoint: {request.method} {request.path}")
        handler, request.params = resolved
        try:
            response = await handler(request)
        except HTTPError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            return error_response(400, str(exc))
        except RecursionError:
            return error_response(400, "request body nests too deeply; flatten it")
        except Exception as exc:
            log.exception("handler_crashed", path=request.path)
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
        if key and 200 <= response.status < 300:
            self.idempotency.put(f"{request.path}\0{key}", response)
        return response

    async def _lifespan(
        self,
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for hook in self.on_startup:
                    await hook()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(
    receive: Callable[[], Awaitable[dict[str, Any]]], limit: int
) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` (the rest is never read)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return bytes(body)


async def _drain(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> bool:
    """Read and drop the request body; False when it passed `limit` (the rest left unread)."""
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return True
        seen += len(message.get("body", b""))
        if seen > limit:
            return False
        if not message.get("more_body"):
            return True


def _closing(response: Response) -> Response:
    # The body of a refused request may still be on its way: end the connection after the
    # answer rather than read (and discard) what is left of it.
    response.headers["connection"] = "close"
    return response


async def _send(send: Callable[[dict[str, Any]], Awaitable[None]], response: Response) -> None:
    headers = [
        (b"content-type", response.content_type.encode()),
        (b"content-length", str(len(response.body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
