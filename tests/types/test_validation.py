"""Bad input fails at construction with an error naming the field, the value and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import tinkex_actors.types as t


def _datum(**inputs):
    return t.Datum(model_input=t.ModelInput.from_ints([1]), loss_fn_inputs=inputs)


class TestTensorValidation:
    def test_unknown_dtype_names_both_allowed_dtypes(self):
        """dtype='int8' is refused with the two wire dtypes listed."""
        with pytest.raises(ValueError, match=r"dtype must be 'int64' or 'float32', got 'int8'"):
            t.TensorData(data=[1], dtype="int8")  # type: ignore[arg-type]

    def test_missing_dtype_is_a_type_error(self):
        """dtype is required, as in the official SDK."""
        with pytest.raises(TypeError, match="dtype is required"):
            t.TensorData(data=[1])

    def test_shape_that_does_not_match_the_data(self):
        """A shape holding 6 values for 4 data values names both counts."""
        with pytest.raises(ValueError, match=r"shape \[2, 3\] holds 6 values but data has 4"):
            t.TensorData(data=[1, 2, 3, 4], dtype="int64", shape=[2, 3])

    def test_negative_dimension(self):
        """A negative dimension is refused."""
        with pytest.raises(ValueError, match="shape must be non-negative"):
            t.TensorData(data=[], dtype="int64", shape=[-1])

    def test_ragged_nested_lists(self):
        """Ragged rows are refused with a hint to pad them."""
        with pytest.raises(ValueError, match="ragged nested lists"):
            t.TensorData(data=[[1, 2], [3]], dtype="float32")

    def test_non_numeric_values(self):
        """Strings are not numbers."""
        with pytest.raises(ValueError, match="must hold numbers"):
            t.TensorData(data=["a"], dtype="float32")  # type: ignore[list-item]

    def test_non_numeric_numpy_array(self):
        """from_numpy of a string array names the numpy dtype."""
        with pytest.raises(ValueError, match="<U1"):
            t.TensorData.from_numpy(np.array(["a"]))

    def test_sparse_needs_both_index_lists_and_a_2d_shape(self):
        """CSR fields come as a pair with a 2-D shape and consistent lengths."""
        with pytest.raises(ValueError, match="come together"):
            t.TensorData(data=[1], dtype="int64", shape=[1, 1], sparse_crow_indices=[0, 1])
        with pytest.raises(ValueError, match="2-D shape"):
            t.TensorData(data=[1], dtype="int64", sparse_crow_indices=[0, 1],
                         sparse_col_indices=[0])
        with pytest.raises(ValueError, match="row pointers"):
            t.TensorData(data=[1], dtype="int64", shape=[2, 2], sparse_crow_indices=[0, 1],
                         sparse_col_indices=[0])


class TestModelInputValidation:
    def test_negative_token_ids(self):
        """A negative token id is refused, from a list or an array."""
        with pytest.raises(ValueError, match=r"negative token id \(-3\)"):
            t.ModelInput.from_ints([1, -3])
        with pytest.raises(ValueError, match="negative token id"):
            t.ModelInput.from_ints(np.array([-1, 2]))

    def test_token_arrays_must_be_1d_integers(self):
        """2-D or float token arrays are refused with a fix."""
        with pytest.raises(ValueError, match="1-D integer array"):
            t.ModelInput.from_ints(np.zeros((2, 2), dtype=np.int64))
        with pytest.raises(ValueError, match="1-D integer array"):
            t.ModelInput.from_ints(np.zeros(2, dtype=np.float32))

    def test_non_int_tokens(self):
        """Mixed token types are refused."""
        with pytest.raises(TypeError, match="must hold ints"):
            t.EncodedTextChunk(tokens=[1, "a"])  # type: ignore[list-item]

    def test_unknown_chunk_type(self):
        """A chunk that is not one of the four chunk types is refused by position."""
        with pytest.raises(TypeError, match=r"chunks\[1\] is a dict"):
            t.ModelInput(chunks=[t.EncodedTextChunk(tokens=[1]), {"type": "video"}])  # type: ignore[list-item]

    def test_unknown_chunk_tag_on_the_wire(self):
        """Decoding an unknown chunk `type` tag fails."""
        import msgspec

        with pytest.raises(msgspec.ValidationError, match="video"):
            t.from_json(b'{"chunks":[{"type":"video","tokens":[]}]}', t.ModelInput)

    def test_image_format_must_be_png_or_jpeg(self):
        """Only png and jpeg are image formats."""
        with pytest.raises(ValueError, match="format must be 'png' or 'jpeg', got 'gif'"):
            t.ImageChunk(data=b"x", format="gif")  # type: ignore[arg-type]

    def test_image_length_needs_expected_tokens(self):
        """length of an image without expected_tokens says what to set."""
        with pytest.raises(ValueError, match="expected_tokens needs to be set"):
            _ = t.ImageChunk(data=b"x", format="png").length


class TestDatumValidation:
    def test_plain_list_under_an_unknown_key(self):
        """A plain list under a key with no known dtype asks for TensorData."""
        with pytest.raises(ValueError, match=r"loss_fn_inputs\['foo'\] is a plain list"):
            _datum(foo=[1, 2])

    def test_ragged_loss_fn_inputs(self):
        """Ragged nested lists under a known key are refused."""
        with pytest.raises(ValueError, match=r"target_tokens.*ragged"):
            _datum(target_tokens=[[1, 2], [3]])

    def test_unsupported_value_type(self):
        """A value that is neither TensorData, array nor list is refused."""
        with pytest.raises(TypeError, match=r"loss_fn_inputs\['weights'\] must be"):
            _datum(weights="heavy")

    def test_model_input_must_be_a_model_input(self):
        """A raw list as model_input points to ModelInput.from_ints."""
        with pytest.raises(TypeError, match="from_ints"):
            t.Datum(model_input=[1, 2])  # type: ignore[arg-type]

    def test_provenance_spans_come_in_pairs(self):
        """Setting one span list without the other is refused."""
        span = t.PromptProvenanceSpan(sequence_id="s", length=1)
        with pytest.raises(ValueError, match="pair"):
            t.Datum(model_input=t.ModelInput.from_ints([1]), model_input_spans=[span])

    def test_with_provenance_checks_the_tiling(self):
        """Spans that do not cover the input exactly are refused."""
        d = _datum(target_tokens=[1])
        span = t.SampledProvenanceSpan(sequence_id="s", length=2)
        with pytest.raises(ValueError, match="cover 2 positions but the field has 1"):
            d.with_provenance(model_input=[span], loss_fn_inputs=[span])

    def test_unknown_loss_function(self):
        """loss_fn must be one of the official names."""
        with pytest.raises(ValueError, match=r"loss_fn must be one of .*got 'mse'"):
            t.ForwardBackwardInput(data=[], loss_fn="mse")  # type: ignore[arg-type]

    def test_loss_fn_config_values_are_numbers_or_text(self):
        """A list in loss_fn_config is refused with its key."""
        with pytest.raises(TypeError, match=r"loss_fn_config\['beta'\]"):
            t.ForwardBackwardInput(data=[], loss_fn="dro", loss_fn_config={"beta": [1]})  # type: ignore[dict-item]


class TestHyperparameterValidation:
    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"learning_rate": -1e-4}, "learning_rate must be >= 0, got -0.0001"),
        ({"beta1": 1.0}, r"beta1 must be in \[0, 1\), got 1.0"),
        ({"beta2": -0.1}, r"beta2 must be in \[0, 1\)"),
        ({"eps": 0}, "eps must be > 0, got 0.0"),
        ({"weight_decay": -1}, "weight_decay and grad_clip_norm must be >= 0"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number, got inf"),
        ({"grad_clip_norm": float("inf")}, "grad_clip_norm must be a finite number, got inf"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number, got nan"),
    ])
    def test_adam_params_out_of_range(self, kwargs, message):
        """Each Adam setting outside its range names itself and the value."""
        with pytest.raises((ValueError, TypeError), match=message):
            t.AdamParams(**kwargs)

    @pytest.mark.parametrize("field", ["learning_rate", "grad_clip_norm", "beta1"])
    def test_dimuon_params_refuse_inf_and_nan(self, field):
        """A Dimuon setting that JSON cannot carry is refused, naming the field."""
        kwargs: dict[str, float] = {"learning_rate": 1e-3}
        for bad in (float("inf"), float("-inf"), float("nan")):
            kwargs[field] = bad
            with pytest.raises(ValueError, match=f"DimuonParams.{field} must be a finite"):
                t.DimuonParams(**kwargs)

    @pytest.mark.parametrize("rank", [0, -8, 1.5, True])
    def test_lora_rank_below_one(self, rank):
        """rank must be an integer >= 1."""
        with pytest.raises(ValueError, match="rank must be an integer >= 1"):
            t.LoraConfig(rank=rank)

    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"temperature": -1}, "temperature must be >= 0"),
        ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
        ({"top_k": -2}, "top_k must be -1"),
        ({"max_tokens": -1}, "max_tokens must be >= 0"),
        ({"stop": ["a", 1]}, "all strings or all token ids"),
        ({"stop": 5}, "stop must be a str"),
        ({"max_tokens": 1.5}, "max_tokens must be an integer, got float 1.5"),
    ])
    def test_sampling_params_out_of_range(self, kwargs, message):
        """Each sampling setting outside its range names itself."""
        with pytest.raises((ValueError, TypeError), match=message):
            t.SamplingParams(**kwargs)

    def test_sample_request_needs_at_least_one_sample(self):
        """num_samples=0 is refused."""
        with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
            t.SampleRequest(prompt=t.ModelInput.empty(), sampling_params=t.SamplingParams(),
                            num_samples=0)

    def test_stop_reason_must_be_known(self):
        """stop_reason is 'length' or 'stop'."""
        with pytest.raises(ValueError, match="stop_reason must be 'length' or 'stop'"):
            t.SampledSequence(stop_reason="eos")  # type: ignore[arg-type]


class TestRequestValidation:
    def test_optim_step_needs_exactly_one_parameter_family(self):
        """Neither or both of adam_params/optimizer_params is refused."""
        with pytest.raises(ValueError, match="exactly one"):
            t.OptimStepRequest(model_id="m")

    def test_load_weights_needs_a_tinker_path(self):
        """A plain name as path points to save_state's tinker:// path."""
        with pytest.raises(ValueError, match="tinker:// path, got 'step-1'"):
            t.LoadWeightsRequest(path="step-1", optimizer=True, model_id="m")

    def test_ttl_must_be_positive(self):
        """ttl_seconds=0 is refused, with None as the never-expires choice."""
        with pytest.raises(ValueError, match=r"ttl_seconds .* got 0"):
            t.SaveWeightsRequest(model_id="m", ttl_seconds=0)

    def test_sampler_kind_is_snapshot_or_inflight(self):
        """kind must be snapshot or inflight."""
        with pytest.raises(ValueError, match="'snapshot' or 'inflight'"):
            t.SaveWeightsForSamplerRequest(model_id="m", kind="live")  # type: ignore[arg-type]

    def test_create_model_needs_a_base_model(self):
        """An empty base_model is refused with a pointer to the capabilities call."""
        with pytest.raises(ValueError, match="get_server_capabilities"):
            t.CreateModelRequest(session_id="s", model_seq_id=0, base_model="")

    def test_bad_tinker_path_names_the_expected_form(self):
        """ParsedCheckpointTinkerPath spells out the path layout."""
        with pytest.raises(ValueError, match="tinker://<run_id>/"):
            t.ParsedCheckpointTinkerPath.from_tinker_path("tinker://run/other/x")

    def test_telemetry_severity_must_be_known(self):
        """An unknown severity is refused."""
        import datetime as dt

        with pytest.raises(ValueError, match="severity must be one of"):
            t.SessionStartEvent(event_id="e", event_session_index=0, severity="LOUD",  # type: ignore[arg-type]
                                timestamp=dt.datetime.now(dt.UTC))

    def test_client_config_sizes_must_be_positive(self):
        """A zero chunk length from a server is refused, naming the flag."""
        with pytest.raises(ValueError, match="fwdbwd_max_chunk_len must be >= 1"):
            t.from_json(b'{"fwdbwd_max_chunk_len": 0}', t.ClientConfigResponse)
