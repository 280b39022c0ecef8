"""Decoding of a ``SampleResponse``: sequences of one layout read by comparing bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy.typing as npt

from .. import _pbwire as w
from .._sampling import PromptAltTokens, SampledSequence, SampleResponse, TopkLogprobs
from .._tensor import TensorData
from ._fields import (
    F4,
    I4,
    L2,
    L3,
    NO_TOKENS,
    STOP_REASON_ENUM,
    STOP_REASON_NAME,
    V1,
    as_bytes,
)
from ._tensor_message import read_tensor

_TOPK_SCHEMA: Final = {1: w.LEN, 2: w.LEN, 3: w.VARINT, 4: w.VARINT}


def decode_sample_response(
    body: bytes, *, sequence_ids: Sequence[str] | None = None, copy: bool = False
) -> SampleResponse:
    """Decode a protobuf ``SampleResponse`` as the official SDK reads it.

    Empty ``logprobs`` / ``prompt_logprobs`` bytes and top-k blocks with no rows or k = 0
    read as None. The wire has no sequence ids: pass the promise's ``sample_sequence_ids`` as
    ``sequence_ids`` to stamp them (one per sequence, in order), else they stay None.
    """
    buf = as_bytes(body)
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
                prompt_logprobs = views.get(start, pos, F4, what)
        elif k == 0x1A:
            start, pos = w.read_len(buf, pos, end)
            topk_prompt = _read_topk(buf, start, pos, views, "SampleResponse.topk_prompt_logprobs")
        elif k == 0x20:
            raw, pos = w.read_varint(buf, pos, end)
            cache_hits = w.to_int32(raw)
        elif k == 0x2A:
            start, pos = w.read_len(buf, pos, end)
            target = read_tensor(buf, start, pos, views, "SampleResponse.target_prompt_logprobs")
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
        code = STOP_REASON_ENUM[seq.stop_reason]
        head = (V1 + w.varint(code) if code else b"") + L2 + w.varint(tokens.nbytes)
        prefix = buf[field_at:start] + head
        mid = L3 + w.varint(logprobs.nbytes)
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
        int32s, float32s = views.by_shift(I4), views.by_shift(F4)
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
    tokens: npt.NDArray[Any] = NO_TOKENS
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
                tokens = views.get(start, pos, I4, "SampledSequence.tokens")
            elif pos > start:
                logprobs = views.get(start, pos, F4, "SampledSequence.logprobs")
            else:
                logprobs = None
        elif k == 0x08:
            stop_reason, pos = w.read_varint(buf, pos, end)
        elif k == 0x22:
            start, pos = w.read_len(buf, pos, end)
            topk = _read_topk(buf, start, pos, views, "SampledSequence.topk_sampled_logprobs")
        else:
            pos = w.skip_unknown(buf, pos, end, k, "SampledSequence", 4)
    name = STOP_REASON_NAME.get(stop_reason)
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
    ids = views.get(ids_lo, ids_hi, I4, f"{what}.token_ids")
    lps = views.get(lps_lo, lps_hi, F4, f"{what}.logprobs")
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
    tokens = read_tensor(buf, tokens_lo, tokens_hi, views, f"{what}.tokens")
    logprobs = read_tensor(buf, lps_lo, lps_hi, views, f"{what}.logprobs")
    return PromptAltTokens(tokens=tokens, logprobs=logprobs)
