"""Who may talk to the embedded server, and how much: the checks before any handler runs.

The server listens on loopback, but a loopback port is reachable by every local process and by
every web page a browser on this machine opens. So, before a request reaches a handler:

- its `Host` must be the bound loopback address and port (or `localhost:<port>`): a page on a
  rebinding domain carries its own host name and is refused (403);
- a request with an `Origin` header came from a browser, and is refused (403);
- it must carry the server's API key in `X-API-Key` (401 otherwise, as the service answers),
  except `healthz` and the signed download URLs that archive and file links point to;
- a body must be JSON or protobuf (415 otherwise: `text/plain` is what a page can post
  cross-site without asking) and at most `max_body_bytes` (413, refused while it streams in).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from tinkex_actors.local.http_messages import JSON, PROTOBUF, Response, error_response

__all__ = ["MAX_BODY_BYTES", "Guard", "new_api_key"]

MAX_BODY_BYTES = 32 * 1024 * 1024
"""32 MiB. A forward_backward chunk is at most `fwdbwd_max_chunk_bytes_count` = 5,000,000 bytes
estimated as protobuf (4 bytes a token, 4 a float); the same chunk as JSON spells a token in up to
7 characters and a float in up to ~25, so a full legal chunk stays under ~6x the estimate. The
same limit bounds a zstd body once decompressed."""

OPEN_PATHS = frozenset({"/api/v1/healthz"})
"""Answered without the key: a liveness probe reveals nothing."""

DOWNLOAD_PREFIX = "/_files/"
SIGNED_PREFIXES = (DOWNLOAD_PREFIX, "/_traces/")
"""Paths a signed URL (`sign`) opens without the key: checkpoint files and session traces."""
SIGNED_URL_TTL_S = 3600


def new_api_key() -> str:
    """A random key in the service's form (`tml-` and 43 URL-safe characters)."""
    return "tml-" + secrets.token_urlsafe(32)


@dataclass
class Guard:
    """The checks every request passes before its handler; see the module docstring."""

    api_key: str
    max_body_bytes: int = MAX_BODY_BYTES
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    """Host header values accepted; empty until `bind` (then every request is refused)."""

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or len(self.api_key) < 8:
            raise ValueError("api_key must be a string of at least 8 characters")
        self._key = self.api_key.encode()

    def __repr__(self) -> str:  # the key never shows
        return f"Guard(allowed_hosts={sorted(self.allowed_hosts)!r})"

    def bind(self, host: str, port: int) -> None:
        """Accept `Host` headers naming the bound address and port (and localhost)."""
        shown = f"[{host}]" if ":" in host else host
        self.allowed_hosts = frozenset({f"{shown}:{port}", f"localhost:{port}"})

    def refusal(
        self, method: str, path: str, headers: dict[str, str], query: dict[str, str]
    ) -> Response | None:
        """The answer refusing a request, from its head alone; None to let it in."""
        host = headers.get("host")
        if host is None or host.lower() not in self.allowed_hosts:
            return error_response(
                403,
                f"Host {host!r} is not this server's address; connect to "
                f"http://{min(self.allowed_hosts, default='127.0.0.1')} directly",
            )
        if "origin" in headers:
            return error_response(
                403,
                "requests from web pages (with an Origin header) are refused: the embedded "
                "server is for local programs only",
            )
        if not self._authorized(path, headers, query):
            return error_response(
                401,
                "missing or invalid API key: send the server's key in the X-API-Key header "
                "(the key `tinkex-actors serve` announced, or TINKER_API_KEY)",
            )
        kind = headers.get("content-type")
        if kind is not None and method in ("POST", "PUT", "PATCH"):
            media = kind.split(";")[0].strip().lower()
            if media not in (JSON, PROTOBUF):
                return error_response(
                    415,
                    f"content type {media!r} is not accepted; send {JSON} or {PROTOBUF}",
                )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return self.too_large()
        return None

    def too_large(self) -> Response:
        """The 413 answer for a body over the limit."""
        return error_response(
            413,
            f"request body exceeds {self.max_body_bytes} bytes; split the batch into "
            "smaller requests",
        )

    def _authorized(self, path: str, headers: dict[str, str], query: dict[str, str]) -> bool:
        if path in OPEN_PATHS:
            return True
        given = headers.get("x-api-key")
        if given is not None and hmac.compare_digest(given.encode("latin-1"), self._key):
            return True
        return path.startswith(SIGNED_PREFIXES) and self._signature_valid(path, query)

    def _signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode("utf-8", errors="surrogateescape")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, now_s: float | None = None) -> tuple[int, str]:
        """(expires, signature) making a download URL of `path` work without the key."""
        expires = int(now_s if now_s is not None else time.time()) + SIGNED_URL_TTL_S
        return expires, self._signature(path, expires)

    def _signature_valid(self, path: str, query: dict[str, str]) -> bool:
        expires, signature = query.get("expires", ""), query.get("signature", "")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(signature.encode(), self._signature(path, int(expires)).encode())
