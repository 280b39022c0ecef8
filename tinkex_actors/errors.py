"""The exception tree: HTTP status to exception, and which errors are user errors or retryable.

Names follow the official `tinker` SDK so that `except tinker.RateLimitError`
translates to `except tinkex_actors.errors.RateLimitError`. Unlike the official
exceptions, ours carry no `httpx` object: an error records the request's method
and URL, the status, the response headers and the decoded body, all picklable.

Messages never contain a secret: anything that looks like an API key is masked
before it is stored (`tml-…` plus its last 4 characters).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionLostError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PromiseExpiredError",
    "RateLimitError",
    "RecoveryFailedError",
    "RequestFailedError",
    "RequestTimeoutError",
    "RetryableException",
    "SessionExpiredError",
    "TinkerError",
    "TransportClosedError",
    "UnprocessableEntityError",
    "error_for_status",
    "is_retryable",
    "is_retryable_status",
    "is_user_error",
    "scrub_secrets",
]

_MAX_BODY_CHARS: Final = 2000
# tml- keys and JWTs (three base64url parts) as they could appear in an echoed body.
_SECRET_PATTERN: Final = re.compile(
    r"tml-[A-Za-z0-9_\-]+|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
)


def scrub_secrets(text: str) -> str:
    """The text with every API-key-like token replaced by its masked form."""

    def mask(match: re.Match[str]) -> str:
        token = match.group(0)
        prefix = "tml-" if token.startswith("tml-") else "eyJ"
        return f"{prefix}…{token[-4:]}" if len(token) >= 16 else f"{prefix}…"

    return _SECRET_PATTERN.sub(mask, text)


_SECRET_HEADER_WORDS: Final = ("key", "auth", "token", "cookie", "secret")


def _scrub_value(value: object, depth: int = 0) -> object:
    """A decoded body with every secret-looking string masked, however deeply nested."""
    if isinstance(value, str):
        return scrub_secrets(value)
    if depth > 64:  # a body this deep is not worth walking; keep nothing of it
        return None
    if isinstance(value, dict):
        return {
            scrub_secrets(k) if isinstance(k, str) else k: _scrub_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v, depth + 1) for v in value)
    if isinstance(value, bytes | bytearray):
        return scrub_secrets(bytes(value).decode("utf-8", errors="replace")).encode()
    return value


def _scrub_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        lowered = name.lower()
        secret = any(word in lowered for word in _SECRET_HEADER_WORDS)
        out[lowered] = "<masked>" if secret else scrub_secrets(str(value))
    return out


class TinkerError(Exception):
    """Base of every error this package raises."""


class ConfigurationError(TinkerError, ValueError):
    """A setting is malformed or missing; the message names the field and the fix."""


class TransportClosedError(TinkerError):
    """A request was submitted to, or still in flight in, a Transport being closed."""


class RetryableException(TinkerError):  # noqa: N818 (the official name)
    """An error that the retry machinery should retry (official name)."""


class SessionExpiredError(TinkerError):
    """The server no longer knows the session: heartbeats stopped for too long.

    Create a new ServiceClient (a new session) and resubmit the work.
    """


class ClientClosedError(TransportClosedError, RuntimeError):
    """The client was closed (by `close()`, leaving `with`, or the interpreter exiting)
    while this operation was pending, or the operation was asked for after that.

    A RuntimeError too, as the ServiceClient raised one for calls after close.
    """


class ConnectionLostError(SessionExpiredError):
    """The server did not answer (connection errors or 5xx) for longer than the client's
    `connection_lost_after`: the session is given up, every pending and later operation fails.

    `since` is the wall-clock time (seconds since the epoch) of the last answer the client got,
    `failing_for_s` how long it had been failing, `last_error` what the last attempt met.
    """

    def __init__(
        self, message: str, *, since: float = 0.0, failing_for_s: float = 0.0, last_error: str = ""
    ) -> None:
        super().__init__(message)
        self.since = since
        self.failing_for_s = failing_for_s
        self.last_error = last_error

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_lost,
            (str(self), self.since, self.failing_for_s, self.last_error),
        )


def _rebuild_lost(message: str, since: float, failing_for_s: float, last_error: str) -> Any:
    return ConnectionLostError(
        message, since=since, failing_for_s=failing_for_s, last_error=last_error
    )


class RecoveryFailedError(SessionExpiredError):
    """The session was lost and the client's recovery policy could not rebuild a model.

    `last_safe_step` counts the `optim_step`s held by `checkpoint_path` (None: no checkpoint
    was taken yet, the last safe step is the model's creation); `reason` says why recovery was
    impossible. Resume with `create_training_client_from_state_with_optimizer(checkpoint_path)`.
    """

    def __init__(
        self,
        message: str,
        *,
        last_safe_step: int = 0,
        checkpoint_path: str | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(scrub_secrets(message))
        self.last_safe_step = last_safe_step
        self.checkpoint_path = checkpoint_path
        self.reason = scrub_secrets(reason)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_recovery,
            (str(self), self.last_safe_step, self.checkpoint_path, self.reason),
        )


def _rebuild_recovery(
    message: str, last_safe_step: int, checkpoint_path: str | None, reason: str
) -> Any:
    return RecoveryFailedError(
        message, last_safe_step=last_safe_step, checkpoint_path=checkpoint_path, reason=reason
    )


class APIError(TinkerError):
    """An error tied to one HTTP request: its method, URL and (maybe) decoded body."""

    def __init__(
        self, message: str, *, method: str = "", url: str = "", body: object | None = None
    ) -> None:
        message = scrub_secrets(message)
        super().__init__(message)
        self.message = message
        self.method = method
        # The server may echo a key back (in the body, a header, a redirect URL): every field
        # is scrubbed, so neither the exception nor its pickle carries a secret.
        self.url = scrub_secrets(url)
        self.body = _scrub_value(body)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[APIError], state: dict[str, object]) -> APIError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class APIResponseValidationError(APIError):
    """The server answered 2xx with a body that does not match the protocol."""


class APIConnectionError(APIError):
    """No HTTP answer: connection refused, reset, dropped, or a protocol error."""

    def __init__(
        self, message: str = "Connection error.", *, method: str = "", url: str = ""
    ) -> None:
        super().__init__(message, method=method, url=url, body=None)


class APITimeoutError(APIConnectionError):
    """No HTTP answer within the request's timeout."""

    def __init__(
        self, message: str = "Request timed out.", *, method: str = "", url: str = ""
    ) -> None:
        super().__init__(message, method=method, url=url)


class APIStatusError(APIError):
    """The server answered with a non-2xx status (after any HTTP-level retries)."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        body: object | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message, method=method, url=url, body=body)
        self.status_code = status_code
        self.headers: dict[str, str] = _scrub_headers(headers)

    @property
    def request_id(self) -> str | None:
        """The server's request id header, if it sent one (useful in bug reports)."""
        return self.headers.get("x-request-id")


class BadRequestError(APIStatusError):
    """HTTP 400: the request was invalid or malformed."""

    status_code = 400


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key is missing or invalid."""

    status_code = 401


class BillingError(APIStatusError):
    """HTTP 402: the account has a billing issue."""

    status_code = 402


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key may not access this resource."""

    status_code = 403


class NotFoundError(APIStatusError):
    """HTTP 404: the resource does not exist."""

    status_code = 404


class RequestTimeoutError(APIStatusError):
    """HTTP 408: the server timed the request out; retryable (our name)."""

    status_code = 408


class ConflictError(APIStatusError):
    """HTTP 409: conflicts with the current state of the resource; retryable."""

    status_code = 409


class PromiseExpiredError(APIStatusError):
    """HTTP 410: the server dropped the future; resubmit the original request (our name)."""

    status_code = 410


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: well formed, but semantically invalid."""

    status_code = 422


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests; retryable after the server's Retry-After."""

    status_code = 429


class InternalServerError(APIStatusError):
    """HTTP 5xx: the server failed; retryable."""


class RequestFailedError(TinkerError):
    """An asynchronous request (a future) completed in the failed state.

    `category` is the wire's RequestErrorCategory value: "user", "server" or
    "unknown" (a `StrEnum` member compares equal to its text).
    """

    def __init__(self, message: str, request_id: str, category: str = "unknown") -> None:
        message = scrub_secrets(message)
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.category = category

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.request_id, self.category))


