"""Library logging: structlog once the application configured it, else quiet stdlib logging.

A library should say nothing unasked. structlog's default configuration prints every event,
debug included, to stdout, so a program that merely uses these packages would see each child
start and each HTTP retry. `get_logger(name)` gives a logger that:

- sends events through structlog, with their fields, once structlog has been configured
  (``structlog.configure``, our CLI's ``configure_logging``, ``structlog.testing.capture_logs``);
- otherwise sends them to the standard ``logging`` logger of the same name, as
  ``"event key=value ..."``: silent below WARNING unless the application set logging up, as
  with the official SDK, whose warnings reach stderr through ``logging``'s last resort.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import structlog

__all__ = ["LEVELS", "LibraryLogger", "get_logger"]

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
"""Level names as our loggers and `TINKER_LOG` spell them."""


class LibraryLogger:
    """A structlog-style logger (``log.info("event", key=value)``) that stays quiet by default."""

    __slots__ = ("_std", "_structured")

    def __init__(self, name: str) -> None:
        self._structured = structlog.get_logger(name)
        self._std = logging.getLogger(name)

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if structlog.is_configured():
            getattr(self._structured, level)(event, **fields)
            return
        number = LEVELS[level]
        if not self._std.isEnabledFor(number):
            return
        exc_info = fields.pop("exc_info", None)
        text = " ".join([event, *(f"{key}={value!r}" for key, value in fields.items())])
        self._std.log(number, "%s", text, exc_info=exc_info)

    def debug(self, event: str, /, **fields: Any) -> None:
        """Log at DEBUG."""
        self._emit("debug", event, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        """Log at INFO."""
        self._emit("info", event, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        """Log at WARNING."""
        self._emit("warning", event, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        """Log at ERROR."""
        self._emit("error", event, fields)

    def critical(self, event: str, /, **fields: Any) -> None:
        """Log at CRITICAL."""
        self._emit("critical", event, fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        """Log at ERROR with the exception being handled."""
        fields.setdefault("exc_info", True)
        self._emit("error", event, fields)


def get_logger(name: str) -> LibraryLogger:
    """The logger for ``name`` (see the module docstring for where its events go)."""
    return LibraryLogger(name)
