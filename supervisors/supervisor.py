"""Supervisor: starts children in order, restarts them by strategy, gives up by intensity.

The public API talks to a running supervisor only by message (``start_child``,
``terminate_child``, ``restart_child``, ``delete_child``, ``which_children``,
``count_children``, ``get_childspec``, ``stop``), each bounded by a ``timeout_s``.

Semantics follow Erlang's ``supervisor.erl``: children start left to right and stop right to
left; a child failing to start during ``Supervisor.start`` stops those already started and
raises ``StartError(child_id, cause)``; restart intensity gives up when there are MORE than
``max_restarts`` restarts within ``max_seconds`` (window inclusive), then stops every child in
reverse start order and exits ``Shutdown("reached_max_restart_intensity")``, which a parent
supervisor treats as abnormal (escalation).

A failed restart is OTP's ``try_again_restart``: the child that failed to start is marked
*restarting* and a retry message is queued to the supervisor itself; the retry counts against
intensity and restarts the child's whole group again by the strategy (in ``one_for_all``, the
siblings started before the failure are stopped and everyone starts again, left to right; in
``rest_for_one``, the failed child and those after it). While a child is restarting,
``restart_child`` and ``delete_child`` raise ``ChildStateError`` with ``state="restarting"``
(OTP's ``{error, restarting}``); ``terminate_child`` ends the loop (the queued retry then does
nothing and the child stays stopped, as in OTP).

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
- ``which_children`` shows a restarting child with ``ref=None`` (OTP shows ``restarting``);
  ``restart_child``/``delete_child`` tell the two states apart.
- An ``Exit`` from a linked process that is not a child ends the supervisor only if its
  reason is abnormal (OTP ends it only for its parent, whatever the reason).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Literal

from pykka import ActorRef

from supervisors._base import (
    ChildInfo,
    SupervisorBase,
    _Call,
    _Child,
    _count,
    _Retry,
    add_restart,
)
from supervisors._logging import get_logger
from supervisors._process import stop as stop_process
from supervisors._reasons import ExitReason, Shutdown, StartError
from supervisors.registry import Registry
from supervisors.spec import ChildSpec, ChildType, Restart
from supervisors.timers import Clock

__all__ = [
    "ChildInfo",
    "ChildStateError",
    "Strategy",
    "Supervisor",
    "SupervisorBase",
    "add_restart",
    "count_children",
    "delete_child",
    "get_childspec",
    "restart_child",
    "start_child",
    "stop",
    "terminate_child",
    "which_children",
]

log = get_logger("supervisors")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]


class ChildStateError(ValueError):
    """``restart_child``/``delete_child`` on a child that is ``running`` or ``restarting``
    (OTP's ``{error, running}`` and ``{error, restarting}``); ``state`` names which."""

    def __init__(self, child_id: Hashable, state: Literal["running", "restarting"]) -> None:
        if state == "running":
            detail = "is running; terminate_child it first"
        else:
            detail = (
                "is restarting (its restart failed and is being retried); terminate_child it "
                "first to end the restart loop"
            )
        super().__init__(f"child {child_id!r} {detail}")
        self.child_id = child_id
        self.state = state
_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")


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
        self._restart(child)

    def _restart(self, child: _Child) -> None:
        """OTP's ``restart/3``: stop the group of ``child`` but ``child``, start it again in
        order; if one fails to start it is marked restarting and retried by message."""
        if self.strategy == "one_for_one":
            group = [child]
        else:
            index = self._children.index(child)
            group = (
                list(self._children) if self.strategy == "one_for_all" else self._children[index:]
            )
            for other in reversed(group):
                if other is not child:
                    self._shutdown_child(other)
            for other in group:
                if other.spec.restart_type is Restart.TEMPORARY:
                    self._children.remove(other)
            group = [c for c in group if c.spec.restart_type is not Restart.TEMPORARY]
        for member in group:
            member.restarting = False
        for member in group:
            if member.ref is not None:
                continue
            try:
                self._start_child_process(member)
            except Exception as exc:
                log.error(
                    "child_restart_failed",
                    supervisor=self.label,
                    child_id=member.spec.id,
                    error=repr(exc),
                )
                member.restarting = True
                self.actor_ref.tell(_Retry((member.spec.id,)))
                return
            log.info(
                "child_restarted",
                supervisor=self.label,
                child_id=member.spec.id,
                child=str(member.ref),
            )

    def _on_retry(self, ids: tuple[Hashable, ...]) -> None:
        """OTP's ``try_again_restart``: only a child still restarting is retried (a
        ``terminate_child`` or a restart of its whole group meanwhile ends the loop)."""
        if self._system_stopping():
            return
        for child in self._children:
            if child.spec.id in ids and child.restarting:
                break
        else:
            return
        if not self._add_restart():
            self._give_up()
            return
        self._restart(child)

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
        child.restarting = False  # ends a restart loop: the queued retry finds nothing to do
        self._shutdown_child(child)
        if child.spec.restart_type is Restart.TEMPORARY:
            self._children.remove(child)

    def _check_stopped(self, child: _Child) -> None:
        if child.ref is not None:
            raise ChildStateError(child.spec.id, "running")
        if child.restarting:
            raise ChildStateError(child.spec.id, "restarting")

    def _call_restart_child(self, child_id: Hashable) -> ActorRef[Any] | None:
        child = self._find(child_id)
        self._check_stopped(child)
        try:
            self._start_child_process(child)
        except Exception as exc:
            raise StartError(child_id, exc) from exc
        return child.ref

    def _call_delete_child(self, child_id: Hashable) -> None:
        child = self._find(child_id)
        self._check_stopped(child)
        self._children.remove(child)

    def _call_which_children(self) -> list[ChildInfo]:
        return [ChildInfo(c.spec.id, c.ref, ChildType(c.spec.type)) for c in self._children]

    def _call_count_children(self) -> dict[str, int]:
        return _count(self._children)

    def _call_get_childspec(self, child_id: Hashable) -> ChildSpec:
        return self._find(child_id).spec


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
