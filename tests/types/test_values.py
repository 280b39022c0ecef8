"""Construction, conversion and zero-copy behaviour of the core value types."""

from __future__ import annotations

import numpy as np
import pytest

from tinkex_actors.types import (
    Datum,
    EncodedTextChunk,
    ImageChunk,
    ModelInput,
    SampledSequence,
    SampleResponse,
    TensorData,
    from_json,
    to_json,
)


class TestModelInput:
    def test_from_ints_and_to_ints_round_trip(self):
        """from_ints builds one text chunk and to_ints gives the same ids back."""
        mi = ModelInput.from_ints([1, 2, 3])
        assert mi.to_ints() == [1, 2, 3]
        assert mi.length == 3

    def test_numpy_tokens_are_kept_without_a_copy(self):
        """A numpy token array is stored as given, not copied into a list."""
        tokens = np.arange(5, dtype=np.int32)
        mi = ModelInput.from_ints(tokens)
        chunk = mi.chunks[0]
        assert isinstance(chunk, EncodedTextChunk)
        assert chunk.tokens is tokens
        assert chunk.tokens_array(np.int32) is tokens
        assert mi.to_ints() == [0, 1, 2, 3, 4]

    def test_append_and_append_int_return_new_inputs(self):
        """append/append_int leave the original untouched, as the official ones do."""
        mi = ModelInput.empty()
        longer = mi.append(EncodedTextChunk(tokens=[7])).append_int(8)
        assert mi.length == 0
        assert longer.to_ints() == [7, 8]
        assert len(longer.chunks) == 2

    def test_image_chunk_length_comes_from_expected_tokens(self):
        """An image counts its expected_tokens toward the length."""
        mi = ModelInput.from_ints([1]).append(
            ImageChunk(data=b"\x89PNG", format="png", expected_tokens=4)
        )
        assert mi.length == 5

    def test_to_ints_refuses_image_chunks(self):
        """to_ints raises when a chunk is not text, naming the chunk types."""
        mi = ModelInput(chunks=[ImageChunk(data=b"x", format="jpeg")])
        with pytest.raises(ValueError, match="ImageChunk"):
            mi.to_ints()


class TestTensorData:
    def test_from_numpy_keeps_a_matching_array_without_copy(self):
        """from_numpy of a contiguous float32 array shares its memory."""
        arr = np.arange(6, dtype=np.float32).reshape(2, 3)
        td = TensorData.from_numpy(arr)
        assert td.dtype == "float32"
        assert td.shape == [2, 3]
        assert np.shares_memory(td.to_numpy(), arr)
        assert td.to_numpy().shape == (2, 3)

    def test_from_numpy_maps_kinds_like_the_official_sdk(self):
        """int32 arrays become int64 tensors and float64 arrays float32 ones."""
        assert TensorData.from_numpy(np.arange(3, dtype=np.int32)).dtype == "int64"
        td = TensorData.from_numpy(np.array([0.5], dtype=np.float64))
        assert td.dtype == "float32"
        assert td.to_numpy().dtype == np.float32

    def test_tolist_gives_nested_lists_in_the_declared_shape(self):
        """tolist follows the shape."""
        td = TensorData(data=[1, 2, 3, 4], dtype="int64", shape=[2, 2])
        assert td.tolist() == [[1, 2], [3, 4]]

    def test_sparse_csr_densifies_with_the_pad_value(self):
        """A CSR tensor densifies with pad_value in the unlisted cells."""
        td = TensorData(
            data=[5, 6], dtype="int64", shape=[2, 3],
            sparse_crow_indices=[0, 1, 2], sparse_col_indices=[2, 0],
        )
        assert td.tolist(pad_value=-1) == [[-1, -1, 5], [6, -1, -1]]


