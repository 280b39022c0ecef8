"""Session search and status, the audit log and checkpoint storage usage (REST extras)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypeAlias

from ._base import TypeTagged, WireStruct, coerce_floats, sent

__all__ = [
    "AccessibleSearchOwner",
    "ActiveSessionStatusQuery",
    "AuditLogEntry",
    "AuditLogResponse",
    "CancelledSessionStatusQuery",
    "ClientFinishedSessionStatusQuery",
    "ClientSessionFinishErrored",
    "ClientSessionFinishInterrupted",
    "ClientSessionFinishReason",
    "ClientSessionFinishReasonType",
    "ClientSessionFinishSuccess",
    "ClientSessionFinished",
    "CurrentCheckpointStorageUsageItem",
    "CurrentCheckpointStorageUsageResponse",
    "FailedSessionStatusQuery",
    "GetCurrentCheckpointStorageUsageRequest",
    "OwnSearchOwner",
    "SearchOwner",
    "SessionActive",
    "SessionCancelled",
    "SessionFailed",
    "SessionFailedReason",
    "SessionFailedRequestReason",
    "SessionFailedSamplingSessionReason",
    "SessionFailedTrainingRunReason",
    "SessionSearchCursor",
    "SessionSearchRequest",
    "SessionSearchResponse",
    "SessionStatus",
    "SessionStatusQuery",
    "SessionSummary",
    "UserSearchOwner",
]

# --- session status (answers) ------------------------------------------------


class SessionFailedRequestReason(TypeTagged, frozen=True, tag="request"):
    """A session failed because of one request."""

    request_id: str
    request_type: str


class SessionFailedTrainingRunReason(TypeTagged, frozen=True, tag="training_run"):
    """A session failed because of one training run."""

    training_run_id: str


class SessionFailedSamplingSessionReason(TypeTagged, frozen=True, tag="sampling_session"):
    """A session failed because of one sampling session."""

    sampling_session_id: str


SessionFailedReason: TypeAlias = (
    SessionFailedRequestReason | SessionFailedTrainingRunReason
    | SessionFailedSamplingSessionReason
)


class SessionFailed(TypeTagged, frozen=True, tag="failed"):
    """The session failed; `category` says whose fault it was."""

    category: Literal["user", "internal"]
    reason: SessionFailedReason
    message: str


class SessionCancelled(TypeTagged, frozen=True, tag="cancelled"):
    """The session was cancelled."""

    detail: str | None = None


class ClientSessionFinishSuccess(TypeTagged, frozen=True, tag="success"):
    """The client ended the session normally."""


class ClientSessionFinishErrored(TypeTagged, frozen=True, tag="errored"):
    """The client ended the session after an error."""


class ClientSessionFinishInterrupted(TypeTagged, frozen=True, tag="interrupted"):
    """The client was interrupted."""


ClientSessionFinishReason: TypeAlias = (
    ClientSessionFinishSuccess | ClientSessionFinishErrored | ClientSessionFinishInterrupted
)
ClientSessionFinishReasonType: TypeAlias = Literal["success", "errored", "interrupted"]


class ClientSessionFinished(TypeTagged, frozen=True, tag="client_finished"):
    """The client ended the session, for `reason`."""

    reason: ClientSessionFinishReason
    detail: str | None = None


class SessionActive(TypeTagged, frozen=True, tag="active"):
    """The session is alive."""


SessionStatus: TypeAlias = SessionFailed | SessionCancelled | ClientSessionFinished | SessionActive


# --- session search (requests) -----------------------------------------------


class ActiveSessionStatusQuery(TypeTagged, frozen=True, tag="active"):
    """Match active sessions."""


class CancelledSessionStatusQuery(TypeTagged, frozen=True, tag="cancelled"):
    """Match cancelled sessions."""


class FailedSessionStatusQuery(TypeTagged, frozen=True, tag="failed"):
    """Match failed sessions."""


class ClientFinishedSessionStatusQuery(TypeTagged, frozen=True, tag="client_finished"):
    """Match sessions the client ended, optionally only for some reasons."""

    reasons: list[ClientSessionFinishReasonType] | None = None

    def __post_init__(self) -> None:
        if self.reasons is not None and not self.reasons:
            raise ValueError(
                "ClientFinishedSessionStatusQuery.reasons must be None (any reason) or "
                "a non-empty list"
            )


SessionStatusQuery: TypeAlias = (
    ActiveSessionStatusQuery | CancelledSessionStatusQuery | FailedSessionStatusQuery
    | ClientFinishedSessionStatusQuery
)


class OwnSearchOwner(TypeTagged, frozen=True, tag="own"):
    """Search the caller's own sessions."""


