"""HTTP messages of the embedded server: `Request`, `Response`, `HTTPError` and JSON answers.

Handlers, the guard and the ASGI app all speak in these values; errors go out in the service's
shape, `{"detail": "<message>"}` with the HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = [
    "JSON",
    "MAX_JSON_DEPTH",
    "PROTOBUF",
    "HTTPError",
    "Request",
    "Response",
    "decode_json",
    "error_response",
    "json_response",
]

JSON = "application/json"
PROTOBUF = "application/x-protobuf"

_json_encoder = msgspec.json.Encoder()

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays a JSON body may have (the protocol needs about 6)."""


class HTTPError(Exception):
    """An error answer: the status and the message, sent as `{"detail": message}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Request:
    """One HTTP request as handlers see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-cased header names."""
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    """Values captured from a patterned path."""

    @property
    def content_type(self) -> str:
        """The media type of the body, without parameters."""
        return self.headers.get("content-type", JSON).split(";")[0].strip().lower()

    def accepts_protobuf(self) -> bool:
        """Whether the client asked for a protobuf answer."""
        return PROTOBUF in self.headers.get("accept", "")

    def json(self) -> Any:
        """The body decoded as JSON; an HTTPError 400 when it is not JSON."""
        return decode_json(self.body)


def decode_json(body: bytes) -> Any:
    """A JSON body decoded; HTTPError 400 when it is not JSON or nests too deeply."""
    try:
        data = msgspec.json.decode(body) if body else {}
    except msgspec.DecodeError as exc:
        raise HTTPError(400, f"request body is not valid JSON: {exc}") from exc
    except RecursionError:
        too_deep = True
    else:
        too_deep = not _depth_within(data, MAX_JSON_DEPTH)
    if too_deep:
        raise HTTPError(
            400, f"request body nests deeper than {MAX_JSON_DEPTH} levels; flatten it"
        )
    return data


def _depth_within(data: Any, limit: int) -> bool:
    # Iterative, so the check itself cannot overflow the stack.
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > limit:
            return False
        items = value.values() if isinstance(value, dict) else value
        stack.extend((item, depth + 1) for item in items if isinstance(item, dict | list))
    return True


@dataclass
class Response:
    """One HTTP answer."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer of any msgspec-encodable value."""
    return Response(status, _json_encoder.encode(data), JSON, dict(headers or {}))


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer in the service's shape."""
    return json_response({"detail": message}, status, headers)
