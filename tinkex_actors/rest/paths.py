"""Checks on what a RestClient puts in a URL: ids, tinker paths, access scopes, pages.

Every id is checked before any request: `.`, `..` and separators would be normalised away by
URL handling and reach another endpoint (or, on a server, another directory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, Literal, TypeVar
from urllib.parse import quote

from tinkex_actors.types import ParsedCheckpointTinkerPath

__all__ = [
    "AccessScope",
    "check_id",
    "check_page",
    "check_scope",
    "checkpoint_route",
    "paged",
    "parse_tinker_path",
]

T = TypeVar("T")
AccessScope = Literal["owned", "accessible"]
_ACCESS_SCOPES: Final = ("owned", "accessible")
_URL_SIGNIFICANT: Final = frozenset("/\\?#%")


def check_id(field: str, value: object) -> str:
    """`value` if it is safe as one URL path segment; ValueError naming the field otherwise."""
    if (
        not isinstance(value, str)
        or not value
        or ".." in value
        or value == "."
        or any(c in _URL_SIGNIFICANT or c.isspace() or not c.isprintable() for c in value)
    ):
        raise ValueError(
            f"{field} must be a non-empty id without '/', '\\', '.' or '..', '%', '?', '#', "
            f"spaces or control characters; got {value!r}"
        )
    return value


def check_scope(access_scope: object) -> AccessScope:
    """`access_scope` if it is 'owned' or 'accessible'; ValueError otherwise."""
    if access_scope == "owned":
        return "owned"
    if access_scope == "accessible":
        return "accessible"
    raise ValueError(f"access_scope must be one of {_ACCESS_SCOPES}, got {access_scope!r}")


def check_page(limit: object, offset: object) -> tuple[int, int]:
    """`(limit, offset)` if limit >= 1 and offset >= 0 are ints; ValueError otherwise."""
    for field, value, low in (("limit", limit, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{field} must be an int >= {low}, got {value!r}")
    assert isinstance(limit, int) and isinstance(offset, int)
    return limit, offset


def parse_tinker_path(tinker_path: object) -> ParsedCheckpointTinkerPath:
    """Split a tinker path; ValueError naming the path and the expected form."""
    if not isinstance(tinker_path, str):
        raise ValueError(
            f"tinker_path must be a str like 'tinker://<run_id>/weights/<name>', "
            f"got {tinker_path!r}"
        )
    parsed = ParsedCheckpointTinkerPath.from_tinker_path(tinker_path)
    name = parsed.checkpoint_id.partition("/")[2]
    if not parsed.training_run_id or not name:
        raise ValueError(
            f"Invalid tinker path: {tinker_path!r}; the run id and the checkpoint name must not "
            "be empty: tinker://<run_id>/<weights|sampler_weights|external_weights>/<name>"
        )
    check_id("the run id of the tinker path", parsed.training_run_id)
    check_id("the checkpoint name of the tinker path", name)
    return parsed


def checkpoint_route(training_run_id: str, checkpoint_id: str, action: str = "") -> str:
    """The route of one checkpoint (`training_runs/<run>/checkpoints/<kind>/<name>[/action]`)."""
    check_id("training_run_id", training_run_id)
    kind, _, name = checkpoint_id.partition("/") if isinstance(checkpoint_id, str) else ("", "", "")
    if not kind or not name:
        raise ValueError(f"checkpoint_id must look like 'weights/<name>', got {checkpoint_id!r}")
    check_id("checkpoint_id", kind)
    check_id("checkpoint_id", name)
    route = f"training_runs/{quote(training_run_id, safe='')}/checkpoints/"
    route += quote(checkpoint_id, safe="/")
    return f"{route}/{action}" if action else route


def paged(fetch: Callable[[int], tuple[list[T], int]]) -> Iterator[T]:
    """Items of every page: `fetch(offset)` gives one page and the total, until exhausted."""
    offset = 0
    while True:
        items, total = fetch(offset)
        yield from items
        offset += len(items)
        if not items or offset >= total:
            return
