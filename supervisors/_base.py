"""What every supervisor shares: child records, restart intensity, starting and stopping.

``Supervisor`` and ``DynamicSupervisor`` are built on ``SupervisorBase``; see ``supervisor.py``
for the semantics, the log events and every difference from OTP.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from pykka import ActorDeadError, ActorRef

from supervisors import _watch
from supervisors._logging import get_logger
from supervisors._process import Process, StopRequest, kill
from supervisors._reasons import (
    REACHED_MAX_RESTART_INTENSITY,
    ExitReason,
    Shutdown,
)
from supervisors.monitor import Down, Exit, demonitor, link, monitor, unlink
from supervisors.registry import Registry, default_registry
from supervisors.spec import BRUTAL_KILL, ChildSpec, ChildType, Restart
from supervisors.timers import Clock, MonotonicClock

log = get_logger("supervisors")


class ChildInfo(NamedTuple):
    """One row of ``which_children``: the ref is None while the child is not running."""

    id: Hashable
    ref: ActorRef[Any] | None
    type: ChildType


@dataclass(frozen=True, slots=True)
class _Call:
    op: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Retry:
    ids: tuple[Hashable, ...]


class _Child:
    __slots__ = ("last_urn", "mref", "ref", "restarting", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.ref: ActorRef[Any] | None = None
        self.mref: Any = None
        self.restarting = False
        """Its restart failed and a retry is queued (OTP's ``{restarting, Pid}``)."""
        self.last_urn: str | None = None
        """The urn of its last incarnation, by which a DynamicSupervisor's caller names it."""


def _ask_to_stop(ref: ActorRef[Any]) -> None:
    """Queue a graceful stop with reason Shutdown() (pykka's stop for plain actors)."""
    try:
        if issubclass(ref.actor_class, Process):
            ref.tell(StopRequest(Shutdown()))
        else:
            ref.stop(block=False)
    except ActorDeadError:
        pass


def add_restart(
    restarts: list[float], now: float, max_restarts: int, max_seconds: float
) -> tuple[list[float], bool]:
    """OTP's rule: keep restarts at most ``max_seconds`` old, add ``now``; ok unless there are
    now MORE than ``max_restarts`` (pure, for testing against a reference model)."""
    threshold = now - max_seconds
    kept = [t for t in restarts if t >= threshold]
    kept.append(now)
    return kept, len(kept) <= max_restarts


def _recorder(got: list[ExitReason], done: threading.Event) -> _watch.Callback:
    def record(reason: ExitReason) -> None:
        got.append(reason)
        done.set()

    return record


def _check_intensity(max_restarts: int, max_seconds: float) -> None:
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(f"max_restarts={max_restarts!r} is not valid; pass an int >= 0")
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float):
        raise TypeError(f"max_seconds={max_seconds!r} is not a number; pass seconds > 0")
    if max_seconds <= 0:
        raise ValueError(f"max_seconds={max_seconds!r} is not valid; pass seconds > 0")


