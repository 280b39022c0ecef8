"""The TrainingClient: a thin handle in the caller's thread, an actor per model behind it.

How a call flows (DESIGN.md section 4):

1. The handle validates the call, encodes its request body and reserves its `seq_id`, all in the
   caller's thread and under one lock, so two calls made one after the other always get
   increasing seq_ids and nothing is reserved for a call that failed to encode.
2. The job goes into the model's `TrainingState` (kept outside the actor) and the actor is told.
3. The actor submits jobs strictly in seq_id order, one submit in flight at a time, without
   blocking its mailbox: the Transport's answer comes back as a message.
4. The answered `request_id` goes to the PollerPool, whose Future settles the caller's Future.

Restart with identity: the state holds the model_id, the next seq_id and every job not yet
handed to a poller. A restarted actor adopts them; the job whose submit was in flight when the
actor died is submitted again with the same seq_id and the same idempotency key, so the server
applies it once. Queue-state changes of this model's futures arrive here as messages and are
reported through the actor's own debouncer.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import numpy as np
from pykka import ActorDeadError, ActorRef

from supervisors import Normal, Process, Shutdown, SupervisedRef
from supervisors.library_logging import get_logger
from tinkex_actors import types
from tinkex_actors._actors import tell_quietly
from tinkex_actors._http_messages import unique_key
from tinkex_actors.chunked_results import combine_forward_backward_outputs
from tinkex_actors.client_extras import (
    LossHandle,
    Telemetry,
    check_optim_params,
    check_retry_config,
    console_url,
    report_user_errors,
)
from tinkex_actors.config import ClientFlags, PoolKind
from tinkex_actors.custom_loss_handle import handle_as_loss_fn
from tinkex_actors.errors import (
    APIResponseValidationError,
    APIStatusError,
    ClientClosedError,
    ConflictError,
)
from tinkex_actors.futures import Future, combine, relay
from tinkex_actors.poller import PollerPool, PollSpec
from tinkex_actors.queue_state import QueueStateChange, QueueStateDebouncer
from tinkex_actors.retry import ProgressTracker, RetryPolicy
from tinkex_actors.session import SessionLost
from tinkex_actors.transport import HttpRequest, HttpResponse, Transport
from tinkex_actors.types import proto

if TYPE_CHECKING:
    from tinkex_actors.sampling import SamplingClient
    from tinkex_actors.service import ClientFuture, ServiceClient

log = get_logger("tinkex_actors.training")

PROTO_BYTES_PER_TOKEN = 4
SPARSE_INDEX_BYTES = 8
RESOLVE_TIMEOUT_S = 10.0
"""How long a call waits for a restarting TrainingClient actor to come back."""


# -- the state that outlives an actor ----------------------------------------------------------


@dataclass
class Job:
    """One request of a model, from its reservation to its hand-off to a poller."""

    seq_id: int
    request: HttpRequest
    request_type: str
    decode_json: Callable[[Any], Any]
    decode_proto: Callable[[bytes], Any] | None
    future: Future[Any]
    submitted: bool = False
    on_conflict: Callable[[], Any] | None = None
    """For saves: the result to give when the server answers 409 (the name exists, i.e. an
    earlier attempt of this very save landed)."""
    json_fallback: Callable[[], HttpRequest] | None = None
    """For protobuf requests: the same request as JSON, for a server that answers 415."""


@dataclass
class TrainingState:
    """A model's identity and its unfinished jobs; shared by the handle and every incarnation."""

    model_id: str
    session_id: str
    base_model: str
    flags: ClientFlags = field(default_factory=ClientFlags)
    next_seq_id: int = 1
    next_to_submit: int = 1
    jobs: dict[int, Job] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: ProgressTracker | None = None
    lost: BaseException | None = None
    """Set when the session is gone: every queued job fails with it, new calls raise it."""
    lost_event: threading.Event = field(default_factory=threading.Event)
    json_only: bool = False
    """Set once the server refused a protobuf body (415): later requests go as JSON."""

    def reserve(self, count: int) -> int:
        """Reserve `count` consecutive seq_ids (call with `lock` held); returns the first."""
        first = self.next_seq_id
        self.next_seq_id += count
        return first


def fail_pending(state: TrainingState, error: BaseException) -> int:
    """Fail every job of the model not yet handed to a poller with `error`, and make later
    calls raise it (the first such error stays); returns how many jobs failed."""
    with state.lock:
        if state.lost is None:
            state.lost = error
        jobs = list(state.jobs.values())
        state.jobs.clear()
    state.lost_event.set()
    for job in jobs:
        job.future.set_exception(error)
    return len(jobs)


