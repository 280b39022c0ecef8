"""The binary wire: protobuf bodies of forward_backward requests, their results, sample results.

Message layouts are in ``tinker_public.proto`` next to this file (package ``tinker_public``, as
the official SDK speaks it). Encoders write each array's own buffer into a single
``b"".join``, so the body costs one copy of the data; decoders return read-only numpy views
over the received body (no copy; pass ``copy=True`` for writable arrays of their own).
Unknown fields of any wire type are skipped; malformed input raises ``ValueError``.

Which values mean what, as in the official SDK: tokens travel as int32, tensors in their
declared dtype (float32 or int64), missing prompt logprobs as NaN, per-datum outputs as one
``BatchedTensor`` per field with int64 *byte* offsets, one per datum plus the end.

Speed paths (each gives exactly the bytes or values of the general code it shortcuts; the
tests compare them): a datum of one text chunk and dense tensors, and a sampled sequence with
plain arrays, are written from heads cached per layout (sizes, names, dtypes, shapes), so the
encoder touches no varint for them; token ids come packed as int32 from their chunk. A sample
result's sequences of one layout are read by comparing the bytes around their arrays with the
last parsed sequence's (or the last result's) instead of parsing each field.

What this wire cannot say (the official SDK has the same limits): an empty ``loss_fn_config``
reads back as None, a tensor without a shape and one of shape ``[]`` look alike, a 0-d
per-datum output comes back with shape ``[1]``, a top-k block with no rows or k = 0 reads as
None, and ``SampledSequence.sequence_id`` is not carried (the sample promise carries it).
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import zstandard

from . import _pbwire as w
from ._model_input import DmelChunk, EncodedTextChunk, ImageChunk, ModelInput, ModelInputChunk
from ._sampling import PromptAltTokens, SampledSequence, SampleResponse, TopkLogprobs
from ._tensor import TensorData
from ._training import (
    Datum,
    ForwardBackwardInput,
    ForwardBackwardOutput,
    PromptProvenanceSpan,
    SampledProvenanceSpan,
)

__all__ = [
    "PROTOBUF_CONTENT_TYPE",
    "ForwardBackwardRequestProto",
    "decode_forward_backward_output",
    "decode_forward_backward_request",
    "decode_sample_response",
    "encode_forward_backward_output",
    "encode_forward_backward_request",
    "encode_sample_response",
    "zstd_compress",
    "zstd_decompress",
]

PROTOBUF_CONTENT_TYPE: Final = "application/x-protobuf"

# Field keys as they appear on the wire: (field number << 3) | wire type.
_L1, _L2, _L3, _L4, _L5, _L6, _L7 = (w.key(n, w.LEN) for n in range(1, 8))
_V1, _V2, _V3, _V4, _V6 = (w.key(n, w.VARINT) for n in (1, 2, 3, 4, 6))
_D1, _D2 = w.key(1, w.FIXED64), w.key(2, w.FIXED64)

# DType enum values, and the little-endian numpy dtype of each on the wire.
_DTYPE_FLOAT32, _DTYPE_INT64, _DTYPE_INT32, _DTYPE_BFLOAT16 = 1, 2, 3, 4
_TENSOR_DTYPE_ENUM: Final = {"float32": _DTYPE_FLOAT32, "int64": _DTYPE_INT64}
_WIRE_NUMPY: Final[dict[int, np.dtype[Any]]] = {
    _DTYPE_FLOAT32: np.dtype("<f4"),
    _DTYPE_INT64: np.dtype("<i8"),
    _DTYPE_INT32: np.dtype("<i4"),
    _DTYPE_BFLOAT16: np.dtype("<u2"),
}
# Public TensorData dtypes: integer widths collapse to int64, bfloat16 widens to float32.
_PUBLIC_DTYPE: Final[dict[int, Any]] = {
    _DTYPE_FLOAT32: "float32",
    _DTYPE_INT64: "int64",
    _DTYPE_INT32: "int64",
    _DTYPE_BFLOAT16: "float32",
}
_I4: Final = np.dtype("<i4")
_F4: Final = np.dtype("<f4")
_I8: Final = np.dtype("<i8")
_NO_TOKENS: Final = np.empty(0, dtype=_I4)
_NO_TOKENS.flags.writeable = False

_STOP_REASON_ENUM: Final = {"stop": 0, "length": 1}
_STOP_REASON_NAME: Final = {0: "stop", 1: "length"}

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_MAX_DATUMS: Final = 1 << 24  # far above any batch a server accepts
_DEFAULT_MAX_DECOMPRESSED_BYTES: Final = 1 << 30


# ============================================================================================
# zstd (Content-Encoding: zstd)
# ============================================================================================


def zstd_compress(body: bytes, level: int = 3) -> bytes:
    """Compress a request body for ``Content-Encoding: zstd`` (zstd frame with content size)."""
    return zstandard.ZstdCompressor(level=level).compress(body)


def zstd_decompress(body: bytes, max_size_bytes: int = _DEFAULT_MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress a ``Content-Encoding: zstd`` body, refusing more than ``max_size_bytes``.

    Frames with or without a declared content size are accepted; corrupt or truncated input
    and bodies that would inflate past the limit raise ``ValueError`` (no zip bombs: nothing
    larger than the limit is ever allocated).
    """
    try:
        declared = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise ValueError(
            f"zstd body is corrupt or not zstd ({exc}); check Content-Encoding"
        ) from None
    if declared > max_size_bytes:
        raise ValueError(
            f"zstd body declares {declared} bytes, past max_size_bytes={max_size_bytes}; "
            "raise the limit if such bodies are legitimate"
        )
    try:
        result: bytes = zstandard.ZstdDecompressor().decompress(
            body, max_output_size=max_size_bytes
        )
    except zstandard.ZstdError as exc:
        raise ValueError(
            f"zstd body is truncated, corrupt, or inflates past max_size_bytes="
            f"{max_size_bytes} ({exc}); resend it whole or raise the limit"
        ) from None
    return result


# ============================================================================================
# forward / forward_backward request
# ============================================================================================


@dataclass(frozen=True, slots=True)
class ForwardBackwardRequestProto:
    """A decoded ``ForwardBackwardRequest`` message: the input plus its routing fields."""

    forward_backward_input: ForwardBackwardInput
    model_id: str
    seq_id: int
    forward_only: bool = False


