"""Supervisor: starts children in order, restarts them by strategy, gives up by intensity.

The public API talks to a running supervisor only by message (``start_child``,
``terminate_child``, ``restart_child``, ``delete_child``, ``which_children``,
``count_children``, ``get_childspec``, ``stop``), each bounded by a ``timeout_s``.

Semantics follow Erlang's ``supervisor.erl``: children start left to right and stop right to
left; a child failing to start during ``Supervisor.start`` stops those already started and
raises ``StartError(child_id, cause)``; restart intensity gives up when there are MORE than
``max_restarts`` restarts within ``max_seconds`` (window inclusive), then stops every child in
reverse start order and exits ``Shutdown("reached_max_restart_intensity")``, which a parent
supervisor treats as abnormal (escalation). A failed restart is retried through a message to
itself and counts against intensity.

Reports are structlog events on the ``"supervisors"`` logger, with stable keys (``supervisor``
is the supervisor's name, or its class and id; ``reason`` is the ``repr`` of an exit reason):

- ``child_started``: ``supervisor``, ``child_id``, ``child`` (the new ref);
- ``child_terminated``: ``supervisor``, ``child_id``, ``reason``, ``by`` (``"exit"`` when the
  child ended on its own, ``"supervisor"`` when the supervisor stopped it);
- ``child_restarted``: ``supervisor``, ``child_id``, ``child``;
- ``child_start_failed`` / ``child_restart_failed``: ``supervisor``, ``child_id``, ``error``;
- ``child_shutdown_timed_out``: ``supervisor``, ``child_id``, ``shutdown_s`` (it is abandoned);
- ``restart_intensity_reached``: ``supervisor``, ``max_restarts``, ``max_seconds``.

Processes themselves report ``process_crashed`` (``process``, ``error``, with the traceback)
and ``terminate_failed``.

Differences from OTP:

- Defaults are Elixir's: ``max_restarts=3`` within ``max_seconds=5.0``. Erlang's are 1 within
  5 s; pass ``max_restarts=1`` to get them.
- Times are seconds on an injectable ``clock`` (``FakeClock`` in tests), not milliseconds.
- Stopping a child is pykka's queued stop (``StopRequest``) followed, past the child's
  ``shutdown`` seconds, by *abandon* (``Killed``): the child's thread cannot be killed, it is
  marked dead, unregistered and reported, and its late results are dropped.
- After a ``KeyboardInterrupt``/``SystemExit`` in an actor, or any ``ActorRegistry.stop_all``,
  supervisors restart nothing (OTP has no equivalent: the node simply goes down).
- A failed restart during ``one_for_all``/``rest_for_one`` retries the children not yet
  restarted, rather than terminating and restarting the whole group again.
- An ``Exit`` from a linked process that is not a child ends the supervisor only if its
  reason is abnormal (OTP ends it only for its parent, whatever the reason).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import structlog
from pykka import ActorDeadError, ActorRef
from pykka._envelope import Envelope

from supervisors import _watch
from supervisors._process import Process, StopRequest, kill
from supervisors._process import stop as stop_process
from supervisors._reasons import (
    REACHED_MAX_RESTART_INTENSITY,
    ExitReason,
    Shutdown,
    StartError,
)
from supervisors.monitor import Down, Exit, demonitor, link, monitor, unlink
from supervisors.registry import Registry, default_registry
from supervisors.spec import BRUTAL_KILL, ChildSpec, ChildType, Restart
from supervisors.timers import Clock, MonotonicClock

__all__ = [
    "ChildInfo",
    "Strategy",
    "Supervisor",
    "count_children",
    "delete_child",
    "get_childspec",
    "restart_child",
    "start_child",
    "stop",
    "terminate_child",
    "which_children",
]

log = structlog.get_logger("supervisors")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")


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
    __slots__ = ("mref", "ref", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.ref: ActorRef[Any] | None = None
        self.mref: Any = None


def _ask_to_stop(ref: ActorRef[Any]) -> None:
    """Queue a graceful stop with reason Shutdown() (pykka's stop for plain actors)."""
    try:
        if issubclass(ref.actor_class, Process):
            ref.actor_inbox.put(Envelope(StopRequest(Shutdown())))
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


class Supervisor(SupervisorBase):
    """A static supervisor (OTP ``supervisor`` with one_for_one/one_for_all/rest_for_one).

    ``Supervisor.start(children, strategy=..., max_restarts=3, max_seconds=5.0)`` returns the
    ref once every child started. See the module docstring for the differences from OTP.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        clock: Clock | None = None,
        registry: Registry | None = None,
        name: Hashable | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy={strategy!r} is not valid; use one of {', '.join(_STRATEGIES)}"
            )
        seen: set[Hashable] = set()
        for spec in children:
            if not isinstance(spec, ChildSpec):
                raise TypeError(f"children contains {spec!r}; pass ChildSpec objects")
            if spec.id in seen:
                raise ValueError(f"children has two specs with id={spec.id!r}; ids must be unique")
            seen.add(spec.id)
        super().__init__(
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            clock=clock,
            registry=registry,
            name=name,
        )
        self.strategy: Strategy = strategy
        self._initial = list(children)
        self._children: list[_Child] = []

    def init(self) -> None:
        """Start the children left to right; on a failure stop them and raise StartError."""
        for spec in self._initial:
            child = _Child(spec)
            try:
                started = self._start_child_process(child)
            except BaseException as exc:
                log.error(
                    "child_start_failed", supervisor=self.label, child_id=spec.id, error=repr(exc)
                )
                self._terminate_all()
                raise StartError(spec.id, exc) from exc
            if started or spec.restart_type is not Restart.TEMPORARY:
                self._children.append(child)
        try:
            super().init()
        except BaseException:
            self._terminate_all()  # terminate() is not called after a failed init
            raise

    def terminate(self, reason: ExitReason) -> None:
        """Stop every child in reverse start order."""
        self._terminate_all()

    def _terminate_all(self) -> None:
        for child in reversed(self._children):
            self._shutdown_child(child)
        for child in list(self._children):
            if child.spec.restart_type is Restart.TEMPORARY:
                self._children.remove(child)

    def _find(self, child_id: Hashable) -> _Child:
        for child in self._children:
            if child.spec.id == child_id:
                return child
        raise LookupError(f"no child with id={child_id!r} in supervisor {self.label}")

    def _on_child_exit(self, child: _Child, reason: ExitReason) -> None:
        if not self._may_restart(child, reason):
            if child.spec.restart_type is Restart.TEMPORARY:
                self._children.remove(child)
            return
        if not self._add_restart():
            self._give_up()
            return
        if self.strategy == "one_for_one":
            group = [child]
        else:
            index = self._children.index(child)
            group = list(self._children) if self.strategy == "one_for_all" else (
                self._children[index:]
            )
            for other in reversed(group):
                if other is not child:
                    self._shutdown_child(other)
            for other in group:
                if other.spec.restart_type is Restart.TEMPORARY:
                    self._children.remove(other)
            group = [c for c in group if c.spec.restart_type is not Restart.TEMPORARY]
        self._start_group(group)

    def _start_group(self, group: list[_Child]) -> None:
        for i, child in enumerate(group):
            if child not in self._children or child.ref is not None:
                continue
            try:
                self._start_child_process(child)
            except Exception as exc:
                log.error(
                    "child_restart_failed",
                    supervisor=self.label,
                    child_id=child.spec.id,
                    error=repr(exc),
                )
                self.actor_ref.tell(_Retry(tuple(c.spec.id for c in group[i:])))
                return
            log.info(
                "child_restarted",
                supervisor=self.label,
                child_id=child.spec.id,
                child=str(child.ref),
            )

    def _on_retry(self, ids: tuple[Hashable, ...]) -> None:
        if self._system_stopping():
            return
        group = [c for c in self._children if c.spec.id in ids and c.ref is None]
        if not group:
            return
        if not self._add_restart():
            self._give_up()
            return
        self._start_group(group)

    # -- admin calls (run in the supervisor's thread) --------------------------------

    def _call_start_child(self, spec: ChildSpec) -> ActorRef[Any] | None:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"start_child got {spec!r}; pass a ChildSpec")
        for existing in self._children:
            if existing.spec.id == spec.id:
                state = "running" if existing.ref is not None else "present but not running"
                raise ValueError(
                    f"a child with id={spec.id!r} is already {state}; use another id, or "
                    "restart_child/delete_child"
                )
        child = _Child(spec)
        try:
            started = self._start_child_process(child)
        except Exception as exc:
            raise StartError(spec.id, exc) from exc
        if started or spec.restart_type is not Restart.TEMPORARY:
            self._children.append(child)
        return child.ref

    def _call_terminate_child(self, child_id: Hashable) -> None:
        child = self._find(child_id)
        self._shutdown_child(child)
        if child.spec.restart_type is Restart.TEMPORARY:
            self._children.remove(child)

    def _call_restart_child(self, child_id: Hashable) -> ActorRef[Any] | None:
        child = self._find(child_id)
        if child.ref is not None:
            raise ValueError(f"child {child_id!r} is running; terminate_child it first")
        try:
            self._start_child_process(child)
        except Exception as exc:
            raise StartError(child_id, exc) from exc
        return child.ref

    def _call_delete_child(self, child_id: Hashable) -> None:
        child = self._find(child_id)
        if child.ref is not None:
            raise ValueError(f"child {child_id!r} is running; terminate_child it first")
        self._children.remove(child)

    def _call_which_children(self) -> list[ChildInfo]:
        return [ChildInfo(c.spec.id, c.ref, ChildType(c.spec.type)) for c in self._children]

    def _call_count_children(self) -> dict[str, int]:
        return _count(self._children)

    def _call_get_childspec(self, child_id: Hashable) -> ChildSpec:
        return self._find(child_id).spec


def _count(children: Sequence[_Child]) -> dict[str, int]:
    sups = sum(1 for c in children if c.spec.type == ChildType.SUPERVISOR)
    return {
        "specs": len(children),
        "active": sum(1 for c in children if c.ref is not None),
        "supervisors": sups,
        "workers": len(children) - sups,
    }


# -- the public API: messages to a running supervisor ------------------------------------

DEFAULT_CALL_TIMEOUT_S = 30.0


def _call(sup: ActorRef[Any], op: str, *args: Any, timeout_s: float) -> Any:
    return sup.ask(_Call(op, args), timeout=timeout_s)


def start_child(
    sup: ActorRef[Any], spec: ChildSpec, *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> ActorRef[Any] | None:
    """Add and start a child (last in order); its ref, or None if its start ignored it.

    On a ``DynamicSupervisor`` the spec's id need not be unique. Raises ``StartError``.
    """
    return _call(sup, "start_child", spec, timeout_s=timeout_s)  # type: ignore[no-any-return]


def terminate_child(
    sup: ActorRef[Any], child: Hashable, *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> None:
    """Stop a child by id (by ref on a ``DynamicSupervisor``); its spec stays unless temporary."""
    _call(sup, "terminate_child", child, timeout_s=timeout_s)


def restart_child(
    sup: ActorRef[Any], child_id: Hashable, *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> ActorRef[Any] | None:
    """Start again a child that is not running; its new ref (None if ignored)."""
    return _call(sup, "restart_child", child_id, timeout_s=timeout_s)  # type: ignore[no-any-return]


def delete_child(
    sup: ActorRef[Any], child_id: Hashable, *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> None:
    """Forget the spec of a child that is not running."""
    _call(sup, "delete_child", child_id, timeout_s=timeout_s)


def which_children(
    sup: ActorRef[Any], *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> list[ChildInfo]:
    """The children in start order, with their current refs."""
    return _call(sup, "which_children", timeout_s=timeout_s)  # type: ignore[no-any-return]


def count_children(
    sup: ActorRef[Any], *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> dict[str, int]:
    """OTP's counts: ``specs``, ``active``, ``supervisors``, ``workers``."""
    return _call(sup, "count_children", timeout_s=timeout_s)  # type: ignore[no-any-return]


def get_childspec(
    sup: ActorRef[Any], child_id: Hashable, *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S
) -> ChildSpec:
    """The spec of a child by id."""
    return _call(sup, "get_childspec", child_id, timeout_s=timeout_s)  # type: ignore[no-any-return]


def stop(sup: ActorRef[Any], *, timeout_s: float = DEFAULT_CALL_TIMEOUT_S) -> bool:
    """Stop a supervisor (its children first, right to left) with reason ``Shutdown()``.

    Past ``timeout_s`` the supervisor is abandoned (``Killed``) and its linked children get
    that exit signal. True if it stopped in time.
    """
    return stop_process(sup, Shutdown(), timeout_s=timeout_s)
