"""The speed paths of the wire types give exactly what the general paths give.

Lists are packed with ``struct`` (numpy's rules when struct refuses), token ids are packed once
per chunk, plain datums and sampled sequences are encoded from cached heads, and repeated
sequence layouts are decoded by comparing bytes. Each is checked against the general path it
shortcuts, or against the official SDK.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinkex_actors import types as tx
from tinkex_actors.types import _pbwire as w
from tinkex_actors.types import proto
from tinkex_actors.types._tensor import pack_flat_list
from tinkex_actors.types.proto import _request_encoding, _sample_encoding

pb = pytest.importorskip("tinker.proto.tinker_public_pb2")
response_conv = pytest.importorskip("tinker.proto.response_conv")

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
I4, I8, F4 = np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32)

int64s = st.integers(-(2**63), 2**63 - 1)
any_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
float32s = st.floats(width=32, allow_nan=True, allow_infinity=True)


class TestListPacking:
    @FAST
    @given(st.lists(int64s, max_size=40))
    def test_a_list_of_ints_packs_to_what_numpy_builds(self, values):
        """int64 packing of ints in range equals numpy's array, and is taken."""
        packed = pack_flat_list(values, I8)
        assert packed is not None
        assert packed.dtype == I8 and packed.flags.c_contiguous and packed.flags.writeable
        assert np.array_equal(packed, np.asarray(values, dtype=np.int64))

    @FAST
    @given(st.lists(st.one_of(any_floats, st.integers(-(2**70), 2**70)), max_size=40))
    def test_a_list_of_numbers_packs_to_float32_as_numpy_does_or_not_at_all(self, values):
        """float32 packing equals numpy's cast whenever struct accepts the values."""
        packed = pack_flat_list(values, F4)
        with np.errstate(over="ignore"):
            expected = np.asarray(values, dtype=np.float64).astype(np.float32)
        if packed is None:
            assert any(
                math.isinf(e) and not math.isinf(float(v))
                for v, e in zip(values, expected.tolist(), strict=True)
            )
        else:
            assert packed.tobytes() == expected.tobytes()

    @FAST
    @given(st.lists(float32s, max_size=40))
    def test_float32_values_always_take_the_struct_path(self, values):
        """Values float32 can hold are packed bit for bit (NaN and infinities included)."""
        packed = pack_flat_list(values, F4)
        assert packed is not None
        assert packed.tobytes() == np.asarray(values, dtype=np.float32).tobytes()

    @pytest.mark.parametrize(
        ("values", "dtype"),
        [
            ([1, 2.5], I8),  # a float among ints
            ([[1, 2], [3, 4]], I8),  # nested
            ([1.0, None], F4),  # null from JSON
            ([2**63], I8),  # past int64
            ([2**31], I4),  # past int32
            (["1"], F4),  # not a number
            ([1e300], F4),  # past float32
        ],
    )
    def test_values_struct_refuses_give_none(self, values, dtype):
        """Anything struct refuses comes back None, for the caller's numpy path."""
        assert pack_flat_list(values, dtype) is None

    def test_lists_struct_refuses_still_follow_numpy_rules(self):
        """None reads as NaN, floats under target_tokens truncate, nested lists keep shape."""
        datum = tx.Datum(
            model_input=tx.ModelInput.from_ints([1, 2]),
            loss_fn_inputs={
                "weights": [1.0, None],
                "target_tokens": [1.9, 2.0],
                "advantages": [[1, 2], [3, 4]],
            },
        )
        weights = datum.loss_fn_inputs["weights"].data
        assert weights[0] == 1.0 and np.isnan(weights[1])
        assert datum.loss_fn_inputs["target_tokens"].tolist() == [1, 2]
        assert datum.loss_fn_inputs["advantages"].shape == [2, 2]

    def test_list_inputs_get_the_official_dtypes_shapes_and_values(self):
        """Lists under known keys match the official Datum's tensors exactly."""
        official = pytest.importorskip("tinker.types")
        inputs = {"target_tokens": [5, 0, 7], "weights": [0.5, 1, True], "logprobs": [-1.5]}
        ours = tx.Datum(model_input=tx.ModelInput.from_ints([1]), loss_fn_inputs=inputs)
        theirs = official.Datum(
            model_input=official.ModelInput.from_ints([1]), loss_fn_inputs=inputs
        )
        for key in inputs:
            mine, other = ours.loss_fn_inputs[key], theirs.loss_fn_inputs[key]
            assert mine.dtype == other.dtype and mine.shape == list(other.shape)
            assert mine.to_numpy().tobytes() == np.asarray(other.to_numpy()).tobytes()

    def test_a_tensor_of_an_unknown_key_still_needs_a_dtype(self):
        """The fast path covers known keys only; others keep the clear error."""
        with pytest.raises(ValueError, match="plain list"):
            tx.Datum(model_input=tx.ModelInput.from_ints([1]), loss_fn_inputs={"mask": [1]})


