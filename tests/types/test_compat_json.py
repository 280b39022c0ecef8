"""Our JSON equals the official SDK's for a catalogue of values of every type."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tinkex_actors.types as ours

tinker_types = pytest.importorskip("tinker.types")
from tinker._compat import model_dump  # noqa: E402
from tinker.types._pydantic_types.datum import Datum as OfficialWireDatum  # noqa: E402
from tinker.types._pydantic_types.forward_backward_input import (  # noqa: E402
    ForwardBackwardInput as OfficialWireFBI,
)
from tinker.types._pydantic_types.tensor_data import (  # noqa: E402
    TensorData as OfficialWireTensor,
)
from tinker.types.generic_event import GenericEvent as OfficialGenericEvent  # noqa: E402
from tinker.types.try_again_response import (  # noqa: E402
    TryAgainResponse as OfficialTryAgain,
)

from ._strict import assert_same_json  # noqa: E402

T = tinker_types
UTC = dt.UTC

# Official names we deliberately do not offer, and why.
# (FutureRetrieveResponse, the untagged union of every result type, is offered as a type
# alias for annotations and imports; read_future_response decodes a poll's body.)
LEFT_OUT: set[str] = set()


def official_json(obj: Any) -> Any:
    """The body the official client would send for `obj` (its model_dump rule)."""
    dumped = model_dump(obj, exclude_unset=False, exclude_none=True, mode="json")
    return json.loads(json.dumps(dumped))


def official_tensor(td: Any) -> OfficialWireTensor:
    """The official JSON form of a public TensorData (as its sampling client builds it)."""
    return OfficialWireTensor(
        data=td.data, dtype=td.dtype, shape=td.shape,
        sparse_crow_indices=td.sparse_crow_indices, sparse_col_indices=td.sparse_col_indices,
    )


def ours_json(obj: Any) -> Any:
    return json.loads(ours.to_json(obj))


NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
LATER = NOW + dt.timedelta(hours=1)
PNG = b"\x89PNG\r\n\x1a\n\x00\xff"
BIG = 2**62 + 12345

Case = tuple[Callable[[], Any], Callable[[], Any]]


def _datum_cases() -> dict[str, Case]:
    f32 = np.array([[0.1, 1.0], [2.5, -3.0]], dtype=np.float32)
    return {
        "datum_lists": (
            lambda: ours.Datum(
                model_input=ours.ModelInput.from_ints([1, 2, 3]),
                loss_fn_inputs={"target_tokens": [2, 3, BIG], "weights": [1, 0, 0.5]},
            ),
            lambda: OfficialWireDatum(
                model_input=T.ModelInput.from_ints([1, 2, 3]),
                loss_fn_inputs={"target_tokens": [2, 3, BIG], "weights": [1, 0, 0.5]},
            ),
        ),
        "datum_all_float_keys": (
            lambda: ours.Datum(
                model_input=ours.ModelInput.from_ints([1]),
                loss_fn_inputs={
                    k: [1] for k in ("advantages", "logprobs", "clip_low_threshold",
                                     "clip_high_threshold")
                },
            ),
            lambda: OfficialWireDatum(
                model_input=T.ModelInput.from_ints([1]),
                loss_fn_inputs={
                    k: [1] for k in ("advantages", "logprobs", "clip_low_threshold",
                                     "clip_high_threshold")
                },
            ),
        ),
        "datum_numpy_2d": (
            lambda: ours.Datum(
                model_input=ours.ModelInput.from_ints(np.array([5, 6], dtype=np.int64)),
                loss_fn_inputs={"logprobs": f32, "target_tokens": np.array([1, 2], np.int32)},
            ),
            lambda: OfficialWireDatum(
                model_input=T.ModelInput.from_ints([5, 6]),
                loss_fn_inputs={"logprobs": f32, "target_tokens": np.array([1, 2], np.int32)},
            ),
        ),
        "datum_empty_inputs": (
            lambda: ours.Datum(model_input=ours.ModelInput.empty(), loss_fn_inputs={}),
            lambda: OfficialWireDatum(model_input=T.ModelInput.empty(), loss_fn_inputs={}),
        ),
        "forward_backward_input": (
            lambda: ours.ForwardBackwardInput(
                data=[ours.Datum(model_input=ours.ModelInput.from_ints([1]),
                                 loss_fn_inputs={"target_tokens": [1]})],
                loss_fn="ppo", loss_fn_config={"clip_low_threshold": 1, "mode": "ünï"},
            ),
            lambda: OfficialWireFBI(
                data=[OfficialWireDatum(model_input=T.ModelInput.from_ints([1]),
                                        loss_fn_inputs={"target_tokens": [1]})],
                loss_fn="ppo", loss_fn_config={"clip_low_threshold": 1, "mode": "ünï"},
            ),
        ),
        "forward_backward_input_no_config": (
            lambda: ours.ForwardBackwardInput(data=[], loss_fn="cross_entropy"),
            lambda: OfficialWireFBI(data=[], loss_fn="cross_entropy"),
        ),
    }


def _tensor_cases() -> dict[str, Case]:
    return {
        "tensor_int64_list": (
            lambda: ours.TensorData(data=[1, -2, BIG], dtype="int64"),
            lambda: official_tensor(T.TensorData(data=[1, -2, BIG], dtype="int64")),
        ),
        "tensor_float32_from_ints": (
            lambda: ours.TensorData(data=[1, 2], dtype="float32", shape=[2]),
            lambda: official_tensor(T.TensorData(data=[1, 2], dtype="float32", shape=[2])),
        ),
        "tensor_float32_numpy_2d": (
            lambda: ours.TensorData.from_numpy(np.array([[0.1, 1e-30], [3.5, -0.0]], np.float32)),
            lambda: official_tensor(
                T.TensorData.from_numpy(np.array([[0.1, 1e-30], [3.5, -0.0]], np.float32))
            ),
        ),
        "tensor_empty": (
            lambda: ours.TensorData(data=[], dtype="float32", shape=[0]),
            lambda: official_tensor(T.TensorData(data=[], dtype="float32", shape=[0])),
        ),
        "tensor_sparse": (
            lambda: ours.TensorData(data=[5, 6], dtype="int64", shape=[2, 3],
                                    sparse_crow_indices=[0, 1, 2], sparse_col_indices=[2, 0]),
            lambda: official_tensor(
                T.TensorData(data=[5, 6], dtype="int64", shape=[2, 3],
                             sparse_crow_indices=[0, 1, 2], sparse_col_indices=[2, 0])
            ),
        ),
    }


def _model_input_cases() -> dict[str, Case]:
    return {
        "model_input_tokens": (
            lambda: ours.ModelInput.from_ints([0, 1, BIG]),
            lambda: T.ModelInput.from_ints([0, 1, BIG]),
        ),
        "model_input_numpy_tokens": (
            lambda: ours.ModelInput.from_ints(np.arange(4, dtype=np.int32)),
            lambda: T.ModelInput.from_ints([0, 1, 2, 3]),
        ),
        "model_input_empty": (ours.ModelInput.empty, T.ModelInput.empty),
        "model_input_empty_chunk": (
            lambda: ours.ModelInput.from_ints([]), lambda: T.ModelInput.from_ints([])
        ),
        "model_input_images": (
            lambda: ours.ModelInput(chunks=[
                ours.EncodedTextChunk(tokens=[1]),
                ours.ImageChunk(data=PNG, format="png", expected_tokens=7),
                ours.ImageChunk(data=b"", format="jpeg"),
                ours.ImageAssetPointerChunk(format="png", location="s3://bück/ét.png"),
            ]),
            lambda: T.ModelInput(chunks=[
                T.EncodedTextChunk(tokens=[1]),
                T.ImageChunk(data=PNG, format="png", expected_tokens=7),
                T.ImageChunk(data=b"", format="jpeg"),
                T.ImageAssetPointerChunk(format="png", location="s3://bück/ét.png"),
            ]),
        ),
        "model_input_dmel": (
            lambda: ours.ModelInput(chunks=[ours.DmelChunk(dmel=b"\x01\x02\x05\x03")]),
            lambda: T.ModelInput(chunks=[T.DmelChunk(dmel=b"\x01\x02\x05\x03")]),
        ),
    }


def _training_cases() -> dict[str, Case]:
    return {
        "adam_default": (ours.AdamParams, T.AdamParams),
        "adam_ints": (
            lambda: ours.AdamParams(learning_rate=1, weight_decay=0, grad_clip_norm=1),
            lambda: T.AdamParams(learning_rate=1, weight_decay=0, grad_clip_norm=1),
        ),
        "lora_default": (lambda: ours.LoraConfig(rank=32), lambda: T.LoraConfig(rank=32)),
        "lora_full": (
            lambda: ours.LoraConfig(rank=8, seed=0, train_mlp=False, train_unembed=False),
            lambda: T.LoraConfig(rank=8, seed=0, train_mlp=False, train_unembed=False),
        ),
        "optim_step": (
            lambda: ours.OptimStepRequest(adam_params=ours.AdamParams(), model_id="m", seq_id=3),
            lambda: T.OptimStepRequest(adam_params=T.AdamParams(), model_id="m", seq_id=3),
        ),
        "optim_step_dimuon": (
            lambda: ours.OptimStepRequest(
                optimizer_params=ours.DimuonParams(learning_rate=0.01), model_id="m"
            ),
            lambda: T.OptimStepRequest(
                optim_params=T.DimuonParams(learning_rate=0.01), model_id="m"
            ),
        ),
        "create_model_minimal": (
            lambda: ours.CreateModelRequest(session_id="s", model_seq_id=0, base_model="b"),
            lambda: T.CreateModelRequest(session_id="s", model_seq_id=0, base_model="b"),
        ),
        "create_model_full": (
            lambda: ours.CreateModelRequest(
                session_id="s", model_seq_id=2, base_model="Qwen/Qwen3-8B",
                user_metadata={"ключ": "значение", "n": 1, "none": None, "deep": {"a": [1.5]}},
                lora_config=ours.LoraConfig(rank=32, seed=BIG),
                optimizer_config=ours.DimuonOptimizerConfig(),
            ),
            lambda: T.CreateModelRequest(
                session_id="s", model_seq_id=2, base_model="Qwen/Qwen3-8B",
                user_metadata={"ключ": "значение", "n": 1, "none": None, "deep": {"a": [1.5]}},
                lora_config=T.LoraConfig(rank=32, seed=BIG),
                optimizer_config=T.DimuonOptimizerConfig(),
            ),
        ),
        "create_custom_loss": (
            lambda: ours.CreateCustomLossRequest(
                session_id="s", custom_loss_seq_id=0, name="my loss",
                inputs=[ours.CustomLossInput(name="logprobs", rank=1)],
                graph=ours.CustomLossGraph(nodes=[
                    ours.CustomLossNode(op="placeholder", name="x", target="x"),
                    ours.CustomLossNode(op="call_function", name="y", target="torch.exp",
                                        args=[{"ref": "x"}, 1.0], kwargs={"k": None}),
                ])),
            lambda: T.CreateCustomLossRequest(
                session_id="s", custom_loss_seq_id=0, name="my loss",
                inputs=[T.CustomLossInput(name="logprobs", rank=1)],
                graph=T.CustomLossGraph(nodes=[
                    T.CustomLossNode(op="placeholder", name="x", target="x"),
                    T.CustomLossNode(op="call_function", name="y", target="torch.exp",
                                     args=[{"ref": "x"}, 1.0], kwargs={"k": None}),
                ])),
        ),
        "create_custom_loss_response": (
            lambda: ours.CreateCustomLossResponse(loss_id="l"),
            lambda: T.CreateCustomLossResponse(loss_id="l"),
        ),
        "get_info": (lambda: ours.GetInfoRequest(model_id="m"),
                     lambda: T.GetInfoRequest(model_id="m")),
        "unload_model": (lambda: ours.UnloadModelRequest(model_id="m"),
                         lambda: T.UnloadModelRequest(model_id="m")),
    }


def _weights_cases() -> dict[str, Case]:
    return {
        "save_weights_minimal": (
            lambda: ours.SaveWeightsRequest(model_id="m"),
            lambda: T.SaveWeightsRequest(model_id="m"),
        ),
        "save_weights_full": (
            lambda: ours.SaveWeightsRequest(model_id="m", path="step-1", seq_id=4,
                                            ttl_seconds=3600, overwrite=True,
                                            user_metadata={"é": "ü"}),
            lambda: T.SaveWeightsRequest(model_id="m", path="step-1", seq_id=4,
                                         ttl_seconds=3600, overwrite=True,
                                         user_metadata={"é": "ü"}),
        ),
        "save_for_sampler": (
            lambda: ours.SaveWeightsForSamplerRequest(model_id="m", path="final", seq_id=2),
            lambda: T.SaveWeightsForSamplerRequest(model_id="m", path="final", seq_id=2),
        ),
        "save_for_sampler_ephemeral": (
            lambda: ours.SaveWeightsForSamplerRequest(
                model_id="m", sampling_session_seq_id=1, kind="inflight", seq_id=2),
            lambda: T.SaveWeightsForSamplerRequest(
                model_id="m", sampling_session_seq_id=1, kind="inflight", seq_id=2),
        ),
        "save_external": (
            lambda: ours.SaveWeightsExternalRequest(model_id="m", path="x",
                                                    age_encryption_recipients=["age1x"]),
            lambda: T.SaveWeightsExternalRequest(model_id="m", path="x",
                                                 age_encryption_recipients=["age1x"]),
        ),
        "load_weights_by_model": (
            lambda: ours.LoadWeightsRequest(model_id="m", path="tinker://r/weights/c",
                                            seq_id=1, optimizer=True),
            lambda: T.LoadWeightsRequest(model_id="m", path="tinker://r/weights/c",
                                         seq_id=1, optimizer=True),
        ),
        "load_weights_by_session": (
            lambda: ours.LoadWeightsRequest(session_id="s", model_seq_id=0,
                                            path="tinker://r/weights/c", optimizer=False),
            lambda: T.LoadWeightsRequest(session_id="s", model_seq_id=0,
                                         path="tinker://r/weights/c", optimizer=False),
        ),
        "copy_weights": (
            lambda: ours.CopyWeightsRequest(source_path="tinker://r/weights/c",
                                            destination_project_id="p"),
            lambda: T.CopyWeightsRequest(source_path="tinker://r/weights/c",
                                         destination_project_id="p"),
        ),
    }


def _sampling_cases() -> dict[str, Case]:
    prompt_o, prompt_t = ours.ModelInput.from_ints([1, 2]), T.ModelInput.from_ints([1, 2])
    return {
        "sampling_params_default": (ours.SamplingParams, T.SamplingParams),
        "sampling_params_stop_str": (
            lambda: ours.SamplingParams(max_tokens=16, seed=BIG, stop="\n\n", temperature=0),
            lambda: T.SamplingParams(max_tokens=16, seed=BIG, stop="\n\n", temperature=0),
        ),
        "sampling_params_stop_strs": (
            lambda: ours.SamplingParams(stop=["</s>", "ß"], top_k=50, top_p=0.9),
            lambda: T.SamplingParams(stop=["</s>", "ß"], top_k=50, top_p=0.9),
        ),
        "sampling_params_stop_tokens": (
            lambda: ours.SamplingParams(stop=[0, 2], temperature=1, top_p=1),
            lambda: T.SamplingParams(stop=[0, 2], temperature=1, top_p=1),
        ),
        "sampling_params_whole_floats": (
            lambda: ours.SamplingParams(max_tokens=64.0, seed=np.int64(3), top_k=np.int32(5)),
            lambda: T.SamplingParams(max_tokens=64.0, seed=np.int64(3), top_k=np.int32(5)),
        ),
        "sampling_params_stop_empty": (
            lambda: ours.SamplingParams(stop=[]), lambda: T.SamplingParams(stop=[])
        ),
        "sample_request": (
            lambda: ours.SampleRequest(prompt=prompt_o, sampling_params=ours.SamplingParams(),
                                       sampling_session_id="ss", seq_id=7, num_samples=4),
            lambda: T.SampleRequest(prompt=prompt_t, sampling_params=T.SamplingParams(),
                                    sampling_session_id="ss", seq_id=7, num_samples=4),
        ),
        "sample_request_logprobs": (
            lambda: ours.SampleRequest(
                prompt=prompt_o, sampling_params=ours.SamplingParams(max_tokens=1),
                base_model="b", prompt_logprobs=True, topk_prompt_logprobs=5,
                target_prompt_logprobs=ours.TensorData(data=[3, -1], dtype="int64", shape=[1, 2]),
                prompt_logprobs_last_n=1, record_stability_info=False),
            lambda: T.SampleRequest(
                prompt=prompt_t, sampling_params=T.SamplingParams(max_tokens=1),
                base_model="b", prompt_logprobs=True, topk_prompt_logprobs=5,
                target_prompt_logprobs=OfficialWireTensor(data=[3, -1], dtype="int64",
                                                          shape=[1, 2]),
                prompt_logprobs_last_n=1, record_stability_info=False),
        ),
    }


def _session_cases() -> dict[str, Case]:
    return {
        "create_session": (
            lambda: ours.CreateSessionRequest(tags=["a", "ü"], sdk_version="0.38.0"),
            lambda: T.CreateSessionRequest(tags=["a", "ü"], user_metadata=None,
                                           sdk_version="0.38.0"),
        ),
        "create_session_full": (
            lambda: ours.CreateSessionRequest(tags=[], user_metadata={"k": [1, 2.0]},
                                              sdk_version="x", project_id="p",
                                              display_name="日本"),
            lambda: T.CreateSessionRequest(tags=[], user_metadata={"k": [1, 2.0]},
                                           sdk_version="x", project_id="p",
                                           display_name="日本"),
        ),
        "heartbeat": (lambda: ours.SessionHeartbeatRequest(session_id="s"),
                      lambda: T.SessionHeartbeatRequest(session_id="s")),
        "create_sampling_session": (
            lambda: ours.CreateSamplingSessionRequest(session_id="s", sampling_session_seq_id=0,
                                                      model_path="tinker://r/sampler_weights/x"),
            lambda: T.CreateSamplingSessionRequest(session_id="s", sampling_session_seq_id=0,
                                                   model_path="tinker://r/sampler_weights/x"),
        ),
        "join_sampling_session": (
            lambda: ours.JoinSamplingSessionRequest(sampling_session_id="ss"),
            lambda: T.JoinSamplingSessionRequest(sampling_session_id="ss"),
        ),
        "session_search_default": (ours.SessionSearchRequest, T.SessionSearchRequest),
        "session_search_full": (
            lambda: ours.SessionSearchRequest(
                session_id="s", project_ids=["p"], user_metadata={"k": "v"}, display_name="é",
                owner=ours.UserSearchOwner(owner_urns=["u"]), limit=200,
                statuses=[ours.ActiveSessionStatusQuery(),
                          ours.ClientFinishedSessionStatusQuery(reasons=["errored"])],
                cursor=ours.SessionSearchCursor(last_created_at=NOW, last_session_id="s")),
            lambda: T.SessionSearchRequest(
                session_id="s", project_ids=["p"], user_metadata={"k": "v"}, display_name="é",
                owner=T.UserSearchOwner(owner_urns=["u"]), limit=200,
                statuses=[T.ActiveSessionStatusQuery(),
                          T.ClientFinishedSessionStatusQuery(reasons=["errored"])],
                cursor=T.SessionSearchCursor(last_created_at=NOW, last_session_id="s")),
        ),
        "session_search_variants": (
            lambda: ours.SessionSearchRequest(
                owner=ours.AccessibleSearchOwner(),
                statuses=[ours.CancelledSessionStatusQuery(), ours.FailedSessionStatusQuery(),
                          ours.ClientFinishedSessionStatusQuery()]),
            lambda: T.SessionSearchRequest(
                owner=T.AccessibleSearchOwner(),
                statuses=[T.CancelledSessionStatusQuery(), T.FailedSessionStatusQuery(),
                          T.ClientFinishedSessionStatusQuery()]),
        ),
        "session_search_own": (
            lambda: ours.SessionSearchRequest(owner=ours.OwnSearchOwner(), limit=1),
            lambda: T.SessionSearchRequest(owner=T.OwnSearchOwner(), limit=1),
        ),
        "billing_request": (
            lambda: ours.GetBillingUsageRequest(starting_on=NOW, ending_before=LATER),
            lambda: T.GetBillingUsageRequest(starting_on=NOW, ending_before=LATER),
        ),
        "storage_usage_request": (
            lambda: ours.GetCurrentCheckpointStorageUsageRequest(project_id="p"),
            lambda: T.GetCurrentCheckpointStorageUsageRequest(project_id="p"),
        ),
        "client_config_request": (lambda: ours.ClientConfigRequest(sdk_version="0.38.0"),
                                  lambda: T.ClientConfigRequest(sdk_version="0.38.0")),
        "future_retrieve": (
            lambda: ours.FutureRetrieveRequest(request_id="r"),
            lambda: T.FutureRetrieveRequest(request_id="r"),
        ),
        "future_retrieve_metadata": (
            lambda: ours.FutureRetrieveRequest(request_id="r", allow_metadata_only=True),
            lambda: T.FutureRetrieveRequest(request_id="r", allow_metadata_only=True),
        ),
        "futures_retrieve": (
            lambda: ours.FuturesRetrieveRequest(
                target=ours.SamplingSessionFuturesTarget(sampling_session_id="ss")),
            lambda: T.FuturesRetrieveRequest(
                target=T.SamplingSessionFuturesTarget(sampling_session_id="ss")),
        ),
        "futures_retrieve_full": (
            lambda: ours.FuturesRetrieveRequest(
                target=ours.SamplingSessionFuturesTarget(sampling_session_id="ss",
                                                         cloned_sampler_id=3),
                prev_cursor=9, timeout=0, retrieved_request_ids=["a", "b"]),
            lambda: T.FuturesRetrieveRequest(
                target=T.SamplingSessionFuturesTarget(sampling_session_id="ss",
                                                      cloned_sampler_id=3),
                prev_cursor=9, timeout=0, retrieved_request_ids=["a", "b"]),
        ),
    }


def _telemetry_cases() -> dict[str, Case]:
    common = {"event_id": "e1", "event_session_index": 3, "severity": "INFO", "timestamp": NOW}

    def events(mod: Any) -> list[Any]:
        return [
            mod.SessionStartEvent(event="SESSION_START", **common)
            if mod is T else mod.SessionStartEvent(**common),
            mod.SessionEndEvent(event="SESSION_END", duration="PT1.5S", **common)
            if mod is T else mod.SessionEndEvent(duration="PT1.5S", **common),
            mod.UnhandledExceptionEvent(event="UNHANDLED_EXCEPTION", error_type="E",
                                        error_message="boom ☃", **common)
            if mod is T else mod.UnhandledExceptionEvent(error_type="E",
                                                         error_message="boom ☃", **common),
            OfficialGenericEvent(event="GENERIC_EVENT", event_name="n",
                             event_data={"x": 1, "y": [None, 2.5]}, **common)
            if mod is T else mod.GenericEvent(event_name="n",
                                              event_data={"x": 1, "y": [None, 2.5]}, **common),
            OfficialGenericEvent(event="GENERIC_EVENT", event_name="bare", **common)
            if mod is T else mod.GenericEvent(event_name="bare", **common),
        ]

    def send(mod: Any) -> Any:
        return mod.TelemetrySendRequest(events=events(mod), platform="linux", sdk_version="v",
                                        session_id="s", process_uuid="u")

    return {"telemetry_send": (lambda: send(ours), lambda: send(T))}


def _response_cases() -> dict[str, Case]:
    ckpt = {"checkpoint_id": "weights/c", "checkpoint_type": "training", "time": NOW,
            "tinker_path": "tinker://r/weights/c"}
    run = {"training_run_id": "r", "base_model": "b", "model_owner": "o", "is_lora": True,
           "last_request_time": NOW, "lora_rank": 8}
    return {
        "create_session_response": (
            lambda: ours.CreateSessionResponse(session_id="s", warning_message="w"),
            lambda: T.CreateSessionResponse(session_id="s", warning_message="w"),
        ),
        "create_model_response": (lambda: ours.CreateModelResponse(model_id="m"),
                                  lambda: T.CreateModelResponse(model_id="m")),
        "untyped_future": (
            lambda: ours.UntypedAPIFuture(request_id="r", sample_sequence_ids=["a"]),
            lambda: T.UntypedAPIFuture(request_id="r", sample_sequence_ids=["a"]),
        ),
        "try_again": (
            lambda: ours.TryAgainResponse(request_id="r", queue_state="paused_capacity"),
            lambda: OfficialTryAgain(request_id="r", queue_state="paused_capacity"),
        ),
        "request_failed": (
            lambda: ours.RequestFailedResponse(
                error="bad", category=ours.RequestErrorCategory.User
            ),
            lambda: T.RequestFailedResponse(error="bad", category=T.RequestErrorCategory.User),
        ),
        "client_config_defaults": (ours.ClientConfigResponse, T.ClientConfigResponse),
        "client_dynamic_config": (ours.ClientDynamicConfigResponse,
                                  T.ClientDynamicConfigResponse),
        "checkpoints": (
            lambda: ours.CheckpointsListResponse(
                checkpoints=[ours.Checkpoint(**ckpt), ours.Checkpoint(
                    **ckpt, size_bytes=BIG, public=True, expires_at=NOW)],
                cursor=ours.Cursor(offset=0, limit=2, total_count=5)),
            lambda: T.CheckpointsListResponse(
                checkpoints=[T.Checkpoint(**ckpt), T.Checkpoint(
                    **ckpt, size_bytes=BIG, public=True, expires_at=NOW)],
                cursor=T.Cursor(offset=0, limit=2, total_count=5)),
        ),
        "training_runs": (
            lambda: ours.TrainingRunsResponse(
                training_runs=[ours.TrainingRun(**run, last_checkpoint=ours.Checkpoint(**ckpt))],
                cursor=ours.Cursor(offset=0, limit=1, total_count=1)),
            lambda: T.TrainingRunsResponse(
                training_runs=[T.TrainingRun(**run, last_checkpoint=T.Checkpoint(**ckpt))],
                cursor=T.Cursor(offset=0, limit=1, total_count=1)),
        ),
        "session": (
            lambda: ours.GetSessionResponse(training_run_ids=["m"], sampler_ids=[]),
            lambda: T.GetSessionResponse(training_run_ids=["m"], sampler_ids=[]),
        ),
        "sessions": (lambda: ours.ListSessionsResponse(sessions=["a", "b"]),
                     lambda: T.ListSessionsResponse(sessions=["a", "b"])),
        "sampler": (lambda: ours.GetSamplerResponse(sampler_id="x", base_model="b"),
                    lambda: T.GetSamplerResponse(sampler_id="x", base_model="b")),
        "capabilities": (
            lambda: ours.GetServerCapabilitiesResponse(supported_models=[
                ours.SupportedModel(model_name="tiny", max_context_length=512, trainable=True)]),
            lambda: T.GetServerCapabilitiesResponse(supported_models=[
                T.SupportedModel(model_name="tiny", max_context_length=512, trainable=True)]),
        ),
        "health": (lambda: ours.HealthResponse(status="ok"),
                   lambda: T.HealthResponse(status="ok")),
        "get_info_response": (
            lambda: ours.GetInfoResponse(model_data=ours.ModelData(arch="llama"), model_id="m",
                                         is_lora=True, lora_rank=8),
            lambda: T.GetInfoResponse(model_data=T.ModelData(arch="llama"), model_id="m",
                                      is_lora=True, lora_rank=8),
        ),
        "weights_info": (
            lambda: ours.WeightsInfoResponse(base_model="b", is_lora=True, lora_rank=8),
            lambda: T.WeightsInfoResponse(base_model="b", is_lora=True, lora_rank=8),
        ),
        "save_weights_response": (lambda: ours.SaveWeightsResponse(path="tinker://r/weights/c"),
                                  lambda: T.SaveWeightsResponse(path="tinker://r/weights/c")),
        "save_for_sampler_internal": (
            lambda: ours.SaveWeightsForSamplerResponseInternal(sampling_session_id="ss"),
            lambda: T.SaveWeightsForSamplerResponseInternal(sampling_session_id="ss"),
        ),
        "load_weights_response": (
            lambda: ours.LoadWeightsResponse(path="tinker://r/weights/c", model_id="m"),
            lambda: T.LoadWeightsResponse(path="tinker://r/weights/c", model_id="m"),
        ),
        "optim_step_response": (
            lambda: ours.OptimStepResponse(metrics={"grad_norm:mean": 1}),
            lambda: T.OptimStepResponse(metrics={"grad_norm:mean": 1}),
        ),
        "unload_response": (lambda: ours.UnloadModelResponse(model_id="m"),
                            lambda: T.UnloadModelResponse(model_id="m")),
        "futures_response": (
            lambda: ours.FuturesRetrieveResponse(cursor=4, completions=[
                ours.FutureFinished(request_id="a", response_payload_uncompressed_size=10),
                ours.FutureFailed(request_id="b")]),
            lambda: T.FuturesRetrieveResponse(cursor=4, completions=[
                T.FutureFinished(request_id="a", response_payload_uncompressed_size=10),
                T.FutureFailed(request_id="b")]),
        ),
        "session_search_response": (
            lambda: ours.SessionSearchResponse(sessions=[
                ours.SessionSummary(session_id="s", created_at=NOW, owner="o", project_id="p",
                                    checkpoints_count=2, status=ours.SessionFailed(
                                        category="user", message="m",
                                        reason=ours.SessionFailedRequestReason(
                                            request_id="r", request_type="Sample"))),
                ours.SessionSummary(session_id="t", created_at=NOW, owner="o", project_id="p",
                                    checkpoints_count=0, status=ours.ClientSessionFinished(
                                        reason=ours.ClientSessionFinishInterrupted())),
            ], next_cursor=ours.SessionSearchCursor(last_created_at=NOW, last_session_id="t")),
            lambda: T.SessionSearchResponse(sessions=[
                T.SessionSummary(session_id="s", created_at=NOW, owner="o", project_id="p",
                                 checkpoints_count=2, status=T.SessionFailed(
                                     category="user", message="m",
                                     reason=T.SessionFailedRequestReason(
                                         request_id="r", request_type="Sample"))),
                T.SessionSummary(session_id="t", created_at=NOW, owner="o", project_id="p",
                                 checkpoints_count=0, status=T.ClientSessionFinished(
                                     reason=T.ClientSessionFinishInterrupted())),
            ], next_cursor=T.SessionSearchCursor(last_created_at=NOW, last_session_id="t")),
        ),
        "session_statuses": (
            lambda: _summaries(ours), lambda: _summaries(T),
        ),
        "billing_usage": (lambda: _billing(ours), lambda: _billing(T)),
        "audit_log_time_zones": (
            lambda: ours.AuditLogResponse(entries=[
                ours.AuditLogEntry(timestamp=dt.datetime(2026, 1, 2, 3, 4, 5), event="naive"),
                ours.AuditLogEntry(timestamp=NOW.astimezone(dt.timezone(dt.timedelta(hours=2))),
                                   event="offset")]),
            lambda: T.AuditLogResponse(entries=[
                T.AuditLogEntry(timestamp=dt.datetime(2026, 1, 2, 3, 4, 5), event="naive"),
                T.AuditLogEntry(timestamp=NOW.astimezone(dt.timezone(dt.timedelta(hours=2))),
                                event="offset")]),
        ),
        "lora_numpy_rank": (lambda: ours.LoraConfig(rank=np.int64(16)),
                            lambda: T.LoraConfig(rank=np.int64(16))),
        "audit_log": (
            lambda: ours.AuditLogResponse(entries=[
                ours.AuditLogEntry(timestamp=NOW, event="e"),
                ours.AuditLogEntry(timestamp=NOW, event="e", event_details={"a": [1]},
                                   model_id="m")]),
            lambda: T.AuditLogResponse(entries=[
                T.AuditLogEntry(timestamp=NOW, event="e"),
                T.AuditLogEntry(timestamp=NOW, event="e", event_details={"a": [1]},
                                model_id="m")]),
        ),
        "storage_usage": (
            lambda: ours.CurrentCheckpointStorageUsageResponse(data=[
                ours.CurrentCheckpointStorageUsageItem(checkpoint_count=1, size_bytes=BIG,
                                                       size_gigabytes=2)]),
            lambda: T.CurrentCheckpointStorageUsageResponse(data=[
                T.CurrentCheckpointStorageUsageItem(checkpoint_count=1, size_bytes=BIG,
                                                    size_gigabytes=2)]),
        ),
        "whoami": (lambda: ours.WhoamiResponse(user_urn="u", org_urn="o"),
                   lambda: T.WhoamiResponse(user_urn="u", org_urn="o")),
    }


def _summaries(mod: Any) -> Any:
    """One session summary per status variant, built with `mod`'s types."""
    statuses = [
        mod.SessionActive(), mod.SessionCancelled(detail="d"), mod.SessionCancelled(),
        mod.ClientSessionFinished(reason=mod.ClientSessionFinishSuccess()),
        mod.ClientSessionFinished(reason=mod.ClientSessionFinishErrored(), detail="x"),
        mod.SessionFailed(category="internal", message="m",
                          reason=mod.SessionFailedTrainingRunReason(training_run_id="r")),
        mod.SessionFailed(category="user", message="m",
                          reason=mod.SessionFailedSamplingSessionReason(sampling_session_id="s")),
        None,
    ]
    return mod.SessionSearchResponse(sessions=[
        mod.SessionSummary(session_id=str(i), created_at=NOW, owner="o", project_id="p",
                           checkpoints_count=i, status=status, checkpoint_storage_bytes=BIG)
        for i, status in enumerate(statuses)
    ])


