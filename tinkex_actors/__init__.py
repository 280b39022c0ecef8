"""tinkex-actors: a supervised-actor client runtime for the Tinker fine-tuning API.

    import tinkex_actors as tx

    with tx.ServiceClient() as service:      # TINKER_API_KEY / TINKER_BASE_URL, or embedded
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=8).result()
        fb = trainer.forward_backward(batch, loss_fn="cross_entropy")
        opt = trainer.optim_step(tx.AdamParams(learning_rate=1e-3))
"""

from __future__ import annotations

from httpx import Timeout

from tinkex_actors import auth, errors, lib, telemetry, types
from tinkex_actors._version import __version__
from tinkex_actors.clients.sampling import SamplingClient
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.config import Config
from tinkex_actors.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestFailedError,
    TinkerError,
    UnprocessableEntityError,
)
from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.futures.future import CancelledError, Future, FutureTimeoutError
from tinkex_actors.futures.queue_state import QueueState, QueueStateObserver
from tinkex_actors.lib.experimental import ExperimentalWarning
from tinkex_actors.lib.public_interfaces import (
    AdminClient,
    APIFuture,
    BackcompatSamplingClientFuture,
    BackcompatTrainingClientFuture,
    LossHandle,
    PerDatumLossFn,
)
from tinkex_actors.recovery.log import RecoveryPolicy
from tinkex_actors.request_options import RequestOptions
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.service.service_client import ServiceClient
from tinkex_actors.transport.retry import RetryPolicy
from tinkex_actors.types import (
    AdamOptimizerConfig,
    AdamParams,
    Checkpoint,
    CheckpointType,
    Datum,
    DimuonOptimizerConfig,
    DimuonParams,
    DmelChunk,
    EncodedTextChunk,
    ForwardBackwardOutput,
    ImageChunk,
    LoraConfig,
    ModelID,
    ModelInput,
    ModelInputChunk,
    OptimParams,
    OptimStepRequest,
    OptimStepResponse,
    ParsedCheckpointTinkerPath,
    PromptProvenanceSpan,
    SampledProvenanceSpan,
    SampledSequence,
    SampleRequest,
    SampleResponse,
    SamplingParams,
    StopReason,
    TensorData,
    TensorDtype,
    TrainingRun,
)

__title__ = "tinkex_actors"
del annotations  # the __future__ feature object, not part of the API

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIFuture",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AdamOptimizerConfig",
    "AdamParams",
    "AdminClient",
    "AuthenticationError",
    "BackcompatSamplingClientFuture",
    "BackcompatTrainingClientFuture",
    "BadRequestError",
    "BillingError",
    "CancelledError",
    "Checkpoint",
    "CheckpointType",
    "ClientFuture",
    "Config",
    "ConflictError",
    "Datum",
    "DimuonOptimizerConfig",
    "DimuonParams",
    "DmelChunk",
    "EncodedTextChunk",
    "ExperimentalWarning",
    "ForwardBackwardOutput",
    "Future",
    "FutureTimeoutError",
    "ImageChunk",
    "InternalServerError",
    "LoraConfig",
    "LossHandle",
    "ModelID",
    "ModelInput",
    "ModelInputChunk",
    "NotFoundError",
    "OptimParams",
    "OptimStepRequest",
    "OptimStepResponse",
    "ParsedCheckpointTinkerPath",
    "PerDatumLossFn",
    "PermissionDeniedError",
    "PromptProvenanceSpan",
    "QueueState",
    "QueueStateObserver",
    "RateLimitError",
    "RecoveryPolicy",
    "RequestFailedError",
    "RequestOptions",
    "RestClient",
    "RetryPolicy",
    "SampleRequest",
    "SampleResponse",
    "SampledProvenanceSpan",
    "SampledSequence",
    "SamplingClient",
    "SamplingParams",
    "ServiceClient",
    "StopReason",
    "TensorData",
    "TensorDtype",
    "Timeout",
    "TinkerError",
    "TrainingClient",
    "TrainingRun",
    "UnprocessableEntityError",
    "__title__",
    "__version__",
    "auth",
    "errors",
    "lib",
    "telemetry",
    "types",
]
