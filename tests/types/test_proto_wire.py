"""The binary wire on its own: round trips, unknown fields, malformed input, zstd, the schema."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinkex_actors import types as tx
from tinkex_actors.types import _pbwire as w
from tinkex_actors.types import proto

pb = pytest.importorskip("tinker.proto.tinker_public_pb2")

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# One unknown field of every wire type, with field numbers no message of the schema uses.
UNKNOWN = b"".join(
    [
        w.key(99, w.VARINT) + w.varint(2**40),
        w.key(98, w.FIXED64) + b"\x01" * 8,
        w.key(97, w.LEN) + w.varint(4) + b"junk",
        w.key(96, w.START_GROUP) + w.key(1, w.VARINT) + b"\x01" + w.key(96, w.END_GROUP),
        w.key(95, w.FIXED32) + b"\x02" * 4,
    ]
)


def with_unknown_fields(descriptor, body: bytes) -> bytes:
    """Put UNKNOWN before and after the fields of this message and of every nested one."""
    out = [UNKNOWN]
    pos, end = 0, len(body)
    while pos < end:
        field_key, pos = w.read_varint(body, pos, end)
        field = descriptor.fields_by_number.get(field_key >> 3)
        if field_key & 7 == w.LEN:
            start, stop = w.read_len(body, pos, end)
            payload = body[start:stop]
            if field is not None and field.message_type is not None:
                payload = with_unknown_fields(field.message_type, payload)
            out.append(w.varint(field_key) + w.varint(len(payload)) + payload)
            pos = stop
        else:
            stop = w.skip_field(body, pos, end, field_key, "test")
            out.append(w.varint(field_key) + body[pos:stop])
            pos = stop
    out.append(UNKNOWN)
    return b"".join(out)


def rich_request() -> tuple[tx.ForwardBackwardInput, bytes]:
    datum = tx.Datum(
        model_input=tx.ModelInput(
            chunks=[
                tx.EncodedTextChunk(tokens=[1, 2, 3]),
                tx.ImageChunk(data=b"png!", format="png", expected_tokens=4),
                tx.DmelChunk(dmel=b"\x00\x01\x02"),  # dtype 0, 1-D, 2 positions
            ]
        ),
        loss_fn_inputs={
            "target_tokens": [2, 3, 4, 5, 6, 7, 8, 9],
            "weights": tx.TensorData(
                data=[1.0],
                dtype="float32",
                shape=[2, 2],
                sparse_crow_indices=[0, 1, 1],
                sparse_col_indices=[0],
            ),
        },
    ).with_provenance(
        [tx.PromptProvenanceSpan(sequence_id="a", length=9)],
        [tx.SampledProvenanceSpan(sequence_id="b", offset=1, length=8)],
    )
    fb_input = tx.ForwardBackwardInput(
        data=[datum], loss_fn="ppo", loss_fn_config={"clip": 0.2, "mode": "x"}
    )
    body = proto.encode_forward_backward_request(
        fb_input, model_id="m", seq_id=7, forward_only=True
    )
    return fb_input, body


def rich_output() -> tuple[tx.ForwardBackwardOutput, bytes]:
    output = tx.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord",
        loss_fn_outputs=[
            {"logprobs": tx.TensorData(data=[-1.0, -2.0], dtype="float32", shape=[2])},
            {"logprobs": tx.TensorData(data=[[-3.0, 4.0]], dtype="float32", shape=[1, 2])},
        ],
        metrics={"loss:sum": 3.5},
    )
    return output, proto.encode_forward_backward_output(output)


def rich_sample() -> tuple[tx.SampleResponse, bytes]:
    tensor = tx.TensorData(data=[[1, 2]], dtype="int64", shape=[1, 2])
    response = tx.SampleResponse(
        sequences=[
            tx.SampledSequence(
                stop_reason="length",
                tokens_np=[5, 6],
                logprobs_np=[-0.5, -0.25],
                topk_logprobs_np=[[(5, -0.5)], None],
            ),
            tx.SampledSequence(stop_reason="stop", tokens_np=[]),
        ],
        prompt_logprobs_np=[None, -1.0],
        topk_prompt_logprobs_np=[None, [(3, -1.0), (4, -2.0)]],
        prompt_cache_hit_tokens=1,
        target_prompt_logprobs=tx.TensorData(data=[0.5], dtype="float32", shape=[1]),
        prompt_alt_tokens=tx.PromptAltTokens(
            tokens=tensor, logprobs=tx.TensorData(data=[[-1.0, -2.0]], dtype="float32")
        ),
    )
    return response, proto.encode_sample_response(response)


CASES = [
    ("request", rich_request, proto.decode_forward_backward_request, "ForwardBackwardRequest"),
    ("output", rich_output, proto.decode_forward_backward_output, "ForwardBackwardOutput"),
    ("sample", rich_sample, proto.decode_sample_response, "SampleResponse"),
]


def _decoded_value(kind, decoded):
    return decoded.forward_backward_input if kind == "request" else decoded


class TestUnknownFields:
    @pytest.mark.parametrize(("kind", "build", "decode", "message"), CASES)
    def test_unknown_fields_at_every_level_are_skipped(self, kind, build, decode, message):
        """Fields of every wire type (groups included) added to every message change nothing."""
        value, body = build()
        noisy = with_unknown_fields(getattr(pb, message).DESCRIPTOR, body)
        assert len(noisy) > len(body) + 10 * len(UNKNOWN)
        assert _decoded_value(kind, decode(noisy)) == value

    def test_the_rich_messages_are_valid_for_the_official_classes(self):
        """The bodies these tests mutate parse with the official generated classes."""
        for _, build, _, message in CASES:
            parsed = getattr(pb, message)()
            parsed.ParseFromString(build()[1])
            assert parsed.ByteSize() == len(build()[1])


class TestMalformedInput:
    @pytest.mark.parametrize(
        ("body", "words"),
        [
            (b"\x10\x80", "truncated varint"),
            (b"\x10" + b"\xff" * 11, "longer than 10 bytes"),
            (b"\x0a\x05ab", "truncated length-delimited"),
            (b"\x0d\x00\x00\x00\x00", "wire type 32-bit"),
            (b"\x7e", "invalid wire type 6"),
            (b"\x00\x01", "numbered 0"),
            (b"\x1a\x06\x0a\x04\x0a\x02\x0a\x01", "truncated length-delimited"),
            (b"\x1a\x07\x0a\x05\x0a\x03\x0a\x01\x01", "not a multiple of 4"),
            (b"\x1a\x02\x0a\x00", "none of encoded_text, image or dmel"),
            (w.key(9, w.START_GROUP), "no end-group"),
        ],
    )
    def test_broken_request_bodies_raise_a_clear_value_error(self, body, words):
        """Each kind of corruption is a ValueError whose message says what is wrong."""
        with pytest.raises(ValueError, match=re.escape(words)):
            proto.decode_forward_backward_request(body)

    def test_an_unknown_tensor_dtype_is_named_in_the_error(self):
        """A dtype enum value the wire does not define is refused, naming the field."""
        message = pb.ForwardBackwardOutput()
        record = message.loss_fn_outputs.add(num_datums=1)
        record.fields["x"].dtype = 9
        with pytest.raises(ValueError, match=r"fields\['x'\]\.dtype is 9"):
            proto.decode_forward_backward_output(message.SerializeToString())

    def test_inconsistent_batched_offsets_are_refused(self):
        """Offsets past the data, unordered or misaligned raise instead of slicing garbage."""
        for offsets in ([0, 8, 4], [0, 12], [0, 2]):
            message = pb.ForwardBackwardOutput()
            bt = message.loss_fn_outputs.add(num_datums=len(offsets) - 1).fields["x"]
            bt.dtype, bt.data = pb.DTYPE_FLOAT32, b"\x00" * 8
            bt.offsets = np.array(offsets, dtype="<i8").tobytes()
            with pytest.raises(ValueError, match="offsets"):
                proto.decode_forward_backward_output(message.SerializeToString())

    def test_a_field_missing_datums_is_refused(self):
        """A record claiming more datums than a field holds is an error, not an IndexError."""
        message = pb.ForwardBackwardOutput()
        bt = message.loss_fn_outputs.add(num_datums=3).fields["x"]
        bt.dtype, bt.data = pb.DTYPE_FLOAT32, b"\x00" * 4
        bt.offsets = np.array([0, 4], dtype="<i8").tobytes()
        with pytest.raises(ValueError, match="has 1 datums but the records declare 3"):
            proto.decode_forward_backward_output(message.SerializeToString())

    def test_an_absurd_datum_count_without_fields_is_refused_at_once(self):
        """A corrupt num_datums with no fields to check it against cannot make us loop."""
        for count in (2**40, -1):
            message = pb.ForwardBackwardOutput()
            message.loss_fn_outputs.add(num_datums=count)
            with pytest.raises(ValueError, match=re.escape("datums; expected 0..")):
                proto.decode_forward_backward_output(message.SerializeToString())

    def test_an_unknown_stop_reason_and_a_short_topk_are_refused(self):
        """An undefined stop reason or a top-k block of the wrong size fails clearly."""
        message = pb.SampleResponse()
        message.sequences.add(stop_reason=7)
        with pytest.raises(ValueError, match="stop_reason is 7"):
            proto.decode_sample_response(message.SerializeToString())
        message = pb.SampleResponse()
        message.topk_prompt_logprobs.CopyFrom(
            pb.TopkLogprobs(token_ids=b"\x00" * 4, logprobs=b"\x00" * 4, k=2, length=1)
        )
        with pytest.raises(ValueError, match="length=1, k=2"):
            proto.decode_sample_response(message.SerializeToString())

    @pytest.mark.parametrize(("kind", "build", "decode", "message"), CASES)
    def test_every_truncation_of_a_valid_body_decodes_or_raises_value_error(
        self, kind, build, decode, message
    ):
        """No prefix of a body crashes, hangs or raises anything but ValueError."""
        body = build()[1]
        for cut in range(len(body)):
            with contextlib.suppress(ValueError):
                decode(body[:cut])

    @FAST
    @given(data=st.data())
    def test_random_corruption_decodes_or_raises_value_error(self, data):
        """Flipped bytes and random bodies never escape as another exception type."""
        _, build, decode, _ = data.draw(st.sampled_from(CASES))
        body = bytearray(build()[1])
        for _ in range(data.draw(st.integers(1, 4))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
        for candidate in (bytes(body), data.draw(st.binary(max_size=64))):
            with contextlib.suppress(ValueError):
                decode(candidate)


token_lists = st.lists(st.integers(0, 2**31 - 1), max_size=20)
floats32 = st.floats(width=32, allow_nan=False)


@st.composite
def datums(draw):
    tokens = draw(token_lists)
    rows = draw(st.integers(0, 3))
    cols = draw(st.integers(0, 3))
    inputs = {
        "target_tokens": np.array(
            draw(
                st.lists(
                    st.integers(-(2**63), 2**63 - 1), min_size=rows * cols, max_size=rows * cols
                )
            ),
            dtype=np.int64,
        ).reshape(rows, cols),
        "weights": draw(st.lists(floats32, max_size=5)),
    }
    if draw(st.booleans()):
        inputs.pop("weights")
    chunks = [tx.EncodedTextChunk(tokens=tokens)]
    if draw(st.booleans()):
        chunks.append(tx.ImageChunk(data=draw(st.binary(max_size=8)), format="jpeg"))
    return tx.Datum(model_input=tx.ModelInput(chunks=chunks), loss_fn_inputs=inputs)


class TestRoundTrips:
    @FAST
    @given(
        data=st.lists(datums(), max_size=4),
        config=st.none()
        | st.dictionaries(st.text(max_size=5), st.floats(allow_nan=False) | st.text(max_size=5)),
        seq_id=st.integers(-(2**31), 2**31 - 1),
        model_id=st.text(max_size=10),
        forward_only=st.booleans(),
    )
    def test_forward_backward_requests_round_trip(
        self, data, config, seq_id, model_id, forward_only
    ):
        """Any batch decodes to the input, model_id, seq_id and forward_only it was encoded from."""
        fb_input = tx.ForwardBackwardInput(
            data=data, loss_fn="cross_entropy", loss_fn_config=config
        )
        body = proto.encode_forward_backward_request(
            fb_input, model_id=model_id, seq_id=seq_id, forward_only=forward_only
        )
        decoded = proto.decode_forward_backward_request(body, copy=True)
        assert decoded.forward_backward_input == tx.ForwardBackwardInput(
            data=data, loss_fn="cross_entropy", loss_fn_config=config or None
        )
        assert (decoded.model_id, decoded.seq_id, decoded.forward_only) == (
            model_id,
            seq_id,
            forward_only,
        )

    @FAST
    @given(
        trailing=st.lists(st.integers(1, 3), max_size=2),
        leading=st.lists(st.integers(0, 3), max_size=4),
        dtype=st.sampled_from(["float32", "int64"]),
        metrics=st.dictionaries(st.text(max_size=5), st.floats(allow_nan=False), max_size=3),
    )
    def test_forward_backward_outputs_round_trip(self, trailing, leading, dtype, metrics):
        """Per-datum outputs of any leading size come back with their dtype and shape."""
        outputs = []
        for n in leading:
            shape = [n, *trailing]
            values = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
            outputs.append({"out": tx.TensorData.from_numpy(values)})
        output = tx.ForwardBackwardOutput(
            loss_fn_output_type="ArrayRecord", loss_fn_outputs=outputs, metrics=metrics
        )
        assert (
            proto.decode_forward_backward_output(proto.encode_forward_backward_output(output))
            == output
        )

    @FAST
    @given(
        sequences=st.lists(
            st.tuples(
                st.sampled_from(["stop", "length"]),
                token_lists,
                st.none() | st.lists(floats32, min_size=1, max_size=5),
            ),
            max_size=4,
        ),
        prompt=st.none() | st.lists(st.none() | floats32, min_size=1, max_size=6),
        topk=st.none()
        | st.lists(
            st.none() | st.lists(st.tuples(st.integers(1, 1000), floats32), min_size=1, max_size=3),
            min_size=1,
            max_size=4,
        ).filter(lambda rows: any(rows)),
        cache_hits=st.integers(0, 2**31 - 1),
    )
    def test_sample_responses_round_trip(self, sequences, prompt, topk, cache_hits):
        """Sequences, None prompt logprobs (as NaN) and top-k lists come back equal."""
        response = tx.SampleResponse(
            sequences=[
                tx.SampledSequence(stop_reason=r, tokens_np=t, logprobs_np=lp)
                for r, t, lp in sequences
            ],
            prompt_logprobs_np=prompt,
            topk_prompt_logprobs_np=topk,
            prompt_cache_hit_tokens=cache_hits,
        )
        assert proto.decode_sample_response(proto.encode_sample_response(response)) == response


class TestSequenceIds:
    def test_the_promise_ids_are_stamped_on_the_sequences_in_order(self):
        """sequence_ids from the sample promise land on each decoded sequence, in order."""
        _, body = rich_sample()
        decoded = proto.decode_sample_response(body, sequence_ids=["s-0", "s-1"])
        assert [seq.sequence_id for seq in decoded.sequences] == ["s-0", "s-1"]
        assert [seq.sequence_id for seq in proto.decode_sample_response(body).sequences] == [
            None,
            None,
        ]

    def test_a_wrong_number_of_ids_is_refused(self):
        """Ids that do not match the sequences one to one are an error, not a silent shift."""
        _, body = rich_sample()
        for ids in (["only-one"], ["a", "b", "c"]):
            with pytest.raises(ValueError, match=f"sequence_ids has {len(ids)} ids for 2"):
                proto.decode_sample_response(body, sequence_ids=ids)


class TestEncoderErrors:
    def test_a_seq_id_outside_int32_is_refused_with_the_fix(self):
        """seq_id is int32 on the wire; a larger one is a ValueError naming the field."""
        fb_input = tx.ForwardBackwardInput(data=[], loss_fn="cross_entropy")
        with pytest.raises(ValueError, match="seq_id must fit in int32"):
            proto.encode_forward_backward_request(fb_input, model_id="m", seq_id=2**31)

    def test_token_ids_past_int32_are_refused_naming_the_datum(self):
        """Tokens travel as int32: an id that does not fit names its datum and chunk."""
        for tokens in ([2**31], np.array([2**33], dtype=np.int64)):
            datum = tx.Datum(model_input=tx.ModelInput.from_ints(tokens))
            fb_input = tx.ForwardBackwardInput(data=[datum], loss_fn="cross_entropy")
            with pytest.raises(ValueError, match=r"data\[0\]\.model_input\.chunks\[0\]"):
                proto.encode_forward_backward_request(fb_input, model_id="m", seq_id=1)

    def test_image_pointer_chunks_are_refused_with_the_alternative(self):
        """The binary wire has no image-pointer chunk: the error says to send bytes."""
        chunk = tx.ImageAssetPointerChunk(format="png", location="s3://x")
        datum = tx.Datum(model_input=tx.ModelInput(chunks=[chunk]))
        fb_input = tx.ForwardBackwardInput(data=[datum], loss_fn="cross_entropy")
        with pytest.raises(ValueError, match="ImageChunk"):
            proto.encode_forward_backward_request(fb_input, model_id="m", seq_id=1)

    def test_strided_and_big_endian_arrays_are_written_little_endian(self):
        """Arrays of any layout or byte order go out as contiguous little-endian bytes."""
        tokens = np.arange(10, dtype=">i8")[::2]
        datum = tx.Datum(model_input=tx.ModelInput.from_ints(tokens))
        fb_input = tx.ForwardBackwardInput(data=[datum], loss_fn="cross_entropy")
        body = proto.encode_forward_backward_request(fb_input, model_id="m", seq_id=1)
        decoded = proto.decode_forward_backward_request(body).forward_backward_input
        assert decoded.data[0].model_input.to_ints() == [0, 2, 4, 6, 8]


class TestZstd:
    def test_compressed_bodies_round_trip(self):
        """A compressed request body decompresses to the same bytes."""
        body = rich_request()[1] * 50
        packed = proto.zstd_compress(body)
        assert len(packed) < len(body)
        assert proto.zstd_decompress(packed) == body

    def test_frames_without_a_content_size_are_accepted(self):
        """Streaming encoders omit the content size; the body still decompresses."""
        packed = zstandard.ZstdCompressor(write_content_size=False).compress(b"abc" * 1000)
        assert proto.zstd_decompress(packed) == b"abc" * 1000

    def test_bodies_inflating_past_the_limit_are_refused(self):
        """Bodies inflating past max_size_bytes, declared or not, are a ValueError (no zip bomb)."""
        streaming = zstandard.ZstdCompressor(write_content_size=False)
        for packed in (
            proto.zstd_compress(b"\x00" * 5_000_000),
            streaming.compress(b"\x00" * 5_000_000),
        ):
            with pytest.raises(ValueError, match="max_size_bytes=1000000"):
                proto.zstd_decompress(packed, max_size_bytes=1_000_000)

    def test_corrupt_and_truncated_bodies_are_refused(self):
        """Garbage and a cut-off frame raise ValueError naming the problem."""
        with pytest.raises(ValueError, match="corrupt or not zstd"):
            proto.zstd_decompress(b"definitely not zstd")
        with pytest.raises(ValueError, match="truncated"):
            proto.zstd_decompress(proto.zstd_compress(bytes(range(256)) * 40)[:-5])


SCHEMA = Path(proto.__file__).with_name("tinker_public.proto")
_FIELD = re.compile(r"^\s*(optional |repeated )?(map<\w+, ?\w+>|[\w.]+) (\w+) = (\d+);", re.M)


def _schema_fields(text: str) -> dict[str, dict[str, tuple[str, int, bool]]]:
    """message name -> field name -> (type, number, repeated), from our .proto text."""
    messages = {}
    for match in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.M | re.S):
        fields = {}
        for label, type_, name, number in _FIELD.findall(match.group(2)):
            fields[name] = (type_, int(number), label == "repeated " or type_.startswith("map<"))
        messages[match.group(1)] = fields
    return messages


class TestSchemaFile:
    def test_our_proto_file_declares_the_official_fields(self):
        """Every message and field of the official schema has the same number and type here."""
        from google.protobuf.descriptor import FieldDescriptor as F

        scalar = {
            F.TYPE_STRING: "string",
            F.TYPE_BYTES: "bytes",
            F.TYPE_INT32: "int32",
            F.TYPE_INT64: "int64",
            F.TYPE_UINT32: "uint32",
            F.TYPE_UINT64: "uint64",
            F.TYPE_DOUBLE: "double",
            F.TYPE_FLOAT: "float",
            F.TYPE_BOOL: "bool",
        }
        ours = _schema_fields(SCHEMA.read_text())
        official = pb.DESCRIPTOR.message_types_by_name
        assert set(ours) == set(official)
        for name, descriptor in official.items():
            assert set(ours[name]) == {f.name for f in descriptor.fields}, name
            for field in descriptor.fields:
                type_, number, repeated = ours[name][field.name]
                assert number == field.number, (name, field.name)
                assert repeated == field.is_repeated, (name, field.name)
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    continue
                expected = scalar.get(field.type) or (field.message_type or field.enum_type).name
                assert type_ == expected, (name, field.name)
