"""What every command shares: the context, the common flags, errors and their exit codes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliContext",
    "CliError",
    "check_path",
    "common_options",
    "connection",
    "count",
    "describe",
    "exit_code_of",
    "fetch_pages",
    "lora_text",
    "one_line",
    "rest_client",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130
WAIT_S = 120.0
PAGE = 100
"""Rows fetched per request by the list commands."""
MAX_RETRIES = 2
"""A person is waiting: give up on an unreachable service after a few seconds, not a minute."""
_PATH_HINT = "pass a tinker path such as tinker://<run_id>/weights/<name>"

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class CliError(Exception):
    """An error the command line reports as one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass
class CliContext:
    """The settings of one invocation, shared by the root group and its commands."""

    format: str = "table"
    base_url: str | None = None
    debug: bool = False

    @property
    def json(self) -> bool:
        """True when the output is one JSON document."""
        return self.format == "json"


def _setter(field: str, value_of: Callable[[Any], Any]) -> Callable[..., None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return  # not given here: the root group's value (or default) stands
        obj = ctx.find_object(CliContext)
        if obj is None:
            obj = ctx.ensure_object(CliContext)
        setattr(obj, field, value_of(value))

    return callback


def _keep(value: Any) -> Any:
    return value


def common_options(func: F) -> F:
    """`--base-url`, `-f/--format`, `--json` and `--debug` after a command as well as before.

    The root group shows them in its help; here they are hidden, so each command's help lists
    only its own options.
    """
    options = [
        click.option("--base-url", default=None, hidden=True, expose_value=False,
                     callback=_setter("base_url", _keep)),
        click.option("--format", "-f", type=click.Choice(["table", "json"]), default=None,
                     hidden=True, expose_value=False, callback=_setter("format", _keep)),
        click.option("--json", is_flag=True, default=False, hidden=True, expose_value=False,
                     callback=_setter("format", lambda _v: "json")),
        click.option("--debug", is_flag=True, default=False, hidden=True, expose_value=False,
                     callback=_setter("debug", _keep)),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def connection(obj: CliContext) -> tuple[str | None, str | None]:
    """(base URL, API key); a key alone means the production service (the default URL)."""
    base_url = obj.base_url or os.environ.get("TINKER_BASE_URL") or None
    api_key = os.environ.get("TINKER_API_KEY") or None
    if base_url is None and api_key is None:
        raise CliError(
            "no service to talk to: pass --base-url URL or set TINKER_BASE_URL / TINKER_API_KEY "
            "(for the embedded server, run `tinkex-actors serve` and pass its URL)",
            EXIT_USAGE,
        )
    return base_url, api_key


@contextmanager
def rest_client(obj: CliContext) -> Iterator[Any]:
    """A RestClient on the invocation's service, closed afterwards."""
    from tinkex_actors.config import Config
    from tinkex_actors.rest.rest_client import RestClient

    base_url, api_key = connection(obj)
    config = Config.resolve(api_key=api_key, base_url=base_url, max_retries=MAX_RETRIES)
    client = RestClient(config=config)
    try:
        yield client
    finally:
        client.close()


def fetch_pages(
    limit: int, page: Callable[[int, int], tuple[list[T], int | None]]
) -> tuple[list[T], int]:
    """Up to `limit` >= 0 items (0: all), `PAGE` at a time, and the total the server reports.

    `page(want, offset)` fetches one page: its items and the total (None: not said).
    """
    items: list[T] = []
    total = 0
    while limit == 0 or len(items) < limit:
        want = PAGE if limit == 0 else min(PAGE, limit - len(items))
        got, said = page(want, len(items))
        items.extend(got)
        total = said if said is not None else len(items)
        if len(got) < want or len(items) >= total:
            break
    return items, total


def count(n: int, noun: str) -> str:
    """'1 checkpoint', '3 checkpoints'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def lora_text(run: Any) -> str:
    """A training run's LoRA cell: 'No', 'Yes' or 'Yes (Rank 16)'."""
    if not run.is_lora:
        return "No"
    return f"Yes (Rank {run.lora_rank})" if run.lora_rank else "Yes"


def check_path(path: str) -> str:
    """`path` if it is a well-formed tinker:// path; else a usage error saying what to pass."""
    from tinkex_actors.rest.paths import parse_tinker_path

    try:
        parse_tinker_path(path)
    except (ValueError, TypeError) as exc:
        message = f"checkpoint path {path!r} is not valid ({exc}); {_PATH_HINT}"
        raise CliError(message, EXIT_USAGE) from None
    return path


def one_line(exc: BaseException) -> str:
    """The exception's message on one line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def exit_code_of(exc: BaseException) -> int:
    """Our exit code for an exception (see `tinkex_actors.cli.app`)."""
    from tinkex_actors import errors

    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, errors.NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, errors.AuthenticationError | errors.PermissionDeniedError):
        return EXIT_AUTH
    if isinstance(exc, errors.APIConnectionError):
        return EXIT_UNREACHABLE
    if isinstance(exc, errors.BadRequestError | errors.UnprocessableEntityError):
        return EXIT_USAGE
    if isinstance(exc, ValueError | TypeError | FileNotFoundError):
        return EXIT_USAGE
    return EXIT_FAILED


_STATUS_WORDS = {
    400: "invalid request",
    401: "authentication failed",
    403: "permission denied",
    404: "not found",
    409: "conflict",
    422: "invalid data",
    429: "rate limit exceeded",
}


def _detail(body: object) -> str | None:
    """The human part of an error body: FastAPI's `detail` (text or a list of field errors),
    or a `message` / `error` field."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return None
    for key in ("detail", "message", "error"):
        value = body.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            parts = []
            for item in value:
                if isinstance(item, dict):
                    where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{where}: {item.get('msg', '')}".strip(": "))
                else:
                    parts.append(str(item))
            return "; ".join(parts)
    return None


def describe(exc: BaseException) -> str:
    """One readable line for an error: no raw dicts, URLs or temporary ports."""
    from tinkex_actors import errors

    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, errors.APIConnectionError):
        return (f"cannot reach the service ({type(exc).__name__}); "
                "check --base-url / TINKER_BASE_URL")
    if isinstance(exc, errors.APIStatusError):
        word = _STATUS_WORDS.get(exc.status_code) or (
            "server error" if exc.status_code >= 500 else "request failed"
        )
        detail = _detail(exc.body) or "no detail given"
        line = f"{word} ({exc.status_code}): {' '.join(detail.split())}"
        if isinstance(exc, errors.AuthenticationError):
            line += "; check TINKER_API_KEY"
        return line
    return one_line(exc)