# -- the actor ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kick:
    """New jobs are in the state: submit what is next in order."""


@dataclass(frozen=True)
class _Submitted:
    seq_id: int
    outcome: Any  # concurrent.futures.Future[HttpResponse]


class TrainingClientActor(Process):
    """Submits one model's requests in seq_id order and hands their futures to the pollers."""

    pooled = True  # thousands of these may live: they share the scheduler's workers

    def __init__(self, state: TrainingState, transport: Transport, pollers: PollerPool) -> None:
        super().__init__()
        self.state = state
        self.transport = transport
        self.pollers = pollers
        self.in_flight: int | None = None
        self.debouncer = QueueStateDebouncer("training", state.model_id)

    def init(self) -> None:
        """Adopt what a predecessor left: resubmit an unanswered submit, then go on in order."""
        with self.state.lock:
            for job in self.state.jobs.values():
                job.submitted = False
        self._submit_next()

    def on_receive(self, message: Any) -> Any:
        """Handle one message."""
        if isinstance(message, _Kick):
            self._submit_next()
        elif isinstance(message, _Submitted):
            self._submitted(message)
        elif isinstance(message, QueueStateChange):
            self.debouncer.handle(message)
        elif isinstance(message, SessionLost):
            self._session_lost(message)
        else:
            raise TypeError(f"TrainingClientActor got an unknown message: {message!r}")
        return None

    def terminate(self, reason: Any) -> None:
        """Stopped (not crashed: a successor would adopt them): fail what is still queued."""
        if isinstance(reason, Normal | Shutdown):
            fail_pending(
                self.state,
                ClientClosedError(
                    f"the TrainingClient of model {self.state.model_id} was closed before this "
                    "request was sent; make a new client"
                ),
            )

    def _session_lost(self, message: SessionLost) -> None:
        failed = fail_pending(self.state, message.error)
        log.warning("training_session_lost", model_id=self.state.model_id, failed_jobs=failed)

    def _submit_next(self) -> None:
        if self.in_flight is not None:
            return
        with self.state.lock:
            job = self.state.jobs.get(self.state.next_to_submit)
            if job is None or job.submitted:
                return
            job.submitted = True
        if job.future.cancelled():
            # Still submitted: the server must see every seq_id to keep the order.
            log.debug("cancelled_job_submitted_anyway", seq_id=job.seq_id)
        self.in_flight = job.seq_id
        # Retried until the progress timeout or a lost connection, not a count: a short outage
        # must not fail a step (and the jobs behind it wait for this one).
        outcome = self.transport.submit(job.request, progress=self.state.progress)
        me = self.actor_ref
        outcome.add_done_callback(lambda f: tell_quietly(me, _Submitted(job.seq_id, f)))

    def _submitted(self, message: _Submitted) -> None:
        self.in_flight = None
        if self._refused_protobuf(message):
            self._submit_next()
            return
        with self.state.lock:
            job = self.state.jobs.pop(message.seq_id, None)
            self.state.next_to_submit = max(self.state.next_to_submit, message.seq_id + 1)
        if job is not None:
            self._track(job, message.outcome)
        self._submit_next()

    def _refused_protobuf(self, message: _Submitted) -> bool:
        """A server built before the binary wire answers 415: resend as JSON, same seq_id."""
        error = message.outcome.exception()
        if not (isinstance(error, APIStatusError) and error.status_code == 415):
            return False
        with self.state.lock:
            job = self.state.jobs.get(message.seq_id)
            if job is None or job.json_fallback is None:
                return False
            job.request = job.json_fallback()
            job.json_fallback = None
            job.decode_proto = None
            job.submitted = False
            self.state.json_only = True
        log.info("protobuf_refused_using_json", model_id=self.state.model_id, seq_id=message.seq_id)
        return True

    def _track(self, job: Job, outcome: Any) -> None:
        try:
            response: HttpResponse = outcome.result(timeout=0)
            answer = msgspec.json.decode(response.content)
            request_id = answer["request_id"]
        except ConflictError as exc:
            if job.on_conflict is not None:
                log.info("save_already_landed", seq_id=job.seq_id, error=str(exc))
                job.future.set_result(job.on_conflict())
            else:
                job.future.set_exception(exc)
            return
        except BaseException as exc:
            job.future.set_exception(exc)
            return
        spec = PollSpec(
            request_id=request_id,
            request_type=job.request_type,
            decode_json=job.decode_json,
            decode_proto=job.decode_proto,
            owner=self.actor_ref,
            progress=self.state.progress,
        )
        polled = self.pollers.track(spec)
        job.future.request_id = request_id
        relay(polled, job.future)


