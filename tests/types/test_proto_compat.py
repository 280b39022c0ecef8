"""The binary wire against the official SDK: same messages out, official bytes read back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

tinker_types = pytest.importorskip("tinker.types")
pb = pytest.importorskip("tinker.proto.tinker_public_pb2")
request_conv = pytest.importorskip("tinker.proto.request_conv")
response_conv = pytest.importorskip("tinker.proto.response_conv")

from tinkex_actors import types as tx  # noqa: E402
from tinkex_actors.types import proto  # noqa: E402

OT = tinker_types


def _datum_pair(tokens, inputs, ours_tokens=None, ours_inputs=None):
    """The same datum built with our types and with the official SDK's."""
    ours = tx.Datum(
        model_input=tx.ModelInput.from_ints(tokens if ours_tokens is None else ours_tokens),
        loss_fn_inputs=dict(inputs if ours_inputs is None else ours_inputs),
    )
    official = OT.Datum(model_input=OT.ModelInput.from_ints(tokens), loss_fn_inputs=dict(inputs))
    return ours, official


def _both_requests(pairs, loss_fn="cross_entropy", config=None, model_id="m-1", seq_id=4):
    ours_input = tx.ForwardBackwardInput(
        data=[p[0] for p in pairs], loss_fn=loss_fn, loss_fn_config=config
    )
    official = OT.ForwardBackwardRequest(
        forward_backward_input=OT.ForwardBackwardInput(
            data=[p[1] for p in pairs], loss_fn=loss_fn, loss_fn_config=config
        ),
        model_id=model_id,
        seq_id=seq_id,
    )
    return ours_input, request_conv.forward_backward_request_to_proto(official)


def _parse(message_cls, body):
    message = message_cls()
    message.ParseFromString(body)
    return message


def _assert_tensor_equal(ours, official):
    assert ours.dtype == official.dtype
    assert list(ours.shape) == list(official.shape)
    np.testing.assert_array_equal(ours.to_numpy(), official.to_numpy())
    assert ours.data_np.dtype == official.to_numpy().dtype