def encode_forward_backward_request(
    forward_backward_input: ForwardBackwardInput,
    *,
    model_id: str,
    seq_id: int,
    forward_only: bool = False,
) -> bytes:
    """Encode the body of ``POST forward_backward`` (``forward_only=True`` for forward).

    ``loss_fn_config`` goes out as the official SDK writes it: numbers in both the legacy
    map and ``loss_fn_config_v2``, strings only in ``loss_fn_config_v2``.
    """
    if not _INT32_MIN <= seq_id <= _INT32_MAX:
        raise ValueError(f"seq_id must fit in int32, got {seq_id}; seq_ids count up from 0")
    out: list[Any] = []
    if model_id:
        out.append(w.string_field(_L1, model_id))
    if seq_id:
        out.append(_V2 + w.varint(seq_id))
    for i, datum in enumerate(forward_backward_input.data):
        _put_datum(out, datum, i)
    if forward_backward_input.loss_fn:
        out.append(w.string_field(_L4, forward_backward_input.loss_fn))
    config = forward_backward_input.loss_fn_config or {}
    for name, value in config.items():
        if not isinstance(value, str):
            entry = w.string_field(_L1, name) + _D2 + w.double(float(value))
            out.append(w.len_field(_L5, entry))
    if forward_only:
        out.append(_V6 + b"\x01")
    for name, value in config.items():
        if isinstance(value, str):
            payload = w.string_field(_L2, value)
        else:
            payload = _D1 + w.double(float(value))
        entry = w.string_field(_L1, name) + w.len_field(_L2, payload)
        out.append(w.len_field(_L7, entry))
    return b"".join(out)


def _put_datum(out: list[Any], datum: Datum, index: int) -> None:
    """Append one ``Datum`` field: the common layout from cached heads, any other in full."""
    if not _put_plain_datum(out, datum, index):
        _put_any_datum(out, datum, index)


# The heads (keys, lengths, names, dtype and shape fields) around the arrays of a plain datum,
# by layout: a batch's datums mostly share one layout, so each is encoded once.
_PLAIN_HEADS: dict[tuple[Any, ...], tuple[bytes, ...]] = {}
_PLAIN_WIRE: Final[dict[Any, np.dtype[Any]]] = {"float32": _F4, "int64": _I8}


def _put_plain_datum(out: list[Any], datum: Datum, index: int) -> bool:
    """Append a datum of one text chunk and dense tensors, no spans; False for any other.

    The bytes are those of ``_put_any_datum`` by construction: the heads come from running
    it once per layout and keeping the bytes between the arrays.
    """
    chunks = datum.model_input.chunks
    if len(chunks) != 1 or datum.model_input_spans is not None:
        return False
    chunk = chunks[0]
    if type(chunk) is not EncodedTextChunk:
        return False
    tokens = chunk.packed_int32()
    if tokens is None:
        tokens = _tokens_int32(chunk.tokens, index, 0)
        if type(tokens) is not np.ndarray:
            return False
    if not tokens.nbytes:
        return False
    layout: list[Any] = [tokens.nbytes]
    arrays = [tokens]
    for name, tensor in datum.loss_fn_inputs.items():
        data = tensor.data_np
        if (
            tensor.sparse_crow_indices is not None
            or type(data) is not np.ndarray
            or data.dtype is not _PLAIN_WIRE.get(tensor.dtype)
        ):
            return False
        shape = tensor.shape
        layout += (name, tensor.dtype, data.nbytes, None if shape is None else tuple(shape))
        arrays.append(data)
    layout_key = tuple(layout)
    heads = _PLAIN_HEADS.get(layout_key)
    if heads is None:
        found = _heads_between_arrays(datum, index, len(arrays))
        if found is None:
            return False
        heads = found
        if len(_PLAIN_HEADS) < _CACHE_LIMIT:
            _PLAIN_HEADS[layout_key] = heads
    out.append(heads[0])
    for array, head in zip(arrays, heads[1:], strict=True):
        out.append(array)
        out.append(head)
    return True


def _heads_between_arrays(datum: Datum, index: int, count: int) -> tuple[bytes, ...] | None:
    """The bytes ``_put_any_datum`` writes before, between and after the datum's arrays."""
    parts: list[Any] = []
    _put_any_datum(parts, datum, index)
    heads = _heads_between(parts)
    return heads if len(heads) == count + 1 else None


def _heads_between(parts: list[Any]) -> tuple[bytes, ...]:
    """Encoded parts as the bytes runs around their arrays: one more run than arrays."""
    heads: list[bytes] = []
    pending: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            pending.append(part)
        else:
            heads.append(b"".join(pending))
            pending = []
    heads.append(b"".join(pending))
    return tuple(heads)


def _put_any_datum(out: list[Any], datum: Datum, index: int) -> None:
    slot = len(out)
    out.append(b"")
    size = 0
    for j, chunk in enumerate(datum.model_input.chunks):
        size += _put_chunk(out, chunk, index, j)
    for name, tensor in datum.loss_fn_inputs.items():
        size += _put_tensor_entry(out, _L2, name, tensor)
    for field_key, spans in ((_L3, datum.model_input_spans), (_L4, datum.loss_fn_input_spans)):
        for span in spans or ():
            encoded = w.len_field(field_key, _encode_span(span))
            out.append(encoded)
            size += len(encoded)
    head = _L3 + w.varint(size)
    out[slot] = head


def _put_chunk(out: list[Any], chunk: ModelInputChunk, index: int, position: int) -> int:
    """Append one ``Chunk`` field of a Datum; return the bytes appended."""
    if isinstance(chunk, EncodedTextChunk):
        tokens = chunk.packed_int32()
        if tokens is None:
            tokens = _tokens_int32(chunk.tokens, index, position)
        nbytes = len(tokens) if isinstance(tokens, bytes) else tokens.nbytes
        if nbytes:
            # Datum.model_input -> Chunk.encoded_text -> EncodedTextChunk.tokens, sizes first.
            tokens_head = _L1 + w.varint(nbytes)
            text_size = len(tokens_head) + nbytes
            text_head = _L1 + w.varint(text_size)
            head = _L1 + w.varint(len(text_head) + text_size) + text_head + tokens_head
            out.append(head)
            out.append(tokens)
            return len(head) + nbytes
        encoded = w.len_field(_L1, _L1 + b"\x00")
        out.append(encoded)
        return len(encoded)
    if isinstance(chunk, ImageChunk):
        body = b""
        if chunk.data:
            body += w.len_field(_L1, chunk.data)
        if chunk.format:
            body += w.string_field(_L2, chunk.format)
        if chunk.expected_tokens is not None:
            body += _V3 + w.varint(chunk.expected_tokens)
        encoded = w.len_field(_L1, w.len_field(_L2, body))
    elif isinstance(chunk, DmelChunk):
        body = w.len_field(_L1, chunk.dmel) if chunk.dmel else b""
        encoded = w.len_field(_L1, w.len_field(_L3, body))
    else:
        raise ValueError(
            f"data[{index}].model_input.chunks[{position}] is a {type(chunk).__name__}, which "
            "the binary wire cannot carry; send images as ImageChunk (bytes) instead"
        )
    out.append(encoded)
    return len(encoded)


def _tokens_int32(tokens: Any, index: int, position: int) -> Any:
    """Token ids as an int32 little-endian buffer (an array we can hand to ``b"".join``)."""
    if isinstance(tokens, np.ndarray):
        if tokens.dtype == _I4:
            return tokens if tokens.flags.c_contiguous else np.ascontiguousarray(tokens)
        # Token ids are >= 0 (EncodedTextChunk checks), so only the top can overflow int32.
        if tokens.size and int(tokens.max()) > _INT32_MAX:
            raise ValueError(_token_error(index, position, "an id past 2**31 - 1"))
        return np.ascontiguousarray(tokens, dtype=_I4)
    # struct.pack over the unpacked list is the fastest list -> int32 bytes path we measured
    # (about 1.6x array.array and numpy); one Struct per length, cached.
    try:
        return _int32_packer(len(tokens)).pack(*tokens)
    except struct.error as exc:
        raise ValueError(_token_error(index, position, str(exc))) from None


