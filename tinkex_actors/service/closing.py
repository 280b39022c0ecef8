"""How a ServiceClient ends: `close()`, the end of its tree, and what is closed after it.

`ClosingService` is a base of `ServiceClient` (`service_client.py`). Closing fails every
pending operation with ClientClosedError, finishes the session (best effort), stops the tree
(`tinkex_actors.service.tree`) and closes what is not an actor (poller pool, transport, the
embedded server), all within the close budget whatever the server does. A tree that ends under
a user's supervisor takes the same path from its supervisor's `terminate`.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from pykka import ActorRef

from supervisors import ExitReason, Normal, Registry, Shutdown
from supervisors import stop as stop_process
from supervisors.library_logging import get_logger
from tinkex_actors.errors import ClientClosedError
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.service.tree import (
    FAILING_FINISH_SHARE,
    FINISH_SHARE,
    CloseBudget,
    drain_telemetry,
    finish_session,
    forget_at_exit,
)
from tinkex_actors.transport.transport import Transport

__all__ = ["ClosingRecovery", "ClosingService"]

log = get_logger("tinkex_actors.service.service_client")


class ClosingRecovery(Protocol):
    """What closing needs of a session recovery (`recovery.SessionRecovery`)."""

    def close(self, error: BaseException, timeout_s: float = 0.5) -> int:
        """No more rebuilds; unsent recorded Futures fail with `error`."""
        ...


class ClosingService:
    """The closing of a ServiceClient (see the module docstring)."""

    transport: Transport
    registry: Registry
    pollers: PollerPool
    supervisor: ActorRef[Any]
    _lock: threading.Lock
    _closed: bool
    _finish_with: tuple[str, str | None]
    _close_budget: CloseBudget
    _recovery: ClosingRecovery | None
    _server: Any

    def _fail_pending(self, error: BaseException) -> int:
        """Fail every pending operation of the client with `error`; how many."""
        raise NotImplementedError

    def _fail_hosted(self, reason: str) -> None:
        """Fail what the out-of-process sampling child still has pending."""
        raise NotImplementedError

    def _forget_instance(self) -> None:
        """Drop the client from `ServiceClient.instances`."""
        raise NotImplementedError

    def close(self, status: str = "success", detail: str | None = None) -> None:
        """Settle every pending future (ClientClosedError), finish the session (best effort),
        stop the tree and close connections; leaves no thread behind.

        Returns within about 2 s whatever the server does, and raises nothing of its own.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finish_with = (status, detail)
            self._close_budget.begin()
        forget_at_exit(self)
        try:
            closed = ClientClosedError(
                "the ServiceClient was closed while this operation was pending; "
                "make a new ServiceClient to go on"
            )
            if self._recovery is not None:
                self._recovery.close(closed, timeout_s=self._left_s(0.25))
            self._fail_pending(closed)
            self._teardown()
        except Exception as exc:  # never replace the user's own exception (leaving `with`)
            log.warning("close_incomplete", error=repr(exc))

    def _left_s(self, share: float = 1.0, floor_s: float = 0.05) -> float:
        """Seconds of the close budget left, times `share` (at least `floor_s`)."""
        return self._close_budget.left_s(share, floor_s)

    def _on_tree_exit(self, phase: str, reason: ExitReason) -> None:
        """Called by the tree's supervisor as it ends (also when it ends under a user's tree):
        before its children stop, finish the session; after, close what is not an actor."""
        if phase == "before":
            status, detail = self._finish_with
            if not isinstance(reason, Normal | Shutdown) and status == "success":
                status, detail = "errored", repr(reason)
            health = self.transport.health
            if health.lost is not None:
                return  # given up on the server: nothing can reach it
            if health.failing_for_s is None:
                drain_telemetry(self.registry, self._close_budget)
                self._finish_session(status, detail, FINISH_SHARE)
            else:  # failing now: one short try at finishing, telemetry dropped
                self._finish_session(status, detail, FAILING_FINISH_SHARE)
        else:
            self._closed = True
            self._fail_hosted("the ServiceClient closed")
            self._close_resources()

    def _finish_session(self, status: str, detail: str | None, share: float = FINISH_SHARE) -> None:
        session_id = getattr(self, "session_id", None)
        finish_session(self.registry, session_id, status, detail, self._close_budget, share)

    def _teardown(self) -> None:
        supervisor = getattr(self, "supervisor", None)
        if supervisor is not None and supervisor.is_alive():
            stop_process(supervisor, timeout_s=self._left_s())
        self._close_resources()

    def _close_resources(self) -> None:
        self._forget_instance()
        pollers = getattr(self, "pollers", None)
        if pollers is not None:
            pollers.stop(self._left_s(0.5))
        transport = getattr(self, "transport", None)
        if transport is not None:
            try:
                transport.close(self._left_s(floor_s=0.2))
            except RuntimeError as exc:  # its loop stops by itself once the program ends
                log.warning("transport_close_slow", error=str(exc))
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(
            "success" if exc_type is None else "errored",
            None if exc is None else f"{type(exc).__name__}",
        )