def _billing(mod: Any) -> Any:
    """A usage answer with every billing event kind, built with `mod`'s types."""
    infos = [
        mod.TrainingBillingEvent(token_count=BIG),
        mod.SamplingPrefillBillingEvent(cached=True, token_count=1),
        mod.SamplingSampleBillingEvent(token_count=2),
        mod.CheckpointBillingEvent(count=3),
        mod.StorageBillingEvent(gigabyte_hours=1, free=True),
        mod.StorageBillingEvent(gigabyte_hours=0.25),
    ]
    return mod.BillingUsageResponse(
        data=[mod.BillingUsageEvent(bucket_start=NOW, bucket_end=NOW, event_info=info,
                                    estimated_cost_usd=i or None, session_id="s")
              for i, info in enumerate(infos)],
        sessions={"s": mod.BillingUsageSession(user_metadata={"k": "v"})},
    )


CATALOGUE: dict[str, Case] = {
    **_tensor_cases(), **_model_input_cases(), **_datum_cases(), **_training_cases(),
    **_weights_cases(), **_sampling_cases(), **_session_cases(), **_telemetry_cases(),
    **_response_cases(),
}


class TestJsonMatchesOfficial:
    @pytest.mark.parametrize("name", sorted(CATALOGUE))
    def test_encoded_json_equals_the_official_json(self, name):
        """Same keys, tags, omitted optionals and number kinds as the official dump."""
        build_ours, build_official = CATALOGUE[name]
        assert_same_json(ours_json(build_ours()), official_json(build_official()))

    @pytest.mark.parametrize("name", sorted(CATALOGUE))
    def test_official_types_decode_our_json_to_the_same_value(self, name):
        """The official pydantic type parses our JSON back to an equal object."""
        build_ours, build_official = CATALOGUE[name]
        official = build_official()
        try:
            type(official).model_validate(official_json(official))
        except ValueError:
            pytest.skip("the official type cannot parse its own JSON (required-but-None field)")
        parsed = type(official).model_validate(ours_json(build_ours()))
        assert official_json(parsed) == official_json(official)

    @pytest.mark.parametrize("name", sorted(CATALOGUE))
    def test_our_types_decode_the_official_json_to_the_same_value(self, name):
        """Our decoder reads the official JSON back into a value equal to ours."""
        build_ours, build_official = CATALOGUE[name]
        value = build_ours()
        raw = json.dumps(official_json(build_official())).encode()
        assert ours.from_json(raw, type(value)) == value


