"""TensorData: a typed numeric array on the wire (`{data, dtype, shape?}`).

`td.data` is a new flat list of Python numbers on each read, as in the official SDK
(so a value taken from it is an `int`/`float` that JSON and metrics accept, and editing
that list changes nothing). Reading tensors fast (for codecs): `td.data_np` is the
flat, C-contiguous numpy array of the declared dtype (`int64` or `float32`) the
values are kept in, built without a copy when the caller's array already had that
dtype and layout; `td.to_numpy()` is a view of it in the declared shape. So
`td.data_np.tobytes()` gives the little-endian payload, and `TensorData(data=
np.frombuffer(buf, np.float32), dtype="float32", shape=[...])` builds one from bytes
without a copy. A list given as `data` is packed into a new array: the caller may
reuse the list.

A flat list of numbers is converted with `struct` (one checked pass, 2-3x faster
than numpy); anything struct refuses (nested lists, None, mixed kinds) takes numpy's
path, so both give the same array.
"""

from __future__ import annotations

import contextlib
import functools
import math
import struct
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from ._base import WireStruct, sent_list

__all__ = ["TensorData", "TensorDtype"]

TensorDtype: TypeAlias = Literal["int64", "float32"]

_NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "int64": np.dtype(np.int64),
    "float32": np.dtype(np.float32),
}

if TYPE_CHECKING:
    TensorValues: TypeAlias = npt.NDArray[Any] | list[int] | list[float]
else:
    # What msgspec decodes from JSON; __post_init__ turns it into an array.
    TensorValues = list[int | float | None]  # null: NaN/inf written by a JSON encoder


def numpy_dtype(dtype: str, field: str = "dtype") -> np.dtype[Any]:
    """The numpy dtype for a wire dtype name; a clear error for any other name."""
    try:
        return _NUMPY_DTYPES[dtype]
    except (KeyError, TypeError):
        raise ValueError(
            f"{field} must be 'int64' or 'float32', got {dtype!r}; "
            "pick one of them (integers: 'int64', reals: 'float32')"
        ) from None


def tensor_dtype_of(array_dtype: np.dtype[Any], field: str = "data") -> TensorDtype:
    """The wire dtype for a numpy dtype, as the official SDK maps it (ints/floats)."""
    if array_dtype.kind in "iu":
        return "int64"
    if array_dtype.kind == "f":
        return "float32"
    raise ValueError(
        f"{field} has numpy dtype {array_dtype}, which has no wire dtype; "
        "convert it to an integer or floating array first"
    )


# struct codes (native order, standard sizes) of the dtypes a flat list is packed into.
_STRUCT_CODES: dict[np.dtype[Any], str] = {
    np.dtype(np.int64): "q",
    np.dtype(np.int32): "i",
    np.dtype(np.float32): "f",
}


@functools.lru_cache(maxsize=512)
def _list_packer(code: str, count: int) -> struct.Struct:
    return struct.Struct(f"={count}{code}")


def pack_flat_list(values: list[Any], np_dtype: np.dtype[Any]) -> npt.NDArray[Any] | None:
    """A flat list of numbers as a new array of `np_dtype`, or None if struct refuses it.

    `struct` converts a list of Python numbers 2-3x faster than `np.asarray` (measured on
    2,048 values: ints 16 us against 33 us, floats 13 us against 32 us) and checks each
    value on the way: ints only for integer dtypes, each within the dtype's range. None
    comes back for anything it refuses (nested lists, None, floats in an integer list, a
    float past float32's range): the caller then takes numpy's slower, more permissive
    path, so the result never differs from what numpy would have built.
    """
    code = _STRUCT_CODES.get(np_dtype)
    if code is None:
        return None
    arr = np.empty(len(values), dtype=np_dtype)
    try:
        _list_packer(code, len(values)).pack_into(arr, 0, *values)  # type: ignore[arg-type]
    except (struct.error, OverflowError, TypeError):
        return None
    return arr


def as_flat_array(values: Any, np_dtype: np.dtype[Any], field: str) -> npt.NDArray[Any]:
    """Values as a flat C-contiguous array of `np_dtype` (no copy when already one)."""
    if type(values) is np.ndarray:
        if values.dtype is np_dtype and values.ndim == 1 and values.flags.c_contiguous:
            return values
    elif type(values) is list:
        packed = pack_flat_list(values, np_dtype)
        if packed is not None:
            return packed
    return as_array(values, np_dtype, field).reshape(-1)