class TestForwardBackwardRequestEncoding:
    def test_text_datums_from_lists_parse_to_the_official_message(self):
        """Token lists and plain-list loss inputs encode to the message the SDK builds."""
        pairs = [
            _datum_pair(
                [1, 2, 3, 70_000], {"target_tokens": [2, 3, 4, 5], "weights": [1, 0.5, 0, 1]}
            ),
            _datum_pair([9], {"target_tokens": [10], "weights": [1.0]}),
        ]
        ours_input, official = _both_requests(pairs)
        body = proto.encode_forward_backward_request(ours_input, model_id="m-1", seq_id=4)
        assert _parse(pb.ForwardBackwardRequest, body) == official

    def test_numpy_inputs_and_2d_tensors_parse_to_the_official_message(self):
        """int64 token arrays, float32/int64 2-D tensors keep dtype and shape on the wire."""
        tokens = np.arange(7, dtype=np.int64)
        inputs = {
            "target_tokens": np.arange(6, dtype=np.int64).reshape(2, 3),
            "advantages": np.linspace(-1, 1, 4, dtype=np.float32).reshape(2, 2),
        }
        ours = tx.Datum(model_input=tx.ModelInput.from_ints(tokens), loss_fn_inputs=dict(inputs))
        official = OT.Datum(
            model_input=OT.ModelInput.from_ints(tokens.tolist()), loss_fn_inputs=dict(inputs)
        )
        ours_input, official_msg = _both_requests([(ours, official)], loss_fn="importance_sampling")
        body = proto.encode_forward_backward_request(ours_input, model_id="m-1", seq_id=4)
        assert _parse(pb.ForwardBackwardRequest, body) == official_msg

    def test_a_single_input_request_is_byte_identical_to_the_official_body(self):
        """With no map whose order could differ, our bytes equal the official bytes."""
        pairs = [_datum_pair([5, 6, 7], {"target_tokens": [6, 7, 8]}) for _ in range(3)]
        ours_input, official = _both_requests(pairs)
        body = proto.encode_forward_backward_request(ours_input, model_id="m-1", seq_id=4)
        assert body == official.SerializeToString(deterministic=True)

    def test_empty_tokens_inputs_and_data_parse_to_the_official_message(self):
        """Empty token lists, empty input maps and an empty batch keep their presence bits."""
        pairs = [_datum_pair([], {}), _datum_pair([], {"weights": []})]
        for batch in (pairs, []):
            ours_input, official = _both_requests(batch, model_id="", seq_id=0)
            body = proto.encode_forward_backward_request(ours_input, model_id="", seq_id=0)
            assert _parse(pb.ForwardBackwardRequest, body) == official

    def test_image_and_dmel_chunks_parse_to_the_official_message(self):
        """Image bytes, format and expected_tokens, and dmel bytes go out as the SDK sends them."""
        image = dict(data=b"\x89PNG\x00\xff", format="png", expected_tokens=0)
        ours = tx.Datum(
            model_input=tx.ModelInput(
                chunks=[
                    tx.EncodedTextChunk(tokens=[1]),
                    tx.ImageChunk(**image),
                    tx.ImageChunk(data=b"jpg", format="jpeg"),
                    tx.DmelChunk(dmel=b"\x01\x02"),
                ]
            )
        )
        official = OT.Datum(
            model_input=OT.ModelInput(
                chunks=[
                    OT.EncodedTextChunk(tokens=[1]),
                    OT.ImageChunk(**image),
                    OT.ImageChunk(data=b"jpg", format="jpeg"),
                    OT.DmelChunk(dmel=b"\x01\x02"),
                ]
            )
        )
        ours_input, official_msg = _both_requests([(ours, official)])
        body = proto.encode_forward_backward_request(ours_input, model_id="m-1", seq_id=4)
        assert _parse(pb.ForwardBackwardRequest, body) == official_msg

    def test_provenance_spans_parse_to_the_official_message(self):
        """Prompt and sampled provenance spans take the official oneof arms."""
        ours = tx.Datum(
            model_input=tx.ModelInput.from_ints([1, 2, 3]),
            loss_fn_inputs={"target_tokens": [2, 3, 4]},
        ).with_provenance(
            [
                tx.PromptProvenanceSpan(sequence_id="s1", length=2),
                tx.SampledProvenanceSpan(sequence_id="s2", offset=4, length=1),
            ],
            [tx.SampledProvenanceSpan(sequence_id="s2", offset=0, length=3)],
        )
        official = OT.Datum(
            model_input=OT.ModelInput.from_ints([1, 2, 3]),
            loss_fn_inputs={"target_tokens": [2, 3, 4]},
        ).with_provenance(
            [
                OT.PromptProvenanceSpan(sequence_id="s1", length=2),
                OT.SampledProvenanceSpan(sequence_id="s2", offset=4, length=1),
            ],
            [OT.SampledProvenanceSpan(sequence_id="s2", offset=0, length=3)],
        )
        ours_input, official_msg = _both_requests([(ours, official)])
        body = proto.encode_forward_backward_request(ours_input, model_id="m-1", seq_id=4)
        assert _parse(pb.ForwardBackwardRequest, body) == official_msg

    def test_loss_fn_config_is_dual_written_as_the_sdk_does(self):
        """Numbers go to both maps, strings only to v2, forward_only sets field 6."""
        config = {"clip_low": 0.8, "clip_high": 1.2, "mode": "token", "n": 3.0}
        ours_input, official = _both_requests([_datum_pair([1], {})], "ppo", config)
        official.forward_only = True
        body = proto.encode_forward_backward_request(
            ours_input, model_id="m-1", seq_id=4, forward_only=True
        )
        assert _parse(pb.ForwardBackwardRequest, body) == official

    def test_sparse_csr_tensors_parse_to_the_official_message(self):
        """A sparse CSR loss input carries values, int64 row pointers and column indices."""
        sparse = dict(
            data=[5.0, 7.0],
            dtype="float32",
            shape=[2, 3],
            sparse_crow_indices=[0, 1, 2],
            sparse_col_indices=[2, 0],
        )
        ours = tx.Datum(
            model_input=tx.ModelInput.from_ints([1]),
            loss_fn_inputs={"weights": tx.TensorData(**sparse)},
        )
        official = OT.Datum(
            model_input=OT.ModelInput.from_ints([1]),
            loss_fn_inputs={"weights": OT.TensorData(**sparse)},
        )
        ours_input, official_msg = _both_requests([(ours, official)])
        body = proto.encode_forward_backward_request(ours_input, model_id="m-1", seq_id=4)
        assert _parse(pb.ForwardBackwardRequest, body) == official_msg


