"""The sequencer of a training model: seq_ids, chunking, and the actor that submits in order.

How a call flows (DESIGN.md section 4):

1. The handle (`training.py`) validates the call; `enqueue_jobs` encodes its request bodies and
   reserves their `seq_id`s, all in the caller's thread and under one lock, so two calls made
   one after the other always get increasing seq_ids and nothing is reserved for a call that
   failed to encode.
2. The jobs go into the model's `TrainingState` (kept outside the actor) and the actor is told.
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

import concurrent.futures
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from supervisors.library_logging import get_logger
from tinkex_actors import types
from tinkex_actors.clients.client_actor import ClientActor, ClientState, fail_pending
from tinkex_actors.clients.session import SessionLost
from tinkex_actors.clients.training_requests import BodyBuilder, JsonBuilder
from tinkex_actors.config import ClientFlags, PoolKind
from tinkex_actors.errors import APIStatusError, ClientClosedError, ConflictError
from tinkex_actors.futures.future import Future
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.futures.queue_state import QueueStateDebouncer
from tinkex_actors.transport.messages import HttpRequest, HttpResponse, unique_key
from tinkex_actors.transport.transport import Transport
from tinkex_actors.types import proto

__all__ = [
    "Job",
    "Kick",
    "TrainingClientActor",
    "TrainingState",
    "chunk_data",
    "enqueue_jobs",
    "estimate_bytes",
]

log = get_logger("tinkex_actors.clients.training")

PROTO_BYTES_PER_TOKEN = 4
SPARSE_INDEX_BYTES = 8



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
class TrainingState(ClientState[Job]):
    """A model's identity and its unfinished jobs; shared by the handle and every incarnation
    (the jobs, their lock, `progress` and `lost` are every client's: see `ClientState`)."""

    model_id: str
    session_id: str
    base_model: str
    flags: ClientFlags = field(default_factory=ClientFlags)
    next_seq_id: int = 1
    next_to_submit: int = 1
    json_only: bool = False
    """Set once the server refused a protobuf body (415): later requests go as JSON."""

    def reserve(self, count: int) -> int:
        """Reserve `count` consecutive seq_ids (call with `lock` held); returns the first."""
        first = self.next_seq_id
        self.next_seq_id += count
        return first


# -- the actor ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kick:
    """New jobs are in the state: submit what is next in order."""


@dataclass(frozen=True)
class _Submitted:
    seq_id: int
    outcome: concurrent.futures.Future[HttpResponse]


class TrainingClientActor(ClientActor[TrainingState]):
    """Submits one model's requests in seq_id order and hands their futures to the pollers."""

    def __init__(self, state: TrainingState, transport: Transport, pollers: PollerPool) -> None:
        super().__init__(
            state, transport, pollers, QueueStateDebouncer("training", state.model_id)
        )
        self.in_flight: int | None = None

    def adopt(self, job: Job) -> None:
        """Resubmit a job whose submit a predecessor never heard back (same seq_id and key)."""
        job.submitted = False

    def resume(self) -> None:
        """Submit the next job in seq_id order, if none is in flight."""
        self._submit_next()

    def handle(self, message: Any) -> bool:
        """New jobs, a submit's answer, or the loss of the session."""
        if isinstance(message, Kick):
            self._submit_next()
        elif isinstance(message, _Submitted):
            self._submitted(message)
        elif isinstance(message, SessionLost):
            self._session_lost(message)
        else:
            return False
        return True

    def closed_error(self) -> ClientClosedError:
        """The error of the requests still queued when the client is closed."""
        return ClientClosedError(
            f"the TrainingClient of model {self.state.model_id} was closed before this "
            "request was sent; make a new client"
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
        self.send(
            job.request, functools.partial(_Submitted, job.seq_id), progress=self.state.progress
        )

    def _submitted(self, message: _Submitted) -> None:
        self.in_flight = None
        if self._refused_protobuf(message):
            self._submit_next()
            return
        with self.state.lock:
            job = self.state.jobs.pop(message.seq_id, None)
            self.state.next_to_submit = max(self.state.next_to_submit, message.seq_id + 1)
        if job is not None:
            self._accepted(job, message.outcome)
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

    def _accepted(self, job: Job, outcome: concurrent.futures.Future[HttpResponse]) -> None:
        try:
            response = outcome.result(timeout=0)
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
        self.track(job.future, request_id, job.request_type, job.decode_json, job.decode_proto)


# -- reserving seq_ids -------------------------------------------------------------------------


def enqueue_jobs(
    state: TrainingState,
    path: str,
    request_type: str,
    builders: list[BodyBuilder],
    decode_json: Callable[[Any], Any],
    decode_proto: Callable[[bytes], Any] | None = None,
    on_conflict: Callable[[], Any] | None = None,
    json_builders: list[JsonBuilder] | None = None,
) -> list[Future[Any]]:
    """Reserve one seq_id per builder, build each body for it, and queue the jobs, atomically
    (a builder that raises leaves nothing reserved); the jobs' Futures, in seq_id order.

    The caller tells the actor afterwards (`Kick`)."""
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
        state.reserve(len(builders))
        for job in jobs:
            state.jobs[job.seq_id] = job
    return futures


def _json_request(build: JsonBuilder, seq_id: int, headers: dict[str, str]) -> HttpRequest:
    path, body = build(seq_id)
    return HttpRequest(
        "POST", path, body, "application/json", headers=dict(headers), pool=PoolKind.TRAIN
    )


# -- chunking ------------------------------------------------------------------------------------


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
