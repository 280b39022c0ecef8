"""Struct bases, the wire-default helper and the shared JSON encoder/decoder.

How our JSON matches the official SDK's: the official client dumps every request
with `exclude_none=True`, so a field is left out exactly when it is None, and a
field with any other default (`rank=32`, `temperature=1.0`, `[]`) is always sent.
msgspec's `omit_defaults=True` leaves out a field whenever it equals its default,
which is too much. The rule here:

- an optional field has the default `None` (left out when None, like the official);
- a field whose non-None default must still be sent declares it with `sent(value)`,
  a `default_factory` msgspec cannot compare against, so it is always encoded.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import msgspec
import numpy as np

T = TypeVar("T")

__all__ = ["TypeTagged", "WireStruct", "from_json", "sent", "to_builtins", "to_json"]


if TYPE_CHECKING:
    Metrics: TypeAlias = dict[str, float]
else:
    # What msgspec decodes: null is how JSON carries a NaN/inf metric; float_dict maps it.
    Metrics = dict[str, float | None]


class WireStruct(msgspec.Struct, omit_defaults=True, frozen=True, kw_only=True):
    """Base of every wire type: keyword-only, immutable, None fields left out."""


class TypeTagged(WireStruct, frozen=True, tag_field="type"):
    """Base of union members told apart by a `type` tag; `.type` reads the tag."""

    @property
    def type(self) -> str:
        """The `type` tag this value carries on the wire."""
        return str(self.__struct_config__.tag)


def sent(value: T) -> T:
    """Declare a default that is always put on the wire (unlike a default of None)."""
    # A partial is not a list/dict/set factory, so msgspec never treats the
    # value as "equal to the default" and always encodes it.
    # copy.copy gives each instance its own list/dict and returns immutables as is.
    factory: Callable[[], T] = functools.partial(copy.copy, value)
    return msgspec.field(default_factory=factory)


def sent_list() -> Any:
    """Declare an empty-list default that is still sent as `[]`."""
    return msgspec.field(default_factory=functools.partial(list))


def _enc_hook(obj: Any) -> Any:
    """Turn numpy values (arrays kept as the user gave them) into JSON builtins."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    to_wire = getattr(obj, "__wire__", None)
    if to_wire is not None:
        return to_wire()
    raise NotImplementedError(f"cannot encode {type(obj).__name__} as JSON: {obj!r}")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


def to_json(obj: Any) -> bytes:
    """Encode a wire value as JSON bytes, in the official SDK's shape."""
    return _ENCODER.encode(obj)


def to_builtins(obj: Any) -> Any:
    """Convert a wire value to plain dicts/lists (the parsed form of its JSON)."""
    return msgspec.to_builtins(obj, enc_hook=_enc_hook)


@functools.lru_cache(maxsize=256)
def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


def from_json(data: bytes | str, type_: Any) -> Any:
    """Decode JSON into `type_`; unknown fields are ignored, missing optionals take defaults."""
    return _decoder(type_).decode(data)


def convert(obj: Any, type_: type[T]) -> T:
    """Build `type_` from already-parsed JSON (dicts and lists), as `from_json` would."""
    result: T = msgspec.convert(obj, type_)
    return result


def float_dict(obj: msgspec.Struct, name: str) -> None:
    """Store a `dict[str, float]` field's int values as floats (official JSON says `1.0`)."""
    value = getattr(obj, name)
    if value is None:
        return
    if not isinstance(value, dict):
        raise TypeError(
            f"{type(obj).__name__}.{name} must be a dict of str -> float, got "
            f"{type(value).__name__}"
        )
    if any(type(v) is not float for v in value.values()):
        try:
            # null (how JSON carries NaN/inf) reads back as NaN.
            fixed = {k: math.nan if v is None else float(v) for k, v in value.items()}
            msgspec.structs.force_setattr(obj, name, fixed)
        except (TypeError, ValueError):
            raise TypeError(
                f"{type(obj).__name__}.{name} values must be numbers, got {value!r}"
            ) from None


def coerce_ints(obj: msgspec.Struct, names: tuple[str, ...]) -> None:
    """Store whole floats and numpy ints given to int fields as ints (as pydantic's lax mode)."""
    for name in names:
        value = getattr(obj, name)
        if value is None or (type(value) is int):
            continue
        if isinstance(value, np.integer) or (
            isinstance(value, float | np.floating) and float(value).is_integer()
        ):
            msgspec.structs.force_setattr(obj, name, int(value))
        else:
            raise TypeError(
                f"{type(obj).__name__}.{name} must be an integer, got "
                f"{type(value).__name__} {value!r}"
            )


def coerce_floats(obj: msgspec.Struct, names: tuple[str, ...], *, finite: bool = False) -> None:
    """Store ints given to float fields as floats, so JSON says `1.0` as the official does.

    With `finite`, refuse inf and nan too: JSON has no such number (it would go out as null and
    the server would refuse the request), so the caller hears it here, naming the field.
    """
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, int | np.integer | np.floating) and not isinstance(value, bool):
            msgspec.structs.force_setattr(obj, name, float(value))
        elif value is not None and not isinstance(value, float):
            raise TypeError(
                f"{type(obj).__name__}.{name} must be a number, got "
                f"{type(value).__name__} {value!r}"
            )
        value = getattr(obj, name)
        if finite and value is not None and not math.isfinite(value):
            raise ValueError(
                f"{type(obj).__name__}.{name} must be a finite number, got {value}; "
                "JSON cannot carry inf or nan: pass a finite value"
            )
