"""ModelInput and its chunks: the tokens (and images) a model reads.

Reading tokens fast (for codecs): `EncodedTextChunk.tokens` reads as a new `list[int]`
when the caller gave a list (the chunk keeps its own int32 copy, so the caller may reuse
the list, as with the official SDK), or as the 1-D integer numpy array the caller gave,
never copied. Use
`chunk.tokens_array(np.int32)` to get an array of the wanted dtype (no copy when
it already is one) and `.tobytes()` for the little-endian payload.

Token ids also go into an int32 array once, at construction: a list is packed
with `struct` (one pass that also proves every id is an int in int32's range,
faster than `min()` over the list), an array of another integer dtype is
converted, an int32 array is used as is. The binary encoder sends that array. So,
as with any frozen value, change tokens by building a new chunk, not by editing
the array you passed in.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from ._base import TypeTagged, WireStruct
from ._tensor import pack_flat_list

__all__ = [
    "DmelChunk",
    "EncodedTextChunk",
    "ImageAssetPointerChunk",
    "ImageChunk",
    "ModelInput",
    "ModelInputChunk",
]

if TYPE_CHECKING:
    Tokens: TypeAlias = list[int] | npt.NDArray[np.integer[Any]]
else:
    Tokens = list[int]  # what msgspec decodes from JSON

ImageFormat: TypeAlias = Literal["png", "jpeg"]
_IMAGE_FORMATS = ("png", "jpeg")
_INT32: Final = np.dtype(np.int32)
_INT32_MAX: Final = (1 << 31) - 1
_PACKED = "_int32_tokens"  # where a chunk keeps its tokens packed as int32 (in __dict__)


class _ListTokens(np.ndarray):
    """Token ids packed as int32 from a caller's list: `.tokens` reads them back as a list.

    A subclass rather than a flag, so that pickling, copying and `structs.replace` keep it.
    """


class EncodedTextChunk(TypeTagged, frozen=True, tag="encoded_text", dict=True):
    """Token ids of encoded text: `{"type": "encoded_text", "tokens": [...]}`."""

    tokens: Tokens

    def __post_init__(self) -> None:
        tokens: Any = _RAW_TOKENS.__get__(self)
        if type(tokens) is _ListTokens:  # a copy (pickle, copy, replace) of a packed chunk
            tokens.flags.writeable = False
            self.__dict__[_PACKED] = tokens.view(np.ndarray)
            return
        if type(tokens) is list:
            packed = pack_flat_list(tokens, _INT32)
            if packed is not None:
                if packed.size and int(packed.min()) < 0:
                    raise ValueError(_negative_token_error(int(packed.min())))
                packed.flags.writeable = False
                # The packed copy replaces the caller's list (who may reuse it, as the
                # cookbook does); `.tokens` reads it back as a list.
                self.__dict__[_PACKED] = packed
                _RAW_TOKENS.__set__(self, packed.view(_ListTokens))
                return
            # Not all ints in int32's range: the checks below name the problem (ids past
            # int32 are fine here; the binary encoder refuses them, the JSON wire does not).
            tokens = tokens.copy()
            _RAW_TOKENS.__set__(self, tokens)
        if isinstance(tokens, np.ndarray):
            if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
                raise ValueError(
                    f"EncodedTextChunk.tokens must be a 1-D integer array, got shape "
                    f"{tokens.shape} of {tokens.dtype}; pass tokens.ravel().astype(np.int64)"
                )
            lowest = int(tokens.min()) if tokens.size else 0
            if lowest >= 0:
                self._pack_array(tokens)
        elif isinstance(tokens, list | tuple):
            if isinstance(tokens, tuple):
                tokens = list(tokens)
                _RAW_TOKENS.__set__(self, tokens)
            try:
                lowest = min(tokens) if tokens else 0
            except TypeError:
                raise TypeError(
                    "EncodedTextChunk.tokens must hold ints, got "
                    f"{sorted({type(t).__name__ for t in tokens})}; pass integer token ids"
                ) from None
        else:
            raise TypeError(
                f"EncodedTextChunk.tokens must be a list of ints or a 1-D integer numpy "
                f"array, got {type(tokens).__name__}"
            )
        if lowest < 0:
            raise ValueError(_negative_token_error(lowest))

    def _pack_array(self, tokens: npt.NDArray[Any]) -> None:
        """Keep an int32 copy of an array of other ints (the array itself if already int32)."""
        if tokens.dtype == _INT32:
            packed = np.ascontiguousarray(tokens)
        elif not tokens.size or int(tokens.max()) <= _INT32_MAX:
            packed = tokens.astype(_INT32)
            packed.flags.writeable = False
        else:
            return  # ids past int32: JSON carries them, the binary encoder names the problem
        self.__dict__[_PACKED] = packed

    @property
    def length(self) -> int:
        """Number of tokens."""
        return len(_RAW_TOKENS.__get__(self))

    def tokens_array(self, dtype: npt.DTypeLike = np.int64) -> npt.NDArray[Any]:
        """The tokens as a numpy array of `dtype` (no copy when they already are one).

        For a chunk built from a list this is a new array (never the packed copy).
        """
        raw = _RAW_TOKENS.__get__(self)
        if type(raw) is _ListTokens:  # never hand out the read-only packed copy
            return np.array(raw.view(np.ndarray), dtype=dtype)
        return np.asarray(raw, dtype=dtype)

    def packed_int32(self) -> npt.NDArray[np.int32] | None:
        """The tokens as int32, packed once at construction (for codecs; do not write to it).

        None when they hold ids past int32's range (the binary wire cannot carry them).
        """
        packed: npt.NDArray[np.int32] | None = self.__dict__.get(_PACKED)
        if packed is None:
            raw = _RAW_TOKENS.__get__(self)
            if type(raw) is _ListTokens:  # a shallow copy, made without __post_init__
                packed = raw.view(np.ndarray)
                self.__dict__[_PACKED] = packed
        return packed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EncodedTextChunk):
            return NotImplemented
        return bool(np.array_equal(_RAW_TOKENS.__get__(self), _RAW_TOKENS.__get__(other)))

    def __repr__(self) -> str:
        return f"EncodedTextChunk(tokens={self.tokens!r})"

    __hash__ = None  # type: ignore[assignment]


# `tokens` reads as the caller gave it (an array stays that array) or, for a list, as a new
# list; the struct slot keeps the int32 array a list was packed into, which msgspec encodes.
_RAW_TOKENS: Any = EncodedTextChunk.__dict__["tokens"]


def _tokens(self: EncodedTextChunk) -> Any:
    """Token ids: a new list for a chunk built from a list, else the array it was given."""
    raw = _RAW_TOKENS.__get__(self)
    return raw.tolist() if type(raw) is _ListTokens else raw


setattr(EncodedTextChunk, "tokens", property(_tokens, doc=_tokens.__doc__))  # noqa: B010


def _negative_token_error(lowest: int) -> str:
    return (
        f"EncodedTextChunk.tokens holds a negative token id ({lowest}); token ids "
        "are >= 0: check the tokenizer output"
    )


def _decode_b64(value: bytes | str, field: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError(f"{field} is a str but not valid base64; pass raw bytes") from None
    raise TypeError(f"{field} must be bytes (or a base64 str), got {type(value).__name__}")


def _check_image(kind: str, fmt: object, expected_tokens: int | None) -> None:
    if fmt not in _IMAGE_FORMATS:
        raise ValueError(f"{kind}.format must be 'png' or 'jpeg', got {fmt!r}")
    if expected_tokens is not None and expected_tokens < 0:
        raise ValueError(
            f"{kind}.expected_tokens must be >= 0 or None, got {expected_tokens}"
        )


class ImageChunk(TypeTagged, frozen=True, tag="image"):
    """An image as bytes (base64 on the JSON wire), with its format."""

    data: bytes
    format: ImageFormat
    expected_tokens: int | None = None

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "data", _decode_b64(self.data, "ImageChunk.data"))
        _check_image("ImageChunk", self.format, self.expected_tokens)

    @classmethod
    def validate_data(cls, value: bytes | str) -> bytes:
        """`data` as bytes: a str is decoded from base64 (as the official validator does)."""
        return _decode_b64(value, "ImageChunk.data")

    def serialize_data(self, value: bytes) -> str:
        """`value` as the base64 text `data` has on the JSON wire."""
        return base64.b64encode(value).decode("ascii")

    @property
    def length(self) -> int:
        """The advisory token count; raises if `expected_tokens` is not set."""
        if self.expected_tokens is None:
            raise ValueError(
                "ImageChunk.expected_tokens needs to be set in order to compute the length"
            )
        return self.expected_tokens


class ImageAssetPointerChunk(TypeTagged, frozen=True, tag="image_asset_pointer"):
    """An image given by path or URL instead of bytes."""

    format: ImageFormat
    location: str
    expected_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_image("ImageAssetPointerChunk", self.format, self.expected_tokens)

    @property
    def length(self) -> int:
        """The advisory token count; raises if `expected_tokens` is not set."""
        if self.expected_tokens is None:
            raise ValueError(
                "ImageAssetPointerChunk.expected_tokens needs to be set in order to compute "
                "the length"
            )
        return self.expected_tokens


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value, shift = 0, 0
    while offset < len(data) and shift <= 63:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
    raise ValueError("DmelChunk.dmel has a truncated or overlong TensorContainer header")


def _container_first_dim(data: bytes) -> int:
    """First dimension from a TensorContainer header: [254]? dtype(0..7) ndim dims..."""
    offset = 1 if data[:1] == b"\xfe" else 0
    if offset >= len(data) or data[offset] > 7:
        raise ValueError("DmelChunk.dmel does not start with a TensorContainer header")
    ndim, offset = _read_varint(data, offset + 1)
    if ndim == 0:
        raise ValueError("DmelChunk.dmel tensor has no dimension 0")
    first, _ = _read_varint(data, offset)
    return first


class DmelChunk(TypeTagged, frozen=True, tag="dmel"):
    """DMel audio tokens: serialized TensorContainer bytes (base64 on the JSON wire)."""

    dmel: bytes

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "dmel", _decode_b64(self.dmel, "DmelChunk.dmel"))

    @classmethod
    def validate_dmel(cls, value: bytes | str) -> bytes:
        """`dmel` as bytes: a str is decoded from base64 (as the official validator does)."""
        return _decode_b64(value, "DmelChunk.dmel")

    def serialize_dmel(self, value: bytes) -> str:
        """`value` as the base64 text `dmel` has on the JSON wire."""
        return base64.b64encode(value).decode("ascii")

    @property
    def length(self) -> int:
        """Number of positions: dimension 0 of the serialized tensor."""
        return _container_first_dim(self.dmel)


ModelInputChunk: TypeAlias = EncodedTextChunk | ImageAssetPointerChunk | ImageChunk | DmelChunk
_CHUNK_TYPES = (EncodedTextChunk, ImageAssetPointerChunk, ImageChunk, DmelChunk)


class ModelInput(WireStruct, frozen=True):
    """A sequence of chunks (official `ModelInput`); build from tokens with `from_ints`."""

    chunks: list[ModelInputChunk]

    def __post_init__(self) -> None:
        chunks: Any = self.chunks
        if isinstance(chunks, tuple):
            chunks = list(chunks)
            msgspec.structs.force_setattr(self, "chunks", chunks)
        if not isinstance(chunks, list):
            raise TypeError(
                f"ModelInput.chunks must be a list of chunks, got {type(chunks).__name__}; "
                "use ModelInput.from_ints(tokens) for plain token ids"
            )
        for i, chunk in enumerate(chunks):
            if not isinstance(chunk, _CHUNK_TYPES):
                raise TypeError(
                    f"ModelInput.chunks[{i}] is a {type(chunk).__name__}, not a chunk; use "
                    "EncodedTextChunk, ImageChunk, ImageAssetPointerChunk or DmelChunk"
                )

    @classmethod
    def from_ints(cls, tokens: Tokens) -> ModelInput:
        """A ModelInput of one EncodedTextChunk holding `tokens` (a list or 1-D array)."""
        return cls(chunks=[EncodedTextChunk(tokens=tokens)])

    def to_ints(self) -> list[int]:
        """All token ids as one list; raises if any chunk is not encoded text."""
        out: list[int] = []
        for chunk in self.chunks:
            if not isinstance(chunk, EncodedTextChunk):
                raise ValueError(
                    "to_ints only supported for ModelInput with EncodedTextChunks, got "
                    f"{[type(c).__name__ for c in self.chunks]}"
                )
            tokens = chunk.tokens
            out.extend(tokens.tolist() if isinstance(tokens, np.ndarray) else tokens)
        return out

    @property
    def length(self) -> int:
        """Total context length used by all chunks."""
        return sum(chunk.length for chunk in self.chunks)

    @classmethod
    def empty(cls) -> ModelInput:
        """A ModelInput with no chunks."""
        return cls(chunks=[])

    def append(self, chunk: ModelInputChunk) -> ModelInput:
        """A new ModelInput with `chunk` added at the end."""
        return ModelInput(chunks=[*self.chunks, chunk])

    def append_int(self, token: int) -> ModelInput:
        """A new ModelInput with one more token (in a chunk of its own, as official)."""
        return self.append(EncodedTextChunk(tokens=[token]))