class SupervisorBase(Process):
    """What every supervisor shares: intensity, starting, watching and stopping children."""

    trap_exits = True
    start_timeout_s: ClassVar[float] = 60.0

    def __init__(
        self,
        *,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        clock: Clock | None = None,
        registry: Registry | None = None,
        name: Hashable | None = None,
    ) -> None:
        _check_intensity(max_restarts, max_seconds)
        super().__init__()
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self.clock: Clock = MonotonicClock() if clock is None else clock
        self.registry = default_registry() if registry is None else registry
        self.name = name
        self.label = str(name) if name is not None else f"{type(self).__name__}-{id(self):x}"
        self._restarts: list[float] = []
        self._by_urn: dict[str, _Child] = {}
        self._stale: set[str] = set()  # children shut down whose death notice is still queued
        self._epoch = _watch.stop_epoch()

    def init(self) -> None:
        """Register the supervisor's own name, if it has one."""
        if self.name is not None:
            self.registry.register(self.name, self.actor_ref)

    def _system_stopping(self) -> bool:
        """True once everything started stopping after this supervisor was created."""
        return _watch.stop_epoch() != self._epoch

    # -- restart intensity -------------------------------------------------------------

    def _add_restart(self) -> bool:
        """Record a restart now; False when there are more than max_restarts in the window."""
        self._restarts, ok = add_restart(
            self._restarts, self.clock.monotonic(), self.max_restarts, self.max_seconds
        )
        return ok

    # -- children ----------------------------------------------------------------------

    def _start_child_process(self, child: _Child, args: tuple[Any, ...] = ()) -> bool:
        """Start one child and watch it; False if its start returned None (ignore)."""
        spec = child.spec
        ref = spec.start(*args)
        if ref is None:
            return False
        if not isinstance(ref, ActorRef):
            raise TypeError(
                f"ChildSpec.start of {spec.id!r} returned {ref!r}; it must return an "
                "ActorRef, or None to ignore the child"
            )
        child.ref = ref
        self._by_urn[ref.actor_urn] = child
        if issubclass(ref.actor_class, Process):
            link(self.actor_ref, ref)
        else:
            child.mref = monitor(ref, self.actor_ref)
        if spec.name is not None:
            with contextlib.suppress(ActorDeadError):  # if it died at once, its Exit is coming
                self.registry.register(spec.name, ref)
        log.info("child_started", supervisor=self.label, child_id=spec.id, child=str(ref))
        return True

    def _shutdown_child(self, child: _Child) -> ExitReason | None:
        """Stop one running child (queued stop, abandon past its shutdown); its exit reason."""
        return self._shutdown_children([child])[0]

    def _shutdown_children(self, children: Sequence[_Child]) -> list[ExitReason | None]:
        """Stop several children at once, each under its own shutdown timeout."""
        started_at = time.monotonic()
        pending: list[tuple[_Child, ActorRef[Any], threading.Event, list[ExitReason]]] = []
        for child in children:
            ref = child.ref
            if ref is None:
                continue
            child.ref = None
            self._by_urn.pop(ref.actor_urn, None)
            if child.mref is not None:
                detached = demonitor(child.mref)
                child.mref = None
            else:
                detached = unlink(self.actor_ref, ref)
            if not detached:  # it died on its own: its Exit/Down is queued, drop it on arrival
                self._stale.add(ref.actor_urn)
            got: list[ExitReason] = []
            done = threading.Event()
            if _watch.add_callback(ref, _recorder(got, done)) is None:
                log.info(
                    "child_terminated",
                    supervisor=self.label,
                    child_id=child.spec.id,
                    reason=repr(getattr(ref, "exit_reason", None)),
                    by="exit",
                )
                continue
            if child.spec.shutdown_s is BRUTAL_KILL:
                kill(ref)
            else:
                _ask_to_stop(ref)
            pending.append((child, ref, done, got))
        reasons: dict[int, ExitReason | None] = {}
        for child, ref, done, got in pending:
            shutdown = child.spec.shutdown_s
            if isinstance(shutdown, float):
                remaining = started_at + shutdown - time.monotonic()
                if not done.wait(max(0.0, remaining)):
                    log.warning(
                        "child_shutdown_timed_out",
                        supervisor=self.label,
                        child_id=child.spec.id,
                        shutdown_s=shutdown,
                    )
                    kill(ref)
            else:
                while not done.wait(1.0):  # shutdown=None: no limit at this level
                    pass
            reason = got[0] if got else None
            reasons[id(child)] = reason
            log.info(
                "child_terminated",
                supervisor=self.label,
                child_id=child.spec.id,
                reason=repr(reason),
                by="supervisor",
            )
        return [reasons.get(id(child)) for child in children]

    def _child_of(self, sender: ActorRef[Any]) -> _Child | None:
        return self._by_urn.get(sender.actor_urn)

    def on_receive(self, message: Any) -> Any:
        """Handle deaths of children, retries and admin calls."""
        if isinstance(message, Exit | Down):
            sender = message.sender if isinstance(message, Exit) else message.target
            child = self._child_of(sender)
            if child is None:
                if sender.actor_urn in self._stale:
                    self._stale.discard(sender.actor_urn)  # a child we already shut down
                elif isinstance(message, Exit) and message.reason.abnormal:
                    self.exit(message.reason)  # a linked non-child (our parent) died
                return None
            child.ref = None
            child.mref = None
            child.last_urn = sender.actor_urn
            del self._by_urn[sender.actor_urn]
            log.info(
                "child_terminated",
                supervisor=self.label,
                child_id=child.spec.id,
                reason=repr(message.reason),
                by="exit",
            )
            self._on_child_exit(child, message.reason)
            return None
        if isinstance(message, _Retry):
            self._on_retry(message.ids)
            return None
        if isinstance(message, _Call):
            method = getattr(self, f"_call_{message.op}", None)
            if method is None:
                raise ValueError(
                    f"{type(self).__name__} does not support {message.op!r}; see its docstring"
                )
            return method(*message.args)
        return super().on_receive(message)

    def _may_restart(self, child: _Child, reason: ExitReason) -> bool:
        if self._system_stopping():
            return False
        restart = child.spec.restart_type
        if restart is Restart.TEMPORARY:
            return False
        return not (restart is Restart.TRANSIENT and not reason.abnormal)

    def _give_up(self) -> None:
        log.error(
            "restart_intensity_reached",
            supervisor=self.label,
            max_restarts=self.max_restarts,
            max_seconds=self.max_seconds,
        )
        self.exit(Shutdown(REACHED_MAX_RESTART_INTENSITY))

    def _on_child_exit(self, child: _Child, reason: ExitReason) -> None:
        raise NotImplementedError

    def _on_retry(self, ids: tuple[Hashable, ...]) -> None:
        raise NotImplementedError


def _count(children: Sequence[_Child]) -> dict[str, int]:
    sups = sum(1 for c in children if c.spec.type == ChildType.SUPERVISOR)
    return {
        "specs": len(children),
        "active": sum(1 for c in children if c.ref is not None),
        "supervisors": sups,
        "workers": len(children) - sups,
    }
