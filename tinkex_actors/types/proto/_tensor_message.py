"""The ``Tensor`` message both ways: dense or CSR values with their dtype and shape."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from .. import _pbwire as w
from .._tensor import TensorData
from ._fields import (
    DTYPE_INT64,
    I8,
    L1,
    L2,
    L3,
    L4,
    PUBLIC_DTYPE,
    TENSOR_DTYPE_ENUM,
    V3,
    WIRE_NUMPY,
    cached,
    typed_view,
    wire_numpy_dtype,
)

_NAME_FIELDS: dict[str, bytes] = {}
_TENSOR_TAILS: dict[tuple[int, ...], bytes] = {}


def put_tensor_entry(out: list[Any], field_key: bytes, name: str, tensor: TensorData) -> int:
    """Append one ``map<string, Tensor>`` entry; return the bytes appended."""
    parts, tensor_size = _tensor_parts(tensor, name)
    name_field = cached(_NAME_FIELDS, name, lambda: w.string_field(L1, name))
    tensor_head = L2 + w.varint(tensor_size)
    entry_size = len(name_field) + len(tensor_head) + tensor_size
    head = field_key + w.varint(entry_size) + name_field + tensor_head
    out.append(head)
    out += parts
    return len(head) + tensor_size


def _tensor_parts(tensor: TensorData, what: str) -> tuple[list[Any], int]:
    """The fields of a ``Tensor`` message as buffers to join, and their total size."""
    dtype_enum = TENSOR_DTYPE_ENUM.get(tensor.dtype or "")
    if dtype_enum is None:
        raise ValueError(
            f"{what}: TensorData.dtype must be 'float32' or 'int64', got {tensor.dtype!r}"
        )
    wire = WIRE_NUMPY[dtype_enum]
    data = tensor.data_np
    if data.dtype != wire or not data.flags.c_contiguous:
        data = np.ascontiguousarray(data, dtype=wire)
    shape = tensor.shape
    shape_key = (dtype_enum, *shape) if shape else (dtype_enum,)
    tail = cached(_TENSOR_TAILS, shape_key, lambda: _tensor_tail(dtype_enum, shape))
    if tensor.sparse_crow_indices is not None:
        csr = w.len_field(L1, data.tobytes()) if data.nbytes else b""
        for field, indices in (
            (L2, tensor.sparse_crow_indices),
            (L3, tensor.sparse_col_indices),
        ):
            if indices:
                csr += w.len_field(field, np.asarray(indices, dtype=I8).tobytes())
        encoded = w.len_field(L2, csr) + tail
        return [encoded], len(encoded)
    nbytes = data.nbytes
    dense_head = L1 + w.varint(nbytes)
    return [dense_head, data, tail], len(dense_head) + nbytes + len(tail)


def _tensor_tail(dtype_enum: int, shape: list[int] | None) -> bytes:
    """The ``dtype`` and ``shape`` fields of a Tensor (they follow its data on the wire)."""
    tail = V3 + w.varint(dtype_enum)
    if shape:
        tail += w.len_field(L4, w.packed_varints(shape))
    return tail


def tensor_message(tensor: TensorData, field_key: bytes, what: str) -> list[Any]:
    """A whole ``Tensor`` field (key, length, body) as buffers to join."""
    parts, size = _tensor_parts(tensor, what)
    return [field_key + w.varint(size), *parts]


def read_tensor_entry(
    buf: bytes, pos: int, end: int, views: w.ArrayViews, what: str
) -> tuple[str, TensorData]:
    """One ``map<string, Tensor>`` entry at ``buf[pos:end]``: its key and tensor."""
    entry = w.read_message(buf, pos, end, {1: w.LEN, 2: w.LEN}, f"{what} entry")
    name = w.decode_str(buf, entry.get(1), f"{what} key")
    lo, hi = entry.get(2, (0, 0))
    return name, read_tensor(buf, lo, hi, views, f"{what}[{name!r}]")


_CSR_SCHEMA: Final = {1: w.LEN, 2: w.LEN, 3: w.LEN}


def read_tensor(buf: bytes, pos: int, end: int, views: w.ArrayViews, what: str) -> TensorData:
    """The ``Tensor`` message at ``buf[pos:end]``, its arrays as views (see ``views``)."""
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
    wire_dtype = wire_numpy_dtype(dtype_enum, what)
    if csr is not None:
        values = typed_view(views, csr[0], wire_dtype, dtype_enum, f"{what}.values")
        crow = typed_view(views, csr[1], I8, DTYPE_INT64, f"{what}.crow_indices")
        col = typed_view(views, csr[2], I8, DTYPE_INT64, f"{what}.col_indices")
        return TensorData(
            data=values,
            dtype=PUBLIC_DTYPE[dtype_enum],
            shape=shape,
            sparse_crow_indices=crow.tolist(),
            sparse_col_indices=col.tolist(),
        )
    values = typed_view(views, dense, wire_dtype, dtype_enum, f"{what}.dense")
    return TensorData(data=values, dtype=PUBLIC_DTYPE[dtype_enum], shape=shape)
