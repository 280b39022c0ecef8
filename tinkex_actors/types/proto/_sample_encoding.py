"""Encoding of a ``SampleResponse``: plain sequences from cached heads, any other in full."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _pbwire as w
from .._sampling import SampledSequence, SampleResponse, TopkLogprobs
from ._fields import (
    CACHE_LIMIT,
    F4,
    I4,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    STOP_REASON_ENUM,
    V1,
    V3,
    V4,
    heads_between,
)
from ._tensor_message import tensor_message


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
            and tokens.dtype is I4
            and logprobs.dtype is F4
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
        values = w.array_buffer(response.prompt_logprobs_np, F4)
        out += [L2 + w.varint(values.nbytes), values]
    if isinstance(response.topk_prompt_logprobs_np, TopkLogprobs):
        out.append(w.len_field(L3, _topk_body(response.topk_prompt_logprobs_np)))
    if response.prompt_cache_hit_tokens:
        out.append(V4 + w.varint(response.prompt_cache_hit_tokens))
    if response.target_prompt_logprobs is not None:
        out += tensor_message(response.target_prompt_logprobs, L5, "target_prompt_logprobs")
    alt = response.prompt_alt_tokens
    if alt is not None:
        parts = tensor_message(alt.tokens, L1, "prompt_alt_tokens.tokens")
        parts += tensor_message(alt.logprobs, L2, "prompt_alt_tokens.logprobs")
        out.append(w.len_field(L6, b"".join(parts)))
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
        and tokens.dtype is I4
        and (logprobs is None or (type(logprobs) is np.ndarray and logprobs.dtype is F4))
    ):
        layout = (seq.stop_reason, tokens.nbytes, None if logprobs is None else logprobs.nbytes)
        heads = _SEQUENCE_HEADS.get(layout)
        if heads is None:
            parts: list[Any] = []
            _put_any_sequence(parts, seq, index)
            heads = heads_between(parts)
            if len(_SEQUENCE_HEADS) < CACHE_LIMIT:
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
    stop_reason = STOP_REASON_ENUM.get(seq.stop_reason)
    if stop_reason is None:
        raise ValueError(
            f"sequences[{index}].stop_reason must be 'stop' or 'length', got {seq.stop_reason!r}"
        )
    head = V1 + w.varint(stop_reason) if stop_reason else b""
    tokens = w.array_buffer(seq.tokens_np, I4)
    if tokens.nbytes:
        head += L2 + w.varint(tokens.nbytes)
    parts: list[Any] = [tokens]
    size = len(head) + tokens.nbytes
    if seq.logprobs_np is not None:
        logprobs = w.array_buffer(seq.logprobs_np, F4)
        logprobs_head = L3 + w.varint(logprobs.nbytes)
        parts += [logprobs_head, logprobs]
        size += len(logprobs_head) + logprobs.nbytes
    if isinstance(seq.topk_logprobs_np, TopkLogprobs):
        topk = w.len_field(L4, _topk_body(seq.topk_logprobs_np))
        parts.append(topk)
        size += len(topk)
    out.append(L1 + w.varint(size) + head)
    out += parts


def _topk_body(topk: TopkLogprobs) -> bytes:
    length, k = topk.token_ids.shape
    ids = w.array_buffer(topk.token_ids, I4)
    lps = w.array_buffer(topk.logprobs, F4)
    body = [
        w.len_field(L1, ids.tobytes()) if ids.nbytes else b"",
        w.len_field(L2, lps.tobytes()) if lps.nbytes else b"",
        V3 + w.varint(k) if k else b"",
        V4 + w.varint(length) if length else b"",
    ]
    return b"".join(body)
