"""The HTTP wires under `Transport`: which one runs, their interface, their error vocabulary.

A wire keeps a session per pool kind (`session_for`), sends one exchange (`send`, giving status,
headers and body), drops a kind's connections (`retire`) and closes (`close`); `Transport`
holds every rule above that (headers, retries, status mapping) in one code path. Two wires:

- `AiohttpWire`, the default, drives aiohttp sessions directly. httpx's client machinery
  (request and URL models, auth and redirect generators, cookie extraction through urllib's
  jar) costs more client CPU per request than the HTTP exchange itself once hundreds of
  long-polls are in flight; aiohttp under it through an adapter keeps most of that cost.
  This wire sends the bytes `Transport` prepared with no model in between. Kept from httpx:
  proxies and CA settings from the environment (read once), cookies kept per pool (also for
  IP hosts), redirects followed when asked (httpx's limit of 20), gzip/deflate/zstd/br answers
  decoded, a connection pool per kind with the configured limits.
- `HttpxWire`, one httpx client per pool kind: the fallback (`TINKER_HTTP_TRANSPORT=httpx`)
  and the wire a user's `transport_factory` goes under.

A failed exchange leaves a wire only as a `WireError` (`WireTimeoutError`, `WireConnectError`,
`WireProtocolError`), with the library's exception as its cause: nothing above a wire sees an
httpx or aiohttp exception class. `make_wire` picks the wire (`default_transport_factory`).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import ssl
import urllib.parse
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import httpx
import yarl
import zstandard
from aiohttp.helpers import get_env_proxy_for_url

from tinkex_actors.config import Config, PoolKind, PoolLimits
from tinkex_actors.errors import ConfigurationError

__all__ = [
    "ACCEPT_ENCODING",
    "HTTP_TRANSPORT_ENV",
    "MAX_REDIRECTS",
    "AiohttpWire",
    "HttpxWire",
    "TransportFactory",
    "Wire",
    "WireAnswer",
    "WireConnectError",
    "WireError",
    "WireProtocolError",
    "WireTimeoutError",
    "aiohttp_transport",
    "decode_body",
    "default_transport_factory",
    "make_wire",
    "wire_error_from_httpx",
]

_brotli: Any
try:  # httpx offers br when a brotli package is installed; so do we
    _brotli = importlib.import_module("brotli")
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

ACCEPT_ENCODING = "gzip, deflate, br, zstd" if _brotli is not None else "gzip, deflate, zstd"
"""What httpx advertises with zstandard installed (a dependency of ours)."""

MAX_REDIRECTS = 20
"""As httpx: more redirects than this in a row is an error."""

WireAnswer = tuple[int, list[tuple[str, str]], bytes]
"""Status, headers as received (names and values as str), and the decoded body."""

TransportFactory = Callable[[PoolKind, PoolLimits], httpx.AsyncBaseTransport]
"""Builds the httpx transport under one pool kind's client (e.g. an aiohttp one)."""

HTTP_TRANSPORT_ENV = "TINKER_HTTP_TRANSPORT"
"""`aiohttp` (the default when `httpx-aiohttp` is installed) or `httpx` (httpx's own)."""


# -- the errors of a wire -------------------------------------------------------------------


