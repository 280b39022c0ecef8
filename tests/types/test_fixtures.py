"""Decoding recorded official responses (tests/types/data/*.json) with our types."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tinkex_actors.types as ours

DATA = Path(__file__).parent / "data"


def fixture(file: str, name: str) -> bytes:
    """One recorded body, re-serialized as the bytes a server would send."""
    return json.dumps(json.loads((DATA / f"{file}.json").read_text())[name]).encode()


T = pytest.importorskip("tinker.types")

# (file, fixture name) -> (our type, the official pydantic type that also parses it)
TYPED: dict[tuple[str, str], tuple[Any, Any]] = {
    ("futures", "promise"): (ours.UntypedAPIFuture, T.UntypedAPIFuture),
    ("futures", "promise_sample"): (ours.UntypedAPIFuture, T.UntypedAPIFuture),
    ("futures", "futures_batch"): (ours.FuturesRetrieveResponse, T.FuturesRetrieveResponse),
    ("results", "optim_step"): (ours.OptimStepResponse, T.OptimStepResponse),
    ("results", "optim_step_empty"): (ours.OptimStepResponse, T.OptimStepResponse),
    ("results", "save_weights_for_sampler_ephemeral"): (
        ours.SaveWeightsForSamplerResponseInternal, T.SaveWeightsForSamplerResponseInternal),
    ("results", "load_weights"): (ours.LoadWeightsResponse, T.LoadWeightsResponse),
    ("results", "create_model"): (ours.CreateModelResponse, T.CreateModelResponse),
    ("results", "create_model_untyped"): (ours.CreateModelResponse, T.CreateModelResponse),
    ("results", "unload_model"): (ours.UnloadModelResponse, T.UnloadModelResponse),
    ("results", "get_info"): (ours.GetInfoResponse, T.GetInfoResponse),
    ("results", "weights_info"): (ours.WeightsInfoResponse, T.WeightsInfoResponse),
    ("rest", "create_session"): (ours.CreateSessionResponse, T.CreateSessionResponse),
    ("rest", "heartbeat"): (ours.SessionHeartbeatResponse, T.SessionHeartbeatResponse),
    ("rest", "heartbeat_empty"): (ours.SessionHeartbeatResponse, T.SessionHeartbeatResponse),
    ("rest", "create_sampling_session"): (
        ours.CreateSamplingSessionResponse, T.CreateSamplingSessionResponse),
    ("rest", "client_config_empty"): (ours.ClientConfigResponse, T.ClientConfigResponse),
    ("rest", "client_config"): (ours.ClientConfigResponse, T.ClientConfigResponse),
    ("rest", "dynamic_config"): (
        ours.ClientDynamicConfigResponse, T.ClientDynamicConfigResponse),
    ("rest", "capabilities"): (
        ours.GetServerCapabilitiesResponse, T.GetServerCapabilitiesResponse),
    ("rest", "health"): (ours.HealthResponse, T.HealthResponse),
    ("rest", "training_runs"): (ours.TrainingRunsResponse, T.TrainingRunsResponse),
    ("rest", "checkpoints"): (ours.CheckpointsListResponse, T.CheckpointsListResponse),
    ("rest", "session"): (ours.GetSessionResponse, T.GetSessionResponse),
    ("rest", "sessions"): (ours.ListSessionsResponse, T.ListSessionsResponse),
    ("rest", "sampler"): (ours.GetSamplerResponse, T.GetSamplerResponse),
    ("rest", "join_sampling_session"): (
        ours.JoinSamplingSessionResponse, T.JoinSamplingSessionResponse),
    ("rest", "telemetry"): (ours.TelemetryResponse, T.TelemetryResponse),
}


def _official_dump(value: Any) -> Any:
    return json.loads(value.model_dump_json(exclude_none=True))


class TestRecordedResponses:
    @pytest.mark.parametrize("key", sorted(TYPED), ids=lambda k: f"{k[0]}-{k[1]}")
    def test_we_decode_what_the_official_sdk_decodes(self, key):
        """Our decoded value, read back by the official type, equals the official decode."""
        ours_type, official_type = TYPED[key]
        body = fixture(*key)
        decoded = ours.from_json(body, ours_type)
        official = official_type.model_validate_json(body)
        again = official_type.model_validate_json(ours.to_json(decoded))
        assert _official_dump(again) == _official_dump(official)

    def test_missing_client_config_flags_take_the_official_defaults(self):
        """An empty config answer gives every documented default; unknown flags are ignored."""
        cfg = ours.from_json(fixture("rest", "client_config_empty"), ours.ClientConfigResponse)
        assert cfg.fwdbwd_max_chunk_len == 1024
        assert cfg.fwdbwd_max_chunk_bytes_count == 5_000_000
        assert cfg.fwdbwd_dispatch_bytes_semaphore_size == 50_000_000
        assert cfg.sample_dispatch_bytes_semaphore_size == 10 * 1024 * 1024
        assert cfg.inflight_response_bytes_semaphore_size == 50 * 1024 * 1024
        assert cfg.sample_max_concurrent_requests == 2000
        assert cfg.billing_exception_max_pause_duration_sec == 3600
        assert (cfg.parallel_fwdbwd_chunks, cfg.sample_enable_stuck_detection,
                cfg.use_pyqwest_transport) == (True, True, True)
        assert not any((cfg.proto_compress_fwdbwd, cfg.sample_use_retrieve_futures,
                        cfg.sample_no_retries, cfg.custom_loss_server_side,
                        cfg.sample_join_sampling_session, cfg.pjwt_auth_enabled))
        tuned = ours.from_json(fixture("rest", "client_config"), ours.ClientConfigResponse)
        assert tuned.fwdbwd_max_chunk_len == 256 and tuned.sample_use_retrieve_futures

    def test_training_run_times_are_aware_datetimes(self):
        """RFC 3339 timestamps with Z or +00:00 decode to UTC datetimes."""
        runs = ours.from_json(fixture("rest", "training_runs"), ours.TrainingRunsResponse)
        assert runs.training_runs[0].last_request_time == dt.datetime(
            2025, 10, 1, 12, 34, 56, 789000, tzinfo=dt.UTC)
        assert runs.training_runs[1].last_request_time.utcoffset() == dt.timedelta(0)
        assert runs.training_runs[1].last_checkpoint is None


class TestFutureAnswers:
    def test_pending_metadata_and_bare_results_are_told_apart(self):
        """pending, complete_metadata, wrapped and bare results each get their own kind."""
        assert isinstance(ours.read_future_response(fixture("futures", "pending")),
                          ours.FuturePending)
        meta = ours.read_future_response(fixture("futures", "metadata_only"))
        assert isinstance(meta, ours.FutureMetadataOnly)
        assert meta.response_payload_size == 123456
        for name in ("completed_wrapped", "completed_bare"):
            done = ours.read_future_response(fixture("futures", name))
            assert isinstance(done, ours.FutureCompleted)
            path = ours.convert(done.result, ours.SaveWeightsResponse).path
            assert path == "tinker://run-1/weights/step-1"

    def test_try_again_carries_queue_state_reason_and_retry_after(self):
        """try_again keeps queue_state, queue_state_reason and retry_after_ms."""
        full = ours.read_future_response(fixture("futures", "try_again_full"))
        assert isinstance(full, ours.TryAgainResponse)
        assert full.state is ours.QueueState.PAUSED_RATE_LIMIT
        assert full.queue_state_reason == "concurrent training clients rate limit hit"
        assert full.retry_after_ms == 250
        minimal = ours.read_future_response(fixture("futures", "try_again_minimal"))
        assert isinstance(minimal, ours.TryAgainResponse)
        assert (minimal.state, minimal.retry_after_ms) == (ours.QueueState.ACTIVE, None)

    def test_unknown_queue_states_read_as_unknown(self):
        """A queue_state this client does not know is UNKNOWN, not an error."""
        answer = ours.read_future_response(fixture("futures", "try_again_unknown_state"))
        assert isinstance(answer, ours.TryAgainResponse)
        assert answer.state is ours.QueueState.UNKNOWN

    @pytest.mark.parametrize(("name", "category"), [
        ("failed_user", "user"), ("failed_server", "server"),
        ("failed_unknown_category", "unknown"), ("failed_no_category", "unknown"),
    ])
    def test_failures_carry_their_category(self, name, category):
        """Any body with `error` is a failure; odd or missing categories are unknown."""
        answer = ours.read_future_response(fixture("futures", name))
        assert isinstance(answer, ours.RequestFailedResponse)
        assert answer.category == ours.RequestErrorCategory(category)

    def test_the_official_try_again_parses_our_encoding(self):
        """Our try_again JSON is accepted by the official type."""
        from tinker.types.try_again_response import TryAgainResponse

        ours_body = ours.to_json(ours.TryAgainResponse(
            request_id="r", queue_state="paused_capacity", retry_after_ms=5))
        assert TryAgainResponse.model_validate_json(ours_body).queue_state == "paused_capacity"


class TestResultBodies:
    def test_forward_backward_output_decodes_tensors_and_float_metrics(self):
        """Per-datum tensors become arrays; metrics are floats; extra fields ignored."""
        out = ours.from_json(fixture("results", "forward_backward_output"),
                             ours.ForwardBackwardOutput)
        logprobs = out.loss_fn_outputs[0]["logprobs"]
        assert logprobs.to_numpy().dtype == np.float32
        assert logprobs.tolist() == [-0.5, -1.25, -2.0]
        assert out.loss_fn_outputs[0]["elementwise_loss"].shape is None
        assert out.loss_fn_outputs[1]["logprobs"].tolist() == []
        assert out.metrics == {"loss:sum": 3.75, "tokens:sum": 3.0}
        assert all(type(v) is float for v in out.metrics.values())
        bare = ours.from_json(fixture("results", "forward_backward_output_no_metrics"),
                              ours.ForwardBackwardOutput)
        assert bare.metrics == {}

    def test_sample_response_decodes_nulls_topk_and_missing_logprobs(self):
        """Null prompt logprobs read as None/NaN; top-k pairs survive; logprobs may be absent."""
        resp = ours.from_json(fixture("results", "sample_response"), ours.SampleResponse)
        first, second = resp.sequences
        assert first.tokens == [10, 11, 12] and first.sequence_id == "s0"
        assert first.tokens_np.dtype == np.int32
        assert first.logprobs == pytest.approx([-0.1, -0.2, -0.3])
        assert second.logprobs is None and second.stop_reason == "length"
        assert resp.prompt_logprobs == [None, -1.5, -0.25]
        assert math.isnan(resp.prompt_logprobs_np[0])
        assert resp.topk_prompt_logprobs == [None, [(5, -0.5), (6, -1.0)], [(7, -0.125)]]
        assert ours.from_json(fixture("results", "sample_response_minimal"),
                              ours.SampleResponse).sequences == []
