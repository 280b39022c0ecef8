"""Reading a request's JSON body: the object, its typed fields, storage failures as answers.

Every failure is an `HTTPError` naming the field (400), or carrying the storage's own status
(404 for a missing checkpoint, ...), so handlers read their input in one line each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tinkex_actors.local.http_messages import HTTPError, Request
from tinkex_actors.local.storage import StorageError

__all__ = ["body_of", "need", "storage_errors"]


def need(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False
) -> Any:
    """A field of a JSON body with its type checked; HTTPError 400 naming it otherwise."""
    value = body.get(name)
    if value is None:
        if optional:
            return None
        raise HTTPError(400, f"field '{name}' is required")
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise HTTPError(400, f"field '{name}' must be a number, got a boolean")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise HTTPError(400, f"field '{name}' must be {names}, got {type(value).__name__}")
    return value


def body_of(request: Request) -> dict[str, Any]:
    """The request's JSON object body; HTTPError 400 when it is not an object."""
    data = request.json()
    if not isinstance(data, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return data


@contextlib.contextmanager
def storage_errors(field: str | None = None) -> Iterator[None]:
    """Answer a checkpoint-store failure inside the block: its status, or 400 for a bad path.

    `field` names the request field a malformed path came from (in the 400's message).
    """
    try:
        yield
    except StorageError as exc:
        raise HTTPError(exc.status, str(exc)) from exc
    except ValueError as exc:
        message = str(exc) if field is None else f"field '{field}': {exc}"
        raise HTTPError(400, message) from exc
