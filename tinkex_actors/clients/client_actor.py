"""The skeleton every client actor shares: its state kept outside it, its life and its sends.

A TrainingClientActor and a SamplingClientActor differ in how they send (strictly in seq_id
order, or under backpressure) and share the rest, written here once:

- `ClientState`: the jobs not yet handed to a poller, the lock that guards them, the progress
  tracker and whether the client is gone. It lives outside the actor, so a restarted actor
  (same name, same state: `start_client_actor`) adopts the work of its predecessor.
- `fail_pending`: fail every queued job (the client closed, or its session is lost) and make
  later calls raise the same error.
- `ClientActor`: a pooled Process that adopts the queued jobs in `init`, sends without
  blocking its mailbox (`send`: the answer comes back as a message), hands accepted requests to
  the pollers (`track`), reports queue-state changes through its own debouncer, and fails what
  is still queued when it is stopped (not when it crashes: its successor adopts that).
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pykka import ActorRef

from supervisors import ChildSpec, Normal, Process, Registry, Shutdown, SupervisedRef, start_child
from tinkex_actors.clients.actor_support import tell_quietly
from tinkex_actors.errors import ClientClosedError
from tinkex_actors.futures.future import Future, relay
from tinkex_actors.futures.poll_ledger import PollSpec
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.futures.queue_state import QueueStateChange, QueueStateDebouncer
from tinkex_actors.transport.messages import HttpRequest, HttpResponse
from tinkex_actors.transport.retry import ProgressTracker
from tinkex_actors.transport.transport import Transport

__all__ = [
    "ClientActor",
    "ClientState",
    "PendingJob",
    "fail_pending",
    "start_client_actor",
]


class PendingJob(Protocol):
    """What the skeleton needs of a queued job: the caller's Future."""

    @property
    def future(self) -> Future[Any]:
        """The Future the caller holds."""
        ...


JobT = TypeVar("JobT", bound=PendingJob)


@dataclass(kw_only=True)
class ClientState(Generic[JobT]):
    """A client's unfinished jobs and fate; shared by its handle and every incarnation."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict[int, JobT] = field(default_factory=dict)
    progress: ProgressTracker | None = None
    lost: BaseException | None = None
    """Set when the client closed or its session is gone: queued jobs failed, new calls raise."""
    lost_event: threading.Event = field(default_factory=threading.Event)


def fail_pending(state: ClientState[Any], error: BaseException) -> int:
    """Fail every job not yet handed to a poller with `error`, and make later calls raise it
    (the first such error stays); returns how many jobs failed."""
    with state.lock:
        if state.lost is None:
            state.lost = error
        jobs = list(state.jobs.values())
        state.jobs.clear()
    state.lost_event.set()
    for job in jobs:
        job.future.set_exception(error)
    return len(jobs)


StateT = TypeVar("StateT", bound=ClientState[Any])


class ClientActor(Process, Generic[StateT]):
    """A client's actor: subclasses say how a job is adopted, sent and answered.

    Override `adopt` (forget, in a job a predecessor left, that it was sent), `resume` (send what
    can go now), `handle` (the subclass's own messages) and `closed_error`.
    """

    pooled = True  # thousands of these may live: they share the scheduler's workers

    def __init__(
        self,
        state: StateT,
        transport: Transport,
        pollers: PollerPool,
        debouncer: QueueStateDebouncer,
    ) -> None:
        super().__init__()
        self.state = state
        self.transport = transport
        self.pollers = pollers
        self.debouncer = debouncer

    # -- what a subclass says ----------------------------------------------------------------

    def adopt(self, job: Any) -> None:
        """Mark `job`, left by a predecessor, as not sent (called with the state's lock held)."""
        raise NotImplementedError

    def resume(self) -> None:
        """Send what can be sent now."""
        raise NotImplementedError

    def handle(self, message: Any) -> bool:
        """Handle one of the subclass's own messages; False for a message it does not know."""
        return False

    def closed_error(self) -> ClientClosedError:
        """The error of the jobs still queued when the client is closed."""
        raise NotImplementedError

    # -- the life every client actor shares ---------------------------------------------------

    def init(self) -> None:
        """Adopt what a predecessor left (every job it had not handed on), then go on."""
        with self.state.lock:
            for job in self.state.jobs.values():
                self.adopt(job)
        self.resume()

    def on_receive(self, message: Any) -> Any:
        """Handle one message."""
        if isinstance(message, QueueStateChange):
            self.debouncer.handle(message)
        elif not self.handle(message):
            raise TypeError(f"{type(self).__name__} got an unknown message: {message!r}")
        return None

    def terminate(self, reason: Any) -> None:
        """Stopped (not crashed: a successor would adopt them): fail what is still queued."""
        if isinstance(reason, Normal | Shutdown):
            fail_pending(self.state, self.closed_error())

    # -- sending -------------------------------------------------------------------------------

    def send(
        self,
        request: HttpRequest,
        reply: Callable[[concurrent.futures.Future[HttpResponse]], Any],
        *,
        progress: ProgressTracker | None = None,
    ) -> None:
        """Send `request` without blocking the mailbox: its outcome comes back to this actor as
        the message `reply(outcome)` (dropped if the actor is gone: its successor sends again)."""
        outcome = self.transport.submit(request, progress=progress)
        me = self.actor_ref
        outcome.add_done_callback(lambda done: tell_quietly(me, reply(done)))

    def track(
        self,
        future: Future[Any],
        request_id: str,
        request_type: str,
        decode_json: Callable[[Any], Any],
        decode_proto: Callable[[bytes], Any] | None,
        on_settled: Callable[[], object] | None = None,
    ) -> None:
        """Hand the request the server accepted as `request_id` to the pollers: its result
        settles `future` (then `on_settled()` runs); queue-state changes come back here."""
        spec = PollSpec(
            request_id=request_id,
            request_type=request_type,
            decode_json=decode_json,
            decode_proto=decode_proto,
            owner=self.actor_ref,
            progress=self.state.progress,
        )
        polled = self.pollers.track(spec)
        future.request_id = request_id
        relay(polled, future, on_settled=on_settled)


def start_client_actor(
    supervisor: ActorRef[Any],
    registry: Registry,
    name: Hashable,
    start: Callable[..., ActorRef[Any]],
    state: ClientState[Any],
    transport: Transport,
    pollers: PollerPool,
    *,
    timeout_s: float,
) -> SupervisedRef:
    """Start a client actor under a dynamic supervisor, registered as `name` so that every
    restart (same name, same state) is reached by the stable ref returned."""
    spec = ChildSpec(
        id=name,
        name=name,
        start=functools.partial(start, state, transport, pollers),
    )
    start_child(supervisor, spec, timeout_s=timeout_s)
    return SupervisedRef(name, registry)
