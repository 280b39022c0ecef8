"""The transport's messages: HttpRequest in, HttpResponse out, with case-insensitive Headers.

Plain data with validation and no I/O, so actors can build and inspect them
without touching the transport (or httpx).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from typing import Any, Final

from tinkex_actors.config import PoolKind
from tinkex_actors.errors import ConfigurationError

__all__ = [
    "API_PREFIX",
    "JSON_CONTENT_TYPE",
    "PROTOBUF_CONTENT_TYPE",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "unique_key",
]

API_PREFIX: Final = "/api/v1/"
JSON_CONTENT_TYPE: Final = "application/json"
PROTOBUF_CONTENT_TYPE: Final = "application/x-protobuf"
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})


class _KeySource:
    """96 random bits per process, then a counter: unique keys without a syscall per key."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(12)
        self.counter = itertools.count(1)


_keys = _KeySource()
os.register_at_fork(after_in_child=_keys.reseed)  # a forked child must not repeat our keys


def unique_key(prefix: str) -> str:
    """A key no other call of any process will use, e.g. for `X-Idempotency-Key`:
    `<prefix>-<24 random hex of this process>-<counter>` (a uuid4 costs a syscall each)."""
    return f"{prefix}-{_keys.prefix}-{next(_keys.counter):x}"


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