@functools.lru_cache(maxsize=256)
def _int32_packer(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}i")


def _token_error(index: int, position: int, problem: str) -> str:
    return (
        f"data[{index}].model_input.chunks[{position}].tokens cannot travel as int32 token ids "
        f"({problem}); pass ints in [0, 2**31) as the tokenizer gives them"
    )


def _put_tensor_entry(out: list[Any], field_key: bytes, name: str, tensor: TensorData) -> int:
    """Append one ``map<string, Tensor>`` entry; return the bytes appended."""
    parts, tensor_size = _tensor_parts(tensor, name)
    name_field = _cached(_NAME_FIELDS, name, lambda: w.string_field(_L1, name))
    tensor_head = _L2 + w.varint(tensor_size)
    entry_size = len(name_field) + len(tensor_head) + tensor_size
    head = field_key + w.varint(entry_size) + name_field + tensor_head
    out.append(head)
    out += parts
    return len(head) + tensor_size


def _tensor_parts(tensor: TensorData, what: str) -> tuple[list[Any], int]:
    """The fields of a ``Tensor`` message as buffers to join, and their total size."""
    dtype_enum = _TENSOR_DTYPE_ENUM.get(tensor.dtype or "")
    if dtype_enum is None:
        raise ValueError(
            f"{what}: TensorData.dtype must be 'float32' or 'int64', got {tensor.dtype!r}"
        )
    wire = _WIRE_NUMPY[dtype_enum]
    data = tensor.data_np
    if data.dtype != wire or not data.flags.c_contiguous:
        data = np.ascontiguousarray(data, dtype=wire)
    shape = tensor.shape
    shape_key = (dtype_enum, *shape) if shape else (dtype_enum,)
    tail = _cached(_TENSOR_TAILS, shape_key, lambda: _tensor_tail(dtype_enum, shape))
    if tensor.sparse_crow_indices is not None:
        csr = w.len_field(_L1, data.tobytes()) if data.nbytes else b""
        for field, indices in (
            (_L2, tensor.sparse_crow_indices),
            (_L3, tensor.sparse_col_indices),
        ):
            if indices:
                csr += w.len_field(field, np.asarray(indices, dtype=_I8).tobytes())
        encoded = w.len_field(_L2, csr) + tail
        return [encoded], len(encoded)
    nbytes = data.nbytes
    dense_head = _L1 + w.varint(nbytes)
    return [dense_head, data, tail], len(dense_head) + nbytes + len(tail)


def _tensor_tail(dtype_enum: int, shape: list[int] | None) -> bytes:
    """The ``dtype`` and ``shape`` fields of a Tensor (they follow its data on the wire)."""
    tail = _V3 + w.varint(dtype_enum)
    if shape:
        tail += w.len_field(_L4, w.packed_varints(shape))
    return tail


_CACHE_LIMIT: Final = 4096
_NAME_FIELDS: dict[str, bytes] = {}
_TENSOR_TAILS: dict[tuple[int, ...], bytes] = {}


def _cached(cache: dict[Any, bytes], cache_key: Any, make: Callable[[], bytes]) -> bytes:
    """Small encoded pieces repeat across datums (field names, shapes): build each once."""
    found = cache.get(cache_key)
    if found is None:
        found = make()
        if len(cache) < _CACHE_LIMIT:
            cache[cache_key] = found
    return found


def _tensor_message(tensor: TensorData, field_key: bytes, what: str) -> list[Any]:
    """A whole ``Tensor`` field (key, length, body) as buffers to join."""
    parts, size = _tensor_parts(tensor, what)
    return [field_key + w.varint(size), *parts]


def _encode_span(span: PromptProvenanceSpan | SampledProvenanceSpan) -> bytes:
    body = w.string_field(_L1, span.sequence_id) if span.sequence_id else b""
    if span.offset:
        body += _V2 + w.varint(span.offset)
    if span.length:
        body += _V3 + w.varint(span.length)
    arm = _L2 if isinstance(span, SampledProvenanceSpan) else _L1
    return w.len_field(arm, body)


def decode_forward_backward_request(
    body: bytes, *, copy: bool = False
) -> ForwardBackwardRequestProto:
    """Decode a ``POST forward_backward`` protobuf body (what the embedded server receives).

    ``loss_fn_config`` is rebuilt from ``loss_fn_config_v2`` where it has an entry, else from
    the legacy numeric map. Token and tensor arrays are views over ``body`` unless ``copy``.
    """
    buf = _as_bytes(body)
    views = w.ArrayViews(buf, copy)
    pos, end = 0, len(buf)
    model_id, seq_id, loss_fn, forward_only = "", 0, "", False
    data: list[Datum] = []
    legacy: dict[str, float | str] = {}
    config: dict[str, float | str] = {}
    while pos < end:
        k, pos = w.read_key(buf, pos, end)
        if k == 0x1A:
            start, pos = w.read_len(buf, pos, end)
            data.append(_read_datum(buf, start, pos, views, len(data)))
        elif k == 0x0A:
            model_id, pos = w.read_str(buf, pos, end, "ForwardBackwardRequest.model_id")
        elif k == 0x10:
            raw, pos = w.read_varint(buf, pos, end)
            seq_id = w.to_int32(raw)
        elif k == 0x22:
            loss_fn, pos = w.read_str(buf, pos, end, "ForwardBackwardRequest.loss_fn")
        elif k == 0x2A:
            start, pos = w.read_len(buf, pos, end)
            name, number = _read_double_entry(buf, start, pos, "loss_fn_config")
            legacy[name] = number
        elif k == 0x30:
            raw, pos = w.read_varint(buf, pos, end)
            forward_only = raw != 0
        elif k == 0x3A:
            start, pos = w.read_len(buf, pos, end)
            name, value = _read_config_v2_entry(buf, start, pos)
            config[name] = value
        else:
            pos = w.skip_unknown(buf, pos, end, k, "ForwardBackwardRequest", 7)
    loss_fn_config = {**legacy, **config} if legacy or config else None
    fb_input = ForwardBackwardInput(
        data=data,
        loss_fn=loss_fn,  # type: ignore[arg-type]  # validated by ForwardBackwardInput
        loss_fn_config=loss_fn_config,
    )
    return ForwardBackwardRequestProto(fb_input, model_id, seq_id, forward_only)


