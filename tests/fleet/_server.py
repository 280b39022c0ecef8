"""The embedded server in its own process, with a record of every sampling request it saw.

`RecordedServer` starts a spawned child that serves the embedded server's app behind a thin
ASGI recorder: for each `POST /api/v1/asample` it keeps the server-side arrival and answer times
(its own monotonic clock), the HTTP status and the prompt's estimated bytes, and serves them at
`GET /_fleet_record`. Faults go through the server's `POST /_control/faults` endpoint, which
exists because `_build_app` turns control on, and which needs the server's key (`API_KEY`) like
every other request.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

API_KEY = "tml-fleet-tests"
START_TIMEOUT_S = 60.0
SAMPLE_PATH = "/api/v1/asample"
LONG_POLL_S = 0.5


def _build_app(data_dir: str, client_config: dict[str, Any]) -> tuple[Any, Any]:
    from pathlib import Path

    from tinkex_actors.local.server import build_app
    from tinkex_actors.local.settings import ServerSettings

    # A short long poll: a paused queue is reported when a poll ends, and the tests wait for it.
    settings = ServerSettings(client_config=client_config, long_poll_timeout_s=LONG_POLL_S)
    return build_app(Path(data_dir), settings, api_key=API_KEY, control=True)


class _Recorder:
    """ASGI middleware: records sampling requests, answers `GET /_fleet_record`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.records: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/_fleet_record":
            body = msgspec.json.encode({"records": self.records})
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["path"] != SAMPLE_PATH:
            await self.app(scope, receive, send)
            return
        record: dict[str, Any] = {"arrived": time.monotonic(), "status": None, "bytes": 0}
        chunks = bytearray()
        while True:
            message = await receive()
            chunks += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            request = msgspec.json.decode(bytes(chunks))
            tokens = sum(len(c.get("tokens", [])) for c in request["prompt"]["chunks"])
            record["bytes"] = tokens * 10  # the official estimate: 10 bytes a token
        except Exception:
            record["bytes"] = -1
        self.records.append(record)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(chunks), "more_body": False}

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record["answered"] = time.monotonic()
            await send(message)

        await self.app(scope, replay, watch)


def _serve(conn: Any, client_config: dict[str, Any]) -> None:
    from tinkex_actors.local.runner import ServerThread

    with tempfile.TemporaryDirectory(prefix="tinkex-fleet-") as data_dir:
        app, service = _build_app(data_dir, client_config)
        thread = ServerThread(_Recorder(app), log_level="warning")
        thread.start()
        app.guard.bind(str(thread.host), int(thread.port))
        conn.send(thread.url)
        with contextlib.suppress(EOFError):
            conn.recv()  # until told to stop (or the parent is gone)
        thread.stop()
        service.stop()


@dataclass
class RecordedServer:
    """A handle on the server child: its URL, faults, record; `stop()` ends it."""

    url: str
    process: Any
    conn: Any

    @classmethod
    def start(cls, client_config: dict[str, Any] | None = None) -> RecordedServer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(child, client_config or {}),
                              name="fleet-test-server", daemon=True)
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            process.kill()
            raise TimeoutError("the test server did not start")
        return cls(parent.recv(), process, parent)

    def control(self, command: dict[str, Any]) -> None:
        """One `POST /_control/faults` command (add a fault, pause, resume, clear)."""
        answer = httpx.post(
            f"{self.url}/_control/faults", json=command, timeout=10.0,
            headers={"X-API-Key": API_KEY},
        )
        answer.raise_for_status()

    def record(self) -> list[dict[str, Any]]:
        """The sampling requests seen so far, in arrival order."""
        answer = httpx.get(f"{self.url}/_fleet_record", timeout=10.0)
        answer.raise_for_status()
        records: list[dict[str, Any]] = answer.json()["records"]
        return records

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.process.join(30.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10.0)