class TestDatum:
    def test_plain_lists_take_the_dtype_of_their_key(self):
        """target_tokens lists become int64 and weights lists float32."""
        d = Datum(
            model_input=ModelInput.from_ints([1, 2]),
            loss_fn_inputs={"target_tokens": [2, 3], "weights": [1, 0]},
        )
        assert d.loss_fn_inputs["target_tokens"].dtype == "int64"
        assert d.loss_fn_inputs["weights"].dtype == "float32"
        assert d.loss_fn_inputs["weights"].shape == [2]

    def test_all_official_float_keys_become_float32(self):
        """Every float key of the official table maps a list of ints to float32."""
        keys = ["weights", "advantages", "logprobs", "clip_low_threshold",
                "clip_high_threshold", "sequence_ratio_mask"]
        d = Datum(model_input=ModelInput.from_ints([1]), loss_fn_inputs={k: [1] for k in keys})
        assert {d.loss_fn_inputs[k].dtype for k in keys} == {"float32"}

    def test_numpy_values_keep_their_kind(self):
        """A numpy array keeps its kind whatever the key (official rule)."""
        d = Datum(
            model_input=ModelInput.from_ints([1]),
            loss_fn_inputs={"weights": np.array([1, 2], dtype=np.int64)},
        )
        assert d.loss_fn_inputs["weights"].dtype == "int64"


class TestSampling:
    def test_sequence_lists_are_converted_lazily_and_cached(self):
        """tokens/logprobs convert the arrays once and then return the same list."""
        seq = SampledSequence(
            stop_reason="length",
            tokens_np=np.array([4, 5], dtype=np.int32),
            logprobs_np=np.array([-0.5, -1.5], dtype=np.float32),
        )
        assert seq.tokens == [4, 5]
        assert seq.tokens is seq.tokens
        assert seq.logprobs == [-0.5, -1.5]

    def test_prompt_logprobs_nan_reads_as_none_and_encodes_as_null(self):
        """NaN prompt logprobs are None in the list form and null on the wire."""
        resp = SampleResponse(
            sequences=[], prompt_logprobs_np=np.array([np.nan, -2.0], dtype=np.float32)
        )
        assert resp.prompt_logprobs == [None, -2.0]
        assert b'"prompt_logprobs":[null,-2.0]' in to_json(resp)
        back = from_json(to_json(resp), SampleResponse)
        assert back.prompt_logprobs == [None, -2.0]


class TestWireDefaults:
    def test_non_none_defaults_are_sent_and_none_fields_are_left_out(self):
        """rank=32's siblings, num_samples=1 and [] go on the wire; None fields do not."""
        import json

        from tinkex_actors.types import (
            FuturesRetrieveRequest,
            LoraConfig,
            SampleRequest,
            SamplingParams,
            SamplingSessionFuturesTarget,
        )

        lora = json.loads(to_json(LoraConfig(rank=32)))
        assert lora == {"rank": 32, "train_unembed": True, "train_mlp": True, "train_attn": True}
        req = json.loads(to_json(SampleRequest(prompt=ModelInput.empty(),
                                               sampling_params=SamplingParams())))
        assert req["num_samples"] == 1 and req["topk_prompt_logprobs"] == 0
        assert "seq_id" not in req and "prompt_logprobs" not in req
        polls = json.loads(to_json(FuturesRetrieveRequest(
            target=SamplingSessionFuturesTarget(sampling_session_id="s"))))
        assert polls["retrieved_request_ids"] == [] and "timeout" not in polls

    def test_each_instance_gets_its_own_mutable_default(self):
        """A dict default is not shared between two values."""
        from tinkex_actors.types import ForwardBackwardOutput

        a = ForwardBackwardOutput(loss_fn_output_type="x", loss_fn_outputs=[])
        b = ForwardBackwardOutput(loss_fn_output_type="x", loss_fn_outputs=[])
        assert a.metrics is not b.metrics