def _read_datum(buf: bytes, pos: int, end: int, views: w.ArrayViews, index: int) -> Datum:
    what = f"ForwardBackwardRequest.data[{index}]"
    chunks: list[ModelInputChunk] = []
    inputs: dict[str, TensorData] = {}
    spans: dict[int, list[PromptProvenanceSpan | SampledProvenanceSpan]] = {}
    while pos < end:
        k, pos = w.read_key(buf, pos, end)
        if k == 0x0A:
            start, pos = w.read_len(buf, pos, end)
            chunks.append(_read_chunk(buf, start, pos, views, f"{what}.model_input"))
        elif k == 0x12:
            start, pos = w.read_len(buf, pos, end)
            name, tensor = _read_tensor_entry(buf, start, pos, views, f"{what}.loss_fn_inputs")
            inputs[name] = tensor
        elif k == 0x1A or k == 0x22:
            start, pos = w.read_len(buf, pos, end)
            spans.setdefault(k, []).append(_read_span(buf, start, pos, what))
        else:
            pos = w.skip_unknown(buf, pos, end, k, what, 4)
    return Datum(
        model_input=ModelInput(chunks=chunks),
        loss_fn_inputs=inputs,
        model_input_spans=spans.get(0x1A),
        loss_fn_input_spans=spans.get(0x22),
    )


def _read_chunk(buf: bytes, pos: int, end: int, views: w.ArrayViews, what: str) -> ModelInputChunk:
    chunk: ModelInputChunk | None = None
    while pos < end:
        k, pos = w.read_key(buf, pos, end)
        if k == 0x0A:
            start, pos = w.read_len(buf, pos, end)
            text = w.read_message(buf, start, pos, {1: w.LEN}, f"{what} EncodedTextChunk")
            lo, hi = text.get(1, (0, 0))
            chunk = EncodedTextChunk(tokens=views.get(lo, hi, _I4, f"{what} tokens"))
        elif k == 0x12:
            start, pos = w.read_len(buf, pos, end)
            chunk = _read_image_chunk(buf, start, pos, f"{what} ImageChunk")
        elif k == 0x1A:
            start, pos = w.read_len(buf, pos, end)
            dmel = w.read_message(buf, start, pos, {1: w.LEN}, f"{what} DmelChunk")
            lo, hi = dmel.get(1, (0, 0))
            chunk = DmelChunk(dmel=buf[lo:hi])
        else:
            pos = w.skip_unknown(buf, pos, end, k, f"{what} Chunk", 3)
    if chunk is None:
        raise ValueError(
            f"{what} has a Chunk with none of encoded_text, image or dmel set; "
            "every chunk must carry one"
        )
    return chunk


_IMAGE_SCHEMA: Final = {1: w.LEN, 2: w.LEN, 3: w.VARINT, 4: w.LEN}
_SPAN_SCHEMA: Final = {1: w.LEN, 2: w.VARINT, 3: w.VARINT}


def _read_image_chunk(buf: bytes, pos: int, end: int, what: str) -> ImageChunk:
    # override_dimensions (4) is a server-side hint the public types do not carry.
    fields = w.read_message(buf, pos, end, _IMAGE_SCHEMA, what)
    lo, hi = fields.get(1, (0, 0))
    expected_tokens = fields.get(3)
    return ImageChunk(
        data=buf[lo:hi],
        format=w.decode_str(buf, fields.get(2), f"{what}.format"),  # type: ignore[arg-type]
        expected_tokens=None if expected_tokens is None else w.to_int32(expected_tokens),
    )


def _read_span(
    buf: bytes, pos: int, end: int, what: str
) -> PromptProvenanceSpan | SampledProvenanceSpan:
    arms = w.read_message(buf, pos, end, {1: w.LEN, 2: w.LEN}, f"{what} ProvenanceSpan")
    if not arms:
        raise ValueError(
            f"{what} has a ProvenanceSpan with neither prompt_tokens nor sampled_tokens"
        )
    number = max(arms)  # a oneof: the arm set last wins; both set never comes from an SDK
    kind = PromptProvenanceSpan if number == 1 else SampledProvenanceSpan
    lo, hi = arms[number]
    fields = w.read_message(buf, lo, hi, _SPAN_SCHEMA, f"{what} {kind.__name__}")
    return kind(
        sequence_id=w.decode_str(buf, fields.get(1), f"{what} span sequence_id"),
        offset=w.to_int64(fields.get(2, 0)),
        length=w.to_int64(fields.get(3, 0)),
    )


def _read_double_entry(buf: bytes, pos: int, end: int, what: str) -> tuple[str, float]:
    fields = w.read_message(buf, pos, end, {1: w.LEN, 2: w.FIXED64}, f"{what} entry")
    return w.decode_str(buf, fields.get(1), f"{what} key"), fields.get(2, 0.0)


def _read_config_v2_entry(buf: bytes, pos: int, end: int) -> tuple[str, float | str]:
    what = "loss_fn_config_v2"
    entry = w.read_message(buf, pos, end, {1: w.LEN, 2: w.LEN}, f"{what} entry")
    name = w.decode_str(buf, entry.get(1), f"{what} key")
    lo, hi = entry.get(2, (0, 0))
    value = w.read_message(buf, lo, hi, {1: w.FIXED64, 2: w.LEN}, "LossConfigValue")
    if 2 in value:
        return name, w.decode_str(buf, value[2], f"{what}[{name!r}] text")
    return name, value.get(1, 0.0)


def _read_tensor_entry(
    buf: bytes, pos: int, end: int, views: w.ArrayViews, what: str
) -> tuple[str, TensorData]:
    entry = w.read_message(buf, pos, end, {1: w.LEN, 2: w.LEN}, f"{what} entry")
    name = w.decode_str(buf, entry.get(1), f"{what} key")
    lo, hi = entry.get(2, (0, 0))
    return name, _read_tensor(buf, lo, hi, views, f"{what}[{name!r}]")


_CSR_SCHEMA: Final = {1: w.LEN, 2: w.LEN, 3: w.LEN}
_TOPK_SCHEMA: Final = {1: w.LEN, 2: w.LEN, 3: w.VARINT, 4: w.VARINT}


def _read_tensor(buf: bytes, pos: int, end: int, views: w.ArrayViews, what: str) -> TensorData:
    dense: tuple[int, int] | None = None
    csr: list[tuple[int, int] | None] | None = None
    dtype_enum = 0
    shape: list[int] | None = None
    while pos < end:
        k, pos = w.read_key(buf, pos, end)
        if k == 0x0A:
            dense = w.read_len(buf, pos, end)
            pos, csr = dense[1], None
        elif k == 0x18:
            dtype_enum, pos = w.read_varint(buf, pos, end)
        elif k == 0x22 or k == 0x20:
            shape, pos = w.read_int64s(buf, pos, end, k, shape)
        elif k == 0x12:
            start, pos = w.read_len(buf, pos, end)
            fields = w.read_message(buf, start, pos, _CSR_SCHEMA, f"{what} SparseCsr")
            csr, dense = [fields.get(1), fields.get(2), fields.get(3)], None
        else:
            pos = w.skip_unknown(buf, pos, end, k, f"{what} Tensor", 4)
    wire_dtype = _wire_dtype(dtype_enum, what)
    if csr is not None:
        values = _typed_view(views, csr[0], wire_dtype, dtype_enum, f"{what}.values")
        crow = _typed_view(views, csr[1], _I8, _DTYPE_INT64, f"{what}.crow_indices")
        col = _typed_view(views, csr[2], _I8, _DTYPE_INT64, f"{what}.col_indices")
        return TensorData(
            data=values,
            dtype=_PUBLIC_DTYPE[dtype_enum],
            shape=shape,
            sparse_crow_indices=crow.tolist(),
            sparse_col_indices=col.tolist(),
        )
    values = _typed_view(views, dense, wire_dtype, dtype_enum, f"{what}.dense")
    return TensorData(data=values, dtype=_PUBLIC_DTYPE[dtype_enum], shape=shape)


