"""tinkex-actors: a supervised-actor client runtime for the Tinker fine-tuning API.

    import tinkex_actors as tx

    with tx.ServiceClient() as service:      # TINKER_API_KEY / TINKER_BASE_URL, or embedded
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=8).result()
        fb = trainer.forward_backward(batch, loss_fn="cross_entropy")
        opt = trainer.optim_step(tx.AdamParams(learning_rate=1e-3))
"""

from __future__ import annotations

from tinkex_actors import errors, telemetry, types
from tinkex_actors._version import __version__
from tinkex_actors.config import Config
from tinkex_actors.futures import CancelledError, Future, FutureTimeoutError
from tinkex_actors.queue_state import QueueState, QueueStateObserver
from tinkex_actors.recovery_log import RecoveryPolicy
from tinkex_actors.rest import RestClient
from tinkex_actors.retry import RetryPolicy
from tinkex_actors.sampling import SamplingClient
from tinkex_actors.service import ClientFuture, ServiceClient
from tinkex_actors.training import TrainingClient
from tinkex_actors.types import (
    AdamParams,
    Datum,
    EncodedTextChunk,
    ForwardBackwardOutput,
    ImageChunk,
    LoraConfig,
    ModelInput,
    SampledSequence,
    SampleResponse,
    SamplingParams,
    TensorData,
)

__all__ = [
    "AdamParams",
    "CancelledError",
    "ClientFuture",
    "Config",
    "Datum",
    "EncodedTextChunk",
    "ForwardBackwardOutput",
    "Future",
    "FutureTimeoutError",
    "ImageChunk",
    "LoraConfig",
    "ModelInput",
    "QueueState",
    "QueueStateObserver",
    "RecoveryPolicy",
    "RestClient",
    "RetryPolicy",
    "SampleResponse",
    "SampledSequence",
    "SamplingClient",
    "SamplingParams",
    "ServiceClient",
    "TensorData",
    "TrainingClient",
    "__version__",
    "errors",
    "telemetry",
    "types",
]
