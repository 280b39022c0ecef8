"""Between the wire types and the tiny model's plain arrays, for the embedded server.

Requests arrive as `tinkex_actors.types` values (decoded from JSON or protobuf); the model wants
token arrays and loss-input arrays; results go back as JSON and, for forward / forward_backward /
sample, as the protobuf messages recent official clients require.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinkex_actors import types
from tinkex_actors.local.http_messages import PROTOBUF, HTTPError, Request, decode_json
from tinkex_actors.local.model import ForwardResult, LoraModel, ModelDatum
from tinkex_actors.types import proto

MAX_DATUMS = 1024
"""Datums per forward / forward_backward request: the protocol's `fwdbwd_max_chunk_len`."""


@dataclass
class ForwardBackwardCall:
    """A decoded forward / forward_backward request."""

    model_id: Any
    seq_id: Any
    data: list[types.Datum]
    loss_fn: str
    loss_fn_config: dict[str, Any] | None
    forward_only: bool


def read_forward_backward(
    request: Request, *, max_size_bytes: int, forward_only: bool = False
) -> ForwardBackwardCall:
    """Decode a forward_backward (protobuf, maybe zstd) or forward / forward_backward JSON body.

    A zstd body may inflate to `max_size_bytes` at most (a 400 past that, no zip bombs).
    """
    body = request.body
    if request.headers.get("content-encoding", "").lower() == "zstd":
        body = proto.zstd_decompress(body, max_size_bytes)
    if request.content_type == PROTOBUF:
        msg = proto.decode_forward_backward_request(body)
        fbi = msg.forward_backward_input
        return ForwardBackwardCall(
            msg.model_id,
            msg.seq_id,
            list(fbi.data),
            fbi.loss_fn,
            dict(fbi.loss_fn_config or {}) or None,
            msg.forward_only or forward_only,
        )
    data = decode_json(body)
    if not isinstance(data, dict):
        raise HTTPError(400, "request body must be a JSON object")
    key = "forward_input" if "forward_input" in data else "forward_backward_input"
    raw = data.get(key)
    if not isinstance(raw, dict):
        raise HTTPError(400, f"field '{key}' is required: an object with data and loss_fn")
    fbi = types.convert(raw, types.ForwardBackwardInput)
    return ForwardBackwardCall(
        data.get("model_id"),
        data.get("seq_id"),
        list(fbi.data),
        fbi.loss_fn,
        dict(fbi.loss_fn_config or {}) or None,
        forward_only or key == "forward_input",
    )


def prompt_tokens(model_input: types.ModelInput) -> np.ndarray:
    """The token ids of a ModelInput; image chunks are refused (the byte model reads text)."""
    parts = []
    for i, chunk in enumerate(model_input.chunks):
        if not isinstance(chunk, types.EncodedTextChunk):
            raise HTTPError(
                400,
                f"model_input.chunks[{i}] is a {type(chunk).__name__}: the "
                "embedded server's byte models read encoded_text chunks only",
            )
        parts.append(np.asarray(chunk.tokens, dtype=np.int64))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _check_ids(values: np.ndarray, vocab_size: int, where: str) -> None:
    if values.size and (int(values.min()) < 0 or int(values.max()) >= vocab_size):
        bad = int(np.flatnonzero((values < 0) | (values >= vocab_size))[0])
        raise HTTPError(
            400,
            f"{where}[{bad}] = {int(values[bad])} is outside the vocabulary "
            f"0..{vocab_size - 1}; use token ids of the model's tokenizer",
        )


def model_datums(data: list[types.Datum], vocab_size: int) -> list[ModelDatum]:
    """Datums as the model's plain arrays; a 400 naming the datum when one is malformed."""
    if not data:
        raise HTTPError(400, "field 'data' is empty; send at least one Datum")
    if len(data) > MAX_DATUMS:
        raise HTTPError(
            400,
            f"field 'data' holds {len(data)} datums; send at most {MAX_DATUMS} per request "
            "(the protocol's fwdbwd_max_chunk_len) and split the rest",
        )
    out = []
    for i, datum in enumerate(data):
        try:
            tokens = prompt_tokens(datum.model_input)
        except HTTPError as exc:
            raise HTTPError(400, f"data[{i}].{exc.message}") from exc
        _check_ids(tokens, vocab_size, f"data[{i}].model_input tokens")
        inputs = {name: td.to_numpy() for name, td in datum.loss_fn_inputs.items()}
        if "target_tokens" in inputs:
            _check_ids(
                inputs["target_tokens"].ravel(),
                vocab_size,
                f"data[{i}].loss_fn_inputs.target_tokens",
            )
        out.append(ModelDatum(tokens=tokens, loss_fn_inputs=inputs))
    return out