def as_array(values: Any, np_dtype: np.dtype[Any], field: str) -> npt.NDArray[Any]:
    """Values (array or nested lists) as a C-contiguous array of `np_dtype`, shape kept."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf":
            raise ValueError(
                f"{field} has numpy dtype {values.dtype}; pass integer or floating values"
            )
        arr = values
    elif isinstance(values, list | tuple):
        try:
            arr = np.asarray(values)
        except ValueError:
            raise ValueError(
                f"{field} must be a rectangular numeric array; ragged nested lists are "
                "not supported: pad the rows to one length"
            ) from None
        if arr.dtype == object and np_dtype.kind == "f":
            # JSON has no NaN/inf: both SDKs write them as null, so null reads as NaN.
            with contextlib.suppress(TypeError, ValueError):
                arr = np.asarray(values, dtype=np_dtype)
        if arr.dtype == object and any(v is None for v in np.ravel(arr)):
            raise ValueError(
                f"{field} holds None; replace missing values with numbers (None reads as "
                "NaN only in float32 tensors)"
            )
        if arr.size and arr.dtype.kind not in "iufb":
            raise ValueError(
                f"{field} must hold numbers, got {arr.dtype} values such as "
                f"{np.ravel(arr)[0]!r}; pass ints or floats"
            )
    else:
        raise TypeError(
            f"{field} must be a list or a numpy array, got {type(values).__name__}; "
            "pass a list of numbers or a numpy array"
        )
    if arr.dtype != np_dtype:
        arr = arr.astype(np_dtype)
    return np.ascontiguousarray(arr)


def _require_torch(method: str) -> Any:
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ImportError(
            f"PyTorch is not installed, and TensorData.{method} needs it: "
            "pip install 'tinkex-actors[torch]' (or torch), or use from_numpy/to_numpy"
        ) from None
    return torch


def is_torch_tensor(value: object) -> bool:
    """True for a torch.Tensor, without importing torch when it is not loaded."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