# ============================================================================================
# forward / forward_backward result
# ============================================================================================


def encode_forward_backward_output(output: ForwardBackwardOutput) -> bytes:
    """Encode a ``ForwardBackwardOutput`` result (what the embedded server answers).

    Consecutive datums whose fields share names, dtypes and trailing shapes go into one
    ``ArrayRecord``; a change starts the next record, as ragged outputs need.
    """
    out: list[Any] = []
    if output.loss_fn_output_type:
        out.append(w.string_field(_L1, output.loss_fn_output_type))
    outputs = output.loss_fn_outputs
    start = 0
    while start < len(outputs):
        signature = _record_signature(outputs[start], start)
        stop = start + 1
        while stop < len(outputs) and _record_signature(outputs[stop], stop) == signature:
            stop += 1
        _put_array_record(out, output.loss_fn_output_type, outputs[start:stop], signature)
        start = stop
    for name, value in output.metrics.items():
        entry = w.string_field(_L1, name) + _D2 + w.double(float(value))
        out.append(w.len_field(_L3, entry))
    return b"".join(out)


_Signature = tuple[tuple[str, int, tuple[int, ...]], ...]


def _record_signature(datum: Mapping[str, TensorData], index: int) -> _Signature:
    fields = []
    for name, tensor in datum.items():
        dtype_enum = _TENSOR_DTYPE_ENUM.get(tensor.dtype or "")
        if dtype_enum is None:
            raise ValueError(
                f"loss_fn_outputs[{index}][{name!r}].dtype must be 'float32' or 'int64', "
                f"got {tensor.dtype!r}"
            )
        shape = tensor.shape if tensor.shape is not None else ()
        fields.append((name, dtype_enum, tuple(shape[1:])))
    return tuple(fields)


def _put_array_record(
    out: list[Any], type_tag: str, datums: list[dict[str, TensorData]], signature: _Signature
) -> None:
    slot = len(out)
    out.append(b"")
    size = 0
    if type_tag:
        tag_field = w.string_field(_L1, type_tag)
        out.append(tag_field)
        size += len(tag_field)
    for name, dtype_enum, trailing in signature:
        wire = _WIRE_NUMPY[dtype_enum]
        arrays = [w.array_buffer(_dense(d[name]), wire) for d in datums]
        offsets = np.zeros(len(arrays) + 1, dtype=_I8)
        np.cumsum([a.nbytes for a in arrays], out=offsets[1:])
        data_size = int(offsets[-1])
        tail = w.len_field(_L2, offsets.tobytes()) + _V3 + w.varint(dtype_enum)
        if trailing:
            tail += w.len_field(_L4, w.packed_varints(list(trailing)))
        data_head = (_L1 + w.varint(data_size)) if data_size else b""
        tensor_size = len(data_head) + data_size + len(tail)
        name_field = w.string_field(_L1, name)
        value_head = _L2 + w.varint(tensor_size)
        entry_size = len(name_field) + len(value_head) + tensor_size
        head = _L2 + w.varint(entry_size) + name_field + value_head + data_head
        out.append(head)
        out.extend(arrays)
        out.append(tail)
        size += len(head) + data_size + len(tail)
    num = _V3 + w.varint(len(datums))
    out.append(num)
    size += len(num)
    out[slot] = _L2 + w.varint(size)


def _dense(tensor: TensorData) -> npt.NDArray[Any]:
    if tensor.sparse_crow_indices is not None:
        return tensor.to_numpy()
    data = tensor.data_np
    return data


def decode_forward_backward_output(body: bytes, *, copy: bool = False) -> ForwardBackwardOutput:
    """Decode a protobuf ``ForwardBackwardOutput`` as the official SDK reads it.

    Each datum's tensor gets shape ``[elements / prod(trailing_shape), *trailing_shape]``;
    int32 fields widen to int64 and bfloat16 to float32 (the public dtypes).
    """
    buf = _as_bytes(body)
    views = w.ArrayViews(buf, copy)
    pos, end = 0, len(buf)
    output_type = ""
    metrics: dict[str, float] = {}
    records: list[tuple[int, list[tuple[str, list[TensorData]]]]] = []
    while pos < end:
        k, pos = w.read_key(buf, pos, end)
        if k == 0x12:
            start, pos = w.read_len(buf, pos, end)
            records.append(_read_array_record(buf, start, pos, views, len(records)))
        elif k == 0x0A:
            output_type, pos = w.read_str(
                buf, pos, end, "ForwardBackwardOutput.loss_fn_output_type"
            )
        elif k == 0x1A:
            start, pos = w.read_len(buf, pos, end)
            name, number = _read_double_entry(buf, start, pos, "ForwardBackwardOutput.metrics")
            metrics[name] = number
        else:
            pos = w.skip_unknown(buf, pos, end, k, "ForwardBackwardOutput", 3)
    if not records:
        return ForwardBackwardOutput(
            loss_fn_output_type=output_type or "ArrayRecord", loss_fn_outputs=[], metrics=metrics
        )
    per_field: dict[str, list[TensorData]] = {}
    for _, fields in records:
        for name, tensors in fields:
            per_field.setdefault(name, []).extend(tensors)
    num_datums = sum(n for n, _ in records)
    if num_datums == 0 and per_field:  # records written before num_datums existed
        num_datums = len(next(iter(per_field.values())))
    if not 0 <= num_datums <= _MAX_DATUMS:
        # Datums without fields cost no bytes, so only this bound keeps a corrupt count
        # from building billions of empty outputs.
        raise ValueError(
            f"ForwardBackwardOutput declares {num_datums} datums; expected 0..{_MAX_DATUMS}"
        )
    for name, tensors in per_field.items():
        if len(tensors) != num_datums:
            raise ValueError(
                f"ForwardBackwardOutput field {name!r} has {len(tensors)} datums but the "
                f"records declare {num_datums}: the result is inconsistent"
            )
    items = list(per_field.items())
    outputs = [{name: tensors[i] for name, tensors in items} for i in range(num_datums)]
    return ForwardBackwardOutput(
        loss_fn_output_type=output_type.rsplit(":", 1)[-1],
        loss_fn_outputs=outputs,
        metrics=metrics,
    )