class TestPackedTokens:
    def test_a_list_is_copied_and_packed_once_read_only(self):
        """tokens is the chunk's own copy of the caller's list; the int32 copy is read-only."""
        tokens = [3, 1, 2]
        chunk = tx.EncodedTextChunk(tokens=tokens)
        assert chunk.tokens == tokens and chunk.tokens is not tokens
        packed = chunk.packed_int32()
        assert packed is not None and packed.dtype == I4 and packed.tolist() == tokens
        with pytest.raises(ValueError, match="read-only"):
            packed[0] = 9

    def test_tokens_array_still_gives_a_fresh_writable_array_for_a_list(self):
        """tokens_array on list tokens never hands out the internal packed array."""
        chunk = tx.EncodedTextChunk(tokens=[1, 2])
        array = chunk.tokens_array(np.int32)
        array[0] = 7
        assert chunk.packed_int32().tolist() == [1, 2]

    def test_an_int32_array_is_used_as_is_and_other_ints_are_converted(self):
        """int32 arrays need no copy; int64 ones get one int32 copy at construction."""
        int32 = np.arange(5, dtype=np.int32)
        assert tx.EncodedTextChunk(tokens=int32).packed_int32() is int32
        int64 = np.arange(5, dtype=np.int64)
        packed = tx.EncodedTextChunk(tokens=int64).packed_int32()
        assert packed is not None and packed.dtype == I4 and packed.tolist() == [0, 1, 2, 3, 4]

    @pytest.mark.parametrize("tokens", [[2**31], np.array([2**31], dtype=np.int64)])
    def test_ids_past_int32_are_accepted_but_not_packed(self, tokens):
        """JSON can carry them; the binary encoder refuses them naming the datum."""
        chunk = tx.EncodedTextChunk(tokens=tokens)
        assert chunk.packed_int32() is None
        assert b"2147483648" in tx.to_json(chunk)
        fb_input = tx.ForwardBackwardInput(
            data=[tx.Datum(model_input=tx.ModelInput(chunks=[chunk]))], loss_fn="cross_entropy"
        )
        with pytest.raises(ValueError, match=r"data\[0\]\.model_input\.chunks\[0\]"):
            proto.encode_forward_backward_request(fb_input, model_id="m", seq_id=1)

    @pytest.mark.parametrize("tokens", [[4, -3], np.array([4, -3])])
    def test_a_negative_id_is_refused_naming_it(self, tokens):
        """The packed check keeps the error of the list check."""
        with pytest.raises(ValueError, match=r"negative token id \(-3\)"):
            tx.EncodedTextChunk(tokens=tokens)

    def test_a_non_int_id_is_refused_naming_the_types(self):
        """A list struct refuses for a type reason still gets the type error."""
        with pytest.raises(TypeError, match="must hold ints"):
            tx.EncodedTextChunk(tokens=[1, "2"])

    def test_a_copied_chunk_finds_its_packed_array_and_encodes_the_same_bytes(self):
        """copy.copy skips __post_init__; the packed tokens come from the copied slot."""
        chunk = tx.EncodedTextChunk(tokens=[5, 6, 7])
        bare = copy.copy(chunk)
        assert bare.packed_int32().tolist() == [5, 6, 7]
        bodies = [
            proto.encode_forward_backward_request(
                tx.ForwardBackwardInput(
                    data=[tx.Datum(model_input=tx.ModelInput(chunks=[c]))],
                    loss_fn="cross_entropy",
                ),
                model_id="m",
                seq_id=1,
            )
            for c in (chunk, bare)
        ]
        assert bodies[0] == bodies[1]


