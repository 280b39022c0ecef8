"""A scripted HTTP server on 127.0.0.1 that records what it received.

Each request takes the next scripted action (a reply, a dropped connection, or
a hang until released); with the script empty it answers 200 `{"ok": true}`.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WAIT_S = 5.0


@dataclasses.dataclass(frozen=True)
class Reply:
    """Answer with this status, body and headers."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Drop:
    """Close the connection without answering."""


@dataclasses.dataclass(frozen=True)
class Hang:
    """Answer nothing until the server is released (or WAIT_S passes), then 200."""


Action = Reply | Drop | Hang


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections when 50 clients dial at once.
    request_queue_size = 128


class ScriptedServer:
    """The server, its thread, its script and its record of requests."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: deque[Action] = deque()
        self._cond = threading.Condition()
        self.released = threading.Event()
        self.hanging = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                record = Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    self.client_address[1],
                )
                with owner._cond:
                    owner.received.append(record)
                    action = owner._script.popleft() if owner._script else Reply()
                    owner._cond.notify_all()
                if isinstance(action, Drop):
                    self.close_connection = True
                    return
                if isinstance(action, Hang):
                    owner.hanging.set()
                    owner.released.wait(WAIT_S)
                    action = Reply()
                self.send_response(action.status)
                for name, value in action.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(action.body)))
                self.end_headers()
                self.wfile.write(action.body)

            # http.server dispatches on these exact names.
            do_GET = _handle  # noqa: N815
            do_POST = _handle  # noqa: N815
            do_PUT = _handle  # noqa: N815
            do_DELETE = _handle  # noqa: N815

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http"
        )
        self._thread.start()

    def script(self, *actions: Action) -> None:
        """Queue the next actions, in order."""
        with self._cond:
            self._script.extend(actions)

    def wait_for(self, count: int, timeout_s: float = WAIT_S) -> list[Received]:
        """Block until `count` requests arrived (AssertionError at the deadline)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.received) >= count, timeout_s)
            assert ok, f"expected {count} requests, got {len(self.received)}"
            return list(self.received)

    def stop(self) -> None:
        """Release hangs, stop serving and join the thread."""
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive()


def json_reply(status: int, payload: object, **headers: str) -> Reply:
    """A Reply with a JSON body."""
    return Reply(status, json.dumps(payload).encode(), dict(headers))
