"""The Poller actor: the `retrieve_future` state machine, many futures per actor.

A `PollerPool` (see `poller_pool`) hands each tracked request to one Poller, which drives
`POST retrieve_future` until the future settles. No thread per future and no blocking in a
mailbox: a poll goes out through `Transport.submit`, its answer comes back as a message
(`add_done_callback` -> `tell`), and every delay is a timer message (`supervisors.timers`,
or any injected timer service). Threads: one per Poller, the transport's loop, one timer thread.

What each answer does (the futures table of the protocol notes):

| answer | action |
|---|---|
| completed (JSON, or protobuf when `decode_proto` is given) | settle with the decoded result |
| `complete_metadata` | re-poll for the payload once it fits the byte budget |
| pending | re-poll after backoff |
| try_again | notify the queue state; re-poll after `retry_after_ms` or 1 s |
| failed (any category) | fail at once with `RequestFailedError(category)` |
| HTTP 408 | notify the queue state in the body; re-poll at once (the server held it) |
| HTTP 410 | fail with `PromiseExpiredError` (retryable: resubmit the request) |
| HTTP 429 | notify a queue state in the body; re-poll after Retry-After or backoff |
| HTTP 5xx | re-poll at once the first time, then after backoff |
| connection error / timeout | re-poll after backoff (reset by any answer) |
| HTTP 400 without a `category` | re-poll after backoff up to 3 times, then fail |
| HTTP 400 `{error, category}` | fail at once: the server said why |
| anything else | fail with the typed error |

Delays come from `RetryPolicy` (`tinkex_actors.transport.retry`). Retries are unbounded, but
before every re-poll the client's `ProgressTracker` is checked: a request fails with
`ProgressTimeoutError` once nothing of its client has completed for `progress_timeout_s`.

Each queue-state change of a future (and its return to `active` when it settles after a pause)
is sent as a `QueueStateChange` message to the spec's `owner` actor, which reports it (see
`tinkex_actors.futures.queue_state`); a future without an owner emits `queue.state_change` itself.

What a Poller drives is kept in its slot's ledger, outside the actor (see `poll_ledger`): a
restarted Poller adopts every entry of its slot and polls it again. Callbacks of a Future run
in the Poller's thread: keep them short.

Polls carry the official headers: `X-Tinker-Request-Iteration`, `X-Tinker-Request-Type`,
`Accept: application/x-protobuf` for protobuf results, and on the first poll
`X-Tinker-Create-Promise-Roundtrip-Time` when known; each has HTTP retries off
(`max_retries=0`) and a 45 s timeout.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import msgspec
from pykka import ActorDeadError, ActorRef

from supervisors import ExitReason, Process
from supervisors.library_logging import get_logger
from tinkex_actors import telemetry
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    BadRequestError,
    PromiseExpiredError,
    RateLimitError,
    RequestFailedError,
    RequestTimeoutError,
)
from tinkex_actors.futures.byte_budget import ByteBudget, DispatchToken
from tinkex_actors.futures.poll_ledger import PollEntry, PollLedger, PollSpec
from tinkex_actors.futures.queue_state import QueueState, QueueStateChange, parse_queue_state
from tinkex_actors.transport.messages import PROTOBUF_CONTENT_TYPE, HttpRequest, HttpResponse
from tinkex_actors.transport.retry import ProgressTimeoutError
from tinkex_actors.types import (
    FutureCompleted,
    FutureMetadataOnly,
    FuturePending,
    RequestFailedResponse,
    TryAgainResponse,
    read_future_response,
)

__all__ = ["POLL_TIMEOUT_S", "DriveFuture", "ForgetFuture", "Poller", "Timers"]

POLL_TIMEOUT_S: Final = 45.0
"""HTTP timeout of one `retrieve_future` (official value)."""

_log = get_logger("tinkex_actors.futures.poller_actor")


class Timers(Protocol):
    """Sends a message to an actor after a delay (`supervisors.TimerService` is one)."""

    def send_after(self, delay_s: float, target: ActorRef[Any], message: Any) -> Any:
        """Tell `message` to `target` in `delay_s` seconds; returns a handle for `cancel`."""
        ...

    def cancel(self, timer: Any) -> bool:
        """Cancel a pending send made by `send_after`."""
        ...


# -- messages -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DriveFuture:
    """The pool to a Poller: start polling the ledger entry `key`."""

    key: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    key: int
    response: concurrent.futures.Future[HttpResponse]


@dataclasses.dataclass(frozen=True, slots=True)
class _Wake:
    key: int


@dataclasses.dataclass(frozen=True, slots=True)
class ForgetFuture:
    """The pool to a Poller: `entry` was cancelled; stop its timer and poll."""

    entry: PollEntry


_incarnations = itertools.count(1)


class Poller(Process):
    """Drives the futures of one pool slot; see the module docstring for the state machine."""

    def __init__(
        self,
        ledger: PollLedger,
        transport: Any,
        timers: Timers,
        clock: Callable[[], float],
        random: Callable[[], float],
        max_inflight: int,
        inflight_bytes: int,
    ) -> None:
        super().__init__()
        self._ledger = ledger
        self._transport = transport
        self._timers = timers
        self._clock = clock
        self._random = random
        self._max_inflight = max_inflight
        self._payload_budget = ByteBudget(inflight_bytes)
        self._inflight: set[concurrent.futures.Future[HttpResponse]] = set()
        self._queued: collections.deque[int] = collections.deque()
        self._incarnation = next(_incarnations)

    def init(self) -> None:
        """Adopt what a predecessor left in the ledger and poll it again."""
        with self._ledger.lock:
            # Under the ledger's lock: an abandoned predecessor still finishing a handler
            # checks `driver` under the same lock before it records a poll (see _poll).
            adopted = list(self._ledger.entries.values())
            for entry in adopted:
                entry.inflight = None
                entry.timer = None
                entry.driver = self._incarnation
        for entry in adopted:
            self._poll(entry)
        if adopted:
            _log.info("poller_adopted", futures=len(adopted))

    def terminate(self, reason: ExitReason) -> None:
        """Cancel this incarnation's timers and polls; the ledger keeps the entries."""
        for entry in self._ledger.snapshot():
            if entry.driver == self._incarnation:
                self._stop_waiting(entry)

    def on_receive(self, message: Any) -> Any:
        """Handle answers, timer wake-ups, new futures and cancellations.

        A bug met while handling one future fails that future (with the error, logged) and
        leaves the Poller and its other futures running: one bad answer must not crash-loop
        the pool.
        """
        if isinstance(message, _Answer | _Wake | DriveFuture):
            entry = self._ledger.get(message.key)
            if entry is None:
                if isinstance(message, _Answer):
                    self._on_answer(message, None)
                return None
            try:
                if isinstance(message, _Answer):
                    self._on_answer(message, entry)
                elif isinstance(message, _Wake):
                    if entry.driver == self._incarnation:
                        entry.timer = None
                        self._poll(entry)
                elif entry.driver != self._incarnation:
                    entry.driver = self._incarnation
                    self._poll(entry)
            except Exception as exc:
                _log.error(
                    "poller_failed_on_future",
                    request_id=entry.spec.request_id,
                    error=repr(exc),
                    exc_info=exc,
                )
                self._stop_waiting(entry)
                self._fail(entry, exc)
        elif isinstance(message, ForgetFuture):
            if message.entry.driver == self._incarnation:
                self._stop_waiting(message.entry)
                self._release_bytes(message.entry)
        else:
            return super().on_receive(message)
        return None

    # -- sending ---------------------------------------------------------------------------

    def _poll(self, entry: PollEntry) -> None:
        try:
            self._send_poll(entry)
        except Exception as exc:  # a bug must fail this future, not leave it unpolled
            _log.error(
                "poller_failed_on_future",
                request_id=entry.spec.request_id,
                error=repr(exc),
                exc_info=exc,
            )
            self._fail(entry, exc)

    def _send_poll(self, entry: PollEntry) -> None:
        if entry.future.done():
            self._ledger.pop(entry.key)
            self._release_bytes(entry)
            return
        if entry.progress.expired(entry.started):
            timeout_s = entry.progress.progress_timeout_s
            self._fail(
                entry,
                ProgressTimeoutError(
                    f"No progress made in {timeout_s:g} s while polling request "
                    f"{entry.spec.request_id!r} ({entry.spec.request_type}). Requests appear "
                    "to be stuck; check the server, or raise RetryPolicy.progress_timeout_s"
                ),
            )
            return
        if len(self._inflight) >= self._max_inflight:
            self._queued.append(entry.key)
            return
        spec = entry.spec
        headers = {
            "X-Tinker-Request-Iteration": str(entry.iteration),
            "X-Tinker-Request-Type": spec.request_type,
        }
        if spec.decode_proto is not None:
            headers["Accept"] = PROTOBUF_CONTENT_TYPE
        if entry.iteration == 0 and spec.create_roundtrip_s is not None:
            headers["X-Tinker-Create-Promise-Roundtrip-Time"] = str(spec.create_roundtrip_s)
        body = msgspec.json.encode(
            {"request_id": spec.request_id, "allow_metadata_only": entry.metadata_only}
        )
        request = HttpRequest(
            "POST",
            "retrieve_future",
            body,
            headers=headers,
            pool=PoolKind.RETRIEVE_PROMISE,
            timeout_s=POLL_TIMEOUT_S,
            max_retries=0,
        )
        entry.iteration += 1
        try:
            response = self._transport.submit(request)
        except Exception as exc:  # a closed transport refuses at once
            self._fail(entry, exc)
            return
        with self._ledger.lock:
            adopted_meanwhile = entry.driver != self._incarnation
            if not adopted_meanwhile:
                entry.inflight = response
        if adopted_meanwhile:
            # This incarnation was abandoned (killed) mid-handler and a successor owns the
            # entry now: never overwrite the successor's poll with ours.
            response.cancel()
            return
        self._inflight.add(response)
        response.add_done_callback(functools.partial(_deliver, self.actor_ref, entry.key))

    def _retry(self, entry: PollEntry, reason: str, delay_s: float) -> None:
        telemetry.emit(
            telemetry.EVENT_FUTURE_RETRY,
            {"delay_s": delay_s, "iteration": entry.iteration},
            {
                "request_id": entry.spec.request_id,
                "request_type": entry.spec.request_type,
                "reason": reason,
            },
        )
        if delay_s <= 0:
            self._poll(entry)
        else:
            entry.timer = self._timers.send_after(delay_s, self.actor_ref, _Wake(entry.key))

    def _next_queued(self) -> None:
        while self._queued and len(self._inflight) < self._max_inflight:
            entry = self._ledger.get(self._queued.popleft())
            if entry is not None and entry.driver == self._incarnation:
                self._poll(entry)

    def _stop_waiting(self, entry: PollEntry) -> None:
        if entry.timer is not None:
            self._timers.cancel(entry.timer)
            entry.timer = None
        if entry.inflight is not None:
            entry.inflight.cancel()
            entry.inflight = None

    # -- answers ---------------------------------------------------------------------------

    def _on_answer(self, message: _Answer, entry: PollEntry | None) -> None:
        response = message.response
        if response in self._inflight:
            self._inflight.discard(response)
            self._next_queued()
        if entry is None or entry.inflight is not response:
            return  # cancelled, or a predecessor's poll
        entry.inflight = None
        if response.cancelled():
            return
        error = response.exception()
        if error is not None:
            self._on_error(entry, error)
            return
        self._on_response(entry, response.result())

    def _on_response(self, entry: PollEntry, answer: HttpResponse) -> None:
        entry.connection_errors = 0
        entry.server_errors = 0
        entry.rate_limits = 0
        spec = entry.spec
        if PROTOBUF_CONTENT_TYPE in answer.headers.get("content-type", ""):
            if spec.decode_proto is None:
                self._fail(entry, _unexpected(spec, "a protobuf result it did not ask for"))
                return
            self._settle(entry, spec.decode_proto, answer.content)
            return
        try:
            parsed = read_future_response(answer.content)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            self._fail(entry, _unexpected(spec, f"a body that is not a future answer ({exc})"))
            return
        if isinstance(parsed, FutureCompleted):
            self._settle(entry, spec.decode_json, parsed.result)
        elif isinstance(parsed, TryAgainResponse):
            entry.bad_requests = 0
            self._notify(entry, parse_queue_state(parsed.queue_state), parsed.queue_state_reason)
            self._retry(entry, "try_again", entry.policy.try_again_s(parsed.retry_after_ms))
        elif isinstance(parsed, FuturePending):
            entry.bad_requests = 0
            entry.pending += 1
            delay_s = entry.policy.backoff_s(entry.pending - 1, self._random)
            self._retry(entry, "pending", delay_s)
        elif isinstance(parsed, RequestFailedResponse):
            self._fail(
                entry,
                RequestFailedError(
                    f"Request failed: {parsed.error} (request {spec.request_id!r}, "
                    f"{spec.request_type}, category {parsed.category.value})",
                    spec.request_id,
                    parsed.category,
                ),
            )
        elif isinstance(parsed, FutureMetadataOnly):
            entry.metadata_only = False
            self._fetch_when_budget_allows(entry, parsed.response_payload_size)

    def _on_error(self, entry: PollEntry, error: BaseException) -> None:
        policy = entry.policy
        if isinstance(error, APIStatusError):
            entry.connection_errors = 0
        if isinstance(error, RequestTimeoutError):
            entry.bad_requests = 0
            entry.server_errors = 0
            self._notify_from_body(entry, error.body)
            self._retry(entry, "long_poll_expired", 0.0)
        elif isinstance(error, PromiseExpiredError):
            self._fail(entry, error)
        elif isinstance(error, RateLimitError):
            self._notify_from_body(entry, error.body)
            delay_s = policy.retry_after_s(
                error.headers, entry.rate_limits, random=self._random, now=time.time
            )
            entry.rate_limits += 1
            self._retry(entry, "rate_limited", delay_s)
        elif isinstance(error, APIStatusError) and error.status_code >= 500:
            entry.server_errors += 1
            if entry.server_errors == 1:
                self._retry(entry, "server_error", 0.0)
            else:
                self._retry(
                    entry, "server_error", policy.backoff_s(entry.server_errors - 2, self._random)
                )
        elif isinstance(error, BadRequestError):
            if entry.bad_requests >= policy.max_bad_request_retries or _has_error_body(error):
                self._fail(entry, error)
                return
            entry.bad_requests += 1
            self._retry(
                entry, "bad_request", policy.backoff_s(entry.bad_requests - 1, self._random)
            )
        elif isinstance(error, APIConnectionError):
            entry.connection_errors += 1
            delay_s = policy.backoff_s(entry.connection_errors - 1, self._random)
            self._retry(entry, "connection_error", delay_s)
        else:
            self._fail(entry, error)

    def _fetch_when_budget_allows(self, entry: PollEntry, size_bytes: int) -> None:
        # An oversized payload is admitted alone, so it cannot wait forever (see ByteBudget).
        granted = self._payload_budget.try_acquire(
            entry.key,
            max(int(size_bytes), 0),
            on_granted=functools.partial(self._on_payload_granted, entry.key),
        )
        if granted is not None:
            self._retry(entry, "fetch_payload", 0.0)

    def _on_payload_granted(self, key: int, _token: DispatchToken) -> None:
        """Runs in this Poller's thread: releases happen only here."""
        entry = self._ledger.get(key)
        if entry is None or entry.driver != self._incarnation:
            self._payload_budget.release(key)
            return
        self._retry(entry, "fetch_payload", 0.0)

    def _release_bytes(self, entry: PollEntry) -> None:
        self._payload_budget.release(entry.key)

    # -- queue states ------------------------------------------------------------------------

    def _notify_from_body(self, entry: PollEntry, body: object) -> None:
        if isinstance(body, dict) and body.get("queue_state"):
            reason = body.get("queue_state_reason")
            self._notify(
                entry,
                parse_queue_state(body["queue_state"]),
                reason if isinstance(reason, str) else None,
            )

    def _notify(self, entry: PollEntry, state: QueueState, reason: str | None) -> None:
        if state is entry.last_state and reason == entry.last_reason:
            return
        entry.last_state = state
        entry.last_reason = reason
        spec = entry.spec
        change = QueueStateChange(spec.request_id, spec.request_type, state, reason)
        if spec.owner is not None:
            try:
                spec.owner.tell(change)
                return
            except ActorDeadError:
                pass
        telemetry.emit(
            telemetry.EVENT_QUEUE_STATE_CHANGE,
            None,
            {
                "request_id": spec.request_id,
                "request_type": spec.request_type,
                "state": state.value,
                "reason": reason,
            },
        )

    # -- settling ----------------------------------------------------------------------------

    def _close_entry(self, entry: PollEntry) -> None:
        self._ledger.pop(entry.key)
        self._release_bytes(entry)
        if entry.last_state is not QueueState.ACTIVE:
            self._notify(entry, QueueState.ACTIVE, None)

    def _settle(self, entry: PollEntry, decode: Callable[[Any], Any], raw: Any) -> None:
        try:
            value = decode(raw)
        except Exception as exc:
            self._fail(entry, _unexpected(entry.spec, f"a result that does not decode ({exc})"))
            return
        self._close_entry(entry)
        entry.progress.note_progress()
        telemetry.emit(
            telemetry.EVENT_FUTURE_STOP,
            {"duration_s": self._clock() - entry.started, "polls": entry.iteration},
            {"request_id": entry.spec.request_id, "request_type": entry.spec.request_type},
        )
        entry.future.set_result(value)

    def _fail(self, entry: PollEntry, error: BaseException) -> None:
        self._close_entry(entry)
        telemetry.emit(
            telemetry.EVENT_FUTURE_ERROR,
            {"duration_s": self._clock() - entry.started, "polls": entry.iteration},
            {
                "request_id": entry.spec.request_id,
                "request_type": entry.spec.request_type,
                "error": type(error).__name__,
                "category": str(getattr(error, "category", "")) or None,
            },
        )
        entry.future.set_exception(error)


def _deliver(ref: ActorRef[Any], key: int, response: concurrent.futures.Future[Any]) -> None:
    """Runs in the transport's loop thread: hand the answer to the Poller as a message."""
    with contextlib.suppress(ActorDeadError):  # if dead, its successor re-polls the ledger
        ref.tell(_Answer(key, response))


def _unexpected(spec: PollSpec[Any], what: str) -> APIResponseValidationError:
    return APIResponseValidationError(
        f"retrieve_future for request {spec.request_id!r} ({spec.request_type}) answered "
        f"with {what}; the server and this client disagree on the protocol"
    )


def _has_error_body(error: APIStatusError) -> bool:
    """A 400 whose body names an error category (`{error, category}`, the service's failed
    request shape) is final; a 400 without one may come from a proxy and is polled again."""
    body = error.body
    return isinstance(body, dict) and "category" in body