class AccessibleSearchOwner(TypeTagged, frozen=True, tag="accessible"):
    """Search every session the caller may see."""


class UserSearchOwner(TypeTagged, frozen=True, tag="user"):
    """Search the sessions of 1 to 10 named users."""

    owner_urns: list[str]

    def __post_init__(self) -> None:
        if not 1 <= len(self.owner_urns) <= 10:
            raise ValueError(
                f"UserSearchOwner.owner_urns must list 1 to 10 users, got {len(self.owner_urns)}"
            )


SearchOwner: TypeAlias = OwnSearchOwner | AccessibleSearchOwner | UserSearchOwner


class SessionSearchCursor(WireStruct, frozen=True):
    """Where the next page of a session search starts."""

    last_created_at: dt.datetime
    last_session_id: str


class SessionSearchRequest(WireStruct, frozen=True):
    """A session search (results limited to projects the caller may list)."""

    session_id: str | None = None
    project_ids: list[str] | None = None
    user_metadata: dict[str, str] = sent({})
    display_name: str | None = None
    owner: SearchOwner = sent(OwnSearchOwner())
    statuses: list[SessionStatusQuery] | None = None
    limit: int = sent(50)
    cursor: SessionSearchCursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 200:
            raise ValueError(f"SessionSearchRequest.limit must be 1 to 200, got {self.limit}")
        if self.display_name == "":
            raise ValueError("SessionSearchRequest.display_name must be None or non-empty")
        if self.statuses is not None and not self.statuses:
            raise ValueError("SessionSearchRequest.statuses must be None (any) or non-empty")


class SessionSummary(WireStruct, frozen=True):
    """One session found by a search."""

    session_id: str
    created_at: dt.datetime
    owner: str
    project_id: str
    checkpoints_count: int
    status: SessionStatus | None = None
    display_name: str | None = None
    user_metadata: dict[str, str] | None = None
    checkpoint_storage_bytes: int | None = None


class SessionSearchResponse(WireStruct, frozen=True):
    """A page of sessions and the cursor of the next one."""

    sessions: list[SessionSummary]
    next_cursor: SessionSearchCursor | None = None


# --- audit log and storage usage ---------------------------------------------


class AuditLogEntry(WireStruct, frozen=True):
    """One audited action."""

    timestamp: dt.datetime
    event: str
    event_details: dict[str, Any] = sent({})
    model_id: str | None = None
    tinker_path: str | None = None
    purpose: str | None = None


class AuditLogResponse(WireStruct, frozen=True):
    """Audit log entries."""

    entries: list[AuditLogEntry]


class GetCurrentCheckpointStorageUsageRequest(WireStruct, frozen=True):
    """Storage usage of one project, or of the whole organization when None."""

    project_id: str | None = None


class CurrentCheckpointStorageUsageItem(WireStruct, frozen=True):
    """Checkpoint storage of one project or user."""

    checkpoint_count: int
    size_bytes: int
    size_gigabytes: float
    project_id: str | None = None
    org_user_urn: str | None = None
    user_email: str | None = None
    user_name: str | None = None
    estimated_monthly_cost_usd: float | None = None

    def __post_init__(self) -> None:
        coerce_floats(self, ("size_gigabytes", "estimated_monthly_cost_usd"))


class CurrentCheckpointStorageUsageResponse(WireStruct, frozen=True):
    """Checkpoint storage usage rows and the effective rate."""

    data: list[CurrentCheckpointStorageUsageItem]
    effective_rate_usd_per_gigabyte_month: float | None = None

    def __post_init__(self) -> None:
        coerce_floats(self, ("effective_rate_usd_per_gigabyte_month",))
