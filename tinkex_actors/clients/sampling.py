"""The SamplingClient: the official API surface of a sampler, in the caller's thread.

A sampler has a sampling session on the server. `sample` checks its arguments
(`sampling_checks.py`), reserves the request's `seq_id` in the caller's thread (it never repeats
for the sampler: `clone_id * 1_000_000_000 + counter`, as the official SDK numbers clones),
queues the request in the sampler's `SamplerState` and returns a Future at once; the
`SamplingClientActor` (`sampling_actor.py`) dispatches it under backpressure.

A SamplingClient crosses process boundaries as its handle (`sampler_handle.py`); a
`SamplerRuntime` gives the clones made from handles their own connections and supervisor.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any

from pykka import ActorDeadError, ActorRef

from supervisors import SupervisedRef
from supervisors.library_logging import get_logger
from supervisors.supervisor import DEFAULT_CALL_TIMEOUT_S
from tinkex_actors import types
from tinkex_actors.clients.actor_support import current_ref
from tinkex_actors.clients.backpressure import DispatchBudget
from tinkex_actors.clients.client_actor import start_client_actor
from tinkex_actors.clients.rate_limiter import SAMPLING_BACKPRESSURE_HEADER, estimate_prompt_bytes
from tinkex_actors.clients.sampler_handle import parse_handle, sampler_handle
from tinkex_actors.clients.sampling_actor import (
    CLONE_STRIDE,
    Dispatch,
    SampleJob,
    SamplerState,
    SamplingClientActor,
)
from tinkex_actors.clients.sampling_checks import (
    alt_tokens_returned,
    check_extra_sample_args,
    check_sample_args,
)
from tinkex_actors.config import PoolKind
from tinkex_actors.futures.client_future import ClientFuture
from tinkex_actors.futures.future import Future, combine
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.futures.queue_state import (
    QueueState,
    QueueStateChange,
    QueueStateDebouncer,
    parse_queue_state,
)
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.retry import ProgressTracker, RetryPolicy
from tinkex_actors.transport.transport import Transport
from tinkex_actors.types import proto

if TYPE_CHECKING:
    from tinkex_actors.clients.extras import SessionTelemetry, Telemetry

__all__ = [
    "SamplerRuntime",
    "SamplingClient",
]

log = get_logger("tinkex_actors.clients.sampling")

RESOLVE_TIMEOUT_S = 10.0
"""How long a call waits for a restarting SamplingClient actor to come back."""


class SamplerRuntime:
    """Connections, pollers and a supervisor for sampler clones made from handles.

    `SamplingClient.from_sampler_handle` makes one per clone; the out-of-process sampling child
    shares one between all the samplers it hosts (one transport, one poller pool, one budget).
    """

    def __init__(self, base_url: str, api_key: str | None) -> None:
        from supervisors import DynamicSupervisor, Registry
        from tinkex_actors.clients.backpressure import rate_limiter_for
        from tinkex_actors.clients.handshake import fetch_client_flags
        from tinkex_actors.config import Config

        config = Config.resolve(api_key=api_key, base_url=base_url)
        self.transport = Transport(config)
        self.flags = fetch_client_flags(self.transport, RESOLVE_TIMEOUT_S)
        self.limiter = rate_limiter_for(config.base_url, config.api_key)
        self.budget = DispatchBudget.from_flags(self.flags, rate_limiter=self.limiter)
        self.progress = ProgressTracker()
        self.pollers = PollerPool(self.transport).start()
        self.registry = Registry()
        self.supervisor = DynamicSupervisor.start(registry=self.registry)
        self.base_url = config.base_url

    def clone(self, handle: str) -> SamplingClient:
        """A clone of the sampler behind `handle` on this runtime (its own clone id)."""
        fields = parse_handle(handle)
        sid = fields["sampling_session_id"]
        clone_id = uuid.uuid4().int % CLONE_STRIDE + 1
        if self.flags.sample_join_sampling_session:
            joined = (
                self.transport.submit(
                    HttpRequest.json(
                        "POST",
                        "join_sampling_session",
                        {"sampling_session_id": sid},
                        pool=PoolKind.SESSION,
                    )
                )
                .result(RESOLVE_TIMEOUT_S)
                .json()
            )
            clone_id = int(joined["client_counter"])
        state = SamplerState(
            sampling_session_id=sid,
            base_model=fields.get("base_model"),
            model_path=fields.get("model_path"),
            budget=self.budget,
            limiter=self.limiter,
            clone_id=clone_id,
            progress=self.progress,
            base_url=self.base_url,
        )
        actor = start_client_actor(
            self.supervisor,
            self.registry,
            ("sampling", sid, clone_id),
            SamplingClientActor.start,
            state,
            self.transport,
            self.pollers,
            timeout_s=DEFAULT_CALL_TIMEOUT_S,
        )
        return SamplingClient(state, actor)

    def close(self) -> None:
        """Stop the clones' actors, the pollers and the transport."""
        from supervisors import stop

        stop(self.supervisor, timeout_s=RESOLVE_TIMEOUT_S)
        self.pollers.stop()
        self.transport.close()


