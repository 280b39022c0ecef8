"""The official SDK's one-module-per-type paths, as aliases of this package's names.

Code written for the official SDK imports a type from its own module
(`from tinker.types.tensor_data import TensorData`). Here the types live in a few
modules by theme, so each official path is registered once, when `types` is
imported, as a small module holding the same objects: both spellings give the same
class. The table lists, per official module, the names it defines.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["register_official_paths"]

_MODULES: dict[str, tuple[str, ...]] = {
    "audit_log_entry": ("AuditLogEntry",),
    "audit_log_response": ("AuditLogResponse",),
    "auth_token_response": ("AuthTokenResponse",),
    "billing_usage_request": ("GetBillingUsageRequest",),
    "billing_usage_response": (
        "BillingEventInfo",
        "BillingUsageEvent",
        "BillingUsageResponse",
        "BillingUsageSession",
        "CheckpointBillingEvent",
        "SamplingPrefillBillingEvent",
        "SamplingSampleBillingEvent",
        "StorageBillingEvent",
        "TrainingBillingEvent",
    ),
    "checkpoint": ("Checkpoint", "CheckpointType"),
    "checkpoints_list_response": ("CheckpointsListResponse",),
    "client_config_request": ("ClientConfigRequest",),
    "client_config_response": ("ClientConfigResponse",),
    "client_dynamic_config_response": ("ClientDynamicConfigResponse",),
    "copy_weights_request": ("CopyWeightsRequest",),
    "copy_weights_response": ("CopyWeightsResponse",),
    "create_custom_loss_request": ("CreateCustomLossRequest",),
    "create_custom_loss_response": ("CreateCustomLossResponse",),
    "create_model_request": ("CreateModelRequest",),
    "create_model_response": ("CreateModelResponse",),
    "create_sampling_session_request": ("CreateSamplingSessionRequest",),
    "create_sampling_session_response": ("CreateSamplingSessionResponse",),
    "create_session_request": ("CreateSessionRequest",),
    "create_session_response": ("CreateSessionResponse",),
    "current_checkpoint_storage_usage_request": ("GetCurrentCheckpointStorageUsageRequest",),
    "current_checkpoint_storage_usage_response": (
        "CurrentCheckpointStorageUsageItem",
        "CurrentCheckpointStorageUsageResponse",
    ),
    "cursor": ("Cursor",),
    "custom_loss_graph": ("CustomLossGraph", "CustomLossNode", "CustomLossNodeOp"),
    "custom_loss_input": ("CustomLossInput", "CustomLossInputRank"),
    "datum": ("Datum",),
    "dmel_chunk": ("DmelChunk",),
    "encoded_text_chunk": ("EncodedTextChunk",),
    "event_type": ("EventType",),
    "external_weights_urls_response": ("ExternalWeightsUrlsResponse",),
    "forward_backward_input": ("ForwardBackwardInput",),
    "forward_backward_output": ("ForwardBackwardOutput",),
    "forward_backward_request": ("ForwardBackwardRequest",),
    "forward_request": ("ForwardRequest",),
    "future_completion": ("FutureCompletion", "FutureFailed", "FutureFinished"),
    "future_retrieve_request": ("FutureRetrieveRequest",),
    "future_retrieve_response": ("FutureRetrieveResponse",),
    "futures_retrieve_request": ("FuturesRetrieveRequest", "SamplingSessionFuturesTarget"),
    "futures_retrieve_response": ("FuturesRetrieveResponse",),
    "generic_event": ("GenericEvent",),
    "get_info_request": ("GetInfoRequest",),
    "get_info_response": ("GetInfoResponse", "ModelData"),
    "get_sampler_response": ("GetSamplerResponse",),
    "get_server_capabilities_response": ("GetServerCapabilitiesResponse", "SupportedModel"),
    "get_session_response": ("GetSessionResponse",),
    "health_response": ("HealthResponse",),
    "image_asset_pointer_chunk": ("ImageAssetPointerChunk",),
    "image_chunk": ("ImageChunk",),
    "join_sampling_session_request": ("JoinSamplingSessionRequest",),
    "join_sampling_session_response": ("JoinSamplingSessionResponse",),
    "list_sessions_response": ("ListSessionsResponse",),
    "load_weights_request": ("LoadWeightsRequest",),
    "load_weights_response": ("LoadWeightsResponse",),
    "lora_config": ("LoraConfig",),
    "loss_fn_inputs": ("LossFnInputs",),
    "loss_fn_output": ("LossFnOutput",),
    "loss_fn_type": ("LossFnType",),
    "model_id": ("ModelID",),
    "model_input": ("ModelInput",),
    "model_input_chunk": ("ModelInputChunk",),
    "optim_step_request": ("AdamParams", "OptimStepRequest"),
    "optim_step_response": ("OptimStepResponse",),
    "optimizer": (
        "AdamOptimizerConfig",
        "AdamParams",
        "DimuonOptimizerConfig",
        "DimuonParams",
        "OptimParams",
        "OptimizerConfig",
    ),
    "prompt_alt_tokens": ("PromptAltTokens",),
    "provenance_spans": ("PromptProvenanceSpan", "ProvenanceSpans", "SampledProvenanceSpan"),
    "request_error_category": ("RequestErrorCategory",),
    "request_failed_response": ("RequestFailedResponse",),
    "request_id": ("RequestID",),
    "sample_request": ("SampleRequest",),
    "sample_response": ("SampleResponse",),
    "sampled_sequence": ("SampledSequence",),
    "sampling_client_kind": ("SamplingClientKind",),
    "sampling_params": ("SamplingParams",),
    "save_weights_external_request": ("SaveWeightsExternalRequest",),
    "save_weights_external_response": (
        "SaveWeightsExternalResponse",
        "SaveWeightsExternalResponseInternal",
    ),
    "save_weights_for_sampler_request": ("SaveWeightsForSamplerRequest",),
    "save_weights_for_sampler_response": (
        "SaveWeightsForSamplerResponse",
        "SaveWeightsForSamplerResponseInternal",
    ),
    "save_weights_request": ("SaveWeightsRequest",),
    "save_weights_response": ("SaveWeightsResponse",),
    "search_owner": ("AccessibleSearchOwner", "OwnSearchOwner", "SearchOwner", "UserSearchOwner"),
    "session_end_event": ("SessionEndEvent",),
    "session_heartbeat_request": ("SessionHeartbeatRequest",),
    "session_heartbeat_response": ("SessionHeartbeatResponse",),
    "session_search_cursor": ("SessionSearchCursor",),
    "session_search_request": ("SessionSearchRequest",),
    "session_search_response": ("SessionSearchResponse",),
    "session_start_event": ("SessionStartEvent",),
    "session_status": (
        "ClientSessionFinishErrored",
        "ClientSessionFinishInterrupted",
        "ClientSessionFinishReason",
        "ClientSessionFinishSuccess",
        "ClientSessionFinished",
        "SessionActive",
        "SessionCancelled",
        "SessionFailed",
        "SessionFailedReason",
        "SessionFailedRequestReason",
        "SessionFailedSamplingSessionReason",
        "SessionFailedTrainingRunReason",
        "SessionStatus",
    ),
    "session_status_query": (
        "ActiveSessionStatusQuery",
        "CancelledSessionStatusQuery",
        "ClientFinishedSessionStatusQuery",
        "ClientSessionFinishReasonType",
        "FailedSessionStatusQuery",
        "SessionStatusQuery",
    ),
    "session_summary": ("SessionSummary",),
    "severity": ("Severity",),
    "stop_reason": ("StopReason",),
    "telemetry_batch": ("TelemetryBatch",),
    "telemetry_event": ("TelemetryEvent",),
    "telemetry_response": ("TelemetryResponse",),
    "telemetry_send_request": ("TelemetrySendRequest",),
    "tensor_data": ("TensorData",),
    "tensor_dtype": ("TensorDtype",),
    "topk_logprobs": ("TopkLogprobs",),
    "training_run": ("TrainingRun",),
    "training_runs_response": ("TrainingRunsResponse",),
    "try_again_response": ("TryAgainResponse",),
    "unhandled_exception_event": ("UnhandledExceptionEvent",),
    "unload_model_request": ("UnloadModelRequest",),
    "unload_model_response": ("UnloadModelResponse",),
    "weights_info_response": ("WeightsInfoResponse",),
    "whoami_response": ("WhoamiResponse",),
}

# Official `tinker.types.shared.untyped_api_future` lives one level deeper.
_NESTED: dict[str, tuple[str, ...]] = {"shared.untyped_api_future": ("UntypedAPIFuture",)}


def register_official_paths(package: ModuleType, namespace: dict[str, Any]) -> None:
    """Register `<package>.<official module>` for every table entry, filled from `namespace`."""
    shared = _alias_module(
        f"{package.__name__}.shared", {"UntypedAPIFuture": namespace["UntypedAPIFuture"]}, package
    )
    for relative, names in (*_MODULES.items(), *_NESTED.items()):
        parent = shared if relative.startswith("shared.") else package
        _alias_module(
            f"{package.__name__}.{relative}", {n: namespace[n] for n in names}, parent
        )


def _alias_module(name: str, values: dict[str, Any], parent: ModuleType) -> ModuleType:
    module = sys.modules.get(name)
    if module is None:
        module = ModuleType(name, f"Alias of the official `{name.split('.', 1)[1]}` path.")
        module.__spec__ = ModuleSpec(name, loader=None)  # importlib.util.find_spec works
        module.__dict__.update(values)
        module.__all__ = sorted(values)  # type: ignore[attr-defined]
        sys.modules[name] = module
    setattr(parent, name.rsplit(".", 1)[1], module)
    return module
