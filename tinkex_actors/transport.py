"""The HTTP transport: one event loop thread, one httpx client per pool kind, official retries.

Actors never wait on I/O: `Transport.submit` hands a request to the loop thread
and returns a `concurrent.futures.Future` at once; the actor gets the answer as
a message when the future completes. Coroutines already on the loop use
`await transport.request(...)`. Nothing outside this module sees an `httpx`
type: requests go in as `HttpRequest` (bytes plus metadata), answers come out as
`HttpResponse`, and failures as the exceptions of `tinkex_actors.errors`.

Every call gets the official headers (`x-api-key`, the `x-stainless-*` family,
an `x-idempotency-key` made once per call and reused on each of its retries) and
the official HTTP-level retries: 408, 409, 429, 5xx and connection errors, with
`x-should-retry` overriding, `Retry-After`/`retry-after-ms` honoured up to 60 s,
else exponential backoff with jitter. Sleep, randomness and the wall clock are
injectable so tests run without waiting.

Differences from the official SDK, on purpose: HTTP/1.1 only (no `h2`
dependency), one client per pool kind (the official SDK opens another client per
50 concurrent requests), and errors carry no `httpx` object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import json
import random as random_module
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Final

import httpx
import structlog

from tinkex_actors._http_retry import platform_headers, retry_delay_s
from tinkex_actors._version import __version__
from tinkex_actors.config import Config, PoolKind, PoolLimits
from tinkex_actors.errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    TransportClosedError,
    error_for_status,
    is_retryable_status,
)

__all__ = [
    "API_PREFIX",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "SleepFn",
    "Transport",
    "TransportFactory",
]

API_PREFIX: Final = "/api/v1/"
JSON_CONTENT_TYPE: Final = "application/json"
PROTOBUF_CONTENT_TYPE: Final = "application/x-protobuf"
IDEMPOTENCY_HEADER: Final = "X-Idempotency-Key"
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
# Headers the caller may set itself; the transport then leaves them alone.
_RETRY_COUNT: Final = "x-stainless-retry-count"
_READ_TIMEOUT: Final = "x-stainless-read-timeout"
_MAIN_THREAD_CHECK_S: Final = 1.0

SleepFn = Callable[[float], Awaitable[None]]
"""How the transport waits between retries (default `asyncio.sleep`)."""

TransportFactory = Callable[[PoolKind, PoolLimits], httpx.AsyncBaseTransport]
"""Builds the httpx transport under one pool kind's client (e.g. an aiohttp one)."""

