"""Futures on the wire: the promise, retrieve_future answers and batched polling.

`read_future_response` sorts one `retrieve_future` JSON answer into what a poller
acts on (see the futures table in the protocol notes): try again, failed,
metadata only, pending, or the result (bare, or wrapped as
`{"status": "completed", "result": ...}`).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

from ._base import WireStruct, coerce_floats, sent, sent_list
from ._requests import CreateModelResponse, OptimStepResponse, UnloadModelResponse
from ._training import ForwardBackwardOutput
from ._weights import (
    LoadWeightsResponse,
    SaveWeightsExternalResponse,
    SaveWeightsForSamplerResponse,
    SaveWeightsResponse,
)

__all__ = [
    "FutureCompleted",
    "FutureCompletion",
    "FutureFailed",
    "FutureFinished",
    "FutureMetadataOnly",
    "FuturePending",
    "FutureRetrieveRequest",
    "FutureRetrieveResponse",
    "FuturesRetrieveRequest",
    "FuturesRetrieveResponse",
    "QueueState",
    "RequestErrorCategory",
    "RequestFailedResponse",
    "RequestID",
    "SamplingSessionFuturesTarget",
    "TryAgainResponse",
    "UntypedAPIFuture",
    "read_future_response",
]

RequestID: TypeAlias = str


class QueueState(enum.StrEnum):
    """Why queued work is (not) moving; any unknown wire value reads as UNKNOWN."""

    ACTIVE = "active"
    PAUSED_RATE_LIMIT = "paused_rate_limit"
    PAUSED_CAPACITY = "paused_capacity"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> QueueState:
        """The state for a wire value; anything unrecognised is UNKNOWN."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.UNKNOWN


class RequestErrorCategory(enum.StrEnum):
    """Who a failed request's error belongs to (official values)."""

    Unknown = "unknown"
    Server = "server"
    User = "user"


if TYPE_CHECKING:
    CategoryField: TypeAlias = RequestErrorCategory
else:
    CategoryField = str  # decoded as text; __post_init__ maps unknown values to Unknown


class FutureRetrieveRequest(WireStruct, frozen=True):
    """`POST retrieve_future`."""

    request_id: RequestID
    allow_metadata_only: bool = sent(False)


class UntypedAPIFuture(WireStruct, frozen=True):
    """The promise an asynchronous endpoint answers with."""

    request_id: RequestID
    model_id: str | None = None
    sample_sequence_ids: list[str] | None = None


class TryAgainResponse(WireStruct, frozen=True):
    """The future is still queued; `queue_state` says why, `retry_after_ms` when to ask."""

    queue_state: str = "unknown"
    request_id: str | None = None
    queue_state_reason: str | None = None
    retry_after_ms: int | None = None
    type: Literal["try_again"] = sent("try_again")

    @property
    def state(self) -> QueueState:
        """The queue state as an enum (unknown wire values read as UNKNOWN)."""
        return QueueState.parse(self.queue_state)


class RequestFailedResponse(WireStruct, frozen=True):
    """The request failed; `category` says whether it is the user's error."""

    error: str
    category: CategoryField = RequestErrorCategory.Unknown

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "category", error_category(self.category))


def error_category(value: object) -> RequestErrorCategory:
    """The category for a wire value; anything unrecognised is Unknown (official rule)."""
    if isinstance(value, RequestErrorCategory):
        return value
    try:
        return RequestErrorCategory(str(value))
    except ValueError:
        return RequestErrorCategory.Unknown


class FutureMetadataOnly(WireStruct, frozen=True):
    """`{"status": "complete_metadata"}`: done, payload too large to inline; fetch it."""

    response_payload_size: int = 0
    status: Literal["complete_metadata"] = sent("complete_metadata")


class FuturePending(WireStruct, frozen=True):
    """`{"status": "pending"}`: not done yet; poll again after a back-off."""

    status: Literal["pending"] = sent("pending")


class FutureCompleted(WireStruct, frozen=True):
    """A completed future's result, still as parsed JSON; `convert` it to its type."""

    result: Any


def read_future_response(
    body: bytes | dict[str, Any],
) -> (
    TryAgainResponse | RequestFailedResponse | FutureMetadataOnly | FuturePending | FutureCompleted
):
    """Classify one `retrieve_future` JSON answer (the order matches the official client)."""
    raw: Any = msgspec.json.decode(body) if isinstance(body, bytes | str) else body
    if not isinstance(raw, dict):
        return FutureCompleted(result=raw)
    if raw.get("type") == "try_again":
        return msgspec.convert(raw, TryAgainResponse)
    status = raw.get("status")
    if status == "complete_metadata":
        return FutureMetadataOnly(response_payload_size=int(raw.get("response_payload_size") or 0))
    if "error" in raw:
        return RequestFailedResponse(
            error=str(raw["error"]), category=error_category(raw.get("category"))
        )
    if status == "pending":
        return FuturePending()
    if status == "completed" and "result" in raw:
        return FutureCompleted(result=raw["result"])
    return FutureCompleted(result=raw)


class FutureFinished(WireStruct, frozen=True, tag="finished", tag_field="state"):
    """A finished request reported by `retrieve_futures`; fetch its payload next."""

    request_id: RequestID
    response_payload_uncompressed_size: int | None = None

    @property
    def state(self) -> Literal["finished"]:
        """Always "finished" (the `state` tag on the wire)."""
        return "finished"


class FutureFailed(WireStruct, frozen=True, tag="failed", tag_field="state"):
    """A failed request reported by `retrieve_futures`; fetch it to read the error."""

    request_id: RequestID

    @property
    def state(self) -> Literal["failed"]:
        """Always "failed" (the `state` tag on the wire)."""
        return "failed"


FutureCompletion: TypeAlias = FutureFinished | FutureFailed


class SamplingSessionFuturesTarget(WireStruct, frozen=True):
    """Poll target: one sampling session (clone `cloned_sampler_id`, 0 for the original)."""

    sampling_session_id: str
    cloned_sampler_id: int = sent(0)
    type: Literal["sampling_session"] = sent("sampling_session")


class FuturesRetrieveRequest(WireStruct, frozen=True):
    """`POST retrieve_futures`: one long poll for every future of a target."""

    target: SamplingSessionFuturesTarget
    prev_cursor: int = sent(0)
    timeout: float | None = None
    retrieved_request_ids: list[str] = sent_list()

    def __post_init__(self) -> None:
        coerce_floats(self, ("timeout",))


class FuturesRetrieveResponse(WireStruct, frozen=True):
    """Completions since `prev_cursor`, and the cursor to pass next time."""

    completions: list[FutureCompletion]
    cursor: int


# What one polled future can hold (official `FutureRetrieveResponse`); the poller reads the
# body with `read_future_response` instead of decoding this union.
FutureRetrieveResponse: TypeAlias = (
    TryAgainResponse
    | ForwardBackwardOutput
    | OptimStepResponse
    | SaveWeightsResponse
    | LoadWeightsResponse
    | SaveWeightsForSamplerResponse
    | SaveWeightsExternalResponse
    | CreateModelResponse
    | UnloadModelResponse
    | RequestFailedResponse
)
