"""REST answers: checkpoints, training runs, sessions, samplers, capabilities, health."""

from __future__ import annotations

import datetime as dt
from typing import Literal, TypeAlias

from ._base import WireStruct, sent
from ._console import split_tinker_path
from ._requests import ModelID

__all__ = [
    "AuthTokenResponse",
    "Checkpoint",
    "CheckpointType",
    "CheckpointsListResponse",
    "Cursor",
    "ExternalWeightsUrlsResponse",
    "GetSamplerResponse",
    "GetServerCapabilitiesResponse",
    "GetSessionResponse",
    "HealthResponse",
    "ListSessionsResponse",
    "ParsedCheckpointTinkerPath",
    "SupportedModel",
    "TrainingRun",
    "TrainingRunsResponse",
    "WhoamiResponse",
]

CheckpointType: TypeAlias = Literal["training", "sampler", "external"]

_SEGMENT_TYPES: dict[str, CheckpointType] = {
    "weights": "training",
    "sampler_weights": "sampler",
    "external_weights": "external",
}


class Checkpoint(WireStruct, frozen=True):
    """One saved checkpoint of a training run."""

    checkpoint_id: str
    checkpoint_type: CheckpointType
    time: dt.datetime
    tinker_path: str
    size_bytes: int | None = None
    public: bool = sent(False)
    user_metadata: dict[str, str] | None = None
    expires_at: dt.datetime | None = None


class ParsedCheckpointTinkerPath(WireStruct, frozen=True):
    """The parts of `tinker://<run_id>/<weights|sampler_weights|external_weights>/<name>`."""

    tinker_path: str
    training_run_id: str
    checkpoint_type: CheckpointType
    checkpoint_id: str

    @classmethod
    def from_tinker_path(cls, tinker_path: str) -> ParsedCheckpointTinkerPath:
        """Parse a tinker path; raises ValueError naming the path when it is malformed."""
        run_id, segment, name = split_tinker_path(tinker_path)
        return cls(
            tinker_path=tinker_path,
            training_run_id=run_id,
            checkpoint_type=_SEGMENT_TYPES[segment],
            checkpoint_id=f"{segment}/{name}",
        )


class Cursor(WireStruct, frozen=True):
    """Pagination: where this page starts, its size, and the total."""

    offset: int
    limit: int
    total_count: int


class CheckpointsListResponse(WireStruct, frozen=True):
    """A page of checkpoints."""

    checkpoints: list[Checkpoint]
    cursor: Cursor | None = None


class TrainingRun(WireStruct, frozen=True):
    """A training run (one trained model) and its latest checkpoints."""

    training_run_id: str
    base_model: str
    model_owner: str
    is_lora: bool
    last_request_time: dt.datetime
    corrupted: bool = sent(False)
    lora_rank: int | None = None
    last_checkpoint: Checkpoint | None = None
    last_sampler_checkpoint: Checkpoint | None = None
    user_metadata: dict[str, str] | None = None


class TrainingRunsResponse(WireStruct, frozen=True):
    """A page of training runs."""

    training_runs: list[TrainingRun]
    cursor: Cursor


class GetSessionResponse(WireStruct, frozen=True):
    """The training runs and samplers of one session."""

    training_run_ids: list[ModelID]
    sampler_ids: list[str]
    user_metadata: dict[str, str] | None = None
    display_name: str | None = None


class ListSessionsResponse(WireStruct, frozen=True):
    """Session ids."""

    sessions: list[str]


class GetSamplerResponse(WireStruct, frozen=True):
    """A sampler (sampling session) and what it samples from."""

    sampler_id: str
    base_model: str
    model_path: str | None = None


class SupportedModel(WireStruct, frozen=True):
    """A model the server offers, with its limits."""

    model_name: str | None = None
    max_context_length: int | None = None
    trainable: bool | None = None
    sampleable: bool | None = None


class GetServerCapabilitiesResponse(WireStruct, frozen=True):
    """`GET get_server_capabilities`."""

    supported_models: list[SupportedModel]


class HealthResponse(WireStruct, frozen=True):
    """`GET healthz`."""

    status: Literal["ok"] = sent("ok")


class WhoamiResponse(WireStruct, frozen=True):
    """The calling principal and its organization."""

    user_urn: str
    org_urn: str
    email: str | None = None


class ExternalWeightsUrlsResponse(WireStruct, frozen=True):
    """Signed download URLs of exported weights, by file path."""

    urls: dict[str, str]
    expires: dt.datetime


class AuthTokenResponse(WireStruct, frozen=True):
    """`POST auth/token`: a JWT for the session."""

    jwt: str


