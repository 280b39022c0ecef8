"""The actor of a sampler: dispatching its requests under backpressure, and the state it adopts.

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

import concurrent.futures
import functools
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from pykka import ActorRef

from supervisors.library_logging import get_logger
from supervisors.timers import Timer, TimerService, default_timer_service
from tinkex_actors import types
from tinkex_actors.clients.actor_support import tell_quietly
from tinkex_actors.clients.backpressure import DispatchBudget
from tinkex_actors.clients.client_actor import ClientActor, ClientState
from tinkex_actors.clients.rate_limiter import SampleRateLimiter
from tinkex_actors.errors import (
    APIConnectionError,
    APIStatusError,
    ClientClosedError,
    RateLimitError,
)
from tinkex_actors.futures.future import Future
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.futures.queue_state import (
    QueueStateChange,
    QueueStateDebouncer,
    parse_queue_state,
)
from tinkex_actors.transport.messages import HttpRequest, HttpResponse
from tinkex_actors.transport.retry import RetryPolicy
from tinkex_actors.transport.transport import Transport
from tinkex_actors.types import proto

__all__ = [
    "CLONE_STRIDE",
    "Dispatch",
    "SampleJob",
    "SamplerState",
    "SamplingClientActor",
]

log = get_logger("tinkex_actors.clients.sampling")

CLONE_STRIDE = 1_000_000_000


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
class SamplerState(ClientState[SampleJob]):
    """A sampler's identity, budget and unsent jobs; outlives any one actor (the jobs, their
    lock, `progress` and `lost` are every client's: see `ClientState`)."""

    sampling_session_id: str
    base_model: str | None
    model_path: str | None
    budget: DispatchBudget
    limiter: SampleRateLimiter
    clone_id: int = 0
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(0))
    base_url: str = ""
    record_stability_info: bool = False
    """Sent with every sample (official `record_stability_info`)."""

    def next_seq_id(self) -> int:
        """A seq_id never used by this sampler (call with `lock` held)."""
        return self.clone_id * CLONE_STRIDE + next(self.counter)


"""The name service.py knows for failing a sampler's queued samples (one function for all)."""


@dataclass(frozen=True)
class Dispatch:
    """Try to send the jobs not yet sent."""


@dataclass(frozen=True)
class _Granted:
    key: int


@dataclass(frozen=True)
class _Sent:
    key: int
    outcome: concurrent.futures.Future[HttpResponse]
    dispatched_at: float


class SamplingClientActor(ClientActor[SamplerState]):
    """Dispatches one sampler's requests under backpressure (see the module docstring)."""

    def __init__(
        self,
        state: SamplerState,
        transport: Transport,
        pollers: PollerPool,
        *,
        timers: TimerService | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            state, transport, pollers, QueueStateDebouncer("sampling", state.sampling_session_id)
        )
        self.timers = timers if timers is not None else default_timer_service()
        self.policy = policy if policy is not None else RetryPolicy()
        self._wake: Timer | None = None

    def adopt(self, job: SampleJob) -> None:
        """Send again a job a predecessor left unsent (or whose send it never heard back)."""
        job.dispatched = False
        job.waiting = False

    def resume(self) -> None:
        """Dispatch what the backoff window and the budget let go now."""
        self._dispatch()

    def handle(self, message: Any) -> bool:
        """A wake-up to dispatch, a budget grant, or a send's answer."""
        if isinstance(message, Dispatch):
            self._wake = None
            self._dispatch()
        elif isinstance(message, _Granted):
            self._granted(message.key)
        elif isinstance(message, _Sent):
            self._sent(message)
        else:
            return False
        return True

    def closed_error(self) -> ClientClosedError:
        """The error of the samples still queued when the client is closed."""
        return ClientClosedError(
            f"the SamplingClient {self.state.sampling_session_id} was closed before "
            "this request was sent; make a new client"
        )

    def terminate(self, reason: Any) -> None:
        """Give back every budget token this sampler held, however it ended; when stopped (not
        crashed: a successor would adopt them), fail what is still queued."""
        self.state.budget.release_owner(self.state.sampling_session_id)
        super().terminate(reason)

    def _budget_key(self, key: int) -> tuple[str, int]:
        # The budget is shared by every sampler of a ServiceClient: seq_ids alone collide.
        return (self.state.sampling_session_id, key)

    def _later(self, delay_s: float) -> None:
        if self._wake is None:
            self._wake = self.timers.send_after(delay_s, self.actor_ref, Dispatch())

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
        self.send(job.request, lambda outcome: _Sent(job.key, outcome, dispatched_at))

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

        def decode_proto(body: bytes) -> types.SampleResponse:
            return proto.decode_sample_response(body, sequence_ids=ids)

        budget, key = self.state.budget, self._budget_key(job.key)
        self.track(
            job.future,
            request_id,
            "Sample",
            lambda value: types.convert(value, types.SampleResponse),
            decode_proto,
            on_settled=lambda: budget.release(key),
        )

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