class WireError(Exception):
    """An exchange failed below HTTP; the wire library's exception is the `__cause__`.

    `name` is what an error shown to users calls it (e.g. "ConnectError"); `reason` is what
    the logs and the outage bookkeeping record: the library's own word for what happened
    (e.g. aiohttp's "ServerDisconnectedError").
    """

    def __init__(self, message: str, *, name: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason if reason is not None else name


class WireTimeoutError(WireError):
    """Connecting, or waiting for the answer, took longer than the request's timeout."""


class WireConnectError(WireError):
    """No connection, or it was lost: refused, reset, dropped, a proxy failed."""


class WireProtocolError(WireError):
    """The answer could not be read: a protocol violation, too many redirects, a body
    that does not decode."""


def _not_really_a_timeout(exc: httpx.TimeoutException) -> bool:
    """httpx-aiohttp reports every aiohttp connection error (refused, reset, dropped) as a
    ConnectTimeout; only a real timeout underneath makes it one."""
    cause = exc.__cause__
    if not isinstance(exc, httpx.ConnectTimeout) or cause is None:
        return False
    return not isinstance(cause, TimeoutError) and "Timeout" not in type(cause).__name__


def wire_error_from_httpx(exc: httpx.RequestError | OSError) -> WireError:
    """The wire error for what httpx (or the socket under it) raised; `exc` becomes its cause."""
    name = type(exc).__name__
    cause = exc.__cause__
    error: WireError
    if isinstance(exc, httpx.TimeoutException):
        if _not_really_a_timeout(exc) and cause is not None:
            named = type(cause).__name__
            error = WireConnectError(f"{named}: {exc}", name=named)
        else:
            error = WireTimeoutError(f"{name}: {exc}", name=name)
    elif isinstance(exc, OSError | httpx.NetworkError | httpx.ProxyError):
        # The aiohttp layer under an httpx-aiohttp adapter has its own name for what happened.
        named_below = isinstance(exc, httpx.ConnectError) and isinstance(cause, aiohttp.ClientError)
        reason = type(cause).__name__ if named_below else name
        error = WireConnectError(f"{name}: {exc}", name=name, reason=reason)
    else:
        error = WireProtocolError(f"{name}: {exc}", name=name)
    error.__cause__ = exc
    return error


# -- which wire -----------------------------------------------------------------------------


def aiohttp_transport(kind: PoolKind, limits: PoolLimits) -> httpx.AsyncBaseTransport:
    """httpx over aiohttp: several times less client CPU per request than httpx's own
    transport under concurrency (see benchmarks/transport_bench.py)."""
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(
        limits=httpx.Limits(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry_s,
        )
    )


def default_transport_factory() -> TransportFactory | None:
    """The aiohttp transport when available and not turned off, else httpx's own (None)."""
    choice = os.environ.get(HTTP_TRANSPORT_ENV, "aiohttp").strip().lower()
    if choice == "httpx":
        return None
    if choice != "aiohttp":
        raise ConfigurationError(
            f"{HTTP_TRANSPORT_ENV}={choice!r} is not valid; use 'aiohttp' or 'httpx'"
        )
    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        return None
    return aiohttp_transport


def make_wire(config: Config, transport_factory: TransportFactory | None) -> Wire:
    """The wire for `config`: `AiohttpWire` for the default layer, else `HttpxWire` with
    `transport_factory` (None: `default_transport_factory()`) under its clients."""
    chosen = transport_factory if transport_factory is not None else default_transport_factory()
    ssl_context = _SharedSslContext()
    if chosen is aiohttp_transport:
        return AiohttpWire(config.limits_for, ssl_context)
    return HttpxWire(config, chosen, ssl_context)


class _SharedSslContext:
    """Building a context loads the CA bundle (tens of ms): built once, on first use, and
    shared by every pool of a wire."""

    def __init__(self) -> None:
        self._context: ssl.SSLContext | None = None

    def __call__(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = httpx.create_ssl_context()
        return self._context


# -- the wires ------------------------------------------------------------------------------


class AiohttpWire:
    """One aiohttp session per pool kind, created on first use on the transport's loop."""

    def __init__(
        self,
        limits_for: Callable[[PoolKind], PoolLimits],
        ssl_context: Callable[[], ssl.SSLContext],
    ) -> None:
        self._limits_for = limits_for
        self._ssl_context = ssl_context
        self._sessions: dict[PoolKind, aiohttp.ClientSession] = {}
        self._retired: list[aiohttp.ClientSession] = []
        self._proxies: dict[str, tuple[str | None, aiohttp.BasicAuth | None]] = {}

    def session_for(self, kind: PoolKind) -> aiohttp.ClientSession:
        """The pool kind's session (must be called on the loop thread)."""
        session = self._sessions.get(kind)
        if session is None:
            limits = self._limits_for(kind)
            context = self._ssl_context()
            connector = aiohttp.TCPConnector(
                limit=limits.max_connections,
                limit_per_host=0,
                keepalive_timeout=limits.keepalive_expiry_s,
                ssl=context,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                # The environment's proxy is looked up once per host (proxy_for), not per
                # request: aiohttp's trust_env costs two thread-pool round trips a request.
                trust_env=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
                headers={"Connection": "keep-alive", "Accept-Encoding": ACCEPT_ENCODING},
                auto_decompress=False,  # decode_body also reads zstd, as httpx does
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[kind] = session
        return session

    def proxy_for(self, url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
        """The proxy the environment names for this URL's scheme and host (cached per
        origin, read on first use: HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), else (None, None)."""
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies.get(origin)
        if found is None:
            try:
                proxy, auth = get_env_proxy_for_url(yarl.URL(origin))
                found = (str(proxy), auth)
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found

    def retire(self, kind: PoolKind, session: aiohttp.ClientSession) -> None:
        """Drop the kind's connections (a proxy refused them); closed at shutdown."""
        if self._sessions.get(kind) is session:
            self._retired.append(self._sessions.pop(kind))

    async def close(self) -> None:
        """Close every session and its connections."""
        sessions = [*self._sessions.values(), *self._retired]
        self._sessions, self._retired = {}, []
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

    async def send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        params: Mapping[str, str | int] | None,
        timeout_s: float,
        connect_timeout_s: float,
        follow_redirects: bool,
    ) -> WireAnswer:
        """One exchange: the answer, or a `WireError` with aiohttp's exception as its cause."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=connect_timeout_s, sock_read=timeout_s
        )
        proxy, proxy_auth = self.proxy_for(url)
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body,
                params=params,
                timeout=timeout,
                allow_redirects=follow_redirects,
                max_redirects=MAX_REDIRECTS,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as response:
                content = await response.read()
                raw = response.raw_headers
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise WireTimeoutError(f"connect timeout: {exc}", name="ConnectTimeout") from exc
            raise WireTimeoutError(f"read timeout: {exc}", name="ReadTimeout") from exc
        except aiohttp.TooManyRedirects as exc:
            raise WireProtocolError(
                f"more than {MAX_REDIRECTS} redirects: {url}", name="TooManyRedirects"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            reason = type(exc).__name__ if isinstance(exc, aiohttp.ClientError) else None
            raise WireConnectError(
                f"{type(exc).__name__}: {exc}", name="ConnectError", reason=reason
            ) from exc
        pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
        encoding = response.headers.get("Content-Encoding")
        if encoding:
            try:
                content = decode_body(encoding, content)
            except (zlib.error, zstandard.ZstdError, ValueError) as exc:
                raise WireProtocolError(
                    f"cannot decode a {encoding} body: {exc}", name="DecodingError"
                ) from exc
        return response.status, pairs, content


def decode_body(content_encoding: str, data: bytes) -> bytes:
    """Undo a response's Content-Encoding (gzip, deflate, zstd, br; several in order)."""
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            data = zlib.decompress(data, zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            try:
                data = zlib.decompress(data)
            except zlib.error:  # raw deflate, as some servers send it
                data = zlib.decompress(data, -zlib.MAX_WBITS)
        elif coding == "zstd":
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        elif coding == "br" and _brotli is not None:
            data = _brotli.decompress(data)
        else:
            raise ValueError(f"unsupported Content-Encoding {coding!r}")
    return data


class HttpxWire:
    """The same interface over one httpx client per pool kind: the fallback layer
    (`TINKER_HTTP_TRANSPORT=httpx`) and the one a user's `transport_factory` goes under."""

    def __init__(
        self,
        config: Config,
        transport_factory: TransportFactory | None,
        ssl_context: Callable[[], ssl.SSLContext],
    ) -> None:
        self._config = config
        self._transport_factory = transport_factory
        self._ssl_context = ssl_context
        self._clients: dict[PoolKind, httpx.AsyncClient] = {}
        self._retired: list[httpx.AsyncClient] = []

    def session_for(self, kind: PoolKind) -> httpx.AsyncClient:
        """The pool kind's client (must be called on the loop thread)."""
        client = self._clients.get(kind)
        if client is None:
            limits = self._config.limits_for(kind)
            factory = self._transport_factory
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
                transport=factory(kind, limits) if factory else None,
                verify=self._ssl_context(),
            )
            self._clients[kind] = client
        return client

    def retire(self, kind: PoolKind, client: httpx.AsyncClient) -> None:
        """Drop the kind's connections (a proxy refused them); closed at shutdown."""
        if self._clients.get(kind) is client:
            self._retired.append(self._clients.pop(kind))

    async def close(self) -> None:
        """Close every client and its connections."""
        clients = [*self._clients.values(), *self._retired]
        self._clients, self._retired = {}, []
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        params: Mapping[str, str | int] | None,
        timeout_s: float,
        connect_timeout_s: float,
        follow_redirects: bool,
    ) -> WireAnswer:
        """One exchange through httpx: the answer, or a `WireError` with httpx's exception
        as its cause (`wire_error_from_httpx`)."""
        try:
            response = await client.request(
                method,
                url,
                content=body,
                headers=headers,
                params=params,
                timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
                follow_redirects=follow_redirects,
            )
        except (httpx.RequestError, OSError) as exc:  # also undecodable bodies, as officially
            raise wire_error_from_httpx(exc) from exc
        return response.status_code, list(response.headers.multi_items()), response.content


Wire = AiohttpWire | HttpxWire
"""Either wire: the one interface `Transport` sends through."""
