"""Sampling: sampling sessions over frozen weights, and `asample`, answered with a future.

A sampling session samples from a base model, a sampler checkpoint (`model_path`), or an
ephemeral snapshot a training model saved (`save_weights_for_sampler`). `asample` runs on the
sampling pool; an `asample` whose `seq_id` the session already saw gets its first future back.
"""

from __future__ import annotations

from tinkex_actors import types
from tinkex_actors.local import wire
from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.model import LoraModel, get_base_model
from tinkex_actors.local.queueing import fail_if_scripted, future_answer
from tinkex_actors.local.request_body import body_of, need, storage_errors
from tinkex_actors.local.state import ServerState

__all__ = ["SamplingEndpoints"]


class SamplingEndpoints:
    """`create_sampling_session`, `join_sampling_session` and `asample`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def sampler_model(
        self, base_model: str | None, model_path: str | None
    ) -> tuple[str, LoraModel]:
        """(base model name, model) to sample from a checkpoint path, else a base model."""
        if model_path is not None:
            with storage_errors():
                arrays, meta = self.state.storage.load(model_path)
            return str(meta.get("base_model")), LoraModel.from_state(arrays, with_optimizer=False)
        if base_model is None:
            raise HTTPError(400, "give 'base_model' or 'model_path' to sample from")
        try:
            return get_base_model(base_model).name, LoraModel.base(base_model)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from exc

    async def create_sampling_session(self, request: Request) -> Response:
        """`POST create_sampling_session`."""
        body = body_of(request)
        session = self.state.session(body.get("session_id"))
        seq = need(body, "sampling_session_seq_id", int)
        base, model = self.sampler_model(
            need(body, "base_model", str, optional=True),
            need(body, "model_path", str, optional=True),
        )
        sid = self.state.add_sampler(session, seq, base, body.get("model_path"), model)
        return json_response({"type": "create_sampling_session", "sampling_session_id": sid})

    async def join_sampling_session(self, request: Request) -> Response:
        """`POST join_sampling_session`: hands a clone its client counter."""
        entry = self.state.sampler(body_of(request).get("sampling_session_id"))
        with self.state.lock:
            counter = entry.clients
            entry.clients += 1
        return json_response({"type": "join_sampling_session", "client_counter": counter})

    async def asample(self, request: Request) -> Response:
        """`POST asample`: a future of a SampleResponse; the promise names each sequence."""
        body = body_of(request)
        sample = types.convert(body, types.SampleRequest)
        if sample.sampling_session_id is not None:
            entry = self.state.sampler(sample.sampling_session_id)
            owner, model = entry.sampling_session_id, entry.model
            if sample.seq_id is not None:
                known = entry.seen_seq_ids.get(sample.seq_id)
                if known is not None:
                    return future_answer(
                        known,
                        None,
                        sample_sequence_ids=[f"{known}:{i}" for i in range(sample.num_samples)],
                    )
        else:
            _, model = self.sampler_model(sample.base_model, sample.model_path)
            owner = "sampling"
        prompt = wire.prompt_tokens(sample.prompt)
        wire.check_prompt(prompt, model.spec.vocab_size)
        wire.check_sample_lengths(prompt, sample, model.spec.max_seq_len)
        record = self.state.store.create("Sample", owner)
        if sample.sampling_session_id is not None and sample.seq_id is not None:
            entry.seen_seq_ids[sample.seq_id] = record.request_id
        if not fail_if_scripted(self.state, request.path, record.request_id):
            self.state.sampling.submit(
                owner, record.request_id, lambda: wire.run_sample(model, prompt, sample)
            )
        ids = [f"{record.request_id}:{i}" for i in range(sample.num_samples)]
        return future_answer(record.request_id, None, sample_sequence_ids=ids)