datum_values = st.tuples(
    st.lists(st.integers(0, 2**31 - 1), max_size=12),
    st.fixed_dictionaries(
        {},
        optional={
            "target_tokens": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6),
            "weights": st.lists(st.floats(width=32, allow_nan=False), max_size=6),
            "advantages": st.lists(st.floats(width=32, allow_nan=False), max_size=6),
        },
    ),
)


class TestForwardBackwardRequestProperties:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        values=st.lists(datum_values, max_size=4),
        config=st.none()
        | st.dictionaries(
            st.text(max_size=4), st.floats(allow_nan=False) | st.text(max_size=4), max_size=3
        ),
        seq_id=st.integers(-(2**31), 2**31 - 1),
    )
    def test_any_batch_parses_to_the_official_message(self, values, config, seq_id):
        """For random batches and configs our body parses to the message the SDK builds."""
        pairs = [_datum_pair(tokens, inputs) for tokens, inputs in values]
        ours_input, official = _both_requests(pairs, "ppo", config, seq_id=seq_id)
        body = proto.encode_forward_backward_request(ours_input, model_id="m-1", seq_id=seq_id)
        assert _parse(pb.ForwardBackwardRequest, body) == official
        decoded = proto.decode_forward_backward_request(official.SerializeToString())
        # An empty config and no config are the same message on this wire.
        assert decoded.forward_backward_input == tx.ForwardBackwardInput(
            data=ours_input.data, loss_fn="ppo", loss_fn_config=config or None
        )


class TestForwardBackwardRequestDecoding:
    def test_official_bytes_decode_to_the_values_they_were_built_from(self):
        """A body the SDK serialised decodes to a value equal to ours for the same input."""
        config = {"clip_low": 0.8, "mode": "seq"}
        pairs = [
            _datum_pair([1, 2, 3], {"target_tokens": [2, 3, 4], "weights": [1, 1, 0]}),
            _datum_pair([], {"advantages": np.ones((2, 2), dtype=np.float32)}),
        ]
        ours_input, official = _both_requests(pairs, "ppo", config, seq_id=-3)
        official.forward_only = True
        decoded = proto.decode_forward_backward_request(official.SerializeToString())
        # An empty config and no config are the same message on this wire.
        assert decoded.forward_backward_input == tx.ForwardBackwardInput(
            data=ours_input.data, loss_fn="ppo", loss_fn_config=config or None
        )
        assert (decoded.model_id, decoded.seq_id, decoded.forward_only) == ("m-1", -3, True)

    def test_official_image_dmel_sparse_and_spans_decode_to_equal_values(self):
        """Every chunk kind, sparse tensors and provenance spans come back as built."""
        official = pb.ForwardBackwardRequest(model_id="m", seq_id=1, loss_fn="cross_entropy")
        datum = official.data.add()
        datum.model_input.add().image.CopyFrom(pb.ImageChunk(data=b"img", format="png"))
        datum.model_input.add().dmel.dmel = b"\x00\x01"
        tensor = datum.loss_fn_inputs["weights"]
        tensor.dtype = pb.DTYPE_FLOAT32
        tensor.shape.extend([2, 2])
        tensor.sparse_csr.values = np.array([3.0], dtype="<f4").tobytes()
        tensor.sparse_csr.crow_indices = np.array([0, 1, 1], dtype="<i8").tobytes()
        tensor.sparse_csr.col_indices = np.array([1], dtype="<i8").tobytes()
        for field in (datum.model_input_spans, datum.loss_fn_input_spans):
            span = field.add().prompt_tokens
            span.sequence_id, span.offset, span.length = "s", 2, 0
        decoded = proto.decode_forward_backward_request(official.SerializeToString())
        (got,) = decoded.forward_backward_input.data
        assert got.model_input.chunks == [
            tx.ImageChunk(data=b"img", format="png"),
            tx.DmelChunk(dmel=b"\x00\x01"),
        ]
        assert got.loss_fn_inputs["weights"].tolist() == [[0.0, 3.0], [0.0, 0.0]]
        assert got.model_input_spans == [
            tx.PromptProvenanceSpan(sequence_id="s", offset=2, length=0)
        ]

    def test_decoded_arrays_are_views_unless_a_copy_is_asked_for(self):
        """Tokens and tensors share the body's memory by default and own it with copy=True."""
        ours_input, _ = _both_requests([_datum_pair([1, 2], {"weights": [1.0, 2.0]})])
        body = proto.encode_forward_backward_request(ours_input, model_id="m", seq_id=1)
        view = proto.decode_forward_backward_request(body).forward_backward_input.data[0]
        owned = proto.decode_forward_backward_request(body, copy=True).forward_backward_input
        assert not view.model_input.chunks[0].tokens.flags.writeable
        assert owned.data[0].model_input.chunks[0].tokens.flags.writeable
        assert owned.data[0].loss_fn_inputs["weights"].data_np.flags.writeable


