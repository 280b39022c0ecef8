"""Field keys, dtype codes and the small helpers that every message of the binary wire shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .. import _pbwire as w

# Field keys as they appear on the wire: (field number << 3) | wire type.
L1, L2, L3, L4, L5, L6, L7 = (w.key(n, w.LEN) for n in range(1, 8))
V1, V2, V3, V4, V6 = (w.key(n, w.VARINT) for n in (1, 2, 3, 4, 6))
D1, D2 = w.key(1, w.FIXED64), w.key(2, w.FIXED64)

# DType enum values, and the little-endian numpy dtype of each on the wire.
DTYPE_FLOAT32, DTYPE_INT64, DTYPE_INT32, DTYPE_BFLOAT16 = 1, 2, 3, 4
TENSOR_DTYPE_ENUM: Final = {"float32": DTYPE_FLOAT32, "int64": DTYPE_INT64}
WIRE_NUMPY: Final[dict[int, np.dtype[Any]]] = {
    DTYPE_FLOAT32: np.dtype("<f4"),
    DTYPE_INT64: np.dtype("<i8"),
    DTYPE_INT32: np.dtype("<i4"),
    DTYPE_BFLOAT16: np.dtype("<u2"),
}
# Public TensorData dtypes: integer widths collapse to int64, bfloat16 widens to float32.
PUBLIC_DTYPE: Final[dict[int, Any]] = {
    DTYPE_FLOAT32: "float32",
    DTYPE_INT64: "int64",
    DTYPE_INT32: "int64",
    DTYPE_BFLOAT16: "float32",
}
I4: Final = np.dtype("<i4")
F4: Final = np.dtype("<f4")
I8: Final = np.dtype("<i8")
NO_TOKENS: Final = np.empty(0, dtype=I4)
NO_TOKENS.flags.writeable = False

STOP_REASON_ENUM: Final = {"stop": 0, "length": 1}
STOP_REASON_NAME: Final = {0: "stop", 1: "length"}

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
MAX_DATUMS: Final = 1 << 24  # far above any batch a server accepts


CACHE_LIMIT: Final = 4096


def cached(cache: dict[Any, bytes], cache_key: Any, make: Callable[[], bytes]) -> bytes:
    """Small encoded pieces repeat across datums (field names, shapes): build each once."""
    found = cache.get(cache_key)
    if found is None:
        found = make()
        if len(cache) < CACHE_LIMIT:
            cache[cache_key] = found
    return found


def heads_between(parts: list[Any]) -> tuple[bytes, ...]:
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


def read_double_entry(buf: bytes, pos: int, end: int, what: str) -> tuple[str, float]:
    """One ``map<string, double>`` entry at ``buf[pos:end]``: its key and value."""
    fields = w.read_message(buf, pos, end, {1: w.LEN, 2: w.FIXED64}, f"{what} entry")
    return w.decode_str(buf, fields.get(1), f"{what} key"), fields.get(2, 0.0)


def as_bytes(body: bytes | bytearray | memoryview) -> bytes:
    """The body as ``bytes`` (a bytearray or memoryview is copied once); TypeError otherwise."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"body must be bytes, got {type(body).__name__}")


def wire_numpy_dtype(dtype_enum: int, what: str) -> np.dtype[Any]:
    """The numpy dtype of a ``DType`` code on the wire; ValueError naming ``what`` if unknown."""
    wire = WIRE_NUMPY.get(dtype_enum)
    if wire is None:
        raise ValueError(
            f"{what}.dtype is {dtype_enum}; expected DTYPE_FLOAT32 (1), DTYPE_INT64 (2), "
            "DTYPE_INT32 (3) or DTYPE_BFLOAT16 (4)"
        )
    return wire


def typed_view(
    views: w.ArrayViews,
    bounds: tuple[int, int] | None,
    wire_dtype: np.dtype[Any],
    dtype_enum: int,
    what: str,
) -> npt.NDArray[Any]:
    """The array at ``bounds`` in its public dtype (int32 -> int64, bfloat16 -> float32)."""
    start, stop = bounds if bounds is not None else (0, 0)
    values = views.get(start, stop, wire_dtype, what)
    if dtype_enum == DTYPE_INT32:
        return values.astype(np.int64)
    if dtype_enum == DTYPE_BFLOAT16:
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values
