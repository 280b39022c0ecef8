"""Request and response bodies of the weights endpoints: save, load, describe and copy.

Each request carries its literal `type` tag (always sent, as the official SDK
does); each response accepts a missing `type` and ignores unknown fields.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from ._base import WireStruct, sent
from ._console import checkpoint_console_url, checkpoint_playground_url
from ._requests import AdamOptimizerConfig, ModelID, OptimizerConfig

__all__ = [
    "CopyWeightsRequest",
    "CopyWeightsResponse",
    "LoadWeightsRequest",
    "LoadWeightsResponse",
    "SamplingClientKind",
    "SaveWeightsExternalRequest",
    "SaveWeightsExternalResponse",
    "SaveWeightsExternalResponseInternal",
    "SaveWeightsForSamplerRequest",
    "SaveWeightsForSamplerResponse",
    "SaveWeightsForSamplerResponseInternal",
    "SaveWeightsRequest",
    "SaveWeightsResponse",
    "WeightsInfoRequest",
    "WeightsInfoResponse",
]

SamplingClientKind: TypeAlias = Literal["snapshot", "inflight"]


def _check_ttl(owner: str, ttl_seconds: int | None) -> None:
    if ttl_seconds is not None and ttl_seconds < 1:
        raise ValueError(
            f"{owner}.ttl_seconds must be a positive number of seconds or None (never "
            f"expires), got {ttl_seconds}"
        )


class SaveWeightsRequest(WireStruct, frozen=True):
    """`POST save_weights`: a full training checkpoint (weights and optimizer state)."""

    model_id: ModelID
    path: str | None = None
    seq_id: int | None = None
    ttl_seconds: int | None = None
    overwrite: bool = sent(False)
    user_metadata: dict[str, str] | None = None
    type: Literal["save_weights"] = sent("save_weights")

    def __post_init__(self) -> None:
        _check_ttl("SaveWeightsRequest", self.ttl_seconds)


class SaveWeightsResponse(WireStruct, frozen=True):
    """The tinker:// path of the saved checkpoint."""

    path: str
    type: Literal["save_weights"] | None = None

    def get_console_url(self) -> str:
        """The official console page of this checkpoint (ValueError if `path` is malformed)."""
        return checkpoint_console_url(self.path)


class SaveWeightsForSamplerRequest(WireStruct, frozen=True):
    """`POST save_weights_for_sampler`: weights a sampler can load (or an ephemeral one)."""

    model_id: ModelID
    path: str | None = None
    sampling_session_seq_id: int | None = None
    kind: SamplingClientKind = sent("snapshot")
    seq_id: int | None = None
    ttl_seconds: int | None = None
    user_metadata: dict[str, str] | None = None
    type: Literal["save_weights_for_sampler"] = sent("save_weights_for_sampler")

    def __post_init__(self) -> None:
        _check_ttl("SaveWeightsForSamplerRequest", self.ttl_seconds)
        if self.kind not in ("snapshot", "inflight"):
            raise ValueError(
                f"SaveWeightsForSamplerRequest.kind must be 'snapshot' or 'inflight', "
                f"got {self.kind!r}"
            )


class SaveWeightsForSamplerResponse(WireStruct, frozen=True):
    """The tinker:// path of the sampler weights."""

    path: str
    type: Literal["save_weights_for_sampler"] | None = None

    def get_console_url(self) -> str:
        """The official console page of this sampler checkpoint (ValueError if malformed)."""
        return checkpoint_console_url(self.path)

    def get_playground_url(self) -> str:
        """The official console playground opened on this checkpoint."""
        return checkpoint_playground_url(self.path)


class SaveWeightsForSamplerResponseInternal(WireStruct, frozen=True):
    """The raw answer: a path, or the id of an ephemeral sampling session."""

    path: str | None = None
    sampling_session_id: str | None = None
    type: Literal["save_weights_for_sampler"] | None = None


class SaveWeightsExternalRequest(WireStruct, frozen=True):
    """`POST save_weights_external`: weights exported in an external format."""

    model_id: ModelID
    path: str
    seq_id: int | None = None
    ttl_seconds: int | None = None
    age_encryption_recipients: list[str] | None = None
    type: Literal["save_weights_external"] = sent("save_weights_external")

    def __post_init__(self) -> None:
        _check_ttl("SaveWeightsExternalRequest", self.ttl_seconds)


class SaveWeightsExternalResponse(WireStruct, frozen=True):
    """The tinker:// path of the exported weights."""

    path: str
    type: Literal["save_weights_external"] | None = None


class SaveWeightsExternalResponseInternal(WireStruct, frozen=True):
    """The raw export answer, with its size when known."""

    path: str | None = None
    size_bytes: int | None = None
    type: Literal["save_weights_external"] | None = None


class LoadWeightsRequest(WireStruct, frozen=True):
    """`POST load_weights`: restore weights (and optionally the optimizer state).

    Address the model either by `model_id` + `seq_id` (after create_model) or by
    `session_id` + `model_seq_id` (create-via-load, SDK 0.38).
    """

    path: str
    optimizer: bool
    model_id: ModelID | None = None
    seq_id: int | None = None
    session_id: str | None = None
    model_seq_id: int | None = None
    base_model: str | None = None
    user_metadata: dict[str, Any] | None = None
    optimizer_config: OptimizerConfig | None = None
    weights_access_token: str | None = None
    type: Literal["load_weights"] = sent("load_weights")

    def __post_init__(self) -> None:
        if not self.path.startswith("tinker://"):
            raise ValueError(
                f"LoadWeightsRequest.path must be a tinker:// path, got {self.path!r}; use "
                "the path returned by save_state / save_weights"
            )
        if self.model_id is not None and self.session_id is not None:
            raise ValueError(
                "LoadWeightsRequest takes model_id (+ seq_id) or session_id (+ model_seq_id), "
                "not both"
            )


class LoadWeightsResponse(WireStruct, frozen=True):
    """The loaded path and the model it was loaded onto."""

    path: str | None = None
    model_id: str | None = None
    type: Literal["load_weights"] | None = None


class WeightsInfoRequest(WireStruct, frozen=True):
    """`POST weights_info` body (the official SDK sends this dict inline)."""

    tinker_path: str


class WeightsInfoResponse(WireStruct, frozen=True):
    """What a checkpoint needs to be loaded: base model and LoRA settings."""

    base_model: str
    is_lora: bool
    optimizer_config: OptimizerConfig = sent(AdamOptimizerConfig())
    lora_rank: int | None = None
    train_unembed: bool | None = None
    train_mlp: bool | None = None
    train_attn: bool | None = None


class CopyWeightsRequest(WireStruct, frozen=True):
    """`POST copy_weights`: copy a checkpoint into a session's project or another one."""

    source_path: str
    session_id: str | None = None
    model_seq_id: int | None = None
    destination_project_id: str | None = None
    ttl_seconds: int | None = None
    weights_access_token: str | None = None

    def __post_init__(self) -> None:
        _check_ttl("CopyWeightsRequest", self.ttl_seconds)


class CopyWeightsResponse(WireStruct, frozen=True):
    """The path of the new copy."""

    tinker_path: str
