"""`LocalServer`: the embedded Tinker-compatible server, assembled and run.

    with LocalServer() as server:            # 127.0.0.1, a free port, a temporary data dir
        client = ServiceClient(base_url=server.url, api_key=server.api_key)
        server.faults.inject_status("/api/v1/retrieve_future", 503, times=2)

Every request needs the server's key (`api_key=`, else a random one: `server.api_key`); the
`/_control/*` endpoints exist only with `control=True`. Give `data_dir` to keep checkpoints and
training runs across restarts. `tinkex-actors serve` runs the same server in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from supervisors.library_logging import get_logger
from tinkex_actors.local.asgi import App, Router
from tinkex_actors.local.faults import FaultPlan
from tinkex_actors.local.futures import FutureStore
from tinkex_actors.local.guard import Guard, new_api_key
from tinkex_actors.local.optimizer_endpoints import OptimizerEndpoints
from tinkex_actors.local.rest import RestEndpoints
from tinkex_actors.local.rest_extras import RestExtras
from tinkex_actors.local.runner import ServerThread, serve_foreground
from tinkex_actors.local.service import TinkerService
from tinkex_actors.local.settings import ServerSettings
from tinkex_actors.local.storage import CheckpointStore

log = get_logger("tinkex_actors.local")

HOUSEKEEPING_INTERVAL_S = 1.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise).

    Models die on many worker threads, each allocating from its own malloc arena; without a
    trim, the memory of expired sessions stays in the process's RSS though nothing uses it.
    """
    if _TRIM is not None:
        _TRIM(0)


def check_api_key(api_key: object) -> str:
    """The key if clients can send it; ValueError naming the fix otherwise."""
    if not isinstance(api_key, str) or not api_key.startswith("tml-") or len(api_key) < 12:
        raise ValueError(
            "api_key must be a string starting with 'tml-' and at least 12 characters long "
            "(the clients refuse other keys); leave it out for a random one"
        )
    return api_key


def build_app(
    data_dir: Path,
    settings: ServerSettings | None = None,
    *,
    api_key: str,
    control: bool = False,
) -> tuple[App, TinkerService]:
    """The ASGI app and its service over a data directory, answering only with `api_key`.

    The app refuses every request until `app.guard.bind(host, port)` names its address.
    """
    settings = settings or ServerSettings()
    guard = Guard(check_api_key(api_key), max_body_bytes=settings.max_body_bytes)
    faults = FaultPlan()
    service = TinkerService(FutureStore(), faults, CheckpointStore(data_dir), settings)
    router = Router()
    service.register(router)
    RestEndpoints(service, guard).register(router, control=control)
    RestExtras(service, guard).register(router)
    OptimizerEndpoints(service).register(router)
    app = App(router, faults, guard)
    service.request_counts = app.path_counts
    tasks: list[asyncio.Task[None]] = []

    async def housekeeping() -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                freed = service.expire_silent_sessions() + service.store.reap()
                if freed:
                    release_free_memory()
            except Exception:
                log.exception("housekeeping_failed")

    async def start() -> None:
        tasks.append(asyncio.get_running_loop().create_task(housekeeping()))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app, service


class LocalServer:
    """The embedded server on loopback, in a thread of this process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        settings: ServerSettings | None = None,
        log_level: str = "warning",
        api_key: str | None = None,
        control: bool = False,
    ) -> None:
        self.api_key = check_api_key(api_key) if api_key is not None else new_api_key()
        """The key every request must carry in `X-API-Key` (give it to clients)."""
        self.control = control
        self._own_dir = data_dir is None
        self.data_dir = (
            Path(data_dir)
            if data_dir is not None
            else Path(tempfile.mkdtemp(prefix="tinkex-local-"))
        )
        self.app, self.service = build_app(
            self.data_dir, settings, api_key=self.api_key, control=control
        )
        self._thread = ServerThread(self.app, host=host, port=port, log_level=log_level)
        self.app.guard.bind(str(self._thread.host), int(self._thread.port))
        self._started = False

    def __repr__(self) -> str:
        return f"LocalServer(url={self.url!r}, control={self.control})"

    @property
    def headers(self) -> dict[str, str]:
        """Headers a raw HTTP client needs (the key), for tests and scripts."""
        return {"X-API-Key": self.api_key}

    @property
    def url(self) -> str:
        """The base URL to give a client."""
        return self._thread.url

    @property
    def faults(self) -> FaultPlan:
        """The fault plan: scripted errors, drops, delays and queue pauses."""
        return self.service.faults

    @property
    def settings(self) -> ServerSettings:
        """The server's tunables (long-poll timeout, session timeout, client config...)."""
        return self.service.settings

    def expire_session(self, session_id: str) -> None:
        """Expire a session now, unloading its models and samplers."""
        self.service.expire_session(session_id)

    def start(self, timeout_s: float = 30.0) -> LocalServer:
        """Start serving; returns once connections are accepted."""
        self._thread.start(timeout_s)
        self._started = True
        log.debug("local_server_started", url=self.url, data_dir=str(self.data_dir))
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving, stop every worker, and remove a temporary data directory."""
        try:
            if self._started:
                self._thread.stop(timeout_s)
        finally:
            self._started = False
            self.service.stop()
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    host: str,
    port: int,
    data_dir: str | Path,
    settings: ServerSettings | None = None,
    log_level: str = "info",
    announce: Callable[[str], None] | None = None,
    *,
    api_key: str,
    control: bool = False,
) -> None:
    """Run the server in the foreground until interrupted (`tinkex-actors serve`).

    `announce(url)` is called once the socket is bound (so port 0 shows the real port).
    """
    app, service = build_app(Path(data_dir), settings, api_key=api_key, control=control)
    try:
        serve_foreground(app, host, port, log_level, announce, on_bound=app.guard.bind)
    finally:
        service.stop()
