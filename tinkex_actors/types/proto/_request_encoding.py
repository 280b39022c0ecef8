"""Encoding of a ``ForwardBackwardRequest``: plain datums from cached heads, any other in full."""

from __future__ import annotations

import functools
import struct
from typing import Any, Final

import numpy as np

from .. import _pbwire as w
from .._model_input import DmelChunk, EncodedTextChunk, ImageChunk, ModelInputChunk
from .._training import (
    Datum,
    ForwardBackwardInput,
    PromptProvenanceSpan,
    SampledProvenanceSpan,
)
from ._fields import (
    CACHE_LIMIT,
    D1,
    D2,
    F4,
    I4,
    I8,
    INT32_MAX,
    INT32_MIN,
    L1,
    L2,
    L3,
    L4,
    L5,
    L7,
    V2,
    V3,
    V6,
    heads_between,
)
from ._tensor_message import put_tensor_entry


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
    if not INT32_MIN <= seq_id <= INT32_MAX:
        raise ValueError(f"seq_id must fit in int32, got {seq_id}; seq_ids count up from 0")
    out: list[Any] = []
    if model_id:
        out.append(w.string_field(L1, model_id))
    if seq_id:
        out.append(V2 + w.varint(seq_id))
    for i, datum in enumerate(forward_backward_input.data):
        _put_datum(out, datum, i)
    if forward_backward_input.loss_fn:
        out.append(w.string_field(L4, forward_backward_input.loss_fn))
    config = forward_backward_input.loss_fn_config or {}
    for name, value in config.items():
        if not isinstance(value, str):
            entry = w.string_field(L1, name) + D2 + w.double(float(value))
            out.append(w.len_field(L5, entry))
    if forward_only:
        out.append(V6 + b"\x01")
    for name, value in config.items():
        if isinstance(value, str):
            payload = w.string_field(L2, value)
        else:
            payload = D1 + w.double(float(value))
        entry = w.string_field(L1, name) + w.len_field(L2, payload)
        out.append(w.len_field(L7, entry))
    return b"".join(out)


def _put_datum(out: list[Any], datum: Datum, index: int) -> None:
    """Append one ``Datum`` field: the common layout from cached heads, any other in full."""
    if not _put_plain_datum(out, datum, index):
        _put_any_datum(out, datum, index)


# The heads (keys, lengths, names, dtype and shape fields) around the arrays of a plain datum,
# by layout: a batch's datums mostly share one layout, so each is encoded once.
_PLAIN_HEADS: dict[tuple[Any, ...], tuple[bytes, ...]] = {}
_PLAIN_WIRE: Final[dict[Any, np.dtype[Any]]] = {"float32": F4, "int64": I8}


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
        if len(_PLAIN_HEADS) < CACHE_LIMIT:
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
    heads = heads_between(parts)
    return heads if len(heads) == count + 1 else None


def _put_any_datum(out: list[Any], datum: Datum, index: int) -> None:
    slot = len(out)
    out.append(b"")
    size = 0
    for j, chunk in enumerate(datum.model_input.chunks):
        size += _put_chunk(out, chunk, index, j)
    for name, tensor in datum.loss_fn_inputs.items():
        size += put_tensor_entry(out, L2, name, tensor)
    for field_key, spans in ((L3, datum.model_input_spans), (L4, datum.loss_fn_input_spans)):
        for span in spans or ():
            encoded = w.len_field(field_key, _encode_span(span))
            out.append(encoded)
            size += len(encoded)
    head = L3 + w.varint(size)
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
            tokens_head = L1 + w.varint(nbytes)
            text_size = len(tokens_head) + nbytes
            text_head = L1 + w.varint(text_size)
            head = L1 + w.varint(len(text_head) + text_size) + text_head + tokens_head
            out.append(head)
            out.append(tokens)
            return len(head) + nbytes
        encoded = w.len_field(L1, L1 + b"\x00")
        out.append(encoded)
        return len(encoded)
    if isinstance(chunk, ImageChunk):
        body = b""
        if chunk.data:
            body += w.len_field(L1, chunk.data)
        if chunk.format:
            body += w.string_field(L2, chunk.format)
        if chunk.expected_tokens is not None:
            body += V3 + w.varint(chunk.expected_tokens)
        encoded = w.len_field(L1, w.len_field(L2, body))
    elif isinstance(chunk, DmelChunk):
        body = w.len_field(L1, chunk.dmel) if chunk.dmel else b""
        encoded = w.len_field(L1, w.len_field(L3, body))
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
        if tokens.dtype == I4:
            return tokens if tokens.flags.c_contiguous else np.ascontiguousarray(tokens)
        # Token ids are >= 0 (EncodedTextChunk checks), so only the top can overflow int32.
        if tokens.size and int(tokens.max()) > INT32_MAX:
            raise ValueError(_token_error(index, position, "an id past 2**31 - 1"))
        return np.ascontiguousarray(tokens, dtype=I4)
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


def _encode_span(span: PromptProvenanceSpan | SampledProvenanceSpan) -> bytes:
    body = w.string_field(L1, span.sequence_id) if span.sequence_id else b""
    if span.offset:
        body += V2 + w.varint(span.offset)
    if span.length:
        body += V3 + w.varint(span.length)
    arm = L2 if isinstance(span, SampledProvenanceSpan) else L1
    return w.len_field(arm, body)