def forward_output(result: ForwardResult) -> tuple[Callable[[], Any], bytes | None]:
    """A model's forward result as (lazy JSON, protobuf bytes)."""
    output = types.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord",
        loss_fn_outputs=[
            {
                name: types.TensorData.from_numpy(np.ascontiguousarray(arr))
                for name, arr in outputs.items()
            }
            for outputs in result.loss_fn_outputs
        ],
        metrics={k: float(v) for k, v in result.metrics.items()},
    )
    return (lambda: types.to_builtins(output)), proto.encode_forward_backward_output(output)


def run_sample(
    model: LoraModel, prompt: np.ndarray, request: types.SampleRequest
) -> tuple[Callable[[], Any], bytes | None]:
    """Sample from a model for one asample request: (lazy JSON, protobuf bytes)."""
    params = request.sampling_params
    stop: Any = params.stop
    result = model.sample(
        prompt,
        max_tokens=params.max_tokens,
        temperature=params.temperature if params.temperature is not None else 1.0,
        top_k=params.top_k if params.top_k is not None else -1,
        top_p=params.top_p if params.top_p is not None else 1.0,
        stop=stop,
        seed=params.seed,
        num_samples=request.num_samples,
        prompt_logprobs=bool(request.prompt_logprobs),
        topk_prompt_logprobs=request.topk_prompt_logprobs,
    )
    prompt_lp, topk_lp = result.prompt_logprobs, result.topk_prompt_logprobs
    last_n = request.prompt_logprobs_last_n
    if last_n is not None and prompt_lp is not None:
        # Only the last n positions are scored, as the service does (the rest is its cache's).
        cut = max(len(prompt_lp) - last_n, 0)
        prompt_lp = [None if i < cut else lp for i, lp in enumerate(prompt_lp)]
        if topk_lp is not None:
            topk_lp = [None if i < cut else row for i, row in enumerate(topk_lp)]
    response = types.SampleResponse(
        sequences=[
            types.SampledSequence(
                stop_reason=_stop_reason(s.stop_reason), tokens_np=s.tokens, logprobs_np=s.logprobs
            )
            for s in result.sequences
        ],
        prompt_logprobs_np=prompt_lp,
        topk_prompt_logprobs_np=topk_lp,
    )
    return (lambda: types.to_builtins(response)), proto.encode_sample_response(response)


def _stop_reason(reason: str) -> types.StopReason:
    if reason == "stop":
        return "stop"
    if reason == "length":
        return "length"
    raise ValueError(f"the model gave an unknown stop_reason {reason!r}")


def check_prompt(prompt: np.ndarray, vocab_size: int) -> None:
    """A 400 when a prompt is empty or holds ids outside the vocabulary."""
    if prompt.size == 0:
        raise HTTPError(400, "field 'prompt' has no tokens; send at least one")
    _check_ids(prompt, vocab_size, "prompt tokens")


def check_sample_lengths(
    prompt: np.ndarray, request: types.SampleRequest, max_seq_len: int
) -> None:
    """A 400 when the prompt, or the prompt with `max_tokens`, outgrows the model."""
    if prompt.size > max_seq_len:
        raise HTTPError(
            400,
            f"prompt has {prompt.size} tokens, more than the model's {max_seq_len}; shorten it",
        )
    max_tokens = request.sampling_params.max_tokens
    if max_tokens is not None and prompt.size + max_tokens > max_seq_len:
        raise HTTPError(
            400,
            f"sampling_params.max_tokens = {max_tokens} does not fit: the {prompt.size}-token "
            f"prompt leaves room for {max_seq_len - prompt.size}; lower max_tokens",
        )
    if not 1 <= request.num_samples <= 1024:
        raise HTTPError(400, f"num_samples = {request.num_samples} must be in 1..1024")
