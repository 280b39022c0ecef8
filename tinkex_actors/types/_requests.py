"""Request and response bodies of the session, model, training and weights endpoints.

Each request carries its literal `type` tag (always sent, as the official SDK
does); each response accepts a missing `type` and ignores unknown fields.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from ._base import Metrics, TypeTagged, WireStruct, coerce_floats, float_dict, sent
from ._console import checkpoint_console_url, checkpoint_playground_url
from ._futures import RequestFailedResponse, TryAgainResponse
from ._training import AdamParams, ForwardBackwardInput, ForwardBackwardOutput, LoraConfig

__all__ = [
    "AdamOptimizerConfig",
    "CopyWeightsRequest",
    "CopyWeightsResponse",
    "CreateModelRequest",
    "CreateModelResponse",
    "CreateSamplingSessionRequest",
    "CreateSamplingSessionResponse",
    "CreateSessionRequest",
    "CreateSessionResponse",
    "DimuonOptimizerConfig",
    "DimuonParams",
    "ForwardBackwardRequest",
    "ForwardRequest",
    "FutureRetrieveResponse",
    "GetInfoRequest",
    "GetInfoResponse",
    "JoinSamplingSessionRequest",
    "JoinSamplingSessionResponse",
    "LoadWeightsRequest",
    "LoadWeightsResponse",
    "ModelData",
    "ModelID",
    "OptimParams",
    "OptimStepRequest",
    "OptimStepResponse",
    "OptimizerConfig",
    "SamplingClientKind",
    "SaveWeightsExternalRequest",
    "SaveWeightsExternalResponse",
    "SaveWeightsExternalResponseInternal",
    "SaveWeightsForSamplerRequest",
    "SaveWeightsForSamplerResponse",
    "SaveWeightsForSamplerResponseInternal",
    "SaveWeightsRequest",
    "SaveWeightsResponse",
    "SessionHeartbeatRequest",
    "SessionHeartbeatResponse",
    "UnloadModelRequest",
    "UnloadModelResponse",
    "WeightsInfoRequest",
    "WeightsInfoResponse",
]

ModelID: TypeAlias = str
SamplingClientKind: TypeAlias = Literal["snapshot", "inflight"]


def _check_ttl(owner: str, ttl_seconds: int | None) -> None:
    if ttl_seconds is not None and ttl_seconds < 1:
        raise ValueError(
            f"{owner}.ttl_seconds must be a positive number of seconds or None (never "
            f"expires), got {ttl_seconds}"
        )


def _check_seq(owner: str, name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{owner}.{name} must be >= 0, got {value}")


# --- optimizers -------------------------------------------------------------


class AdamOptimizerConfig(TypeTagged, frozen=True, tag="adamw"):
    """Selects AdamW when a model is created (the default)."""


class DimuonOptimizerConfig(TypeTagged, frozen=True, tag="dimuon"):
    """Selects the Dimuon optimizer when a model is created."""

    version: Literal[1] = sent(1)


OptimizerConfig: TypeAlias = AdamOptimizerConfig | DimuonOptimizerConfig


class DimuonParams(TypeTagged, frozen=True, tag="dimuon"):
    """Hyperparameters of one Dimuon optimizer step."""

    learning_rate: float
    grad_clip_norm: float = sent(0.0)
    beta1: float = sent(0.9)

    def __post_init__(self) -> None:
        coerce_floats(self, ("learning_rate", "grad_clip_norm", "beta1"))
        if not self.learning_rate >= 0:
            raise ValueError(f"DimuonParams.learning_rate must be >= 0, got {self.learning_rate}")
        if not 0 <= self.beta1 < 1:
            raise ValueError(f"DimuonParams.beta1 must be in [0, 1), got {self.beta1}")


OptimParams: TypeAlias = AdamParams | DimuonParams


# --- sessions ---------------------------------------------------------------


class CreateSessionRequest(WireStruct, frozen=True):
    """`POST create_session`."""

    tags: list[str]
    sdk_version: str
    user_metadata: dict[str, Any] | None = None
    project_id: str | None = None
    display_name: str | None = None
    type: Literal["create_session"] = sent("create_session")


class CreateSessionResponse(WireStruct, frozen=True):
    """The new session id, with optional messages for the user."""

    session_id: str
    info_message: str | None = None
    warning_message: str | None = None
    error_message: str | None = None
    type: Literal["create_session"] = sent("create_session")


class SessionHeartbeatRequest(WireStruct, frozen=True):
    """`POST session_heartbeat`, every 10 s while the session lives."""

    session_id: str
    type: Literal["session_heartbeat"] = sent("session_heartbeat")


class SessionHeartbeatResponse(WireStruct, frozen=True):
    """The (empty) heartbeat answer."""

    type: Literal["session_heartbeat"] = sent("session_heartbeat")


class CreateSamplingSessionRequest(WireStruct, frozen=True):
    """`POST create_sampling_session` for a base model or a tinker:// model path."""

    session_id: str
    sampling_session_seq_id: int
    base_model: str | None = None
    model_path: str | None = None
    type: Literal["create_sampling_session"] = sent("create_sampling_session")

    def __post_init__(self) -> None:
        _check_seq(
            "CreateSamplingSessionRequest", "sampling_session_seq_id", self.sampling_session_seq_id
        )