class TestTagsAsAttributes:
    def test_tags_read_like_the_official_literal_fields(self):
        """.type on chunks and optimizers, .event on telemetry, .state on completions."""
        import datetime as dt

        from tinkex_actors.types import (
            DimuonOptimizerConfig,
            FutureFinished,
            GenericEvent,
            ImageAssetPointerChunk,
        )

        assert ModelInput.from_ints([1]).chunks[0].type == "encoded_text"
        assert ImageAssetPointerChunk(format="png", location="x").type == "image_asset_pointer"
        assert DimuonOptimizerConfig().type == "dimuon"
        event = GenericEvent(event_id="e", event_session_index=0, severity="INFO",
                             timestamp=dt.datetime.now(dt.UTC), event_name="n")
        assert event.event == "GENERIC_EVENT"
        assert FutureFinished(request_id="r").state == "finished"


class TestOptionalTorch:
    def test_torch_conversions_say_torch_is_missing(self):
        """Without torch installed, from_torch/to_torch raise a clear ImportError."""
        pytest.importorskip("numpy")
        try:
            import torch  # noqa: F401
        except ImportError:
            with pytest.raises(ImportError, match="PyTorch is not installed"):
                TensorData(data=[1], dtype="int64").to_torch()
        else:
            pytest.skip("torch is installed; its conversions are not tested here")


class TestNonFiniteValues:
    def test_nan_and_inf_travel_as_null_and_read_back_as_nan(self):
        """Tensors, logprobs and metrics holding NaN/inf encode as null and decode as NaN."""
        import math

        from tinkex_actors.types import ForwardBackwardOutput

        out = ForwardBackwardOutput(
            loss_fn_output_type="ArrayRecord",
            loss_fn_outputs=[{"logprobs": TensorData(data=[np.nan, -np.inf, 1.0],
                                                     dtype="float32")}],
            metrics={"loss:sum": math.nan},
        )
        body = to_json(out)
        assert b"[null,null,1.0]" in body and b'"loss:sum":null' in body
        back = from_json(body, ForwardBackwardOutput)
        assert np.isnan(back.loss_fn_outputs[0]["logprobs"].to_numpy()[:2]).all()
        assert math.isnan(back.metrics["loss:sum"])
        seq = from_json(b'{"stop_reason":"stop","tokens":[1],"logprobs":[null]}',
                        SampledSequence)
        assert seq.logprobs_np is not None and np.isnan(seq.logprobs_np[0])

    def test_null_in_an_int64_tensor_is_refused(self):
        """Integers have no NaN: a null in an int64 tensor is an error naming the field."""
        with pytest.raises(ValueError, match=r"TensorData\.data holds None"):
            TensorData(data=[1, None], dtype="int64")  # type: ignore[list-item]

    def test_frombuffer_arrays_are_used_without_a_copy(self):
        """A read-only frombuffer array is kept as the tensor's data (codec fast path)."""
        raw = np.arange(4, dtype=np.float32).tobytes()
        view = np.frombuffer(raw, dtype=np.float32)
        td = TensorData(data=view, dtype="float32", shape=[2, 2])
        assert np.shares_memory(td.data_np, view)
        tokens = np.frombuffer(np.arange(3, dtype=np.int32).tobytes(), dtype=np.int32)
        seq = SampledSequence(stop_reason="stop", tokens_np=tokens)
        assert seq.tokens_np is tokens


class TestPickling:
    def test_values_survive_pickle_and_deepcopy(self):
        """Values cross process boundaries (pickle) and deep-copy intact, arrays included."""
        import copy
        import pickle

        seq = SampledSequence(stop_reason="stop", tokens_np=np.arange(3, dtype=np.int32))
        _ = seq.tokens  # a cached list must not break pickling
        values = [
            seq,
            SampleResponse(sequences=[seq], topk_prompt_logprobs_np=[None, [(1, -0.5)]]),
            Datum(model_input=ModelInput.from_ints([1]), loss_fn_inputs={"weights": [1.0]}),
            ImageChunk(data=b"x", format="png"),
        ]
        for value in values:
            assert pickle.loads(pickle.dumps(value)) == value
            assert copy.deepcopy(value) == value
