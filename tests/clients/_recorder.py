"""Record what the embedded server receives, request by request, by wrapping its router."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tinkex_actors.local import LocalServer


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request as the server's router saw it (body decoded when it is JSON)."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]


class Recorder:
    """The requests a server got while recording, in arrival order."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def add(self, seen: Seen) -> None:
        """Keep one request."""
        with self._lock:
            self.seen.append(seen)

    def to(self, route: str) -> list[Seen]:
        """The requests to `/api/v1/<route>`."""
        with self._lock:
            return [s for s in self.seen if s.path == f"/api/v1/{route}"]


@contextmanager
def recording(server: LocalServer) -> Iterator[Recorder]:
    """Record every request routed by `server` inside the block."""
    router = server.app.router
    original = router.resolve
    recorder = Recorder()

    def resolve(method: str, path: str) -> Any:
        found = original(method, path)
        if found is None:
            return None
        handler, params = found

        async def recorded(request: Any) -> Any:
            try:
                body = json.loads(request.body) if request.body else None
            except ValueError:
                body = None  # a protobuf body
            recorder.add(Seen(request.method, request.path, body, dict(request.headers)))
            return await handler(request)

        return recorded, params

    router.resolve = resolve  # type: ignore[method-assign]
    try:
        yield recorder
    finally:
        router.resolve = original  # type: ignore[method-assign]