def mixed_batch() -> tx.ForwardBackwardInput:
    """Datums of many layouts: plain ones (repeated and not) and every kind the fast path skips."""
    rng = np.random.default_rng(3)
    span = tx.SampledProvenanceSpan(sequence_id="s", length=3)
    data = [
        tx.Datum(
            model_input=tx.ModelInput.from_ints(rng.integers(0, 9, n).tolist()),
            loss_fn_inputs={"target_tokens": list(range(n)), "weights": [1.0] * n},
        )
        for n in (4, 4, 7, 4)
    ]
    data += [
        # The layout of the first datums but a 2-D weights tensor: same sizes, other shape.
        tx.Datum(
            model_input=tx.ModelInput.from_ints([1, 2, 3, 4]),
            loss_fn_inputs={
                "target_tokens": list(range(4)),
                "weights": tx.TensorData(data=[1.0] * 4, dtype="float32", shape=[2, 2]),
            },
        ),
        tx.Datum(
            model_input=tx.ModelInput.from_ints(np.arange(6, dtype=np.int64)),
            loss_fn_inputs={"advantages": np.ones((2, 3), dtype=np.float64)},
        ),
        tx.Datum(model_input=tx.ModelInput.from_ints([]), loss_fn_inputs={"weights": []}),
        tx.Datum(model_input=tx.ModelInput.from_ints([1, 2, 3])),
        tx.Datum(
            model_input=tx.ModelInput.from_ints([1, 2, 3]),
            loss_fn_inputs={"weights": [1.0, 0.0, 1.0]},
        ).with_provenance([span], [span]),
        tx.Datum(
            model_input=tx.ModelInput(
                chunks=[
                    tx.EncodedTextChunk(tokens=[1]),
                    tx.ImageChunk(data=b"\x89PNG", format="png", expected_tokens=2),
                ]
            ),
            loss_fn_inputs={
                "weights": tx.TensorData(
                    data=[1.0, 2.0],
                    dtype="float32",
                    shape=[2, 2],
                    sparse_crow_indices=[0, 1, 2],
                    sparse_col_indices=[0, 1],
                )
            },
        ),
        tx.Datum(
            model_input=tx.ModelInput.from_ints([2**31 - 1]),
            loss_fn_inputs={"target_tokens": tx.TensorData(data=[1], dtype="int64")},
        ),
    ]
    return tx.ForwardBackwardInput(data=data, loss_fn="cross_entropy")


class TestPlainDatums:
    def test_cached_heads_give_the_bytes_of_the_general_encoder(self, monkeypatch):
        """A batch of mixed layouts encodes to the same bytes with the fast path off."""
        batch = mixed_batch()
        fast = [proto.encode_forward_backward_request(batch, model_id="m", seq_id=3)]
        fast.append(proto.encode_forward_backward_request(batch, model_id="m", seq_id=3))
        monkeypatch.setattr(_request_encoding, "_put_plain_datum", lambda out, datum, index: False)
        general = proto.encode_forward_backward_request(batch, model_id="m", seq_id=3)
        assert fast == [general, general]

    def test_the_mixed_batch_reads_back_as_the_official_sdk_reads_it(self):
        """The official parser sees every datum's tokens and tensors."""
        batch = mixed_batch()
        body = proto.encode_forward_backward_request(batch, model_id="m", seq_id=3)
        message = pb.ForwardBackwardRequest()
        message.ParseFromString(body)
        assert len(message.data) == len(batch.data)
        for datum, parsed in zip(batch.data, message.data, strict=True):
            tokens = b"".join(c.encoded_text.tokens for c in parsed.model_input)
            text = [c for c in datum.model_input.chunks if isinstance(c, tx.EncodedTextChunk)]
            assert np.frombuffer(tokens, np.int32).tolist() == [
                int(t) for c in text for t in np.asarray(c.tokens).tolist()
            ]
            assert set(parsed.loss_fn_inputs) == set(datum.loss_fn_inputs)
        assert proto.decode_forward_backward_request(body).forward_backward_input == batch


