"""The HTTP layers under `Transport`, one interface: `AiohttpWire` (the default) and `HttpxWire`.

Each keeps a session per pool kind (`session_for`), sends one exchange (`send`, giving status,
headers and body), drops a kind's connections (`retire`) and closes (`close`); `Transport`
holds every rule above that (headers, retries, status mapping) in one code path.

The default layer drives aiohttp sessions directly.

httpx's client machinery (request and URL models, auth and redirect generators, cookie
extraction through urllib's jar) costs more client CPU per request than the HTTP exchange
itself once hundreds of long-polls are in flight; aiohttp under it through an adapter keeps
most of that cost. `AiohttpWire` sends the bytes `Transport` prepared with no model in
between and gives back the status, raw headers and body. `Transport` keeps every rule (headers,
retries, status mapping); this module only moves bytes and reports failures as the httpx
exception types the retry loop already sorts (`httpx.TimeoutException` for timeouts,
`httpx.TransportError` for connection failures), with the aiohttp error as their cause.

Behaviour kept from httpx: proxies and CA settings from the environment (read once), cookies
kept per pool (also for IP hosts), redirects followed when asked (httpx's limit of 20),
gzip/deflate answers decoded, a connection pool per kind with the configured limits.
"""

from __future__ import annotations

import asyncio
import importlib
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

__all__ = [
    "ACCEPT_ENCODING",
    "MAX_REDIRECTS",
    "AiohttpWire",
    "HttpxWire",
    "WireAnswer",
    "decode_body",
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
        """One exchange: the answer, or httpx.TimeoutException / httpx.TransportError."""
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
                raise httpx.ConnectTimeout(f"connect timeout: {exc}") from exc
            raise httpx.ReadTimeout(f"read timeout: {exc}") from exc
        except aiohttp.TooManyRedirects as exc:
            raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects: {url}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
        encoding = response.headers.get("Content-Encoding")
        if encoding:
            try:
                content = decode_body(encoding, content)
            except (zlib.error, zstandard.ZstdError, ValueError) as exc:
                raise httpx.DecodingError(f"cannot decode a {encoding} body: {exc}") from exc
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
        transport_factory: Callable[[PoolKind, PoolLimits], httpx.AsyncBaseTransport] | None,
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
        """One exchange through httpx; its own exceptions pass through."""
        response = await client.request(
            method,
            url,
            content=body,
            headers=headers,
            params=params,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            follow_redirects=follow_redirects,
        )
        return response.status_code, list(response.headers.multi_items()), response.content
