"""The ServiceClient's supervision tree: its supervisor, its six children, and how it ends.

    ServiceSupervisor          one_for_one, CLIENT_TREE_RESTARTS
    ├── session_manager        SessionManager: opens, heartbeats and finishes sessions
    ├── pollers                the PollerPool's supervisor: a fixed pool of Poller actors
    ├── training_clients       DynamicSupervisor: one TrainingClientActor per model
    ├── sampling_clients       DynamicSupervisor: one SamplingClientActor per sampler
    ├── telemetry              TelemetryReporter (once the session is open; when enabled)
    └── sampling_process       SamplingProcessHost (with the first out-of-process sampler)

one_for_one: the children share state through the ServiceClient (session table, poller pool,
registry), not through each other's actors, so a crashed SessionManager must not take the
client actors down with it (a restarted DynamicSupervisor would come back without its
children). The Transport (one I/O loop thread and its HTTP clients) is not an actor: the
ServiceClient owns it and closes it after the tree has stopped, within the close budget.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from pykka import ActorRef

from supervisors import ChildSpec, DynamicSupervisor, ExitReason, Registry, Supervisor
from supervisors.library_logging import get_logger
from supervisors.timers import TimerService
from tinkex_actors.clients.session import FinishSession, SessionManager, SessionTable
from tinkex_actors.clients.telemetry_reporter import DRAIN_TIMEOUT_S, Drain, TelemetryReporter
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.restart_intensity import CLIENT_TREE_RESTARTS
from tinkex_actors.transport.transport import Transport

__all__ = [
    "CLIENT_KINDS",
    "CLOSE_BUDGET_S",
    "DRAIN_SHARE",
    "FAILING_FINISH_SHARE",
    "FINISH_SHARE",
    "Closable",
    "CloseBudget",
    "ServiceSupervisor",
    "close_at_exit",
    "close_open_clients",
    "drain_telemetry",
    "finish_session",
    "forget_at_exit",
    "start_tree",
    "telemetry_child",
]

log = get_logger("tinkex_actors.service.service_client")

CLOSE_BUDGET_S = 1.8
"""`close()` returns within this (plus scheduling noise) whatever the server does."""
DRAIN_SHARE = 0.25
FINISH_SHARE = 0.5
FAILING_FINISH_SHARE = 0.25
"""Shares of what is left of the close budget given to the telemetry flush and to finishing
the session (best effort: an unreachable server gets no more than that; one failing when
close begins gets the smaller share for finishing and no telemetry flush)."""
CLIENT_KINDS = ("training_clients", "sampling_clients")
"""The registered names of the dynamic supervisors of the clients."""


class ServiceSupervisor(Supervisor):
    """The ServiceClient's top supervisor: ends the session and closes the client with it."""

    def __init__(
        self,
        children: list[ChildSpec],
        on_exit: Callable[[str, ExitReason], None],
        **options: Any,
    ) -> None:
        super().__init__(children, **options)
        self._on_exit = on_exit

    def terminate(self, reason: ExitReason) -> None:
        """Finish the session, stop the children, then close transport and embedded server."""
        try:
            self._on_exit("before", reason)
        finally:
            try:
                super().terminate(reason)
            finally:
                self._on_exit("after", reason)


def _children(
    transport: Transport,
    sessions: SessionTable,
    pollers: PollerPool,
    registry: Registry,
    timers: TimerService | None,
) -> list[ChildSpec]:
    """The children the tree starts with (telemetry and sampling_process come later)."""

    def start_pollers() -> ActorRef[Any]:
        pollers.supervisor = None
        ref = pollers.start().supervisor
        assert ref is not None
        return ref

    return [
        ChildSpec(
            id="session_manager",
            name="session_manager",
            start=functools.partial(SessionManager.start, transport, sessions, timers=timers),
        ),
        ChildSpec(id="pollers", start=start_pollers, type="supervisor"),
        *(
            ChildSpec(
                id=kind,
                name=kind,
                type="supervisor",
                start=functools.partial(
                    DynamicSupervisor.start, registry=registry, **CLIENT_TREE_RESTARTS.options()
                ),
            )
            for kind in CLIENT_KINDS
        ),
    ]


