"""The ``ForwardBackwardOutput`` message both ways: per-datum outputs as ``ArrayRecord`` batches."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _pbwire as w
from .._tensor import TensorData
from .._training import ForwardBackwardOutput
from ._fields import (
    D2,
    DTYPE_INT64,
    I8,
    L1,
    L2,
    L3,
    L4,
    MAX_DATUMS,
    PUBLIC_DTYPE,
    TENSOR_DTYPE_ENUM,
    V3,
    WIRE_NUMPY,
    as_bytes,
    read_double_entry,
    typed_view,
    wire_numpy_dtype,
)


def encode_forward_backward_output(output: ForwardBackwardOutput) -> bytes:
    """Encode a ``ForwardBackwardOutput`` result (what the embedded server answers).

    Consecutive datums whose fields share names, dtypes and trailing shapes go into one
    ``ArrayRecord``; a change starts the next record, as ragged outputs need.
    """
    out: list[Any] = []
    if output.loss_fn_output_type:
        out.append(w.string_field(L1, output.loss_fn_output_type))
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
        entry = w.string_field(L1, name) + D2 + w.double(float(value))
        out.append(w.len_field(L3, entry))
    return b"".join(out)


_Signature = tuple[tuple[str, int, tuple[int, ...]], ...]


def _record_signature(datum: Mapping[str, TensorData], index: int) -> _Signature:
    fields = []
    for name, tensor in datum.items():
        dtype_enum = TENSOR_DTYPE_ENUM.get(tensor.dtype or "")
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
        tag_field = w.string_field(L1, type_tag)
        out.append(tag_field)
        size += len(tag_field)
    for name, dtype_enum, trailing in signature:
        wire = WIRE_NUMPY[dtype_enum]
        arrays = [w.array_buffer(_dense(d[name]), wire) for d in datums]
        offsets = np.zeros(len(arrays) + 1, dtype=I8)
        np.cumsum([a.nbytes for a in arrays], out=offsets[1:])
        data_size = int(offsets[-1])
        tail = w.len_field(L2, offsets.tobytes()) + V3 + w.varint(dtype_enum)
        if trailing:
            tail += w.len_field(L4, w.packed_varints(list(trailing)))
        data_head = (L1 + w.varint(data_size)) if data_size else b""
        tensor_size = len(data_head) + data_size + len(tail)
        name_field = w.string_field(L1, name)
        value_head = L2 + w.varint(tensor_size)
        entry_size = len(name_field) + len(value_head) + tensor_size
        head = L2 + w.varint(entry_size) + name_field + value_head + data_head
        out.append(head)
        out.extend(arrays)
        out.append(tail)
        size += len(head) + data_size + len(tail)
    num = V3 + w.varint(len(datums))
    out.append(num)
    size += len(num)
    out[slot] = L2 + w.varint(size)


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
    buf = as_bytes(body)
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
            name, number = read_double_entry(buf, start, pos, "ForwardBackwardOutput.metrics")
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
    if not 0 <= num_datums <= MAX_DATUMS:
        # Datums without fields cost no bytes, so only this bound keeps a corrupt count
        # from building billions of empty outputs.
        raise ValueError(
            f"ForwardBackwardOutput declares {num_datums} datums; expected 0..{MAX_DATUMS}"
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
    wire_dtype = wire_numpy_dtype(dtype_enum, what)
    values = typed_view(views, data_range, wire_dtype, dtype_enum, f"{what}.data")
    offsets = typed_view(views, offsets_range, I8, DTYPE_INT64, f"{what}.offsets")
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
    public = PUBLIC_DTYPE[dtype_enum]
    bounds_list = (offsets // itemsize).tolist()
    tensors = []
    for lo, hi in itertools.pairwise(bounds_list):
        part = values[lo:hi]
        leading = part.size // trailing_elems if trailing_elems else 0
        tensors.append(TensorData(data=part, dtype=public, shape=[leading, *trailing]))
    return tensors
