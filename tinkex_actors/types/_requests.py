"""Request and response bodies of the session, model and training endpoints.

Each request carries its literal `type` tag (always sent, as the official SDK
does); each response accepts a missing `type` and ignores unknown fields.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from ._base import Metrics, TypeTagged, WireStruct, coerce_floats, float_dict, sent
from ._training import AdamParams, ForwardBackwardInput, LoraConfig

__all__ = [
    "AdamOptimizerConfig",
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
    "GetInfoRequest",
    "GetInfoResponse",
    "JoinSamplingSessionRequest",
    "JoinSamplingSessionResponse",
    "ModelData",
    "ModelID",
    "OptimParams",
    "OptimStepRequest",
    "OptimStepResponse",
    "OptimizerConfig",
    "SessionHeartbeatRequest",
    "SessionHeartbeatResponse",
    "UnloadModelRequest",
    "UnloadModelResponse",
]

ModelID: TypeAlias = str


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
        coerce_floats(self, ("learning_rate", "grad_clip_norm", "beta1"), finite=True)
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