class TestForwardRequestsMatchOfficialShape:
    def test_forward_backward_request_nests_the_official_input(self):
        """forward_backward JSON is {forward_backward_input, model_id, seq_id}."""
        fbi = ours.ForwardBackwardInput(data=[], loss_fn="cross_entropy")
        req = ours.ForwardBackwardRequest(forward_backward_input=fbi, model_id="m", seq_id=1)
        expected = {"forward_backward_input": official_json(
            OfficialWireFBI(data=[], loss_fn="cross_entropy")), "model_id": "m", "seq_id": 1}
        assert_same_json(ours_json(req), expected)

    def test_forward_request_leaves_out_a_missing_seq_id(self):
        """forward JSON uses forward_input and omits seq_id when None."""
        fbi = ours.ForwardBackwardInput(data=[], loss_fn="cross_entropy")
        req = ours.ForwardRequest(forward_input=fbi, model_id="m")
        assert set(ours_json(req)) == {"forward_input", "model_id"}


class TestPublicNames:
    def test_every_official_type_name_is_offered_or_listed_as_left_out(self):
        """dir(tinker.types) minus ours is exactly the documented LEFT_OUT set."""
        official = {n for n in dir(T) if not n.startswith("_") and n[0].isupper()}
        missing = official - set(ours.__all__)
        assert missing == LEFT_OUT, f"undocumented gaps: {sorted(missing - LEFT_OUT)}"
        assert not (LEFT_OUT & set(ours.__all__)), "a LEFT_OUT name is offered after all"

    def test_every_exported_struct_appears_in_the_catalogue_or_value_tests(self):
        """The catalogue covers each exported request/response type at least once."""
        import msgspec

        covered = set()
        for build_ours, _ in CATALOGUE.values():
            covered |= _struct_names(build_ours())
        exported = {n for n in ours.__all__
                    if isinstance(getattr(ours, n), type)
                    and issubclass(getattr(ours, n), msgspec.Struct)}
        not_official = {"FutureCompleted", "FutureMetadataOnly", "FuturePending",
                        "WeightsInfoRequest", "ForwardRequest", "ForwardBackwardRequest",
                        "SampledSequence", "SampleResponse", "ForwardBackwardOutput",
                        "PromptAltTokens", "PromptProvenanceSpan", "SampledProvenanceSpan",
                        "ParsedCheckpointTinkerPath", "ExternalWeightsUrlsResponse",
                        "AuthTokenResponse", "CopyWeightsResponse", "TelemetryBatch",
                        "TelemetryResponse", "SaveWeightsExternalResponse",
                        "SaveWeightsExternalResponseInternal", "SaveWeightsForSamplerResponse",
                        "SessionHeartbeatResponse", "CreateSamplingSessionResponse",
                        "JoinSamplingSessionResponse"}
        assert exported - covered <= not_official, sorted(exported - covered - not_official)


def _struct_names(value: Any) -> set[str]:
    import msgspec

    names: set[str] = set()
    if isinstance(value, msgspec.Struct):
        names.add(type(value).__name__)
        for field in value.__struct_fields__:
            names |= _struct_names(getattr(value, field))
    elif isinstance(value, list | tuple):
        for item in value:
            names |= _struct_names(item)
    elif isinstance(value, dict):
        for item in value.values():
            names |= _struct_names(item)
    return names
