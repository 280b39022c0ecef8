"""Serving an ASGI app with uvicorn on loopback, in a thread of this process or in the foreground.

`ServerThread` is how tests, the demo and benchmarks run the embedded server: `start()` returns
once the server accepts connections (or raises what stopped it), `stop()` returns once its thread
has ended. The socket is bound here, to 127.0.0.1 and a free port unless one is given, so the
URL is known before the first request and nothing ever listens beyond this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def bind_loopback(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket on a loopback address; ValueError for any other host."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"host must be a loopback address ({', '.join(LOOPBACK_HOSTS)}): the embedded "
            f"server never listens beyond this machine; got {host!r}"
        )
    family = socket.AF_INET6 if host == "::1" else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: Any, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        access_log=False,
        timeout_keep_alive=75,
        backlog=2048,
        # Long-polls hold connections open: allow many of them.
        limit_concurrency=None,
    )


class ServerThread:
    """uvicorn serving an ASGI app on its own event loop in a named thread."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self._sock = bind_loopback(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(_config(app, log_level))
        self._thread = threading.Thread(
            target=self._run, name=f"tinkex-local-server:{self.port}", daemon=True
        )
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """The base URL clients use (no trailing slash)."""
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported to start()/stop(), never swallowed
            self._error = exc
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        """Start serving; returns when connections are accepted, raises if it failed."""
        self._thread.start()
        deadline_event = threading.Event()
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"embedded server failed to start: {self._error!r}")
            if waited >= timeout_s:
                self.stop()
                raise TimeoutError(f"embedded server did not start within {timeout_s} s")
            # uvicorn exposes readiness only as a flag; poll it at a short, bounded interval.
            deadline_event.wait(0.005)
            waited += 0.005
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and join the thread (forcing connections closed past the timeout)."""
        self._server.should_exit = True
        self._thread.join(timeout_s / 2) if self._thread.is_alive() else None
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s / 2)
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._thread.is_alive():
            raise TimeoutError(f"embedded server thread did not stop within {timeout_s} s")


def serve_foreground(
    app: Any,
    host: str,
    port: int,
    log_level: str = "info",
    announce: Callable[[str], None] | None = None,
    on_bound: Callable[[str, int], None] | None = None,
) -> None:
    """Serve in the calling thread until interrupted (the `tinkex-actors serve` command).

    `on_bound(host, port)` then `announce(url)` are called once the socket is bound.
    """
    sock = bind_loopback(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    if on_bound is not None:
        on_bound(str(bound_host), int(bound_port))
    if announce is not None:
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        announce(f"http://{shown}:{bound_port}")
    server = uvicorn.Server(_config(app, log_level))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