class TensorData(WireStruct, frozen=True):
    """A flat numeric array with its dtype and optional shape (official `TensorData`).

    Construction accepts a list, nested lists or a numpy array in `data`; the value
    is kept as a flat numpy array of `dtype` (see the module docstring for the
    zero-copy rules). `shape` stays None when the caller gave none, as on the wire.
    Sparse CSR tensors carry `sparse_crow_indices` / `sparse_col_indices`; then
    `data` holds only the listed values.
    """

    data: TensorValues = sent_list()
    dtype: TensorDtype | None = None
    shape: list[int] | None = None
    sparse_crow_indices: list[int] | None = None
    sparse_col_indices: list[int] | None = None

    def __post_init__(self) -> None:
        if self.dtype is None:
            raise TypeError(
                "TensorData.dtype is required; pass dtype='int64' or dtype='float32'"
            )
        np_dtype = numpy_dtype(self.dtype, "TensorData.dtype")
        given = _RAW_DATA.__get__(self)
        arr = as_flat_array(given, np_dtype, "TensorData.data")
        if arr is not given:
            _RAW_DATA.__set__(self, arr)
        sparse = self.sparse_crow_indices is not None or self.sparse_col_indices is not None
        shape = self.shape
        if (
            not sparse
            and type(shape) is list
            and len(shape) == 1
            and type(shape[0]) is int
            and shape[0] == arr.size
        ):
            return  # the common case, a 1-D tensor whose shape is already right
        if self.shape is not None:
            shape = list(self.shape)
            if any(not isinstance(d, int | np.integer) or d < 0 for d in shape):
                raise ValueError(
                    f"TensorData.shape must be non-negative integers, got {self.shape!r}"
                )
            shape = [int(d) for d in shape]
            msgspec.structs.force_setattr(self, "shape", shape)
            if not sparse and math.prod(shape) != arr.size:
                raise ValueError(
                    f"TensorData.shape {shape} holds {math.prod(shape)} values but data has "
                    f"{arr.size}; fix the shape or the data"
                )
        if sparse:
            self._check_sparse(arr.size)

    def _check_sparse(self, nnz: int) -> None:
        crow, col = self.sparse_crow_indices, self.sparse_col_indices
        if crow is None or col is None:
            raise ValueError(
                "TensorData.sparse_crow_indices and sparse_col_indices come together; "
                "set both or neither"
            )
        if self.shape is None or len(self.shape) != 2:
            raise ValueError(
                f"a sparse CSR TensorData needs a 2-D shape, got shape={self.shape!r}"
            )
        if len(crow) != self.shape[0] + 1 or len(col) != nnz:
            raise ValueError(
                f"sparse CSR TensorData: expected {self.shape[0] + 1} row pointers and "
                f"{nnz} column indices (one per value), got {len(crow)} and {len(col)}"
            )

    @property
    def data_np(self) -> npt.NDArray[Any]:
        """The values as the flat C-contiguous array they are kept in (for codecs; read only)."""
        arr: npt.NDArray[Any] = _RAW_DATA.__get__(self)
        return arr

    @classmethod
    def from_numpy(cls, array: npt.NDArray[Any]) -> TensorData:
        """A TensorData of the array's kind (ints -> int64, floats -> float32) and shape."""
        dtype = tensor_dtype_of(array.dtype, "array")
        return cls(data=array, dtype=dtype, shape=list(array.shape))

    @classmethod
    def from_torch(cls, tensor: Any) -> TensorData:
        """A TensorData from a torch tensor (bfloat16 widened to float32); needs torch."""
        _require_torch("from_torch")
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        return cls.from_numpy(tensor.detach().cpu().contiguous().numpy())

    @classmethod
    def from_torch_sparse(cls, tensor: Any, pad_value: int = 0) -> TensorData:
        """A sparse CSR TensorData of a 2-D torch tensor, entries equal to `pad_value` left out.

        Falls back to a dense TensorData for other ranks, or when CSR would not be smaller
        (row pointers + column indices + values against rows x columns values).
        """
        _require_torch("from_torch_sparse")
        pad = _check_pad_value(pad_value)
        if tensor.ndim != 2:
            return cls.from_torch(tensor)
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        dense = tensor.detach().cpu().contiguous().numpy()
        rows, cols = np.nonzero(dense != pad)
        n_rows, n_cols = dense.shape
        if (n_rows + 1) + 2 * rows.size >= n_rows * n_cols:
            return cls.from_numpy(dense)
        crow = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=crow[1:])
        return cls(
            data=dense[rows, cols],
            dtype=tensor_dtype_of(dense.dtype, "tensor"),
            shape=[int(n_rows), int(n_cols)],
            sparse_crow_indices=crow.tolist(),
            sparse_col_indices=cols.tolist(),
        )

    def to_torch(self, pad_value: int = 0) -> Any:
        """The values as a torch tensor of the declared dtype and shape; needs torch."""
        torch = _require_torch("to_torch")
        return torch.from_numpy(np.array(self.to_numpy(_check_pad_value(pad_value))))

    def to_numpy(self, pad_value: int = 0) -> npt.NDArray[Any]:
        """The values in the declared dtype and shape (a view; sparse tensors densified)."""
        arr = self.data_np
        if self.sparse_crow_indices is not None:
            return self._densify(arr, _check_pad_value(pad_value))
        if self.shape is not None:
            return arr.reshape(self.shape)
        return arr

    def _densify(self, values: npt.NDArray[Any], pad_value: int) -> npt.NDArray[Any]:
        assert self.shape is not None and self.sparse_col_indices is not None
        crow = np.asarray(self.sparse_crow_indices, dtype=np.int64)
        dense = np.full(self.shape, pad_value, dtype=values.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(crow))
        dense[rows, np.asarray(self.sparse_col_indices, dtype=np.int64)] = values
        return dense

    def tolist(self, pad_value: int = 0) -> list[Any]:
        """The values as (nested) Python lists in the declared shape."""
        result: list[Any] = self.to_numpy(pad_value).tolist()
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TensorData):
            return NotImplemented
        return (
            self.dtype == other.dtype
            and self.shape == other.shape
            and self.sparse_crow_indices == other.sparse_crow_indices
            and self.sparse_col_indices == other.sparse_col_indices
            and np.array_equal(self.data_np, other.data_np, equal_nan=self.dtype == "float32")
        )

    __hash__ = None  # type: ignore[assignment]


# `data` reads as a list (official), while the struct slot keeps the array: msgspec encodes,
# decodes, copies and pickles through the slot, and attribute reads go to this property.
_RAW_DATA: Any = TensorData.__dict__["data"]


def _data_list(self: TensorData) -> list[Any]:
    """The values as a new flat list of Python numbers (official `TensorData.data`)."""
    values: list[Any] = self.data_np.tolist()
    return values


setattr(TensorData, "data", property(_data_list, doc=_data_list.__doc__))  # noqa: B010


def _check_pad_value(pad_value: Any) -> int:
    if isinstance(pad_value, bool) or not isinstance(pad_value, int | np.integer):
        raise TypeError(
            f"pad_value must be an integer, got {type(pad_value).__name__} {pad_value!r}"
        )
    return int(pad_value)
