"""Billing usage events (`GET billing/usage/events`), a REST extra."""

from __future__ import annotations

import datetime as dt
from typing import TypeAlias

from ._base import TypeTagged, WireStruct, coerce_floats, sent

__all__ = [
    "BillingEventInfo",
    "BillingUsageEvent",
    "BillingUsageResponse",
    "BillingUsageSession",
    "CheckpointBillingEvent",
    "GetBillingUsageRequest",
    "SamplingPrefillBillingEvent",
    "SamplingSampleBillingEvent",
    "StorageBillingEvent",
    "TrainingBillingEvent",
]


class GetBillingUsageRequest(WireStruct, frozen=True):
    """The usage window: hour-aligned UTC bounds, at most 14 days apart."""

    starting_on: dt.datetime
    ending_before: dt.datetime

    def __post_init__(self) -> None:
        if self.ending_before <= self.starting_on:
            raise ValueError(
                f"GetBillingUsageRequest.ending_before ({self.ending_before}) must be after "
                f"starting_on ({self.starting_on})"
            )


class TrainingBillingEvent(TypeTagged, frozen=True, tag="training"):
    """Tokens trained on."""

    token_count: int


class SamplingPrefillBillingEvent(TypeTagged, frozen=True, tag="sampling_prefill"):
    """Prompt tokens prefilled (`cached` ones at the discounted rate)."""

    cached: bool
    token_count: int


class SamplingSampleBillingEvent(TypeTagged, frozen=True, tag="sampling_sample"):
    """Tokens sampled."""

    token_count: int


class CheckpointBillingEvent(TypeTagged, frozen=True, tag="checkpoint"):
    """Checkpoint operations."""

    count: int


class StorageBillingEvent(TypeTagged, frozen=True, tag="storage"):
    """Checkpoint storage used, in gigabyte-hours."""

    gigabyte_hours: float
    free: bool = sent(False)

    def __post_init__(self) -> None:
        coerce_floats(self, ("gigabyte_hours",))


BillingEventInfo: TypeAlias = (
    TrainingBillingEvent | SamplingPrefillBillingEvent | SamplingSampleBillingEvent
    | CheckpointBillingEvent | StorageBillingEvent
)


class BillingUsageEvent(WireStruct, frozen=True):
    """Usage of one kind in one time bucket, with its estimated cost."""

    bucket_start: dt.datetime
    bucket_end: dt.datetime
    event_info: BillingEventInfo
    base_model: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    session_id: str | None = None
    project_id: str | None = None
    estimated_cost_usd: float | None = None
    effective_rate_usd_per_million_tokens: float | None = None
    effective_rate_usd_per_gigabyte_month: float | None = None

    def __post_init__(self) -> None:
        coerce_floats(
            self,
            (
                "estimated_cost_usd",
                "effective_rate_usd_per_million_tokens",
                "effective_rate_usd_per_gigabyte_month",
            ),
        )


class BillingUsageSession(WireStruct, frozen=True):
    """The user metadata of a session named in the usage events."""

    user_metadata: dict[str, str] | None = None


class BillingUsageResponse(WireStruct, frozen=True):
    """Usage events, their sessions, and how far costs are invoice-reconciled."""

    data: list[BillingUsageEvent]
    sessions: dict[str, BillingUsageSession] = sent({})
    cost_data_through: dt.datetime | None = None