def start_tree(
    transport: Transport,
    sessions: SessionTable,
    pollers: PollerPool,
    registry: Registry,
    timers: TimerService | None,
    on_exit: Callable[[str, ExitReason], None],
) -> ActorRef[Any]:
    """Start the tree (see the module docstring); `on_exit` runs before and after it ends."""
    return ServiceSupervisor.start(
        _children(transport, sessions, pollers, registry, timers),
        on_exit,
        strategy="one_for_one",
        registry=registry,
        **CLIENT_TREE_RESTARTS.options(),
    )


def telemetry_child(
    transport: Transport, session_id: str, timers: TimerService | None
) -> ChildSpec:
    """The spec of the session's TelemetryReporter, started once the session is open."""
    return ChildSpec(
        id="telemetry",
        name="telemetry",
        start=functools.partial(TelemetryReporter.start, transport, session_id, timers=timers),
    )


class CloseBudget:
    """The deadline of a close: every step of it gets a share of what is left."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def begin(self) -> None:
        """The close starts now."""
        self.deadline = time.monotonic() + CLOSE_BUDGET_S

    def left_s(self, share: float = 1.0, floor_s: float = 0.05) -> float:
        """Seconds of the close budget left, times `share` (at least `floor_s`)."""
        if self.deadline is None:  # the tree ends under a user's supervisor: same budget
            self.begin()
        assert self.deadline is not None
        return max((self.deadline - time.monotonic()) * share, floor_s)


def drain_telemetry(registry: Registry, budget: CloseBudget) -> None:
    """Send what the telemetry reporter holds, within its share of the close budget."""
    reporter = registry.whereis("telemetry")
    if reporter is None:
        return
    try:
        drained = cast(
            concurrent.futures.Future[int],
            reporter.ask(Drain(), timeout=budget.left_s(DRAIN_SHARE)),
        )
        drained.result(min(DRAIN_TIMEOUT_S, budget.left_s(DRAIN_SHARE)))
    except Exception as exc:
        log.warning("telemetry_drain_failed", error=repr(exc))


def finish_session(
    registry: Registry,
    session_id: str | None,
    status: str,
    detail: str | None,
    budget: CloseBudget,
    share: float = FINISH_SHARE,
) -> None:
    """Tell the server the session ended (best effort, within `share` of the budget)."""
    manager = registry.whereis("session_manager") if session_id else None
    if manager is None or session_id is None:
        return
    try:
        finished = cast(
            concurrent.futures.Future[None],
            manager.ask(FinishSession(session_id, status, detail), timeout=budget.left_s(share)),
        )
        finished.result(budget.left_s(share))
    except Exception as exc:
        log.warning("session_finish_failed", session_id=session_id, error=repr(exc))


class Closable(Protocol):
    """What the exit hook closes: a ServiceClient."""

    def close(self, status: str = "success", detail: str | None = None) -> None:
        """Close it (see `ServiceClient.close`)."""


_open_clients: set[Closable] = set()
"""Clients not closed yet: the exit hook closes them (a client's actors keep it alive anyway)."""


def close_at_exit(client: Closable) -> None:
    """Close `client` when the program ends, if it is still open then."""
    _open_clients.add(client)


def forget_at_exit(client: Closable) -> None:
    """`client` was closed: nothing to do for it at exit."""
    _open_clients.discard(client)


def close_open_clients() -> None:
    """The interpreter is exiting (main thread ended): close what the program left open, all
    clients at once, so that exit takes one close budget however many there are."""
    closers = [
        threading.Thread(
            target=client.close,
            args=("success", "the program ended without close()"),
            name="tinkex-exit-close",
            daemon=True,
        )
        for client in list(_open_clients)
    ]
    for closer in closers:
        closer.start()
    deadline = time.monotonic() + CLOSE_BUDGET_S + 0.2
    for closer in closers:
        closer.join(max(deadline - time.monotonic(), 0.0))