def _read_array_record(
    buf: bytes, pos: int, end: int, views: w.ArrayViews, index: int
) -> tuple[int, list[tuple[str, list[TensorData]]]]:
    what = f"ForwardBackwardOutput.loss_fn_outputs[{index}]"
    num_datums = 0
    fields: list[tuple[str, list[TensorData]]] = []
    while pos < end:
        k, pos = w.read_key(buf, pos, end)
        if k == 0x12:
            start, pos = w.read_len(buf, pos, end)
            entry = w.read_message(buf, start, pos, {1: w.LEN, 2: w.LEN}, f"{what} fields entry")
            name = w.decode_str(buf, entry.get(1), f"{what} field name")
            label = f"{what}.fields[{name!r}]"
            tensors = _read_batched_tensor(buf, entry.get(2), views, label)
            fields = [f for f in fields if f[0] != name] + [(name, tensors)]
        elif k == 0x18:
            raw, pos = w.read_varint(buf, pos, end)
            num_datums = w.to_int64(raw)
        elif k == 0x0A:  # type_tag: informational, the decoder does not need it
            pos = w.read_len(buf, pos, end)[1]
        else:
            pos = w.skip_unknown(buf, pos, end, k, what, 3)
    return num_datums, fields


def _read_batched_tensor(
    buf: bytes, bounds: tuple[int, int] | None, views: w.ArrayViews, what: str
) -> list[TensorData]:
    data_range: tuple[int, int] | None = None
    offsets_range: tuple[int, int] | None = None
    dtype_enum = 0
    trailing: list[int] | None = None
    pos, end = bounds if bounds is not None else (0, 0)
    while pos < end:
        k, pos = w.read_key(buf, pos, end)
        if k == 0x0A:
            data_range = w.read_len(buf, pos, end)
            pos = data_range[1]
        elif k == 0x12:
            offsets_range = w.read_len(buf, pos, end)
            pos = offsets_range[1]
        elif k == 0x18:
            dtype_enum, pos = w.read_varint(buf, pos, end)
        elif k == 0x22 or k == 0x20:
            trailing, pos = w.read_int64s(buf, pos, end, k, trailing)
        else:
            pos = w.skip_unknown(buf, pos, end, k, f"{what} BatchedTensor", 4)
    wire_dtype = _wire_dtype(dtype_enum, what)
    values = _typed_view(views, data_range, wire_dtype, dtype_enum, f"{what}.data")
    offsets = _typed_view(views, offsets_range, _I8, _DTYPE_INT64, f"{what}.offsets")
    itemsize = wire_dtype.itemsize
    if len(offsets) and (
        offsets[0] < 0
        or offsets[-1] > len(values) * itemsize
        or bool(np.any(np.diff(offsets) < 0))
        or bool(np.any(offsets % itemsize))
    ):
        raise ValueError(
            f"{what}.offsets must be non-decreasing byte offsets into data, multiples of "
            f"{itemsize} and at most {len(values) * itemsize}; got {offsets.tolist()[:8]}..."
        )
    trailing = trailing or []
    trailing_elems = math.prod(trailing)
    public = _PUBLIC_DTYPE[dtype_enum]
    bounds_list = (offsets // itemsize).tolist()
    tensors = []
    for lo, hi in itertools.pairwise(bounds_list):
        part = values[lo:hi]
        leading = part.size // trailing_elems if trailing_elems else 0
        tensors.append(TensorData(data=part, dtype=public, shape=[leading, *trailing]))
    return tensors


# ============================================================================================
# sample result
# ============================================================================================


def encode_sample_response(response: SampleResponse) -> bytes:
    """Encode a ``SampleResponse`` (what the embedded server answers to a sample poll).

    Prompt logprobs go out as float32 with NaN where the value is None; top-k results as
    ``(length, k)`` matrices. ``sequence_id`` is not on this wire (the promise carries it).
    """
    out: list[Any] = []
    heads_by_layout = _SEQUENCE_HEADS
    # _put_sequence's cache hit, inline, and the previous sequence's layout compared first
    # (no key to build and hash): most sequences of a result take this path.
    last: tuple[Any, ...] = ()
    heads: tuple[bytes, ...] = ()
    for i, seq in enumerate(response.sequences):
        tokens: Any = seq.tokens_np
        logprobs: Any = seq.logprobs_np
        if (
            type(logprobs) is np.ndarray
            and type(tokens) is np.ndarray
            and tokens.dtype is _I4
            and logprobs.dtype is _F4
            and seq.topk_logprobs_np is None
        ):
            if (
                last
                and tokens.nbytes == last[1]
                and logprobs.nbytes == last[2]
                and seq.stop_reason == last[0]
            ):
                out += (heads[0], tokens, heads[1], logprobs)
                continue
            layout = (seq.stop_reason, tokens.nbytes, logprobs.nbytes)
            found = heads_by_layout.get(layout)
            if found is not None:
                last, heads = layout, found
                out += (heads[0], tokens, heads[1], logprobs)
                continue
        _put_sequence(out, seq, i)
    if response.prompt_logprobs_np is not None:
        values = w.array_buffer(response.prompt_logprobs_np, _F4)
        out += [_L2 + w.varint(values.nbytes), values]
    if isinstance(response.topk_prompt_logprobs_np, TopkLogprobs):
        out.append(w.len_field(_L3, _topk_body(response.topk_prompt_logprobs_np)))
    if response.prompt_cache_hit_tokens:
        out.append(_V4 + w.varint(response.prompt_cache_hit_tokens))
    if response.target_prompt_logprobs is not None:
        out += _tensor_message(response.target_prompt_logprobs, _L5, "target_prompt_logprobs")
    alt = response.prompt_alt_tokens
    if alt is not None:
        parts = _tensor_message(alt.tokens, _L1, "prompt_alt_tokens.tokens")
        parts += _tensor_message(alt.logprobs, _L2, "prompt_alt_tokens.logprobs")
        out.append(w.len_field(_L6, b"".join(parts)))
    try:
        return b"".join(out)
    except TypeError:
        # join refuses a strided array (a view such as ``a[::2]``), which the fast path of
        # _put_sequence passes as is; contiguous copies of the arrays make the same bytes.
        contiguous: list[Any] = [
            np.ascontiguousarray(p) if type(p) is np.ndarray else p for p in out
        ]
        return b"".join(contiguous)


# Per (stop_reason, tokens bytes, logprobs bytes): the bytes before the tokens and between
# tokens and logprobs. A result's sequences mostly share one layout (every "length" stop).
_SEQUENCE_HEADS: dict[tuple[Any, ...], tuple[bytes, ...]] = {}


def _put_sequence(out: list[Any], seq: SampledSequence, index: int) -> None:
    """Append one ``SampledSequence`` field: plain ones from cached heads, others in full."""
    tokens: Any = seq.tokens_np
    logprobs: Any = seq.logprobs_np
    if (
        seq.topk_logprobs_np is None
        and type(tokens) is np.ndarray
        and tokens.dtype is _I4
        and (logprobs is None or (type(logprobs) is np.ndarray and logprobs.dtype is _F4))
    ):
        layout = (seq.stop_reason, tokens.nbytes, None if logprobs is None else logprobs.nbytes)
        heads = _SEQUENCE_HEADS.get(layout)
        if heads is None:
            parts: list[Any] = []
            _put_any_sequence(parts, seq, index)
            heads = _heads_between(parts)
            if len(_SEQUENCE_HEADS) < _CACHE_LIMIT:
                _SEQUENCE_HEADS[layout] = heads
        # heads: before the tokens, between tokens and logprobs, and after the last array,
        # which is always empty here (no top-k) and so left out.
        if logprobs is None:
            out += (heads[0], tokens)
        else:
            out += (heads[0], tokens, heads[1], logprobs)
        return
    _put_any_sequence(out, seq, index)


def _put_any_sequence(out: list[Any], seq: SampledSequence, index: int) -> None:
    stop_reason = _STOP_REASON_ENUM.get(seq.stop_reason)
    if stop_reason is None:
        raise ValueError(
            f"sequences[{index}].stop_reason must be 'stop' or 'length', got {seq.stop_reason!r}"
        )
    head = _V1 + w.varint(stop_reason) if stop_reason else b""
    tokens = w.array_buffer(seq.tokens_np, _I4)
    if tokens.nbytes:
        head += _L2 + w.varint(tokens.nbytes)
    parts: list[Any] = [tokens]
    size = len(head) + tokens.nbytes
    if seq.logprobs_np is not None:
        logprobs = w.array_buffer(seq.logprobs_np, _F4)
        logprobs_head = _L3 + w.varint(logprobs.nbytes)
        parts += [logprobs_head, logprobs]
        size += len(logprobs_head) + logprobs.nbytes
    if isinstance(seq.topk_logprobs_np, TopkLogprobs):
        topk = w.len_field(_L4, _topk_body(seq.topk_logprobs_np))
        parts.append(topk)
        size += len(topk)
    out.append(_L1 + w.varint(size) + head)
    out += parts


def _topk_body(topk: TopkLogprobs) -> bytes:
    length, k = topk.token_ids.shape
    ids = w.array_buffer(topk.token_ids, _I4)
    lps = w.array_buffer(topk.logprobs, _F4)
    body = [
        w.len_field(_L1, ids.tobytes()) if ids.nbytes else b"",
        w.len_field(_L2, lps.tobytes()) if lps.nbytes else b"",
        _V3 + w.varint(k) if k else b"",
        _V4 + w.varint(length) if length else b"",
    ]
    return b"".join(body)


def decode_sample_response(
    body: bytes, *, sequence_ids: Sequence[str] | None = None, copy: bool = False
) -> SampleResponse:
    """Decode a protobuf ``SampleResponse`` as the official SDK reads it.

    Empty ``logprobs`` / ``prompt_logprobs`` bytes and top-k blocks with no rows or k = 0
    read as None. The wire has no sequence ids: pass the promise's ``sample_sequence_ids`` as
    ``sequence_ids`` to stamp them (one per sequence, in order), else they stay None.
    """
    buf = _as_bytes(body)
    views = w.ArrayViews(buf, copy)
    pos, end = 0, len(buf)
    sequences: list[SampledSequence] = []
    prompt_logprobs: npt.NDArray[Any] | None = None
    topk_prompt: TopkLogprobs | None = None
    cache_hits = 0
    target: TensorData | None = None
    alt: PromptAltTokens | None = None
    global _LAST_LAYOUT
    layout = _LAST_LAYOUT
    while pos < end:
        if layout is not None:
            pos = layout.read_run(buf, pos, end, views, sequences, sequence_ids)
            if pos >= end:
                break
        field_at = pos
        k, pos = w.read_key(buf, pos, end)
        if k == 0x0A:
            start, pos = w.read_len(buf, pos, end)
            index = len(sequences)
            sequence_id = (
                sequence_ids[index] if sequence_ids and index < len(sequence_ids) else None
            )
            try:
                sequences.append(_read_sequence(buf, start, pos, views, sequence_id))
            except ValueError as exc:
                raise ValueError(f"SampleResponse.sequences[{len(sequences)}]: {exc}") from None
            layout = _SequenceLayout.learn(buf, field_at, start, pos, sequences[-1])
            if layout is not None:
                _LAST_LAYOUT = layout
        elif k == 0x12:
            start, pos = w.read_len(buf, pos, end)
            prompt_logprobs = None
            if pos > start:
                what = "SampleResponse.prompt_logprobs"
                prompt_logprobs = views.get(start, pos, _F4, what)
        elif k == 0x1A:
            start, pos = w.read_len(buf, pos, end)
            topk_prompt = _read_topk(buf, start, pos, views, "SampleResponse.topk_prompt_logprobs")
        elif k == 0x20:
            raw, pos = w.read_varint(buf, pos, end)
            cache_hits = w.to_int32(raw)
        elif k == 0x2A:
            start, pos = w.read_len(buf, pos, end)
            target = _read_tensor(buf, start, pos, views, "SampleResponse.target_prompt_logprobs")
        elif k == 0x32:
            start, pos = w.read_len(buf, pos, end)
            alt = _read_alt_tokens(buf, start, pos, views)
        else:
            pos = w.skip_unknown(buf, pos, end, k, "SampleResponse", 6)
    if sequence_ids is not None and len(sequence_ids) != len(sequences):
        raise ValueError(
            f"sequence_ids has {len(sequence_ids)} ids for {len(sequences)} sampled sequences; "
            "pass the promise's sample_sequence_ids for this very result"
        )
    return SampleResponse(
        sequences=sequences,
        prompt_logprobs_np=prompt_logprobs,
        topk_prompt_logprobs_np=topk_prompt,
        target_prompt_logprobs=target,
        prompt_cache_hit_tokens=cache_hits,
        prompt_alt_tokens=alt,
    )


@dataclass(frozen=True, slots=True)
class _SequenceLayout:
    """The bytes of a plain ``sequences`` field: stop reason, tokens, logprobs, no top-k.

    The sequences of one result mostly share one layout (all "length" stops have one size),
    so once a sequence has been parsed, the fields that follow it are read by comparing bytes
    instead of parsing them. Equal bytes before the tokens (the field's key and length, the
    stop reason, the tokens' key and length) and between the arrays (the logprobs' key and
    length) leave no room for any other field, so the result is what parsing gives.
    """

    prefix: bytes
    mid: bytes
    mid_at: int  # offsets from the field's first byte
    logprobs_at: int
    size: int
    token_count: int
    logprob_count: int
    stop_reason: str

    @classmethod
    def learn(
        cls, buf: bytes, field_at: int, start: int, stop: int, seq: SampledSequence
    ) -> _SequenceLayout | None:
        """The layout of the field at ``field_at`` (payload ``buf[start:stop]``), if plain."""
        tokens: Any = seq.tokens_np
        logprobs: Any = seq.logprobs_np
        if seq.topk_logprobs_np is not None or logprobs is None:
            return None
        if not tokens.size or not logprobs.size:
            return None
        code = _STOP_REASON_ENUM[seq.stop_reason]
        head = (_V1 + w.varint(code) if code else b"") + _L2 + w.varint(tokens.nbytes)
        prefix = buf[field_at:start] + head
        mid = _L3 + w.varint(logprobs.nbytes)
        mid_at = len(prefix) + tokens.nbytes
        layout = cls(
            prefix=prefix,
            mid=mid,
            mid_at=mid_at,
            logprobs_at=mid_at + len(mid),
            size=stop - field_at,
            token_count=tokens.size,
            logprob_count=logprobs.size,
            stop_reason=seq.stop_reason,
        )
        fits = (
            layout.logprobs_at + logprobs.nbytes == layout.size
            and buf.startswith(prefix, field_at)
            and buf.startswith(mid, field_at + mid_at)
        )
        return layout if fits else None

    def read_run(
        self,
        buf: bytes,
        pos: int,
        end: int,
        views: w.ArrayViews,
        sequences: list[SampledSequence],
        sequence_ids: Sequence[str] | None,
    ) -> int:
        """Append the sequences of this layout from ``pos`` on; return where they stop."""
        # One loop with everything in locals: this runs once per sequence of a result.
        prefix, mid, mid_at, size = self.prefix, self.mid, self.mid_at, self.size
        tokens_at, logprobs_at = len(prefix), self.logprobs_at
        token_count, logprob_count = self.token_count, self.logprob_count
        stop_reason: Any = self.stop_reason
        id_count = len(sequence_ids) if sequence_ids else 0
        if not (pos + size <= end and buf.startswith(prefix, pos)):
            return pos
        int32s, float32s = views.by_shift(_I4), views.by_shift(_F4)
        copy = views.copy
        while (
            pos + size <= end
            and buf.startswith(prefix, pos)
            and buf.startswith(mid, pos + mid_at)
        ):
            index = len(sequences)
            at = pos + tokens_at
            tokens = int32s[at & 3][at >> 2 : (at >> 2) + token_count]
            at = pos + logprobs_at
            logprobs = float32s[at & 3][at >> 2 : (at >> 2) + logprob_count]
            if copy:
                tokens, logprobs = tokens.copy(), logprobs.copy()
            sequences.append(
                SampledSequence(
                    stop_reason=stop_reason,
                    sequence_id=sequence_ids[index] if index < id_count else None,  # type: ignore[index]
                    tokens_np=tokens,
                    logprobs_np=logprobs,
                )
            )
            pos += size
        return pos


# The layout of the last result's sequences: polls of one sampling setup repeat it, so the
# next result's first sequence is read by comparison too. An immutable value swapped whole,
# so threads racing on it at worst miss and parse.
_LAST_LAYOUT: _SequenceLayout | None = None


def _read_sequence(
    buf: bytes, pos: int, end: int, views: w.ArrayViews, sequence_id: str | None
) -> SampledSequence:
    # The hot loop of a sample result: one-byte keys and lengths of up to two bytes are read
    # inline, labels are constant (the caller adds the sequence index to any error).
    stop_reason = 0
    tokens: npt.NDArray[Any] = _NO_TOKENS
    logprobs: npt.NDArray[Any] | None = None
    topk: TopkLogprobs | None = None
    while pos < end:
        k = buf[pos]
        if k < 0x80:
            pos += 1
        else:
            k, pos = w.read_varint(buf, pos, end)
        if k == 0x12 or k == 0x1A:
            size = buf[pos] if pos < end else 0x80
            if size < 0x80 and pos + 1 + size <= end:
                start = pos + 1
                pos = start + size
            else:
                start, pos = w.read_len(buf, pos, end)
            if k == 0x12:
                tokens = views.get(start, pos, _I4, "SampledSequence.tokens")
            elif pos > start:
                logprobs = views.get(start, pos, _F4, "SampledSequence.logprobs")
            else:
                logprobs = None
        elif k == 0x08:
            stop_reason, pos = w.read_varint(buf, pos, end)
        elif k == 0x22:
            start, pos = w.read_len(buf, pos, end)
            topk = _read_topk(buf, start, pos, views, "SampledSequence.topk_sampled_logprobs")
        else:
            pos = w.skip_unknown(buf, pos, end, k, "SampledSequence", 4)
    name = _STOP_REASON_NAME.get(stop_reason)
    if name is None:
        raise ValueError(
            f"SampledSequence.stop_reason is {stop_reason}, not STOP (0) or LENGTH (1): the "
            "server speaks a newer protocol; upgrade tinkex-actors"
        )
    return SampledSequence(
        stop_reason=name,  # type: ignore[arg-type]
        sequence_id=sequence_id,
        tokens_np=tokens,
        logprobs_np=logprobs,
        topk_logprobs_np=topk,
    )


def _read_topk(
    buf: bytes, pos: int, end: int, views: w.ArrayViews, what: str
) -> TopkLogprobs | None:
    fields = w.read_message(buf, pos, end, _TOPK_SCHEMA, what)
    k_value, length = fields.get(3, 0) & 0xFFFFFFFF, fields.get(4, 0) & 0xFFFFFFFF
    if length == 0 or k_value == 0:
        return None
    (ids_lo, ids_hi), (lps_lo, lps_hi) = fields.get(1, (0, 0)), fields.get(2, (0, 0))
    ids = views.get(ids_lo, ids_hi, _I4, f"{what}.token_ids")
    lps = views.get(lps_lo, lps_hi, _F4, f"{what}.logprobs")
    if ids.size != length * k_value or lps.size != length * k_value:
        raise ValueError(
            f"{what} declares length={length}, k={k_value} ({length * k_value} values) but "
            f"carries {ids.size} token ids and {lps.size} logprobs"
        )
    shape = (length, k_value)
    return TopkLogprobs(ids.reshape(shape), lps.reshape(shape))


def _read_alt_tokens(buf: bytes, pos: int, end: int, views: w.ArrayViews) -> PromptAltTokens:
    what = "SampleResponse.prompt_alt_tokens"
    fields = w.read_message(buf, pos, end, {1: w.LEN, 2: w.LEN}, what)
    (tokens_lo, tokens_hi), (lps_lo, lps_hi) = fields.get(1, (0, 0)), fields.get(2, (0, 0))
    tokens = _read_tensor(buf, tokens_lo, tokens_hi, views, f"{what}.tokens")
    logprobs = _read_tensor(buf, lps_lo, lps_hi, views, f"{what}.logprobs")
    return PromptAltTokens(tokens=tokens, logprobs=logprobs)


# ============================================================================================
# small shared readers
# ============================================================================================


def _as_bytes(body: bytes | bytearray | memoryview) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"body must be bytes, got {type(body).__name__}")


def _wire_dtype(dtype_enum: int, what: str) -> np.dtype[Any]:
    wire = _WIRE_NUMPY.get(dtype_enum)
    if wire is None:
        raise ValueError(
            f"{what}.dtype is {dtype_enum}; expected DTYPE_FLOAT32 (1), DTYPE_INT64 (2), "
            "DTYPE_INT32 (3) or DTYPE_BFLOAT16 (4)"
        )
    return wire


def _typed_view(
    views: w.ArrayViews,
    bounds: tuple[int, int] | None,
    wire_dtype: np.dtype[Any],
    dtype_enum: int,
    what: str,
) -> npt.NDArray[Any]:
    """The array at ``bounds`` in its public dtype (int32 -> int64, bfloat16 -> float32)."""
    start, stop = bounds if bounds is not None else (0, 0)
    values = views.get(start, stop, wire_dtype, what)
    if dtype_enum == _DTYPE_INT32:
        return values.astype(np.int64)
    if dtype_enum == _DTYPE_BFLOAT16:
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values