def _official_fb_output(records, output_type="ArrayRecord", metrics=None):
    """Build a ForwardBackwardOutput the way a server using the official classes would."""
    message = pb.ForwardBackwardOutput(loss_fn_output_type=output_type)
    for num_datums, fields in records:
        record = message.loss_fn_outputs.add(type_tag=output_type, num_datums=num_datums)
        for name, (arrays, dtype_enum, np_dtype, trailing) in fields.items():
            parts = [np.ascontiguousarray(a, dtype=np_dtype).tobytes() for a in arrays]
            offsets = np.cumsum([0, *[len(p) for p in parts]]).astype("<i8")
            bt = record.fields[name]
            bt.data, bt.offsets, bt.dtype = b"".join(parts), offsets.tobytes(), dtype_enum
            bt.trailing_shape.extend(trailing)
    for name, value in (metrics or {}).items():
        message.metrics[name] = value
    return message.SerializeToString()


def _assert_fb_outputs_equal(ours, official):
    assert ours.loss_fn_output_type == official.loss_fn_output_type
    assert ours.metrics == official.metrics
    assert len(ours.loss_fn_outputs) == len(official.loss_fn_outputs)
    for ours_datum, official_datum in zip(
        ours.loss_fn_outputs, official.loss_fn_outputs, strict=True
    ):
        assert sorted(ours_datum) == sorted(official_datum)  # map order is unspecified
        for name in ours_datum:
            _assert_tensor_equal(ours_datum[name], official_datum[name])


