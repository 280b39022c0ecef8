"""Decoding of a ``ForwardBackwardRequest`` (what the embedded server receives)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .. import _pbwire as w
from .._model_input import DmelChunk, EncodedTextChunk, ImageChunk, ModelInput, ModelInputChunk
from .._tensor import TensorData
from .._training import (
    Datum,
    ForwardBackwardInput,
    PromptProvenanceSpan,
    SampledProvenanceSpan,
)
from ._fields import I4, as_bytes, read_double_entry
from ._tensor_message import read_tensor_entry


@dataclass(frozen=True, slots=True)
class ForwardBackwardRequestProto:
    """A decoded ``ForwardBackwardRequest`` message: the input plus its routing fields."""

    forward_backward_input: ForwardBackwardInput
    model_id: str
    seq_id: int
    forward_only: bool = False


def decode_forward_backward_request(
    body: bytes, *, copy: bool = False
) -> ForwardBackwardRequestProto:
    """Decode a ``POST forward_backward`` protobuf body (what the embedded server receives).

    ``loss_fn_config`` is rebuilt from ``loss_fn_config_v2`` where it has an entry, else from
    the legacy numeric map. Token and tensor arrays are views over ``body`` unless ``copy``.
    """
    buf = as_bytes(body)
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
            name, number = read_double_entry(buf, start, pos, "loss_fn_config")
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
            name, tensor = read_tensor_entry(buf, start, pos, views, f"{what}.loss_fn_inputs")
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
            chunk = EncodedTextChunk(tokens=views.get(lo, hi, I4, f"{what} tokens"))
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


def _read_config_v2_entry(buf: bytes, pos: int, end: int) -> tuple[str, float | str]:
    what = "loss_fn_config_v2"
    entry = w.read_message(buf, pos, end, {1: w.LEN, 2: w.LEN}, f"{what} entry")
    name = w.decode_str(buf, entry.get(1), f"{what} key")
    lo, hi = entry.get(2, (0, 0))
    value = w.read_message(buf, lo, hi, {1: w.FIXED64, 2: w.LEN}, "LossConfigValue")
    if 2 in value:
        return name, w.decode_str(buf, value[2], f"{what}[{name!r}] text")
    return name, value.get(1, 0.0)