_log = structlog.get_logger("tinkex_actors.transport")


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive mapping of HTTP headers (repeats joined by ', ')."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]] | None = None) -> None:
        merged: dict[str, tuple[str, str]] = {}
        pairs = items.items() if isinstance(items, Mapping) else (items or [])
        for name, value in pairs:
            key = name.lower()
            if key in merged:
                merged[key] = (merged[key][0], f"{merged[key][1]}, {value}")
            else:
                merged[key] = (name, value)
        self._items = merged

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class HttpRequest:
    """One API call, as the transport needs it: the body is already encoded.

    `path` is under `/api/v1/` (`"create_model"` and `"/api/v1/create_model"` are
    the same). `max_retries=None` means the config's (official default 10);
    `timeout_s=None` the config's (60 s). A call that is not `idempotent` carries
    an `x-idempotency-key` made once and reused on all of its retries, so the
    server can drop duplicates; by default only GET counts as idempotent, as in
    the official SDK.
    """

    method: str
    path: str
    body: bytes = b""
    content_type: str = JSON_CONTENT_TYPE
    content_encoding: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    params: Mapping[str, str | int] | None = None
    pool: PoolKind = PoolKind.SESSION
    timeout_s: float | None = None
    max_retries: int | None = None
    idempotent: bool | None = None
    follow_redirects: bool | None = None

    def __post_init__(self) -> None:
        method = str(self.method).upper()
        if method not in _METHODS:
            raise ConfigurationError(
                f"HttpRequest.method {self.method!r} is not supported; use one of "
                f"{', '.join(sorted(_METHODS))}"
            )
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "path", _normalize_path(self.path))
        if not isinstance(self.body, bytes):
            raise ConfigurationError(
                f"HttpRequest.body must be bytes, got {type(self.body).__name__}; encode it "
                "first (e.g. HttpRequest.json(...))"
            )
        try:
            object.__setattr__(self, "pool", PoolKind(self.pool))
        except ValueError:
            raise ConfigurationError(
                f"HttpRequest.pool {self.pool!r} is unknown; use a PoolKind "
                f"({', '.join(k.value for k in PoolKind)})"
            ) from None
        if self.timeout_s is not None and (
            isinstance(self.timeout_s, bool) or not self.timeout_s > 0
        ):
            raise ConfigurationError(
                f"HttpRequest.timeout_s must be > 0 or None, got {self.timeout_s!r}"
            )
        if self.max_retries is not None and (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise ConfigurationError(
                f"HttpRequest.max_retries must be an int >= 0 or None, got {self.max_retries!r}; "
                "pass 0 to disable retries"
            )

    @classmethod
    def json(cls, method: str, path: str, payload: Any = None, **options: Any) -> HttpRequest:
        """A request whose body is `payload` encoded as compact JSON (None: no body)."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        return cls(method, path, body, JSON_CONTENT_TYPE, **options)

    @property
    def is_idempotent(self) -> bool:
        """Whether the call may be repeated without an idempotency key."""
        return self.method == "GET" if self.idempotent is None else self.idempotent


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResponse:
    """A server's answer: status, case-insensitive headers and the whole body."""

    status: int
    headers: Headers
    content: bytes
    url: str = ""
    retries_taken: int = 0

    def json(self) -> Any:
        """The body decoded as JSON (ValueError naming the status if it is not JSON)."""
        try:
            return json.loads(self.content)
        except ValueError as exc:
            raise ValueError(
                f"response body of {self.url or 'the request'} (status {self.status}) is not "
                f"JSON: {self.content[:80]!r}"
            ) from exc

    @property
    def text(self) -> str:
        """The body as UTF-8 text (invalid bytes replaced)."""
        return self.content.decode("utf-8", errors="replace")

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def _normalize_path(path: object) -> str:
    if not isinstance(path, str) or not path:
        raise ConfigurationError(
            f"HttpRequest.path must be a non-empty str, got {path!r}; e.g. 'create_model'"
        )
    if "://" in path or path.startswith("//"):
        raise ConfigurationError(
            f"HttpRequest.path {path!r} is a URL; pass only the route (e.g. 'create_model'), "
            "the base URL comes from Config.base_url"
        )
    if path.startswith(API_PREFIX):
        return path
    if path.startswith("/"):
        raise ConfigurationError(
            f"HttpRequest.path {path!r} is not under {API_PREFIX}; pass e.g. 'create_model' "
            f"or '{API_PREFIX}create_model'"
        )
    return API_PREFIX + path


def _format_seconds(value: float) -> str:
    # The official header shows the httpx timeout as given: "60", "45", "0.5".
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_loopback(base_url: str) -> bool:
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Transport:
    """Owns the I/O loop thread and the per-pool-kind HTTP clients.

    Start: the constructor (or `start()` when built with `start=False`).
    Stop: `close(timeout_s)` cancels what is in flight (those futures fail with
    TransportClosedError), closes every connection and joins the thread. The
    thread is not a daemon, so it must be closed; as a safety net it also stops
    by itself once the main thread has finished.
    """

    def __init__(
        self,
        config: Config,
        *,
        sleep: SleepFn | None = None,
        random: Callable[[], float] = random_module.random,
        now: Callable[[], float] = time.time,
        transport_factory: TransportFactory | None = None,
        start: bool = True,
        thread_name: str = "tinkex-transport",
    ) -> None:
        if config.api_key is None and not _is_loopback(config.base_url):
            config.require_api_key()
        self._config = config
        self._sleep: SleepFn = sleep if sleep is not None else asyncio.sleep
        self._random = random
        self._now = now
        self._transport_factory = transport_factory
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[PoolKind, httpx.AsyncClient] = {}
        self._closing = False
        self._closed = False
        self._static_headers = self._build_static_headers()
        if start:
            self.start()

    # -- public API ------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The configuration this transport was built with."""
        return self._config

    @property
    def is_running(self) -> bool:
        """True between start() and close()."""
        return self._thread is not None and not self._closing

    def start(self, timeout_s: float = 5.0) -> None:
        """Start the loop thread (idempotent); raises if it does not come up in time."""
        with self._lock:
            if self._closing:
                raise TransportClosedError("this Transport is closed; create a new one")
            if self._thread is not None:
                return
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run_loop, args=(ready,), name=self._thread_name, daemon=False
            )
            self._thread = thread
            thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"transport loop thread did not start within {timeout_s} s")

    def submit(self, request: HttpRequest) -> concurrent.futures.Future[HttpResponse]:
        """Send `request` from any thread; returns at once with a future of the answer.

        The future fails with the typed error of `tinkex_actors.errors` when the
        final answer is not 2xx or the server cannot be reached; cancelling it
        cancels the request.
        """
        with self._lock:
            loop = self._loop
            usable = loop is not None and not self._closing
        if not usable or loop is None:
            failed: concurrent.futures.Future[HttpResponse] = concurrent.futures.Future()
            failed.set_exception(
                TransportClosedError(
                    "the Transport is not running (closed or never started); "
                    "create a new one or call start()"
                )
            )
            return failed
        return asyncio.run_coroutine_threadsafe(self._send(request), loop)

    async def request(self, request: HttpRequest) -> HttpResponse:
        """Send `request` from a coroutine; runs inline when already on the transport's loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is self._loop:
            return await self._send(request)
        return await asyncio.wrap_future(self.submit(request))

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel in-flight requests, close all connections, and join the loop thread.

        Idempotent. Raises RuntimeError if called from the loop thread itself
        (it would wait for itself) or if the thread does not stop in time.
        """
        with self._lock:
            if self._closed:
                return
            self._closing = True
            loop, thread = self._loop, self._thread
        if thread is None or loop is None:
            with self._lock:
                self._closed = True
            return
        if threading.current_thread() is thread:
            raise RuntimeError(
                "Transport.close() called from the transport's own loop; "
                "call it from another thread"
            )
        deadline = time.monotonic() + timeout_s
        if not loop.is_closed():
            shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                shutdown.result(timeout_s)
            except (concurrent.futures.TimeoutError, RuntimeError):
                shutdown.cancel()
            # The loop may already be gone if the main-thread watchdog stopped it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            raise RuntimeError(f"transport thread did not stop within {timeout_s} s")
        with self._lock:
            self._closed = True

    def __enter__(self) -> Transport:
        """Use as a context manager: closes on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the transport."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("running" if self._thread else "not started")
        return f"Transport(base_url={self._config.base_url!r}, {state})"

    # -- the loop thread ---------------------------------------------------------------

    def _run_loop(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        with self._lock:
            self._loop = loop
        loop.call_soon(self._watch_main_thread)
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(self._close_clients())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _watch_main_thread(self) -> None:
        """Stop the loop once the interpreter is exiting, so a forgotten close() cannot hang it."""
        loop = self._loop
        if loop is None:
            return
        if not threading.main_thread().is_alive():
            with self._lock:
                self._closing = True
            loop.stop()
            return
        loop.call_later(_MAIN_THREAD_CHECK_S, self._watch_main_thread)

    async def _shutdown(self) -> None:
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self._close_clients()

    async def _close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    def _client_for(self, kind: PoolKind) -> httpx.AsyncClient:
        client = self._clients.get(kind)
        if client is None:
            limits = self._config.limits_for(kind)
            transport = (
                self._transport_factory(kind, limits) if self._transport_factory else None
            )
            client = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=limits.max_connections,
                    max_keepalive_connections=limits.max_keepalive_connections,
                    keepalive_expiry=limits.keepalive_expiry_s,
                ),
                timeout=httpx.Timeout(
                    self._config.timeout_s, connect=self._config.connect_timeout_s
                ),
                follow_redirects=self._config.follow_redirects,
                transport=transport,
                trust_env=False,
            )
            self._clients[kind] = client
        return client

    # -- one call ------------------------------------------------------------------------

    def _build_static_headers(self) -> dict[str, str]:
        headers = {
            "Accept": JSON_CONTENT_TYPE,
            "User-Agent": f"TinkexActors/Python {__version__}",
            **platform_headers(__version__),
        }
        if self._config.api_key is not None:
            headers["X-API-Key"] = self._config.api_key
        headers.update(self._config.default_headers)
        return headers

    def _headers_for(self, request: HttpRequest, timeout_s: float) -> dict[str, str]:
        headers = dict(self._static_headers)
        if request.body or request.method not in ("GET", "HEAD"):
            headers["Content-Type"] = request.content_type
        if request.content_encoding:
            headers["Content-Encoding"] = request.content_encoding
        headers.update(request.headers)
        given = {name.lower() for name in request.headers}
        if not request.is_idempotent and IDEMPOTENCY_HEADER.lower() not in given:
            headers[IDEMPOTENCY_HEADER] = f"tinkex-actors-retry-{uuid.uuid4()}"
        if _READ_TIMEOUT not in given:
            headers[_READ_TIMEOUT] = _format_seconds(timeout_s)
        return headers

    async def _send(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._send_with_retries(request)
        except asyncio.CancelledError:
            if self._closing:
                raise TransportClosedError(
                    f"{request.method} {request.path} was in flight when the Transport closed; "
                    "resubmit it on a new Transport"
                ) from None
            raise

    async def _send_with_retries(self, request: HttpRequest) -> HttpResponse:
        config = self._config
        url = config.base_url + request.path
        timeout_s = request.timeout_s if request.timeout_s is not None else config.timeout_s
        max_retries = request.max_retries if request.max_retries is not None else config.max_retries
        timeout = httpx.Timeout(timeout_s, connect=min(config.connect_timeout_s, timeout_s))
        follow = (
            request.follow_redirects
            if request.follow_redirects is not None
            else config.follow_redirects
        )
        headers = self._headers_for(request, timeout_s)
        count_given = any(name.lower() == _RETRY_COUNT for name in request.headers)
        client = self._client_for(request.pool)
        retries_taken = 0
        while True:
            if not count_given:
                headers[_RETRY_COUNT] = str(retries_taken)
            remaining = max_retries - retries_taken
            try:
                response = await client.request(
                    request.method,
                    url,
                    content=request.body or None,
                    headers=headers,
                    params=request.params,
                    timeout=timeout,
                    follow_redirects=follow,
                )
            except httpx.TimeoutException as exc:
                if remaining > 0:
                    await self._pause(request, retries_taken, max_retries, None, exc)
                    retries_taken += 1
                    continue
                raise APITimeoutError(
                    f"Request timed out after {timeout_s} s ({retries_taken} retries): "
                    f"{request.method} {url}; raise timeout_s or check the server",
                    method=request.method,
                    url=url,
                ) from exc
            except (httpx.TransportError, OSError) as exc:
                if remaining > 0:
                    await self._pause(request, retries_taken, max_retries, None, exc)
                    retries_taken += 1
                    continue
                raise APIConnectionError(
                    f"Connection error ({type(exc).__name__}) after {retries_taken} retries: "
                    f"{request.method} {url}; check base_url and that the server is up",
                    method=request.method,
                    url=url,
                ) from exc
            status = response.status_code
            answer = HttpResponse(
                status=status,
                headers=Headers(list(response.headers.multi_items())),
                content=response.content,
                url=url,
                retries_taken=retries_taken,
            )
            if 200 <= status < 400:
                return answer
            if remaining > 0 and is_retryable_status(status, answer.headers):
                await self._pause(request, retries_taken, max_retries, answer, None)
                retries_taken += 1
                continue
            raise error_for_status(
                status, answer.content, answer.headers, method=request.method, url=url
            )

    async def _pause(
        self,
        request: HttpRequest,
        retries_taken: int,
        max_retries: int,
        answer: HttpResponse | None,
        error: BaseException | None,
    ) -> None:
        delay_s = retry_delay_s(
            retries_taken,
            answer.headers if answer is not None else None,
            random=self._random,
            now=self._now,
        )
        _log.info(
            "http_retry",
            method=request.method,
            path=request.path,
            pool=request.pool.value,
            attempt=retries_taken + 1,
            max_retries=max_retries,
            delay_s=round(delay_s, 3),
            status=answer.status if answer is not None else None,
            error=type(error).__name__ if error is not None else None,
        )
        await self._sleep(delay_s)