class TestForwardBackwardOutput:
    def test_official_records_decode_like_the_official_reader(self):
        """Float32, int64, int32 and bfloat16 fields, two records, metrics: same values."""
        bf16 = np.array([1.5, -2.0, 0.25], dtype=np.float32).view(np.uint32) >> 16
        records = [
            (
                2,
                {
                    "logprobs": (
                        [np.array([-1.0, -2.0]), np.array([-0.5])],
                        pb.DTYPE_FLOAT32,
                        "<f4",
                        [],
                    ),
                    "ids": (
                        [np.array([[1, 2]]), np.array([[3, 4], [5, 6]])],
                        pb.DTYPE_INT32,
                        "<i4",
                        [2],
                    ),
                    "h": ([bf16[:2], bf16[2:]], pb.DTYPE_BFLOAT16, "<u2", []),
                },
            ),
            (
                1,
                {
                    "logprobs": ([np.array([-3.0])], pb.DTYPE_FLOAT32, "<f4", []),
                    "ids": ([np.array([[7, 8, 9]])], pb.DTYPE_INT64, "<i8", [3]),
                    "h": ([bf16[:1]], pb.DTYPE_BFLOAT16, "<u2", []),
                },
            ),
        ]
        body = _official_fb_output(records, "tinker:ArrayRecord", {"loss:sum": 1.25})
        _assert_fb_outputs_equal(
            proto.decode_forward_backward_output(body),
            response_conv.deserialize_forward_backward_output(body),
        )

    def test_our_bytes_decode_with_the_official_reader_to_our_values(self):
        """The server's encoder writes what the official reader turns back into the same values."""
        outputs = [
            {
                "logprobs": tx.TensorData(data=[-1.0, -2.0], dtype="float32", shape=[2]),
                "ids": tx.TensorData(data=[[1, 2], [3, 4]], dtype="int64", shape=[2, 2]),
            },
            {
                "logprobs": tx.TensorData(data=[], dtype="float32", shape=[0]),
                "ids": tx.TensorData(data=[[5, 6]], dtype="int64", shape=[1, 2]),
            },
            {
                "logprobs": tx.TensorData(data=[0.5], dtype="float32", shape=[1]),
                "ids": tx.TensorData(data=[[1, 2, 3]], dtype="int64", shape=[1, 3]),
            },
        ]
        ours = tx.ForwardBackwardOutput(
            loss_fn_output_type="ArrayRecord", loss_fn_outputs=outputs, metrics={"loss:sum": 2.0}
        )
        body = proto.encode_forward_backward_output(ours)
        assert len(_parse(pb.ForwardBackwardOutput, body).loss_fn_outputs) == 2  # ragged split
        _assert_fb_outputs_equal(ours, response_conv.deserialize_forward_backward_output(body))
        assert proto.decode_forward_backward_output(body) == ours

    def test_empty_outputs_and_missing_num_datums_read_as_the_sdk_reads_them(self):
        """No records gives the default type name; num_datums 0 falls back to the field count."""
        for body in (
            _official_fb_output([], output_type="", metrics={"a": 1.0}),
            _official_fb_output([(0, {"x": ([np.array([1.0])] * 2, pb.DTYPE_FLOAT32, "<f4", [])})]),
        ):
            _assert_fb_outputs_equal(
                proto.decode_forward_backward_output(body),
                response_conv.deserialize_forward_backward_output(body),
            )


def _official_sample_response(rng, n_seqs=3, n_tokens=5, with_topk=True):
    message = pb.SampleResponse(prompt_cache_hit_tokens=7)
    for i in range(n_seqs):
        seq = message.sequences.add(stop_reason=i % 2)
        seq.tokens = rng.integers(0, 50_000, n_tokens, dtype=np.int32).tobytes()
        if i != 1:
            seq.logprobs = rng.standard_normal(n_tokens).astype("<f4").tobytes()
        if with_topk:
            ids = rng.integers(0, 100, (n_tokens, 2), dtype=np.int32)
            lps = rng.standard_normal((n_tokens, 2)).astype("<f4")
            ids[0], lps[0] = 0, -99999.0  # a position with nothing reported
            seq.topk_sampled_logprobs.CopyFrom(
                pb.TopkLogprobs(
                    token_ids=ids.tobytes(), logprobs=lps.tobytes(), k=2, length=n_tokens
                )
            )
    prompt = rng.standard_normal(4).astype("<f4")
    prompt[0] = np.nan
    message.prompt_logprobs = prompt.tobytes()
    ids = rng.integers(0, 100, (4, 3), dtype=np.int32)
    message.topk_prompt_logprobs.CopyFrom(
        pb.TopkLogprobs(
            token_ids=ids.tobytes(), logprobs=np.zeros((4, 3), "<f4").tobytes(), k=3, length=4
        )
    )
    target = message.target_prompt_logprobs
    target.dtype, target.dense = pb.DTYPE_FLOAT32, np.array([0.0, -1.5], "<f4").tobytes()
    target.shape.append(2)
    alt = message.prompt_alt_tokens
    alt.tokens.dtype, alt.tokens.dense = pb.DTYPE_INT64, np.arange(6, dtype="<i8").tobytes()
    alt.tokens.shape.extend([3, 2])
    alt.logprobs.dtype, alt.logprobs.dense = pb.DTYPE_FLOAT32, np.ones(6, "<f4").tobytes()
    alt.logprobs.shape.extend([3, 2])
    return message.SerializeToString()