class CreateSamplingSessionResponse(WireStruct, frozen=True):
    """The new sampling session id."""

    sampling_session_id: str
    type: Literal["create_sampling_session"] = sent("create_sampling_session")


class JoinSamplingSessionRequest(WireStruct, frozen=True):
    """`POST join_sampling_session`: a clone asks for its client counter."""

    sampling_session_id: str
    type: Literal["join_sampling_session"] = sent("join_sampling_session")


class JoinSamplingSessionResponse(WireStruct, frozen=True):
    """The clone id the server allocated (the original client is 0)."""

    client_counter: int
    type: Literal["join_sampling_session"] = sent("join_sampling_session")


# --- models -----------------------------------------------------------------


class CreateModelRequest(WireStruct, frozen=True):
    """`POST create_model`: a LoRA training model on a base model."""

    session_id: str
    model_seq_id: int
    base_model: str
    user_metadata: dict[str, Any] | None = None
    lora_config: LoraConfig | None = None
    optimizer_config: OptimizerConfig = sent(AdamOptimizerConfig())
    type: Literal["create_model"] = sent("create_model")

    def __post_init__(self) -> None:
        _check_seq("CreateModelRequest", "model_seq_id", self.model_seq_id)
        if not self.base_model:
            raise ValueError(
                "CreateModelRequest.base_model must name a model, e.g. 'Qwen/Qwen3-8B'; "
                "see get_server_capabilities for the supported ones"
            )


class CreateModelResponse(WireStruct, frozen=True):
    """The new model id."""

    model_id: ModelID
    type: Literal["create_model"] = sent("create_model")


class GetInfoRequest(WireStruct, frozen=True):
    """`POST get_info` about a training model."""

    model_id: ModelID
    type: Literal["get_info"] = sent("get_info")


class ModelData(WireStruct, frozen=True):
    """Architecture and tokenizer of a model."""

    arch: str | None = None
    model_name: str | None = None
    tokenizer_id: str | None = None


class GetInfoResponse(WireStruct, frozen=True):
    """What the server knows about a training model."""

    model_data: ModelData
    model_id: ModelID
    optimizer_config: OptimizerConfig = sent(AdamOptimizerConfig())
    is_lora: bool | None = None
    lora_rank: int | None = None
    model_name: str | None = None
    type: Literal["get_info"] | None = None


class UnloadModelRequest(WireStruct, frozen=True):
    """`POST unload_model`: free the model's resources."""

    model_id: ModelID
    type: Literal["unload_model"] = sent("unload_model")


class UnloadModelResponse(WireStruct, frozen=True):
    """The unloaded model id."""

    model_id: ModelID
    type: Literal["unload_model"] | None = None


# --- training ---------------------------------------------------------------


class ForwardRequest(WireStruct, frozen=True):
    """`POST forward` (JSON form): a forward pass only."""

    forward_input: ForwardBackwardInput
    model_id: ModelID
    seq_id: int | None = None


class ForwardBackwardRequest(WireStruct, frozen=True):
    """`POST forward_backward` (JSON form; the official SDK sends it as protobuf)."""

    forward_backward_input: ForwardBackwardInput
    model_id: ModelID
    seq_id: int | None = None


class OptimStepRequest(WireStruct, frozen=True):
    """`POST optim_step`: Adam settings go in `adam_params`, other families in
    `optimizer_params` (the official `optim_params` is sent under one of those keys)."""

    model_id: ModelID
    adam_params: AdamParams | None = None
    optimizer_params: DimuonParams | None = None
    seq_id: int | None = None
    type: Literal["optim_step"] = sent("optim_step")

    def __post_init__(self) -> None:
        if (self.adam_params is None) == (self.optimizer_params is None):
            raise ValueError(
                "OptimStepRequest needs exactly one of adam_params (AdamParams) or "
                "optimizer_params (e.g. DimuonParams)"
            )

    @property
    def optim_params(self) -> OptimParams:
        """The step's hyperparameters, whichever family they belong to."""
        params = self.adam_params if self.adam_params is not None else self.optimizer_params
        assert params is not None
        return params


class OptimStepResponse(WireStruct, frozen=True):
    """Metrics of an optimizer step."""

    metrics: Metrics | None = None

    def __post_init__(self) -> None:
        float_dict(self, "metrics")


# --- weights ----------------------------------------------------------------


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
