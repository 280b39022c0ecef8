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
import collections
import concurrent.futures
import contextlib
import functools
import ipaddress
import random as random_module
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final

import httpx
import structlog

from tinkex_actors._http_messages import (
    API_PREFIX,
    JSON_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
    Headers,
    HttpRequest,
    HttpResponse,
)
from tinkex_actors._http_retry import platform_headers, retry_delay_s
from tinkex_actors._version import __version__
from tinkex_actors.config import Config, PoolKind, PoolLimits
from tinkex_actors.errors import (
    APIConnectionError,
    APITimeoutError,
    TransportClosedError,
    error_for_status,
    is_retryable_status,
)

__all__ = [
    "API_PREFIX",
    "BARE_400_RETRIES",
    "JSON_CONTENT_TYPE",
    "PROTOBUF_CONTENT_TYPE",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "SleepFn",
    "Transport",
    "TransportFactory",
]

IDEMPOTENCY_HEADER: Final = "X-Idempotency-Key"
# Headers the caller may set itself; the transport then leaves them alone.
_RETRY_COUNT: Final = "x-stainless-retry-count"
_READ_TIMEOUT: Final = "x-stainless-read-timeout"
_MAIN_THREAD_CHECK_S: Final = 1.0
BARE_400_RETRIES: Final = 16
"""Per pool, how many bodiless 400s (a proxy refusing the connection) count as connection
errors before they count as real BadRequestErrors; each success earns one back."""

SleepFn = Callable[[float], Awaitable[None]]
"""How the transport waits between retries (default `asyncio.sleep`)."""

TransportFactory = Callable[[PoolKind, PoolLimits], httpx.AsyncBaseTransport]
"""Builds the httpx transport under one pool kind's client (e.g. an aiohttp one)."""

_log = structlog.get_logger("tinkex_actors.transport")


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


def _settle(
    future: concurrent.futures.Future[HttpResponse], task: asyncio.Task[HttpResponse]
) -> None:
    """Copy a finished task's outcome into the caller's future (on the loop thread)."""
    if future.done():
        return
    try:
        if task.cancelled():
            future.cancel()
        elif (error := task.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(task.result())
    except concurrent.futures.InvalidStateError:
        pass  # the caller cancelled it meanwhile, from its own thread


def _cancel_task(
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[HttpResponse],
    future: concurrent.futures.Future[HttpResponse],
) -> None:
    """When the caller cancels its future, cancel the request's task on the loop."""
    if future.cancelled() and not task.done():
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(task.cancel)


def _fail_all(items: list[tuple[HttpRequest, concurrent.futures.Future[HttpResponse]]]) -> None:
    for request, future in items:
        if not future.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(
                    TransportClosedError(
                        f"{request.method} {request.path} was submitted while the Transport "
                        "closed; resubmit it on a new Transport"
                    )
                )


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
        # Clients replaced after a bare 400; closed at shutdown, once their requests ended.
        self._retired: list[httpx.AsyncClient] = []
        self._ssl: ssl.SSLContext | None = None
        self._bare_400_budget: dict[PoolKind, int] = dict.fromkeys(PoolKind, BARE_400_RETRIES)
        self._closing = False
        self._closed = False
        self._inbox: collections.deque[
            tuple[HttpRequest, concurrent.futures.Future[HttpResponse]]
        ] = collections.deque()
        self._drain_scheduled = False
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
        future: concurrent.futures.Future[HttpResponse] = concurrent.futures.Future()
        with self._lock:
            loop = self._loop
            if loop is None or self._closing:
                future.set_exception(
                    TransportClosedError(
                        "the Transport is not running (closed or never started); "
                        "create a new one or call start()"
                    )
                )
                return future
            self._inbox.append((request, future))
            # One wake-up per batch: under load, many submits share one loop hop.
            if self._drain_scheduled:
                return future
            self._drain_scheduled = True
        loop.call_soon_threadsafe(self._drain_inbox)
        return future

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
                _fail_all(self._take_inbox())
            finally:
                loop.close()

    def _take_inbox(self) -> list[tuple[HttpRequest, concurrent.futures.Future[HttpResponse]]]:
        with self._lock:
            self._drain_scheduled = False
            items = list(self._inbox)
            self._inbox.clear()
        return items

    def _drain_inbox(self) -> None:
        """Start a task for every submitted request (runs on the loop)."""
        loop = self._loop
        items = self._take_inbox()
        if self._closing or loop is None:
            _fail_all(items)
            return
        for request, future in items:
            if future.cancelled():
                continue
            task = loop.create_task(self._send(request))
            task.add_done_callback(functools.partial(_settle, future))
            future.add_done_callback(functools.partial(_cancel_task, loop, task))

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
        _fail_all(self._take_inbox())
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self._close_clients()

    async def _close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        clients += self._retired
        self._retired = []
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    def _ssl_context(self) -> ssl.SSLContext:
        # Building a context loads the CA bundle (tens of ms); all pools share one.
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

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
                verify=self._ssl_context(),
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
        if request.method != "GET":  # as officially: a GET carries no Content-Type
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
                if self._bare_400_budget[request.pool] < BARE_400_RETRIES:
                    self._bare_400_budget[request.pool] += 1
                return answer
            if remaining > 0 and is_retryable_status(status, answer.headers):
                await self._pause(request, retries_taken, max_retries, answer, None)
                retries_taken += 1
                continue
            if status == 400 and not answer.content and self._bare_400_budget[request.pool] > 0:
                raise self._bare_400(request, url, client)
            raise error_for_status(
                status, answer.content, answer.headers, method=request.method, url=url
            )

    def _bare_400(
        self, request: HttpRequest, url: str, client: httpx.AsyncClient
    ) -> APIConnectionError:
        """A 400 without a body comes from a proxy in front of the service (as the
        official SDK assumes), not from the service: drop the pool's connections and
        report a connection error, which callers retry."""
        self._bare_400_budget[request.pool] -= 1
        if self._clients.get(request.pool) is client:
            self._retired.append(self._clients.pop(request.pool))
        _log.info(
            "http_bare_400", method=request.method, path=request.path, pool=request.pool.value
        )
        return APIConnectionError(
            f"Bare HTTP 400 (no body) for {request.method} {url}: a proxy refused the "
            "connection; reconnecting, retry the request",
            method=request.method,
            url=url,
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