# Sequences drawn from a pool of two or three kinds, so that layouts repeat, alternate and
# break off, which is what the layout reader of the decoder has to get right.
sequences_strategy = st.lists(
    st.tuples(
        st.sampled_from(["stop", "length"]),
        st.integers(0, 40),
        st.sampled_from(["none", "same", "empty"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=3,
).flatmap(lambda pool: st.lists(st.sampled_from(pool), max_size=10))


def build_response(specs, rng: np.random.Generator) -> tx.SampleResponse:
    """A SampleResponse from (stop_reason, length, logprobs kind, top-k?) tuples."""
    sequences = []
    for stop_reason, length, logprobs_kind, topk in specs:
        tokens = rng.integers(0, 1000, length, dtype=np.int32)
        logprobs = {
            "none": None,
            "same": -rng.random(length, dtype=np.float32),
            "empty": np.empty(0, dtype=np.float32),
        }[logprobs_kind]
        sequences.append(
            tx.SampledSequence(
                stop_reason=stop_reason,
                tokens_np=tokens,
                logprobs_np=logprobs,
                topk_logprobs_np=[[(1, -0.5)]] * length if topk and length else None,
            )
        )
    return tx.SampleResponse(sequences=sequences)


def general_encoding(response: tx.SampleResponse) -> bytes:
    """The sequences of a response (it has no prompt fields) by the general encoder alone."""
    out: list[object] = []
    for i, seq in enumerate(response.sequences):
        _sample_encoding._put_any_sequence(out, seq, i)
    return b"".join(out)  # type: ignore[arg-type]


class TestSampledSequences:
    @FAST
    @given(sequences_strategy, st.integers(0, 2**32 - 1))
    def test_cached_heads_give_the_bytes_of_the_general_encoder(self, specs, seed):
        """Every mix of stop reasons, lengths, logprobs and top-k encodes the same both ways."""
        response = build_response(specs, np.random.default_rng(seed))
        first = proto.encode_sample_response(response)  # fills the caches
        assert first == general_encoding(response)
        assert proto.encode_sample_response(response) == first  # from the caches

    def test_a_change_of_stop_reason_or_size_between_sequences_changes_the_heads(self):
        """The previous sequence's heads are reused only for the very same layout."""
        rng = np.random.default_rng(9)
        specs = [
            ("stop", 5, "same", False),
            ("stop", 5, "same", False),
            ("length", 5, "same", False),
            ("length", 5, "empty", False),
            ("length", 6, "same", False),
            ("length", 5, "none", False),
            ("stop", 5, "same", False),
        ]
        response = build_response(specs, rng)
        for _ in range(2):  # the second time every layout is a cache hit
            assert proto.encode_sample_response(response) == general_encoding(response)

    @FAST
    @given(sequences_strategy, st.integers(0, 2**32 - 1))
    def test_layout_reads_decode_what_the_official_sdk_decodes(self, specs, seed):
        """Repeated, changing and interrupted layouts all read as response_conv reads them."""
        body = proto.encode_sample_response(build_response(specs, np.random.default_rng(seed)))
        ours = proto.decode_sample_response(body)
        theirs = response_conv.deserialize_sample_response(body)
        assert len(ours.sequences) == len(theirs.sequences)
        for mine, other in zip(ours.sequences, theirs.sequences, strict=True):
            assert mine.stop_reason == other.stop_reason
            assert mine.tokens == np.asarray(other.tokens_np).tolist()
            if other.logprobs_np is None:
                assert mine.logprobs is None
            else:
                assert mine.logprobs_np.tobytes() == np.asarray(other.logprobs_np).tobytes()
            assert (mine.topk_logprobs is None) == (other.topk_logprobs_np is None)

    def test_a_result_of_one_repeated_layout_decodes_every_sequence_exactly(self):
        """16 length stops with logprobs (the bench's shape): each sequence its own values."""
        response = build_response([("length", 64, "same", False)] * 16, np.random.default_rng(4))
        body = proto.encode_sample_response(response)
        decoded = proto.decode_sample_response(body)
        assert decoded == response
        for mine, other in zip(
            decoded.sequences,
            response_conv.deserialize_sample_response(body).sequences,
            strict=True,
        ):
            assert mine.tokens_np.tobytes() == np.asarray(other.tokens_np).tobytes()
            assert mine.logprobs_np.tobytes() == np.asarray(other.logprobs_np).tobytes()

    def test_the_layout_kept_from_the_last_result_never_misreads_the_next(self):
        """Results of one layout, another, then the first again all decode exactly."""
        rng = np.random.default_rng(8)
        results = [
            build_response([("length", 16, "same", False)] * 3, rng),
            build_response([("length", 16, "none", False)] * 2, rng),
            build_response([("stop", 16, "same", False), ("length", 16, "same", False)], rng),
            build_response([("length", 16, "same", False)] * 3, rng),
            build_response([("length", 15, "same", False)] * 2, rng),
        ]
        for response in results:
            body = proto.encode_sample_response(response)
            assert proto.decode_sample_response(body) == response

    def test_copy_gives_each_layout_read_sequence_writable_arrays_of_its_own(self):
        """copy=True holds for sequences read by layout, not only for parsed ones."""
        response = build_response([("stop", 6, "same", False)] * 3, np.random.default_rng(6))
        decoded = proto.decode_sample_response(proto.encode_sample_response(response), copy=True)
        for seq in decoded.sequences:
            assert seq.tokens_np.flags.writeable and seq.tokens_np.base is None
            assert seq.logprobs_np.flags.writeable and seq.logprobs_np.base is None
        assert decoded == response

    def test_layout_read_sequences_are_read_only_views_by_default(self):
        """Without copy, every sequence's arrays are views over the body."""
        response = build_response([("stop", 6, "same", False)] * 3, np.random.default_rng(7))
        decoded = proto.decode_sample_response(proto.encode_sample_response(response))
        assert all(not s.tokens_np.flags.writeable for s in decoded.sequences)
        assert all(not s.logprobs_np.flags.writeable for s in decoded.sequences)

    def test_a_sequence_of_a_known_layout_with_an_extra_field_is_parsed_in_full(self):
        """Same head and middle but more bytes: the unknown field is skipped, not misread."""
        response = build_response([("length", 8, "same", False)] * 2, np.random.default_rng(1))
        body = proto.encode_sample_response(response)
        _, first_stop = w.read_len(body, 1, len(body))
        extra = w.key(90, w.VARINT) + w.varint(7)
        second = body[first_stop + 1 :]
        start, stop = w.read_len(second, 0, len(second))
        payload = second[start:stop] + extra
        tampered = body[:first_stop] + b"\x0a" + w.varint(len(payload)) + payload
        decoded = proto.decode_sample_response(tampered)
        assert decoded.sequences == response.sequences

    def test_an_unknown_field_in_place_of_the_logprobs_is_not_read_as_them(self):
        """Same head, same size, but field 5 where the logprobs were: they read as None."""
        response = build_response([("length", 8, "same", False)] * 2, np.random.default_rng(5))
        body = bytearray(proto.encode_sample_response(response))
        _, first_stop = w.read_len(bytes(body), 1, len(body))
        second_start, _ = w.read_len(bytes(body), first_stop + 1, len(body))
        logprobs_key_at = second_start + len(b"\x08\x01\x12\x20") + 32
        assert body[logprobs_key_at] == 0x1A
        body[logprobs_key_at] = w.key(5, w.LEN)[0]
        decoded = proto.decode_sample_response(bytes(body))
        theirs = response_conv.deserialize_sample_response(bytes(body))
        assert decoded.sequences[1].logprobs is None
        assert theirs.sequences[1].logprobs_np is None
        assert decoded.sequences[1].tokens == response.sequences[1].tokens

    def test_stamped_ids_land_on_layout_read_sequences_too(self):
        """sequence_ids are stamped whichever path read the sequence."""
        response = build_response([("length", 4, "same", False)] * 3, np.random.default_rng(2))
        body = proto.encode_sample_response(response)
        decoded = proto.decode_sample_response(body, sequence_ids=["a", "b", "c"])
        assert [s.sequence_id for s in decoded.sequences] == ["a", "b", "c"]

    def test_strided_arrays_encode_like_contiguous_ones(self):
        """A view such as a[::2] goes through the fallback with the same bytes."""
        tokens = np.arange(20, dtype=np.int32)
        logprobs = -np.arange(20, dtype=np.float32)
        strided = tx.SampleResponse(
            sequences=[
                tx.SampledSequence(
                    stop_reason="stop", tokens_np=tokens[::2], logprobs_np=logprobs[::2]
                )
            ]
        )
        contiguous = tx.SampleResponse(
            sequences=[
                tx.SampledSequence(
                    stop_reason="stop",
                    tokens_np=tokens[::2].copy(),
                    logprobs_np=logprobs[::2].copy(),
                )
            ]
        )
        assert proto.encode_sample_response(strided) == proto.encode_sample_response(contiguous)

    def test_lists_are_packed_as_numpy_would_convert_them(self):
        """Python lists become int32 / float32 arrays; None logprobs entries read as NaN."""
        seq = tx.SampledSequence(stop_reason="stop", tokens_np=[1, 2], logprobs_np=[-0.5, None])
        assert seq.tokens_np.dtype == I4 and seq.tokens == [1, 2]
        assert seq.logprobs_np.dtype == F4
        assert seq.logprobs_np[0] == -0.5 and np.isnan(seq.logprobs_np[1])

    def test_a_bad_stop_reason_is_still_refused(self):
        """The fast check keeps the clear error."""
        with pytest.raises(ValueError, match="'length' or 'stop'"):
            tx.SampledSequence(stop_reason="eos", tokens_np=[1])
