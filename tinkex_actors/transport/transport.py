"""The HTTP transport: one event loop thread, one HTTP session per pool kind, official retries.

The bytes go over a wire (`_http_wire.py`): aiohttp sessions driven directly when aiohttp
is installed (the default); otherwise, or with `TINKER_HTTP_TRANSPORT=httpx` or a
`transport_factory`, an httpx client per pool kind.

Actors never wait on I/O: `Transport.submit` hands a request to the loop thread
and returns a `concurrent.futures.Future` at once; the actor gets the answer as
a message when the future completes. Coroutines already on the loop use
`await transport.request(...)`. Nothing above the wire sees an `httpx` or `aiohttp`
type: requests go in as `HttpRequest` (bytes plus metadata), answers come out as
`HttpResponse`, a wire's failures come up as its `WireError`s, and callers get the
exceptions of `tinkex_actors.errors`.

Every call gets the official headers (`x-api-key`, the `x-stainless-*` family,
an `x-idempotency-key` made once per call and reused on each of its retries) and
the official HTTP-level retries: 408, 409, 429, 5xx and connection errors, with
`x-should-retry` overriding, `Retry-After`/`retry-after-ms` honoured up to 60 s,
else exponential backoff with jitter. Sleep, randomness and the wall clock are
injectable so tests run without waiting. A 400 with no body (a proxy refusing
the connection, as the official pool assumes) drops the pool's connections and
raises a retryable APIConnectionError, up to BARE_400_RETRIES in a row.
A 2xx answer is returned; so is a 3xx when the request does not follow
redirects (the archive endpoint answers 302 with the download URL).

Every attempt's outcome goes to the client's `ServerHealth` (`server_health.py`):
during an outage one request probes while the others wait at its gate, and once
the server has not answered for `connection_lost_after_s` every request fails
with `ConnectionLostError`. A request submitted with the client's progress
tracker (ordered training submits, creations) retries outages without a count,
until the progress timeout.

The loop thread itself (start, hand-off, close, exit safety net) lives in
`_loop_thread.py`; the request and response types in `_http_messages.py`.

Differences from the official SDK, on purpose: HTTP/1.1 only (no `h2`
dependency), one client per pool kind (the official SDK opens another client per
50 concurrent requests), and errors carry no `httpx` object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ipaddress
import random as random_module
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final

from supervisors.library_logging import get_logger
from tinkex_actors._version import __version__
from tinkex_actors.config import Config, PoolKind
from tinkex_actors.errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    error_for_status,
    is_retryable_status,
)
from tinkex_actors.transport.http_retry import platform_headers, retry_delay_s
from tinkex_actors.transport.loop_thread import LoopThread
from tinkex_actors.transport.messages import (
    JSON_CONTENT_TYPE,
    Headers,
    HttpRequest,
    HttpResponse,
    unique_key,
)
from tinkex_actors.transport.retry import ProgressTimeoutError, ProgressTracker
from tinkex_actors.transport.server_health import ServerHealth
from tinkex_actors.transport.wires import (
    TransportFactory,
    Wire,
    WireError,
    WireTimeoutError,
    make_wire,
)

__all__ = [
    "BARE_400_RETRIES",
    "SleepFn",
    "Transport",
]

IDEMPOTENCY_HEADER: Final = "X-Idempotency-Key"
_OUTAGE_STATUSES: Final = frozenset({408, 429})
"""With 5xx and connection errors, what a request sent with a progress tracker retries
without a count (other retryable answers, e.g. 409, still count against max_retries)."""
# Headers the caller may set itself; the transport then leaves them alone.
_RETRY_COUNT: Final = "x-stainless-retry-count"
_READ_TIMEOUT: Final = "x-stainless-read-timeout"
BARE_400_RETRIES: Final = 16
"""Per pool, how many bodiless 400s (a proxy refusing the connection) count as connection
errors before they count as real BadRequestErrors; each success earns one back."""

SleepFn = Callable[[float], Awaitable[None]]
"""How the transport waits between retries (default `asyncio.sleep`)."""

_log = get_logger("tinkex_actors.transport.transport")


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
    ClientClosedError), closes every connection and joins the thread. A
    transport never closed is closed by an exit hook when the main thread ends
    (see `_loop_thread.py`).
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.api_key is None and not _is_loopback(config.base_url):
            config.require_api_key()
        self._config = config
        self._sleep: SleepFn = sleep if sleep is not None else asyncio.sleep
        self._random = random
        self._now = now
        self._wire: Wire = make_wire(config, transport_factory)
        self._bare_400_budget: dict[PoolKind, int] = dict.fromkeys(PoolKind, BARE_400_RETRIES)
        self._deprecation_notes: set[str] = set()
        self._runner = LoopThread(thread_name, cleanup=self._close_clients)
        self.health = ServerHealth(config.connection_lost_after_s, clock=clock, wall=now)
        """This client's one answer to "is the server there?" (see `server_health`)."""
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
        return self._runner.started and not self._runner.closing

    def start(self, timeout_s: float = 5.0) -> None:
        """Start the loop thread (idempotent); raises if it does not come up in time."""
        self._runner.start(timeout_s)

    def submit(
        self,
        request: HttpRequest,
        *,
        progress: ProgressTracker | None = None,
        probe: bool = False,
    ) -> concurrent.futures.Future[HttpResponse]:
        """Send `request` from any thread; returns at once with a future of the answer.

        The future fails with the typed error of `tinkex_actors.errors` when the
        final answer is not 2xx or the server cannot be reached; cancelling it
        cancels the request. With `progress` (the client's tracker), retryable
        failures are retried without a count until that tracker's progress timeout
        (or until the connection is declared lost), not `max_retries` times.
        Once the connection is lost, every request fails at once with that error.
        During an outage a request waits at the client's gate (see `server_health`)
        unless `probe` is set: a probe (a heartbeat) always goes out.
        """
        lost = self.health.lost
        if lost is not None:
            failed: concurrent.futures.Future[HttpResponse] = concurrent.futures.Future()
            failed.set_exception(lost)
            return failed
        return self._runner.submit(
            functools.partial(self._send, request, progress, probe),
            f"{request.method} {request.path}",
        )

    async def request(self, request: HttpRequest) -> HttpResponse:
        """Send `request` from a coroutine; runs inline when already on the transport's loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is self._runner.loop:
            return await self._send(request, None, False)
        return await asyncio.wrap_future(self.submit(request))

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel in-flight requests, close all connections, and join the loop thread.

        Idempotent. Raises RuntimeError if called from the loop thread itself
        (it would wait for itself) or if the thread does not stop in time.
        """
        self._runner.close(timeout_s)

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
        runner = self._runner
        state = "closed" if runner.closing else ("running" if runner.started else "not started")
        return f"Transport(base_url={self._config.base_url!r}, {state})"

    # -- on the loop thread ------------------------------------------------------------

    async def _close_clients(self) -> None:
        # Sessions replaced after a bare 400 are closed here too, once their requests ended.
        await self._wire.close()

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
            headers[IDEMPOTENCY_HEADER] = unique_key("tinkex-actors-retry")
        if _READ_TIMEOUT not in given:
            headers[_READ_TIMEOUT] = _format_seconds(timeout_s)
        return headers

    async def _send(
        self, request: HttpRequest, progress: ProgressTracker | None, probe: bool
    ) -> HttpResponse:
        token = None if probe else object()
        try:
            return await self._send_with_retries(request, token, progress)
        except asyncio.CancelledError:
            if self._runner.closing:
                raise ClientClosedError(
                    f"{request.method} {request.path} was in flight when the client closed; "
                    "resubmit it on a new one"
                ) from None
            raise
        finally:
            if token is not None:
                self.health.release(token)

    async def _send_with_retries(
        self, request: HttpRequest, token: object | None, progress: ProgressTracker | None
    ) -> HttpResponse:
        config = self._config
        health = self.health
        started = progress.clock() if progress is not None else 0.0
        url = config.base_url + request.path
        timeout_s = request.timeout_s if request.timeout_s is not None else config.timeout_s
        max_retries = request.max_retries if request.max_retries is not None else config.max_retries
        persistent = progress is not None
        counted = 0  # retries that count against max_retries (persistent: not outages)
        follow = (
            request.follow_redirects
            if request.follow_redirects is not None
            else config.follow_redirects
        )
        headers = self._headers_for(request, timeout_s)
        count_given = any(name.lower() == _RETRY_COUNT for name in request.headers)
        wire = self._wire
        client: Any = wire.session_for(request.pool)
        retries_taken = 0
        while True:
            if not count_given:
                headers[_RETRY_COUNT] = str(retries_taken)
            remaining = max_retries - counted
            if progress is not None and progress.expired(started):
                raise ProgressTimeoutError(
                    f"No progress made in {progress.progress_timeout_s:g} s while sending "
                    f"{request.method} {request.path} ({retries_taken} retries); check the "
                    "server, or raise the client's progress timeout"
                )
            if token is not None:
                await health.admit(token)
            elif health.lost is not None:
                raise health.lost
            try:
                status, pairs, content = await wire.send(
                    client,
                    request.method,
                    url,
                    headers=headers,
                    body=request.body or None,
                    params=request.params,
                    timeout_s=timeout_s,
                    connect_timeout_s=min(config.connect_timeout_s, timeout_s),
                    follow_redirects=follow,
                )
            except WireError as exc:
                health.failed(exc.reason, token)
                if persistent or remaining > 0:
                    await self._pause(request, retries_taken, max_retries, None, exc.reason)
                    retries_taken += 1
                    counted += not persistent
                    continue
                if isinstance(exc, WireTimeoutError):
                    raise APITimeoutError(
                        f"Request timed out after {timeout_s} s ({retries_taken} retries): "
                        f"{request.method} {url}; raise timeout_s or check the server",
                        method=request.method,
                        url=url,
                    ) from exc
                raise APIConnectionError(
                    f"Connection error ({exc.name}) after {retries_taken} retries: "
                    f"{request.method} {url}; check base_url and that the server is up",
                    method=request.method,
                    url=url,
                ) from exc
            answer = HttpResponse(
                status=status,
                headers=Headers(pairs),
                content=content,
                url=url,
                retries_taken=retries_taken,
            )
            if status >= 500:
                health.failed(f"HTTP {status}", token)
            else:
                health.answered()
            if 200 <= status < 400:
                if self._bare_400_budget[request.pool] < BARE_400_RETRIES:
                    self._bare_400_budget[request.pool] += 1
                self._note_deprecation(request, answer)
                return answer
            outage = status >= 500 or status in _OUTAGE_STATUSES
            if ((persistent and outage) or remaining > 0) and is_retryable_status(
                status, answer.headers
            ):
                await self._pause(request, retries_taken, max_retries, answer, None)
                retries_taken += 1
                counted += not (persistent and outage)
                continue
            self._note_deprecation(request, answer)
            if status == 400 and not answer.content and self._bare_400_budget[request.pool] > 0:
                refused = self._bare_400(request, url, client)
                if not persistent:
                    raise refused
                # An ordered submit never reached the service: failing it would leave a gap
                # in the model's seq_ids that a strict server waits on. Reconnect and resend.
                client = wire.session_for(request.pool)
                await self._pause(request, retries_taken, max_retries, None, type(refused).__name__)
                retries_taken += 1
                continue
            raise error_for_status(
                status, answer.content, answer.headers, method=request.method, url=url
            )

    def _note_deprecation(self, request: HttpRequest, answer: HttpResponse) -> None:
        """Log a server's `x-deprecation-note` (as the official SDK does), once per note."""
        note = answer.headers.get("x-deprecation-note")
        if not note or note in self._deprecation_notes:
            return
        self._deprecation_notes.add(note)
        level = answer.headers.get("x-deprecation-level", "").strip().lower()
        log = _log.error if level == "error" else _log.warning
        log("server_deprecation_note", note=note, path=request.path)

    def _bare_400(self, request: HttpRequest, url: str, client: Any) -> APIConnectionError:
        """A 400 without a body comes from a proxy in front of the service (as the
        official SDK assumes), not from the service: drop the pool's connections and
        report a connection error, which callers retry."""
        self._bare_400_budget[request.pool] -= 1
        self._wire.retire(request.pool, client)
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
        error: str | None,
    ) -> None:
        if self.health.lost is not None:  # given up meanwhile: no point waiting to retry
            raise self.health.lost
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
            error=error,
        )
        await self._sleep(delay_s)
