"""The SamplingClient: a thin handle, a SamplingClientActor per sampler behind it.

A sampler has a sampling session on the server. Each request carries a per-sampler `seq_id`
that never repeats (`clone_id * 1_000_000_000 + counter`, as the official SDK numbers clones),
reserved in the caller's thread when the call is made, and kept across retries and restarts.

The actor dispatches under backpressure (see `backpressure.py`): it waits out the backoff window
that a 429 opened for every sampler of the same base URL and key, takes a token from its
dispatch budget (requests and prompt bytes in flight), sends `asample` with no HTTP retries of
its own so that it sees every 429, and releases the token when the request settles, fails or is
abandoned, and in its terminate hook for whatever it still held. Promises go to the shared
PollerPool; their queue-state changes come back to the actor, which warns ("Sampling is paused
for <sampler>. Reason: ...") through its own debouncer. Jobs live in a `SamplerState` outside
the actor, so a restarted actor dispatches again what its predecessor had not sent.
"""

from __future__ import annotations

import base64
import functools
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from pykka import ActorDeadError, ActorRef

from supervisors import Normal, Process, Shutdown, SupervisedRef
from supervisors.library_logging import get_logger
from supervisors.timers import Timer, TimerService, default_timer_service
from tinkex_actors import types
from tinkex_actors._actors import tell_quietly
from tinkex_actors.backpressure import (
    SAMPLING_BACKPRESSURE_HEADER,
    DispatchBudget,
    SampleRateLimiter,
    estimate_prompt_bytes,
)
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import (
    APIConnectionError,
    APIStatusError,
    ClientClosedError,
    RateLimitError,
)
from tinkex_actors.futures import Future, combine, relay
from tinkex_actors.poller import PollerPool, PollSpec
from tinkex_actors.queue_state import (
    QueueState,
    QueueStateChange,
    QueueStateDebouncer,
    parse_queue_state,
)
from tinkex_actors.retry import ProgressTracker, RetryPolicy
from tinkex_actors.transport import HttpRequest, Transport
from tinkex_actors.types import proto

if TYPE_CHECKING:
    from tinkex_actors.client_extras import SessionTelemetry, Telemetry
    from tinkex_actors.service import ClientFuture

log = get_logger("tinkex_actors.sampling")

CLONE_STRIDE = 1_000_000_000
RESOLVE_TIMEOUT_S = 10.0

__all__ = [
    "SamplerRuntime",
    "SamplerState",
    "SamplingClient",
    "SamplingClientActor",
    "check_extra_sample_args",
    "check_sample_args",
    "sampler_handle",
]


@dataclass
class SampleJob:
    """One sample request from the call to its settled Future."""

    key: int
    request: HttpRequest
    size_bytes: int
    future: Future[types.SampleResponse]
    attempts: int = 0
    dispatched: bool = False
    waiting: bool = False
    """Queued in the dispatch budget: a `_Granted` message will send it."""
    created_s: float = field(default_factory=time.monotonic)


@dataclass
class SamplerState:
    """A sampler's identity, budget and unsent jobs; outlives any one actor."""

    sampling_session_id: str
    base_model: str | None
    model_path: str | None
    budget: DispatchBudget
    limiter: SampleRateLimiter
    clone_id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(0))
    jobs: dict[int, SampleJob] = field(default_factory=dict)
    progress: ProgressTracker | None = None
    base_url: str = ""
    record_stability_info: bool = False
    """Sent with every sample (official `record_stability_info`)."""
    lost: BaseException | None = None
    """Set when the client closed or its session is lost: queued jobs failed, new calls raise."""

    def next_seq_id(self) -> int:
        """A seq_id never used by this sampler (call with `lock` held)."""
        return self.clone_id * CLONE_STRIDE + next(self.counter)


def fail_pending_samples(state: SamplerState, error: BaseException) -> int:
    """Fail every sample not yet handed to a poller with `error`, and make later calls raise
    it (the first such error stays); returns how many failed."""
    with state.lock:
        if state.lost is None:
            state.lost = error
        jobs = list(state.jobs.values())
        state.jobs.clear()
    for job in jobs:
        job.future.set_exception(error)
    return len(jobs)


@dataclass(frozen=True)
class _Dispatch:
    """Try to send the jobs not yet sent."""


@dataclass(frozen=True)
class _Granted:
    key: int


@dataclass(frozen=True)
class _Sent:
    key: int
    outcome: Any  # concurrent.futures.Future[HttpResponse]
    dispatched_at: float