_STATUS_CLASSES: Final[dict[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: BillingError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    410: PromiseExpiredError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_STATUS_HINTS: Final[dict[int, str]] = {
    400: "check the request fields named in the body",
    401: "check api_key (or TINKER_API_KEY): it is missing, revoked or for another deployment",
    402: "check the billing settings of your Tinker account",
    403: "this key may not access the resource; check the project and the key's permissions",
    404: "check the id or path (model_id, request_id, tinker:// path) and base_url",
    408: "the server timed out; the request is retried automatically",
    409: "the resource changed concurrently; the request is retried automatically",
    410: "the server dropped this future; resubmit the original request",
    422: "check the request fields named in the body",
    429: "rate limited; slow down or wait for the Retry-After delay",
}


def _decode_body(body: bytes | str | object | None) -> object | None:
    """JSON if the body is JSON, else the text, else None for an empty body."""
    if body is None:
        return None
    if isinstance(body, bytes | bytearray | memoryview):
        text = bytes(body).decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    else:
        return body
    text = text.strip()
    if not text:
        return None
    try:
        decoded: object = json.loads(text)
    except ValueError:
        return text[:_MAX_BODY_CHARS]
    return decoded


def error_for_status(
    status: int,
    body: bytes | str | object | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "",
    url: str = "",
) -> APIStatusError:
    """The typed exception for a final non-2xx answer (not raised: returned).

    The message starts as the official SDK's ("Error code: 404 - {...}") and adds
    what to do about it.
    """
    decoded = _decode_body(body)
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    shown = "" if decoded is None else f" - {decoded}"
    if len(shown) > _MAX_BODY_CHARS:
        shown = shown[:_MAX_BODY_CHARS] + "…"
    where = f" ({method} {url})" if method or url else ""
    hint = _STATUS_HINTS.get(status)
    if hint is None and status >= 500:
        hint = "the server failed; the request is retried automatically"
    message = f"Error code: {status}{shown}{where}"
    if hint:
        message = f"{message}; {hint}"
    return cls(message, status_code=status, headers=headers, body=decoded, method=method, url=url)


def is_retryable_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """The official HTTP retry rule: 408, 409, 429 and 5xx, unless `x-should-retry` says.

    The server's `x-should-retry: true|false` overrides the status rule both ways.
    """
    if headers:
        should = next((v for k, v in headers.items() if k.lower() == "x-should-retry"), None)
        if should == "true":
            return True
        if should == "false":
            return False
    return status in (408, 409, 429) or 500 <= status < 600


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying may help, by the official retry handler's rules.

    Retryable: connection errors and timeouts (ours and asyncio's), any
    RetryableException, status errors with 408/409/429/5xx (`x-should-retry`
    overrides), and our PromiseExpiredError (410: resubmit the request).
    """
    if isinstance(exc, APIConnectionError | RetryableException | TimeoutError):
        return True
    if isinstance(exc, PromiseExpiredError):
        return True
    if isinstance(exc, APIStatusError):
        return is_retryable_status(exc.status_code, exc.headers)
    return False


def is_user_error(exc: BaseException) -> bool:
    """Whether the error is the caller's to fix, by the official rule.

    True for a RequestFailedError of category "user" and for any 4xx status except
    408, found on the exception or anywhere along its `__cause__`/`__context__`
    chain. Note that the official rule counts 409 and 429 as user errors although
    they are retryable: decide with `is_retryable` first.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RequestFailedError) and str(current.category) == "user":
            return True
        status = getattr(current, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500 and status != 408:
            return True
        # Context is searched after cause, as in the official depth-first walk.
        if current.__context__ is not None:
            todo.append(current.__context__)
        if current.__cause__ is not None:
            todo.append(current.__cause__)
    return False