def _assert_sample_responses_equal(ours, official):
    assert ours.prompt_cache_hit_tokens == official.prompt_cache_hit_tokens
    assert ours.prompt_logprobs == official.prompt_logprobs
    assert ours.topk_prompt_logprobs == official.topk_prompt_logprobs
    for got, want in zip(ours.sequences, official.sequences, strict=True):
        assert got.stop_reason == want.stop_reason
        assert got.tokens == want.tokens
        assert got.logprobs == want.logprobs
        assert got.topk_logprobs == want.topk_logprobs
        assert np.asarray(got.tokens_np).dtype == want.tokens_np.dtype
    for name in ("target_prompt_logprobs",):
        got_t, want_t = getattr(ours, name), getattr(official, name)
        assert (got_t is None) == (want_t is None)
        if got_t is not None:
            _assert_tensor_equal(got_t, want_t)
    assert (ours.prompt_alt_tokens is None) == (official.prompt_alt_tokens is None)
    if ours.prompt_alt_tokens is not None:
        _assert_tensor_equal(ours.prompt_alt_tokens.tokens, official.prompt_alt_tokens.tokens)
        _assert_tensor_equal(ours.prompt_alt_tokens.logprobs, official.prompt_alt_tokens.logprobs)


class TestSampleResponse:
    def test_official_bytes_decode_like_the_official_reader(self):
        """Tokens, logprobs, NaN prompt logprobs, top-k, target and alt tokens: same values."""
        body = _official_sample_response(np.random.default_rng(1))
        ours = proto.decode_sample_response(body)
        _assert_sample_responses_equal(ours, response_conv.deserialize_sample_response(body))
        assert ours.prompt_logprobs[0] is None
        assert ours.sequences[1].logprobs is None

    def test_our_bytes_decode_with_the_official_reader_to_our_values(self):
        """The server's encoder writes what the official reader turns back into the same values."""
        ours = tx.SampleResponse(
            sequences=[
                tx.SampledSequence(
                    stop_reason="length", tokens_np=[1, 2, 3], logprobs_np=[-0.1, -0.2, -0.3]
                ),
                tx.SampledSequence(
                    stop_reason="stop", tokens_np=[4], topk_logprobs_np=[[(4, -0.5), (9, -2.0)]]
                ),
            ],
            prompt_logprobs_np=[None, -1.25, -0.5],
            topk_prompt_logprobs_np=[None, [(1, -0.5)], [(2, -1.0), (3, -2.0)]],
            prompt_cache_hit_tokens=2,
            target_prompt_logprobs=tx.TensorData(data=[0.0, -2.0], dtype="float32", shape=[2]),
            prompt_alt_tokens=tx.PromptAltTokens(
                tokens=tx.TensorData(data=[[1, 2]], dtype="int64", shape=[1, 2]),
                logprobs=tx.TensorData(data=[[-1.0, -2.0]], dtype="float32", shape=[1, 2]),
            ),
        )
        body = proto.encode_sample_response(ours)
        _assert_sample_responses_equal(ours, response_conv.deserialize_sample_response(body))
        assert proto.decode_sample_response(body) == ours

    def test_a_response_is_byte_identical_to_the_official_serialisation(self):
        """SampleResponse has no maps, so our bytes equal the official classes' bytes."""
        body = _official_sample_response(np.random.default_rng(3))
        assert proto.encode_sample_response(proto.decode_sample_response(body)) == body

    def test_an_official_message_with_every_field_reparses_from_our_bytes(self):
        """Decoding official bytes and encoding again gives the same protobuf message."""
        body = _official_sample_response(np.random.default_rng(2))
        again = proto.encode_sample_response(proto.decode_sample_response(body))
        assert _parse(pb.SampleResponse, again) == _parse(pb.SampleResponse, body)