# -- validation and encoding helpers -------------------------------------------------------------


LOSS_FNS = ("cross_entropy", "importance_sampling", "ppo", "cispo", "dro")

_SAVES: dict[str, tuple[Any, Any, str, str]] = {
    # folder of the tinker path: request type, response type, route (= response type tag),
    # the request type as futures name it
    "weights": (types.SaveWeightsRequest, types.SaveWeightsResponse, "save_weights", "SaveWeights"),
    "sampler_weights": (
        types.SaveWeightsForSamplerRequest,
        types.SaveWeightsForSamplerResponse,
        "save_weights_for_sampler",
        "SaveWeightsForSampler",
    ),
}


def check_loss(loss_fn: object, loss_fn_config: Mapping[str, Any] | None) -> None:
    """A clear ValueError for an unknown loss function or a config value that is no number."""
    if not isinstance(loss_fn, str) or loss_fn not in LOSS_FNS:
        raise ValueError(
            f"loss_fn={loss_fn!r} is not a Tinker loss function; use one of {', '.join(LOSS_FNS)}"
        )
    for key, value in (loss_fn_config or {}).items():
        if (
            not isinstance(key, str)
            or isinstance(value, bool)
            or not isinstance(value, int | float | str)
        ):
            raise ValueError(
                f"loss_fn_config[{key!r}]={value!r} is not valid; keys are strings and values "
                "numbers (or strings)"
            )


def check_data(data: Sequence[types.Datum], where: str = "data") -> list[types.Datum]:
    """The data as a list, refusing an empty batch or something that is not Datums."""
    items = list(data)
    if not items:
        raise ValueError(f"{where} is empty; pass at least one Datum")
    for i, datum in enumerate(items):
        if not isinstance(datum, types.Datum):
            raise TypeError(
                f"{where}[{i}] is a {type(datum).__name__}; build it with "
                "tinkex_actors.types.Datum(model_input=..., loss_fn_inputs=...)"
            )
    return items


def estimate_bytes(datum: types.Datum) -> int:
    """The official estimate of a datum's serialized size (4 bytes a token, tensors' bytes)."""
    total = 0
    for chunk in datum.model_input.chunks:
        if isinstance(chunk, types.EncodedTextChunk):
            total += len(chunk.tokens) * PROTO_BYTES_PER_TOKEN
        elif isinstance(chunk, types.ImageChunk):
            total += len(chunk.data)
        else:
            total += chunk.length * PROTO_BYTES_PER_TOKEN
    for td in datum.loss_fn_inputs.values():
        total += td.to_numpy().nbytes
        if td.sparse_crow_indices is not None:
            total += SPARSE_INDEX_BYTES * len(td.sparse_crow_indices)
        if td.sparse_col_indices is not None:
            total += SPARSE_INDEX_BYTES * len(td.sparse_col_indices)
    return total


def chunk_data(data: list[types.Datum], flags: ClientFlags) -> list[list[types.Datum]]:
    """Split a batch by the server's limits on datums and bytes per chunk; never an empty one."""
    chunks: list[list[types.Datum]] = []
    current: list[types.Datum] = []
    current_bytes = 0
    for datum in data:
        size = estimate_bytes(datum)
        if current and (
            current_bytes + size > flags.fwdbwd_max_chunk_bytes_count
            or len(current) >= flags.fwdbwd_max_chunk_len
        ):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(datum)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks


def _json_body(make: Callable[[int], Any]) -> Callable[[int], tuple[bytes, str]]:
    """A request builder: the body `make(seq_id)` returns, as JSON."""
    return lambda seq_id: (types.to_json(make(seq_id)), "application/json")


def _decode_fb_json(value: Any) -> types.ForwardBackwardOutput:
    return types.convert(value, types.ForwardBackwardOutput)


def _decoder(kind: type[Any]) -> Callable[[Any], Any]:
    return lambda value: types.convert(value, kind)


# -- the handle ----------------------------------------------------------------------------------