class SamplingClient:
    """Samples from one sampling session; every call returns a Future at once.

    A SamplingClient crosses process boundaries: pickle it (spawned processes included), or pass
    `get_sampler_handle()` (a string with no credentials) and rebuild it with
    `SamplingClient.from_sampler_handle(handle)`. Each copy is a clone with its own random id,
    so their seq_ids never collide; it authenticates with its own process's `TINKER_API_KEY`
    (or `api_key=`), and owns its connections until `close()`.
    """

    def __init__(
        self,
        state: SamplerState,
        actor: SupervisedRef | ActorRef[Any],
        *,
        runtime: SamplerRuntime | None = None,
    ) -> None:
        self._state = state
        self._actor = actor
        self._runtime = runtime
        self._telemetry: SessionTelemetry | None = None

    # -- crossing process boundaries -----------------------------------------------------------

    def get_sampler_handle(self) -> str:
        """A string naming this sampler for any process: base64 JSON, no credentials."""
        s = self._state
        return sampler_handle(s.sampling_session_id, s.base_url, s.base_model, s.model_path)

    @staticmethod
    def from_sampler_handle(handle: str, *, api_key: str | None = None) -> SamplingClient:
        """A new clone of the sampler behind `handle`, with its own connections."""
        base_url = parse_handle(handle)["base_url"]
        runtime = SamplerRuntime(base_url, api_key)
        try:
            client = runtime.clone(handle)
        except BaseException:
            runtime.close()
            raise
        client._runtime = runtime
        return client

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled as its handle: the copy is a clone with its own connections."""
        return (SamplingClient.from_sampler_handle, (self.get_sampler_handle(),))

    def close(self) -> None:
        """Release what a clone made from a handle owns (a ServiceClient's own: nothing)."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def __enter__(self) -> SamplingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SamplingClient(sampling_session_id={self.sampling_session_id!r}, "
            f"model_path={self.model_path!r})"
        )

    @property
    def sampling_session_id(self) -> str:
        """The server's id of this sampler."""
        return self._state.sampling_session_id

    @property
    def model_path(self) -> str | None:
        """The tinker path of the weights sampled (None for a base model)."""
        return self._state.model_path

    @property
    def base_model(self) -> str | None:
        """The base model, when known."""
        return self._state.base_model

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        topk_sample_logprobs: int = 0,
        target_prompt_logprobs: types.TensorData | None = None,
        prompt_alt_tokens_k: int = 0,
        prompt_logprobs_last_n: int | None = None,
    ) -> Future[types.SampleResponse]:
        """Generate `num_samples` continuations of `prompt`.

        `topk_sample_logprobs`, `target_prompt_logprobs`, `prompt_alt_tokens_k` and
        `prompt_logprobs_last_n` ask for the extra logprob outputs of the official SDK (see
        `check_extra_sample_args`); the server answers them or refuses them with a 400.
        """
        check_sample_args(prompt, num_samples, sampling_params)
        check_extra_sample_args(
            prompt,
            include_prompt_logprobs,
            topk_sample_logprobs,
            target_prompt_logprobs,
            prompt_alt_tokens_k,
            prompt_logprobs_last_n,
        )
        state = self._state
        future: Future[types.SampleResponse] = Future(request_type="Sample")
        with state.lock:
            if state.lost is not None:
                raise state.lost
            seq_id = state.next_seq_id()
            request = types.SampleRequest(
                prompt=prompt,
                sampling_params=sampling_params,
                num_samples=num_samples,
                sampling_session_id=state.sampling_session_id,
                seq_id=seq_id,
                prompt_logprobs=include_prompt_logprobs or None,
                topk_prompt_logprobs=topk_prompt_logprobs,
                topk_sample_logprobs=topk_sample_logprobs,
                target_prompt_logprobs=target_prompt_logprobs,
                prompt_alt_tokens_k=prompt_alt_tokens_k,
                prompt_logprobs_last_n=prompt_logprobs_last_n,
                record_stability_info=state.record_stability_info or None,
            )
            http = HttpRequest(
                "POST",
                "asample",
                types.to_json(request),
                pool=PoolKind.SAMPLE,
                max_retries=0,
                headers={SAMPLING_BACKPRESSURE_HEADER: "1", "accept": proto.PROTOBUF_CONTENT_TYPE},
            )
            state.jobs[seq_id] = SampleJob(seq_id, http, estimate_prompt_bytes(prompt), future)
        self._kick()
        if prompt_alt_tokens_k > 0:
            return combine([future], functools.partial(alt_tokens_returned, prompt_alt_tokens_k))
        return future

    def _kick(self) -> None:
        try:
            current_ref(self._actor, RESOLVE_TIMEOUT_S).tell(Dispatch())
        except ActorDeadError:
            log.debug("kick_to_restarting_sampler", sampler=self.sampling_session_id)

    def compute_logprobs(
        self, prompt: types.ModelInput, prompt_logprobs_last_n: int | None = None
    ) -> Future[list[float | None]]:
        """The logprob of each prompt token given those before it (None for the first, and
        for every token before the last `prompt_logprobs_last_n` when that is given)."""
        sampled = self.sample(
            prompt,
            1,
            types.SamplingParams(max_tokens=1),
            include_prompt_logprobs=True,
            prompt_logprobs_last_n=prompt_logprobs_last_n,
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

    async def sample_async(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        topk_sample_logprobs: int = 0,
        target_prompt_logprobs: types.TensorData | None = None,
        prompt_alt_tokens_k: int = 0,
        prompt_logprobs_last_n: int | None = None,
    ) -> types.SampleResponse:
        """`await` gives the SampleResponse of `sample` (as official 0.38)."""
        return await self.sample(
            prompt,
            num_samples,
            sampling_params,
            include_prompt_logprobs,
            topk_prompt_logprobs,
            topk_sample_logprobs,
            target_prompt_logprobs,
            prompt_alt_tokens_k,
            prompt_logprobs_last_n,
        )

    async def compute_logprobs_async(
        self, prompt: types.ModelInput, prompt_logprobs_last_n: int | None = None
    ) -> list[float | None]:
        """`await` gives the prompt logprobs of `compute_logprobs` (as official 0.38)."""
        return await self.compute_logprobs(prompt, prompt_logprobs_last_n)

    def get_tokenizer(self) -> Any:
        """The tokenizer of the sampled model."""
        from tinkex_actors.tokenizer import get_tokenizer

        return get_tokenizer(self._state.base_model or "")

    # -- the rest of the official 0.38 surface ---------------------------------------------------

    def get_base_model(self) -> str:
        """The base model this sampler samples from (known since it was made: no request)."""
        base = self._state.base_model
        if base is None:
            raise RuntimeError(
                f"sampler {self.sampling_session_id} was made without knowing its base model; "
                "make it with create_sampling_client(...) so that the server names it"
            )
        return base

    async def get_base_model_async(self) -> str:
        """`await` gives `get_base_model()`."""
        return self.get_base_model()

    @staticmethod
    def create(
        holder: Any,
        *,
        model_path: str | None = None,
        base_model: str | None = None,
        sampling_session_id: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
    ) -> ClientFuture[SamplingClient]:
        """A ClientFuture of a new SamplingClient made by `holder` (a ServiceClient).

        With `sampling_session_id` it joins that existing sampling session (the server's
        base model of it is asked for when `base_model` is not given).
        """
        make = getattr(holder, "_sampling_client_future", None)
        if make is None:
            raise TypeError(
                f"holder is a {type(holder).__name__}; pass the ServiceClient that owns the "
                "session (SamplingClient.create(service, model_path=...))"
            )
        made: ClientFuture[SamplingClient] = make(
            model_path=model_path,
            base_model=base_model,
            sampling_session_id=sampling_session_id,
            retry_config=retry_config,
            record_stability_info=record_stability_info,
        )
        return made

    def on_queue_state_change(
        self, queue_state: QueueState, queue_state_reason: str | None
    ) -> None:
        """Report a queue-state change of this sampler (warns at most once a minute)."""
        self._debouncer_for_user.handle(
            QueueStateChange(
                request_id="",
                request_type="Sample",
                state=parse_queue_state(queue_state),
                reason=queue_state_reason,
            )
        )

    @functools.cached_property
    def _debouncer_for_user(self) -> QueueStateDebouncer:
        return QueueStateDebouncer("sampling", self.sampling_session_id)

    def get_telemetry(self) -> Telemetry | None:
        """The session's telemetry handle (None: telemetry is off or this is a clone)."""
        return self._telemetry
