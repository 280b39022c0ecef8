"""Logging: structlog configured once, for people on a terminal and for machines elsewhere.

`configure_logging()` is for applications and the command line; the library never calls it
at import time, so an application that configures structlog itself keeps its own setup.

- Format: a console renderer when stderr is a terminal, JSON lines otherwise, or JSON
  whenever asked (`json=True` or `TINKER_LOG_FORMAT=json`).
- Level: `level=`, else `TINKER_LOG` (debug, info, warning, error, critical), else warning.
- Every event keeps its stable keys (`event`, `level`, `timestamp` and the event's
  own fields); values that look like API keys are masked before rendering.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from supervisors.library_logging import LEVELS
from tinkex_actors.errors import scrub_secrets

__all__ = ["LEVELS", "configure_logging", "resolve_level"]

DEFAULT_LEVEL = "warning"
_SECRET_KEYS = frozenset(
    {"api_key", "apikey", "authorization", "x-api-key", "secret", "password", "access_token"}
)
_SECRET_SUFFIXES = ("_api_key", "_secret", "_password")

_lock = threading.Lock()
_configured: tuple[int, bool] | None = None


def resolve_level(level: str | int | None, environ: Mapping[str, str] | None = None) -> int:
    """The numeric level for `level`, else `TINKER_LOG`, else warning; bad names raise."""
    env = os.environ if environ is None else environ
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    name = level if level is not None else env.get("TINKER_LOG", DEFAULT_LEVEL)
    field = "level" if level is not None else "TINKER_LOG"
    found = LEVELS.get(str(name).strip().lower())
    if found is None:
        raise ValueError(
            f"{field}={name!r} is not a log level; use one of {', '.join(LEVELS)}"
        )
    return found


def _wants_json(json: bool | None, stream: TextIO, environ: Mapping[str, str]) -> bool:
    if json is not None:
        return json
    fmt = environ.get("TINKER_LOG_FORMAT", "").strip().lower()
    if fmt == "json":
        return True
    if fmt in ("console", "text"):
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def _mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Never let a credential reach a log line, whatever field it was put in.
    for key, value in list(event_dict.items()):
        name = key.lower()
        if (name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)) and value is not None:
            event_dict[key] = "<masked>"
        elif isinstance(value, str):
            event_dict[key] = scrub_secrets(value)
    return event_dict


def configure_logging(
    level: str | int | None = None,
    json: bool | None = None,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    force: bool = False,
) -> bool:
    """Configure structlog once for this process; returns True when this call configured it.

    Later calls are no-ops unless `force=True` (tests use it to switch stream or format).
    Output goes to `stream` (default stderr), so a command's stdout stays its own.
    """
    global _configured
    env = os.environ if environ is None else environ
    out = sys.stderr if stream is None else stream
    numeric = resolve_level(level, env)
    as_json = _wants_json(json, out, env)
    with _lock:
        if _configured is not None and not force:
            return False
        renderer: Any = (
            structlog.processors.JSONRenderer(sort_keys=True)
            if as_json
            else structlog.dev.ConsoleRenderer(colors=False)
        )
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _mask_secrets,
                structlog.processors.format_exc_info,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.PrintLoggerFactory(out),
            cache_logger_on_first_use=False,
        )
        _configured = (numeric, as_json)
    return True