class SamplingClientActor(Process):
    """Dispatches one sampler's requests under backpressure (see the module docstring)."""

    pooled = True  # thousands of these may live: they share the scheduler's workers

    def __init__(
        self,
        state: SamplerState,
        transport: Transport,
        pollers: PollerPool,
        *,
        timers: TimerService | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.state = state
        self.transport = transport
        self.pollers = pollers
        self.timers = timers if timers is not None else default_timer_service()
        self.policy = policy if policy is not None else RetryPolicy()
        self.debouncer = QueueStateDebouncer("sampling", state.sampling_session_id)
        self._wake: Timer | None = None

    def init(self) -> None:
        """Adopt the jobs a predecessor left unsent (or whose send it never heard back)."""
        with self.state.lock:
            for job in self.state.jobs.values():
                job.dispatched = False
                job.waiting = False
        self._dispatch()

    def terminate(self, reason: Any) -> None:
        """Give back every budget token this sampler held, however it ended; when stopped (not
        crashed: a successor would adopt them), fail what is still queued."""
        self.state.budget.release_owner(self.state.sampling_session_id)
        if isinstance(reason, Normal | Shutdown):
            fail_pending_samples(
                self.state,
                ClientClosedError(
                    f"the SamplingClient {self.state.sampling_session_id} was closed before "
                    "this request was sent; make a new client"
                ),
            )

    def on_receive(self, message: Any) -> Any:
        """Handle one message."""
        if isinstance(message, _Dispatch):
            self._wake = None
            self._dispatch()
        elif isinstance(message, _Granted):
            self._granted(message.key)
        elif isinstance(message, _Sent):
            self._sent(message)
        elif isinstance(message, QueueStateChange):
            self.debouncer.handle(message)
        else:
            raise TypeError(f"SamplingClientActor got an unknown message: {message!r}")
        return None

    def _budget_key(self, key: int) -> tuple[str, int]:
        # The budget is shared by every sampler of a ServiceClient: seq_ids alone collide.
        return (self.state.sampling_session_id, key)

    def _later(self, delay_s: float) -> None:
        if self._wake is None:
            self._wake = self.timers.send_after(delay_s, self.actor_ref, _Dispatch())

    def _dispatch(self) -> None:
        wait_s = self.state.limiter.backoff_remaining_s()
        if wait_s > 0:
            self._later(wait_s)
            return
        with self.state.lock:
            ready = [j for j in self.state.jobs.values() if not j.dispatched and not j.waiting]
        me = self.actor_ref
        for job in ready:
            if job.future.done():  # cancelled by the caller before it was sent
                self._forget(job)
                continue
            token = self.state.budget.try_acquire(
                self._budget_key(job.key),
                job.size_bytes,
                owner=self.state.sampling_session_id,
                on_granted=functools.partial(_tell_granted, me, job.key),
            )
            if token is None:
                job.waiting = True  # in the budget's FIFO queue; _Granted sends it
            else:
                self._send(job)

    def _granted(self, key: int) -> None:
        with self.state.lock:
            job = self.state.jobs.get(key)
        if job is None or job.future.done():
            self.state.budget.release(self._budget_key(key))
            if job is not None:
                self._forget(job)
            return
        job.waiting = False
        if self.state.limiter.backoff_remaining_s() > 0:
            self.state.budget.release(self._budget_key(key))
            self._later(self.state.limiter.backoff_remaining_s())
            return
        self._send(job)

    def _send(self, job: SampleJob) -> None:
        job.dispatched = True
        job.attempts += 1
        dispatched_at = self.state.limiter.now()
        outcome = self.transport.submit(job.request)
        me = self.actor_ref
        outcome.add_done_callback(lambda f: tell_quietly(me, _Sent(job.key, f, dispatched_at)))

    def _forget(self, job: SampleJob) -> None:
        with self.state.lock:
            self.state.jobs.pop(job.key, None)
        self.state.budget.release(self._budget_key(job.key))

    def _sent(self, message: _Sent) -> None:
        with self.state.lock:
            job = self.state.jobs.get(message.key)
        if job is None:
            return
        try:
            response = message.outcome.result(timeout=0)
            is_proto = "protobuf" in response.headers.get("content-type", "")
            promise = {} if is_proto else msgspec.json.decode(response.content)
            if is_proto or ("request_id" not in promise and "sequences" in promise):
                self._settle_inline(job, response if is_proto else promise, message.dispatched_at)
                return
            request_id = promise["request_id"]
        except RateLimitError as exc:
            retry_after = _retry_after_s(exc)
            self.state.limiter.on_rate_limited(job.size_bytes, retry_after)
            self._notify_queue_state(exc)
            self.state.budget.release(self._budget_key(job.key))
            job.dispatched = False
            self._later(self.state.limiter.backoff_remaining_s() or 0.0)
            return
        except (APIConnectionError, APIStatusError) as exc:
            # 408: the server held the request too long; like a 5xx, an outage to wait out
            retryable = isinstance(exc, APIConnectionError) or (
                exc.status_code >= 500 or exc.status_code == 408
            )
            self.state.budget.release(self._budget_key(job.key))
            if retryable and not self._stuck(job):
                job.dispatched = False
                self._later(self.policy.backoff_s(job.attempts - 1))
                return
            self._forget(job)
            job.future.set_exception(exc)
            return
        except BaseException as exc:
            self._forget(job)
            job.future.set_exception(exc)
            return
        self.state.limiter.on_success(message.dispatched_at)
        with self.state.lock:
            self.state.jobs.pop(job.key, None)
        ids: Sequence[str] | None = promise.get("sample_sequence_ids")
        job.future.request_id = request_id

        def decode_proto(body: bytes) -> types.SampleResponse:
            return proto.decode_sample_response(body, sequence_ids=ids)

        polled = self.pollers.track(
            PollSpec(
                request_id=request_id,
                request_type="Sample",
                decode_json=lambda value: types.convert(value, types.SampleResponse),
                decode_proto=decode_proto,
                owner=self.actor_ref,
                progress=self.state.progress,
            )
        )
        budget, key = self.state.budget, self._budget_key(job.key)
        relay(polled, job.future, on_settled=lambda: budget.release(key))

    def _settle_inline(self, job: SampleJob, answer: Any, dispatched_at: float) -> None:
        """A server that answers asample with the result itself, not a future."""
        self.state.limiter.on_success(dispatched_at)
        self._forget(job)
        try:
            if isinstance(answer, dict):
                result = types.convert(answer, types.SampleResponse)
            else:
                result = proto.decode_sample_response(answer.content)
        except BaseException as exc:
            job.future.set_exception(exc)
            return
        job.future.set_result(result)

    def _stuck(self, job: SampleJob) -> bool:
        progress = self.state.progress
        return progress is not None and progress.expired(job.created_s)

    def _notify_queue_state(self, exc: APIStatusError) -> None:
        body = exc.body if isinstance(exc.body, dict) else {}
        if "queue_state" in body:
            self.debouncer.handle(
                QueueStateChange(
                    request_id="",
                    request_type="Sample",
                    state=parse_queue_state(body.get("queue_state")),
                    reason=body.get("queue_state_reason"),
                )
            )


def check_sample_args(prompt: object, num_samples: object, sampling_params: object) -> None:
    """Refuse bad `sample` arguments in the caller's thread, before anything is sent."""
    if not isinstance(prompt, types.ModelInput):
        raise TypeError(
            f"prompt is a {type(prompt).__name__}; pass a types.ModelInput "
            "(e.g. ModelInput.from_ints(tokens))"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be an int >= 1")
    if not isinstance(sampling_params, types.SamplingParams):
        raise TypeError("sampling_params must be a types.SamplingParams")


def check_extra_sample_args(
    prompt: types.ModelInput,
    include_prompt_logprobs: bool,
    topk_sample_logprobs: object,
    target_prompt_logprobs: object,
    prompt_alt_tokens_k: object,
    prompt_logprobs_last_n: object,
) -> None:
    """Refuse the extra logprob options the service would refuse, before anything is sent."""
    for name, value in (
        ("topk_sample_logprobs", topk_sample_logprobs),
        ("prompt_alt_tokens_k", prompt_alt_tokens_k),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} must be an int >= 0 (0: not asked for)")
    if target_prompt_logprobs is not None:
        if not isinstance(target_prompt_logprobs, types.TensorData):
            raise TypeError(
                "target_prompt_logprobs must be a types.TensorData of token ids, "
                f"got a {type(target_prompt_logprobs).__name__}"
            )
        shape = target_prompt_logprobs.shape
        if target_prompt_logprobs.dtype != "int64" or shape is None or len(shape) != 2:
            raise ValueError(
                "target_prompt_logprobs must be a 2-D int64 TensorData of token ids, "
                f"[len(prompt) - 1, K]; got dtype {target_prompt_logprobs.dtype}, shape {shape}"
            )
    if prompt_logprobs_last_n is None:
        return
    if (
        isinstance(prompt_logprobs_last_n, bool)
        or not isinstance(prompt_logprobs_last_n, int)
        or prompt_logprobs_last_n < 1
    ):
        raise ValueError(f"prompt_logprobs_last_n={prompt_logprobs_last_n!r} must be an int >= 1")
    if not include_prompt_logprobs:
        raise ValueError(
            "prompt_logprobs_last_n applies to prompt logprobs; pass include_prompt_logprobs=True"
        )
    if prompt_logprobs_last_n > prompt.length - 1:
        raise ValueError(
            f"prompt_logprobs_last_n={prompt_logprobs_last_n} is more than the prompt's "
            f"{prompt.length} tokens minus the first; use 1..{max(prompt.length - 1, 1)}"
        )


def sampler_handle(
    sampling_session_id: str, base_url: str, base_model: str | None, model_path: str | None
) -> str:
    """The handle of a sampler: base64 JSON of where it is, with no credentials."""
    payload = {
        "v": 1,
        "sampling_session_id": sampling_session_id,
        "base_url": base_url,
        "base_model": base_model,
        "model_path": model_path,
    }
    return base64.urlsafe_b64encode(msgspec.json.encode(payload)).decode()


def _alt_tokens_returned(k: int, results: list[types.SampleResponse]) -> types.SampleResponse:
    """The response, if it holds the prompt alternatives asked for (as official clients check:
    a server that predates them ignores the field and answers without)."""
    if results[0].prompt_alt_tokens is None:
        raise RuntimeError(
            f"prompt_alt_tokens_k={k} was asked for but the server returned no "
            "prompt_alt_tokens; it may predate this feature"
        )
    return results[0]


def _tell_granted(ref: ActorRef[Any], key: int, _token: object) -> None:
    tell_quietly(ref, _Granted(key))


def _retry_after_s(exc: APIStatusError) -> float | None:
    headers = getattr(exc, "headers", {}) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def _parse_handle(handle: str) -> dict[str, Any]:
    try:
        fields: dict[str, Any] = msgspec.json.decode(base64.urlsafe_b64decode(handle.encode()))
        if not isinstance(fields.get("sampling_session_id"), str) or not isinstance(
            fields.get("base_url"), str
        ):
            raise KeyError("sampling_session_id and base_url")
    except Exception as exc:
        raise ValueError(
            "handle is not a sampler handle; pass what get_sampler_handle() returned"
        ) from exc
    return fields


parse_handle = _parse_handle  # the public name for other modules (no private imports)


class SamplerRuntime:
    """Connections, pollers and a supervisor for sampler clones made from handles.

    `SamplingClient.from_sampler_handle` makes one per clone; the out-of-process sampling child
    shares one between all the samplers it hosts (one transport, one poller pool, one budget).
    """

    def __init__(self, base_url: str, api_key: str | None) -> None:
        from supervisors import DynamicSupervisor, Registry
        from tinkex_actors.backpressure import rate_limiter_for
        from tinkex_actors.config import ClientFlags, Config

        config = Config.resolve(api_key=api_key, base_url=base_url)
        self.transport = Transport(config)
        try:
            answer = self.transport.submit(
                HttpRequest.json("POST", "client/config", {"sdk_version": "tinkex-actors"})
            ).result(RESOLVE_TIMEOUT_S)
            self.flags = ClientFlags.from_mapping(answer.json())
        except Exception:
            self.flags = ClientFlags()
        self.limiter = rate_limiter_for(config.base_url, config.api_key)
        self.budget = DispatchBudget.from_flags(self.flags, rate_limiter=self.limiter)
        self.progress = ProgressTracker()
        self.pollers = PollerPool(self.transport).start()
        self.registry = Registry()
        self.supervisor = DynamicSupervisor.start(registry=self.registry)
        self.base_url = config.base_url

    def clone(self, handle: str) -> SamplingClient:
        """A clone of the sampler behind `handle` on this runtime (its own clone id)."""
        from supervisors import ChildSpec, start_child

        fields = _parse_handle(handle)
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
        name = ("sampling", sid, clone_id)
        start_child(
            self.supervisor,
            ChildSpec(
                id=name,
                name=name,
                start=functools.partial(
                    SamplingClientActor.start, state, self.transport, self.pollers
                ),
            ),
        )
        return SamplingClient(state, SupervisedRef(name, self.registry))

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
        base_url = _parse_handle(handle)["base_url"]
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
            return combine([future], functools.partial(_alt_tokens_returned, prompt_alt_tokens_k))
        return future

    def _kick(self) -> None:
        actor = self._actor
        try:
            ref = actor.resolve(RESOLVE_TIMEOUT_S) if isinstance(actor, SupervisedRef) else actor
            ref.tell(_Dispatch())
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