class TrainingClient:
    """A LoRA training model. Every method returns a Future at once (see the module docstring).

    Built by `ServiceClient.create_lora_training_client` and friends; the handle keeps working
    across restarts of its actor.
    """

    def __init__(
        self,
        state: TrainingState,
        actor: SupervisedRef | ActorRef[Any],
        transport: Transport,
        *,
        sampling_factory: Callable[..., Any] | None = None,
        service: ServiceClient | None = None,
    ) -> None:
        self._state = state
        self._actor = actor
        self._transport = transport
        self._sampling_factory = sampling_factory
        self._service = service
        self._info: types.GetInfoResponse | None = None

    def __repr__(self) -> str:
        return f"TrainingClient(model_id={self.model_id!r}, base_model={self._state.base_model!r})"

    @property
    def model_id(self) -> str:
        """The server's id of this model (also its training run id)."""
        return self._state.model_id

    # -- plumbing ----------------------------------------------------------------------------

    def _tell(self) -> None:
        if self._state.lost is not None:
            return  # closed or lost meanwhile: its jobs were failed, nobody will submit them
        actor = self._actor
        ref = actor.resolve(RESOLVE_TIMEOUT_S) if isinstance(actor, SupervisedRef) else actor
        try:
            ref.tell(_Kick())
        except ActorDeadError:
            # The actor is restarting: its successor adopts the queued jobs in init().
            log.debug("kick_to_restarting_actor", model_id=self.model_id)

    def _enqueue(
        self,
        path: str,
        request_type: str,
        build: Callable[[int], tuple[bytes, str]],
        decode_json: Callable[[Any], Any],
        decode_proto: Callable[[bytes], Any] | None = None,
        on_conflict: Callable[[], Any] | None = None,
    ) -> Future[Any]:
        """Reserve one seq_id, build the body for it, and queue the job (atomically)."""
        return self._enqueue_many(
            path, request_type, [build], decode_json, decode_proto, on_conflict
        )[0]

    def _enqueue_many(
        self,
        path: str,
        request_type: str,
        builders: list[Callable[[int], tuple[bytes, str]]],
        decode_json: Callable[[Any], Any],
        decode_proto: Callable[[bytes], Any] | None = None,
        on_conflict: Callable[[], Any] | None = None,
        json_builders: list[Callable[[int], tuple[str, bytes]]] | None = None,
    ) -> list[Future[Any]]:
        state = self._state
        futures: list[Future[Any]] = []
        with state.lock:
            if state.lost is not None:
                raise state.lost
            first = state.next_seq_id
            jobs = []
            for offset, build in enumerate(builders):
                seq_id = first + offset
                key = {"x-idempotency-key": unique_key("tinkex-actors")}
                json_build = json_builders[offset] if json_builders else None
                fallback = None
                if json_build is not None:
                    fallback = functools.partial(_json_request, json_build, seq_id, key)
                if json_build is not None and state.json_only:
                    request, fallback = fallback(), None  # type: ignore[misc]
                else:
                    body, content_type = build(seq_id)  # raises before anything is reserved
                    headers = dict(key)
                    if content_type == proto.PROTOBUF_CONTENT_TYPE:
                        headers["accept"] = proto.PROTOBUF_CONTENT_TYPE
                    request = HttpRequest(
                        "POST", path, body, content_type, headers=headers, pool=PoolKind.TRAIN
                    )
                future: Future[Any] = Future(request_type=request_type)
                jobs.append(
                    Job(
                        seq_id,
                        request,
                        request_type,
                        decode_json,
                        decode_proto,
                        future,
                        on_conflict=on_conflict,
                        json_fallback=fallback,
                    )
                )
                futures.append(future)
                if self._service is not None:
                    report_user_errors(future, self._service._report_event)
            state.reserve(len(builders))
            for job in jobs:
                state.jobs[job.seq_id] = job
        self._tell()
        return futures

    # -- training ----------------------------------------------------------------------------

    def _forward_backward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None,
        forward_only: bool,
    ) -> Future[types.ForwardBackwardOutput]:
        items = check_data(data)
        check_loss(loss_fn, loss_fn_config)
        config = dict(loss_fn_config) if loss_fn_config else None
        flags = self._state.flags
        model_id = self.model_id

        def json_builder(chunk: list[types.Datum]) -> Callable[[int], tuple[str, bytes]]:
            def build(seq_id: int) -> tuple[str, bytes]:
                fbi = types.ForwardBackwardInput(
                    data=chunk,
                    loss_fn=loss_fn,  # type: ignore[arg-type]
                    loss_fn_config=config,
                )
                if forward_only:
                    fwd = types.ForwardRequest(forward_input=fbi, model_id=model_id, seq_id=seq_id)
                    return "forward", types.to_json(fwd)
                req = types.ForwardBackwardRequest(
                    forward_backward_input=fbi, model_id=model_id, seq_id=seq_id
                )
                return "forward_backward", types.to_json(req)

            return build

        def builder(chunk: list[types.Datum]) -> Callable[[int], tuple[bytes, str]]:
            def build(seq_id: int) -> tuple[bytes, str]:
                fbi = types.ForwardBackwardInput(
                    data=chunk,
                    loss_fn=loss_fn,  # type: ignore[arg-type]
                    loss_fn_config=config,
                )
                body = proto.encode_forward_backward_request(
                    fbi, model_id=model_id, seq_id=seq_id, forward_only=forward_only
                )
                return body, proto.PROTOBUF_CONTENT_TYPE

            return build

        kind = "Forward" if forward_only else "ForwardBackward"
        chunks = chunk_data(items, flags)
        parts = self._enqueue_many(
            "forward_backward",
            kind,
            [builder(c) for c in chunks],
            _decode_fb_json,
            proto.decode_forward_backward_output,
            json_builders=[json_builder(c) for c in chunks],
        )
        if len(parts) == 1:
            only: Future[types.ForwardBackwardOutput] = parts[0]
            return only
        return combine(parts, combine_forward_backward_outputs)

    def forward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Compute the loss and per-datum outputs without accumulating gradients."""
        return self._forward_backward(data, loss_fn, loss_fn_config, forward_only=True)

    def forward_backward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Compute the loss and accumulate its gradients; chunked by the server's limits."""
        return self._forward_backward(data, loss_fn, loss_fn_config, forward_only=False)

    def forward_backward_custom(
        self,
        data: Sequence[types.Datum],
        loss_fn: CustomLossFn | LossHandle,
        *,
        loss_type_input: Literal["logprobs"] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Train on a loss computed here, from the model's logprobs, with numpy gradients.

        `loss_fn(data, logprobs_list)` gets one float array of target-token logprobs per datum
        and returns `(loss, metrics, grads)`, `grads[i]` being dLoss/dlogprobs of datum i. The
        forward runs first; its backward is a cross_entropy pass with `weights = -grads` (the
        official weighting), whose seq_id is reserved only when it is sent, as officially.
        A `LossHandle` from `ServiceClient.create_custom_loss` works too (it needs torch).
        """
        if loss_type_input not in (None, "logprobs"):
            raise ValueError(f"loss_type_input={loss_type_input!r}: only 'logprobs' (or None)")
        if isinstance(loss_fn, LossHandle):
            loss_fn = handle_as_loss_fn(loss_fn)
        items = check_data(data)
        for i, datum in enumerate(items):
            if "target_tokens" not in datum.loss_fn_inputs:
                raise ValueError(
                    f"data[{i}].loss_fn_inputs has no 'target_tokens'; the custom "
                    "loss needs the tokens whose logprobs it differentiates"
                )
        if not callable(loss_fn):
            raise TypeError(
                "loss_fn must be callable: (data, logprobs_list) -> (loss, metrics, grads)"
            )
        result: Future[types.ForwardBackwardOutput] = Future(request_type="ForwardBackwardCustom")
        forward = self.forward(items, "cross_entropy")

        def backward(fwd: types.ForwardBackwardOutput) -> None:
            try:
                logprobs = [out["logprobs"].to_numpy() for out in fwd.loss_fn_outputs]
                loss, metrics, grads = loss_fn(items, logprobs)
                if len(grads) != len(items):
                    raise ValueError(
                        f"loss_fn returned {len(grads)} gradients for "
                        f"{len(items)} datums; return one per datum"
                    )
                linear = []
                for i, (datum, grad, lp) in enumerate(zip(items, grads, logprobs, strict=True)):
                    g = np.asarray(grad, dtype=np.float32)
                    if g.shape != lp.shape:
                        raise ValueError(
                            f"gradient {i} has shape {g.shape}, its logprobs "
                            f"{lp.shape}; return dLoss/dlogprobs of that shape"
                        )
                    linear.append(
                        types.Datum(
                            model_input=datum.model_input,
                            loss_fn_inputs={
                                "target_tokens": datum.loss_fn_inputs["target_tokens"],
                                "weights": types.TensorData.from_numpy(-g),
                            },
                        )
                    )
                sent = self.forward_backward(linear, "cross_entropy")
            except BaseException as exc:
                result.set_exception(exc)
                return

            def done(out: Future[types.ForwardBackwardOutput]) -> None:
                error = out.exception()
                if error is not None:
                    result.set_exception(error)
                    return
                value = out.result()
                merged = {
                    **value.metrics,
                    **{k: float(v) for k, v in metrics.items()},
                    "loss:sum": float(loss),
                }
                result.set_result(
                    types.ForwardBackwardOutput(
                        loss_fn_output_type=value.loss_fn_output_type,
                        loss_fn_outputs=fwd.loss_fn_outputs,
                        metrics=merged,
                    )
                )

            sent.add_done_callback(done)

        def after_forward(done: Future[types.ForwardBackwardOutput]) -> None:
            error = done.exception()
            if error is not None:
                result.set_exception(error)
                return
            # The user's loss may be slow: never run it in a Poller's thread.
            threading.Thread(
                target=backward, args=(done.result(),), daemon=True, name="tinkex-custom-loss"
            ).start()

        forward.add_done_callback(after_forward)
        return result

    def optim_step(
        self,
        optim_params: types.OptimParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ) -> Future[types.OptimStepResponse]:
        """Apply the accumulated gradients, after every earlier call of this model.

        `optim_params` are the step's settings for the optimizer chosen at creation
        (`types.AdamParams`, or `types.DimuonParams`); `adam_params=` is the older keyword.
        """
        params = check_optim_params(optim_params, adam_params)
        model_id = self.model_id

        def request(seq_id: int) -> types.OptimStepRequest:
            if isinstance(params, types.AdamParams):
                return types.OptimStepRequest(model_id=model_id, adam_params=params, seq_id=seq_id)
            return types.OptimStepRequest(
                model_id=model_id, optimizer_params=params, seq_id=seq_id
            )

        build = _json_body(request)
        return self._enqueue("optim_step", "OptimStep", build, _decoder(types.OptimStepResponse))

    # -- weights -----------------------------------------------------------------------------

    def save_state(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsResponse]:
        """Save weights and optimizer state as `tinker://<model_id>/weights/<name>`.

        `overwrite=True` replaces a checkpoint of that name (and its user_metadata).
        """
        extra: dict[str, Any] = {"user_metadata": user_metadata}
        if overwrite:
            extra["overwrite"] = True
        return self._save("weights", name, ttl_seconds, **extra)

    def _save(
        self, folder: str, name: str, ttl_seconds: int | None, **extra: Any
    ) -> Future[Any]:
        """Queue a save under `tinker://<model_id>/<folder>/<name>`; a 409 (the name exists:
        an earlier attempt of this very save landed) counts as done."""
        _check_name(name)
        request_cls, response_cls, route, request_type = _SAVES[folder]
        model_id = self.model_id
        build = _json_body(
            lambda seq_id: request_cls(
                model_id=model_id, path=name, seq_id=seq_id, ttl_seconds=ttl_seconds, **extra
            )
        )
        landed = response_cls(path=f"tinker://{model_id}/{folder}/{name}", type=route)
        return self._enqueue(
            route, request_type, build, _decoder(response_cls), on_conflict=lambda: landed
        )

    def _load(
        self, path: str, optimizer: bool, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        if not isinstance(path, str) or not path.startswith("tinker://"):
            raise ValueError(
                f"path={path!r} is not a tinker path; pass 'tinker://<run>/weights/<name>'"
            )
        model_id = self.model_id

        build = _json_body(
            lambda seq_id: types.LoadWeightsRequest(
                path=path,
                optimizer=optimizer,
                model_id=model_id,
                seq_id=seq_id,
                weights_access_token=weights_access_token,
            )
        )

        return self._enqueue(
            "load_weights", "LoadWeights", build, _decoder(types.LoadWeightsResponse)
        )

    def load_state(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """Load weights from a checkpoint (optimizer state left as it is)."""
        return self._load(path, False, weights_access_token)

    def load_state_with_optimizer(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """Load weights and optimizer state from a checkpoint (wire field `optimizer`)."""
        return self._load(path, True, weights_access_token)

    def save_weights_for_sampler(
        self,
        name: str,
        ttl_seconds: int | None = None,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsForSamplerResponse]:
        """Save sampler weights as `tinker://<model_id>/sampler_weights/<name>`."""
        return self._save("sampler_weights", name, ttl_seconds, user_metadata=user_metadata)

    def save_weights_and_get_sampling_client(
        self,
        name: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        kind: types.SamplingClientKind = "snapshot",
    ) -> ClientFuture[SamplingClient]:
        """Save the current weights for sampling; a future of the SamplingClient (usable as one).

        With no `name` the save is ephemeral, as officially: no checkpoint is kept, the server
        answers with a sampling session the new sampler uses at once. With a `name` (older
        SDKs' form) the weights are kept as `tinker://<model_id>/sampler_weights/<name>`.
        `kind="inflight"` publishes weights shared by this model's inflight samplers.
        """
        service = self._service
        if service is None:
            raise RuntimeError("this TrainingClient was built without a ServiceClient")
        check_retry_config(retry_config)
        if kind not in ("snapshot", "inflight"):
            raise ValueError(f"kind={kind!r}: use 'snapshot' (the default) or 'inflight'")
        options: dict[str, Any] = {
            "retry_config": retry_config,
            "record_stability_info": record_stability_info,
        }
        base_model = self._state.base_model
        if name is not None:
            saved = self.save_weights_for_sampler(name)
            return service._background(
                lambda: service._sampling_now(
                    model_path=saved.result().path, known_base_model=base_model, **options
                )
            )
        session_saved = self._save_ephemeral(next(service._sampler_seq), kind)
        return service._background(
            lambda: service._sampling_now(
                base_model=base_model, sampling_session_id=session_saved.result(), **options
            )
        )

    # -- information -------------------------------------------------------------------------

    def _simple(self, path: str, body: Any, kind: type[Any]) -> Future[Any]:
        future: Future[Any] = Future(request_type=kind.__name__)
        outcome = self._transport.submit(
            HttpRequest("POST", path, types.to_json(body), pool=PoolKind.TRAIN)
        )

        def done(f: Any) -> None:
            try:
                future.set_result(types.convert(f.result().json(), kind))
            except BaseException as exc:
                future.set_exception(exc)

        outcome.add_done_callback(done)
        return future

    def get_info(self) -> types.GetInfoResponse:
        """The model's base model, LoRA rank and tokenizer id (asked once, then remembered)."""
        info = self._info
        if info is None:
            request = types.GetInfoRequest(model_id=self.model_id)
            info = self._simple("get_info", request, types.GetInfoResponse).result(
                self._transport.config.timeout_s * 2
            )
            self._info = info
        return info

    def unload_model(self) -> Future[types.UnloadModelResponse]:
        """Free the model on the server once its queued work is done."""
        model_id = self.model_id

        build = _json_body(
            lambda seq_id: {"model_id": model_id, "seq_id": seq_id, "type": "unload_model"}
        )

        return self._enqueue(
            "unload_model", "UnloadModel", build, _decoder(types.UnloadModelResponse)
        )

    def get_tokenizer(self) -> Any:
        """The model's tokenizer: the byte tokenizer for the embedded server's byte models."""
        from tinkex_actors.tokenizer import get_tokenizer

        return get_tokenizer(self._state.base_model)

    # -- the *_async twins (official shape: awaiting one gives the Future) ----------------------

    async def forward_async(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """`await` gives the Future of `forward` (then await it, or call `.result()`)."""
        return self.forward(data, loss_fn, loss_fn_config)

    async def forward_backward_async(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """`await` gives the Future of `forward_backward`."""
        return self.forward_backward(data, loss_fn, loss_fn_config)

    async def forward_backward_custom_async(
        self,
        data: Sequence[types.Datum],
        loss_fn: CustomLossFn | LossHandle,
        *,
        loss_type_input: Literal["logprobs"] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """`await` gives the Future of `forward_backward_custom`."""
        return self.forward_backward_custom(data, loss_fn, loss_type_input=loss_type_input)

    async def optim_step_async(
        self,
        optim_params: types.OptimParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ) -> Future[types.OptimStepResponse]:
        """`await` gives the Future of `optim_step`."""
        return self.optim_step(optim_params, adam_params=adam_params)

    async def save_state_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsResponse]:
        """`await` gives the Future of `save_state`."""
        return self.save_state(name, ttl_seconds, overwrite, user_metadata)

    async def load_state_async(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """`await` gives the Future of `load_state`."""
        return self.load_state(path, weights_access_token)

    async def load_state_with_optimizer_async(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """`await` gives the Future of `load_state_with_optimizer`."""
        return self.load_state_with_optimizer(path, weights_access_token)

    async def save_weights_for_sampler_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsForSamplerResponse]:
        """`await` gives the Future of `save_weights_for_sampler`."""
        return self.save_weights_for_sampler(name, ttl_seconds, user_metadata)

    async def save_weights_and_get_sampling_client_async(
        self,
        name: str | None = None,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
        kind: types.SamplingClientKind = "snapshot",
    ) -> SamplingClient:
        """`await` gives the SamplingClient (as the official async twin does)."""
        client: SamplingClient = await self.save_weights_and_get_sampling_client(
            name, retry_config, record_stability_info, kind
        )
        return client

    async def get_info_async(self) -> types.GetInfoResponse:
        """`await` gives the model's info."""
        return self.get_info()

    async def unload_model_async(self) -> Future[types.UnloadModelResponse]:
        """`await` gives the Future of `unload_model`."""
        return self.unload_model()

    # -- the rest of the official 0.38 surface ----------------------------------------------------

    def _save_ephemeral(self, sampling_session_seq_id: int, kind: str) -> Future[str]:
        """Queue an ephemeral sampler save; a Future of the sampling session it opens."""
        model_id = self.model_id
        build = _json_body(
            lambda seq_id: types.SaveWeightsForSamplerRequest(
                model_id=model_id,
                seq_id=seq_id,
                sampling_session_seq_id=sampling_session_seq_id,
                kind=kind,  # type: ignore[arg-type]
            )
        )
        return self._enqueue(
            "save_weights_for_sampler", "SaveWeightsForSampler", build, _sampling_session_of
        )

    def create_sampling_client(
        self,
        model_path: str,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
    ) -> ClientFuture[SamplingClient]:
        """A sampler over saved weights (`tinker://...`), in this model's session."""
        if self._service is None:
            raise RuntimeError("this TrainingClient was built without a ServiceClient")
        return self._service.create_sampling_client(
            model_path, None, retry_config, record_stability_info
        )

    async def create_sampling_client_async(
        self,
        model_path: str,
        retry_config: RetryPolicy | None = None,
        record_stability_info: bool = False,
    ) -> SamplingClient:
        """`await` gives the SamplingClient of `create_sampling_client`."""
        client: SamplingClient = await self.create_sampling_client(
            model_path, retry_config, record_stability_info
        )
        return client

    def save_weights_external(
        self,
        name: str,
        ttl_seconds: int | None = None,
        age_encryption_recipients: list[str] | None = None,
    ) -> Future[types.SaveWeightsExternalResponse]:
        """Save the weights for download as `tinker://<model_id>/external_weights/<name>`
        (fetch them with `RestClient.get_external_weights_urls`)."""
        _check_name(name)
        if age_encryption_recipients is not None and (
            not isinstance(age_encryption_recipients, list)
            or not 1 <= len(age_encryption_recipients) <= 10
            or not all(isinstance(r, str) and r for r in age_encryption_recipients)
        ):
            raise ValueError(
                "age_encryption_recipients must be a list of 1 to 10 age or SSH public keys "
                "(strings), or None for unencrypted files"
            )
        model_id = self.model_id
        build = _json_body(
            lambda seq_id: types.SaveWeightsExternalRequest(
                model_id=model_id,
                path=name,
                seq_id=seq_id,
                ttl_seconds=ttl_seconds,
                age_encryption_recipients=age_encryption_recipients,
            )
        )
        response = types.SaveWeightsExternalResponse
        landed = response(path=f"tinker://{model_id}/external_weights/{name}")
        return self._enqueue(
            "save_weights_external",
            "SaveWeightsExternal",
            build,
            _decoder(response),
            on_conflict=lambda: landed,
        )

    async def save_weights_external_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        age_encryption_recipients: list[str] | None = None,
    ) -> Future[types.SaveWeightsExternalResponse]:
        """`await` gives the Future of `save_weights_external`."""
        return self.save_weights_external(name, ttl_seconds, age_encryption_recipients)

    def get_console_url(self) -> str:
        """The console page of this training run."""
        return console_url("training_runs", self.model_id)

    def get_telemetry(self) -> Telemetry | None:
        """The session's telemetry handle (None when telemetry is off)."""
        return None if self._service is None else self._service.get_telemetry()


def _sampling_session_of(value: Any) -> str:
    """The sampling session an ephemeral `save_weights_for_sampler` answered."""
    sid = value.get("sampling_session_id") if isinstance(value, dict) else None
    if not isinstance(sid, str) or not sid:
        raise APIResponseValidationError(
            "save_weights_for_sampler without a path answered no sampling_session_id; "
            "the server may predate ephemeral sampler saves: pass a name instead"
        )
    return sid


def _json_request(
    build: Callable[[int], tuple[str, bytes]], seq_id: int, headers: dict[str, str]
) -> HttpRequest:
    path, body = build(seq_id)
    return HttpRequest(
        "POST", path, body, "application/json", headers=dict(headers), pool=PoolKind.TRAIN
    )


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(
            f"name={name!r} is not a valid checkpoint name; use letters, digits, '.', '_' or '-'"
        )


check_name = _check_name  # the public name for other modules (no private imports)


RequestKind = Literal["forward", "forward_backward"]

CustomLossFn = Callable[
    [list[types.Datum], list[np.ndarray]],
    tuple[float, Mapping[str, float], Sequence[np.ndarray]],
]
"""`(data, logprobs_list) -> (loss, metrics, grads)` for `forward_backward_custom`."""
