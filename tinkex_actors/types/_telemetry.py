"""Telemetry events and the batch the client posts to `telemetry`.

Events form a union told apart by their `event` field (SESSION_START, SESSION_END,
UNHANDLED_EXCEPTION, GENERIC_EVENT), as in the official SDK.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypeAlias

from ._base import WireStruct, sent

__all__ = [
    "EventType",
    "GenericEvent",
    "SessionEndEvent",
    "SessionStartEvent",
    "Severity",
    "TelemetryBatch",
    "TelemetryEvent",
    "TelemetryResponse",
    "TelemetrySendRequest",
    "UnhandledExceptionEvent",
]

EventType: TypeAlias = Literal[
    "SESSION_START", "SESSION_END", "UNHANDLED_EXCEPTION", "GENERIC_EVENT"
]
Severity: TypeAlias = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_SEVERITIES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Event(WireStruct, frozen=True, tag_field="event"):
    event_id: str
    event_session_index: int
    severity: Severity
    timestamp: dt.datetime

    @property
    def event(self) -> EventType:
        """The event kind (the `event` tag on the wire)."""
        kind: EventType = self.__struct_config__.tag  # type: ignore[assignment]
        return kind

    def __post_init__(self) -> None:
        if self.severity not in _SEVERITIES:
            raise ValueError(
                f"{type(self).__name__}.severity must be one of {list(_SEVERITIES)}, "
                f"got {self.severity!r}"
            )


class SessionStartEvent(_Event, frozen=True, tag="SESSION_START"):
    """The session started."""


class SessionEndEvent(_Event, frozen=True, tag="SESSION_END"):
    """The session ended after `duration` (an ISO 8601 duration)."""

    duration: str


class UnhandledExceptionEvent(_Event, frozen=True, tag="UNHANDLED_EXCEPTION"):
    """An exception escaped the SDK."""

    error_type: str
    error_message: str
    traceback: str | None = None


class GenericEvent(_Event, frozen=True, tag="GENERIC_EVENT"):
    """A named event (low-cardinality `event_name`) with a JSON payload."""

    event_name: str
    event_data: dict[str, Any] = sent({})


TelemetryEvent: TypeAlias = (
    SessionStartEvent | SessionEndEvent | UnhandledExceptionEvent | GenericEvent
)


class TelemetrySendRequest(WireStruct, frozen=True):
    """`POST telemetry`: up to 100 events of one session."""

    events: list[TelemetryEvent]
    platform: str
    sdk_version: str
    session_id: str
    process_uuid: str


class TelemetryBatch(WireStruct, frozen=True):
    """A batch of events as queued by the reporter (same shape as the request)."""

    events: list[TelemetryEvent]
    platform: str
    sdk_version: str
    session_id: str
    process_uuid: str


class TelemetryResponse(WireStruct, frozen=True):
    """`{"status": "accepted"}`."""

    status: Literal["accepted"] = sent("accepted")
