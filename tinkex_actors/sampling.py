"""The SamplingClient: sample from saved weights or a base model, every call a Future.

A sampler has a sampling session on the server. Each request carries a per-sampler `seq_id`
that never repeats (`clone_id * 1_000_000_000 + counter`, as the official SDK numbers clones),
reserved in the caller's thread. Results are read as protobuf and polled by the shared
PollerPool; the promise's `sample_sequence_ids` are attached to the sequences.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any

import msgspec

from tinkex_actors import types
from tinkex_actors.config import PoolKind
from tinkex_actors.futures import Future
from tinkex_actors.poller import PollerPool, PollSpec
from tinkex_actors.retry import ProgressTracker
from tinkex_actors.transport import HttpRequest, Transport
from tinkex_actors.types import proto

CLONE_STRIDE = 1_000_000_000

__all__ = ["SamplingClient"]


class SamplingClient:
    """Samples from one sampling session (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        pollers: PollerPool,
        sampling_session_id: str,
        base_model: str | None,
        *,
        model_path: str | None = None,
        clone_id: int = 0,
        progress: ProgressTracker | None = None,
    ) -> None:
        self._transport = transport
        self._pollers = pollers
        self.sampling_session_id = sampling_session_id
        self.base_model = base_model
        self.model_path = model_path
        self._clone_id = clone_id
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._progress = progress

    def __repr__(self) -> str:
        return (
            f"SamplingClient(sampling_session_id={self.sampling_session_id!r}, "
            f"model_path={self.model_path!r})"
        )

    def _next_seq_id(self) -> int:
        with self._lock:
            return self._clone_id * CLONE_STRIDE + next(self._counter)

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
    ) -> Future[types.SampleResponse]:
        """Generate `num_samples` continuations of `prompt`; returns a Future at once."""
        if not isinstance(prompt, types.ModelInput):
            raise TypeError(
                f"prompt is a {type(prompt).__name__}; pass a types.ModelInput "
                "(e.g. ModelInput.from_ints(tokens))"
            )
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples={num_samples!r} must be an int >= 1")
        request = types.SampleRequest(
            prompt=prompt,
            sampling_params=sampling_params,
            num_samples=num_samples,
            sampling_session_id=self.sampling_session_id,
            seq_id=self._next_seq_id(),
            prompt_logprobs=include_prompt_logprobs or None,
            topk_prompt_logprobs=topk_prompt_logprobs,
        )
        future: Future[types.SampleResponse] = Future(request_type="Sample")
        outcome = self._transport.submit(
            HttpRequest(
                "POST",
                "asample",
                types.to_json(request),
                pool=PoolKind.SAMPLE,
                headers={"x-tinker-sampling-backpressure": "1"},
            )
        )
        outcome.add_done_callback(lambda f: self._track(f, future))
        return future

    def _track(self, outcome: Any, future: Future[types.SampleResponse]) -> None:
        try:
            promise = msgspec.json.decode(outcome.result(timeout=0).content)
            request_id = promise["request_id"]
            ids: Sequence[str] | None = promise.get("sample_sequence_ids")
        except BaseException as exc:
            future.set_exception(exc)
            return
        future.request_id = request_id

        def decode_proto(body: bytes) -> types.SampleResponse:
            return proto.decode_sample_response(body, sequence_ids=ids)

        polled = self._pollers.track(
            PollSpec(
                request_id=request_id,
                request_type="Sample",
                decode_json=lambda value: types.convert(value, types.SampleResponse),
                decode_proto=decode_proto,
                progress=self._progress,
            )
        )

        def copy(done: Future[types.SampleResponse]) -> None:
            error = done.exception()
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(done.result())

        polled.add_done_callback(copy)

    def compute_logprobs(self, prompt: types.ModelInput) -> Future[list[float | None]]:
        """The logprob of each prompt token given those before it (None for the first)."""
        sampled = self.sample(
            prompt, 1, types.SamplingParams(max_tokens=1), include_prompt_logprobs=True
        )
        result: Future[list[float | None]] = Future(request_type="Sample")

        def copy(done: Future[types.SampleResponse]) -> None:
            error = done.exception()
            if error is not None:
                result.set_exception(error)
                return
            result.set_result(list(done.result().prompt_logprobs or []))

        sampled.add_done_callback(copy)
        return result

    def get_tokenizer(self) -> Any:
        """The tokenizer of the sampled model."""
        from tinkex_actors.tokenizer import get_tokenizer

        return get_tokenizer(self.base_model or "")
