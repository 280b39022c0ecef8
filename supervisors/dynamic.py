"""DynamicSupervisor: children added at run time from specs (OTP ``simple_one_for_one``).

Children are started with ``start_child(sup, spec)``, each restarted on its own (one_for_one)
per its ``restart`` type, under the same restart intensity rule as ``Supervisor``. When the
supervisor stops, it asks all children to stop *at once* and waits for each under its own
``shutdown`` timeout (OTP's simple_one_for_one also stops children concurrently).

Differences from OTP/Elixir:

- Each ``start_child`` takes a full ``ChildSpec`` (Elixir's DynamicSupervisor), not extra
  arguments for one template; ``extra_args`` given to the supervisor are passed first to every
  child's ``start`` (Elixir's ``extra_arguments``).
- ``terminate_child`` takes the child's ``ActorRef`` (as OTP does for simple_one_for_one);
  ``restart_child``, ``delete_child`` and ``get_childspec`` are not supported.
- A child whose restart failed is *restarting* (OTP's ``restarting``): it is retried by a
  message to the supervisor itself, counted against intensity, and shows with ``ref=None``;
  ``terminate_child`` with the ref of its last incarnation ends the loop and forgets it.
- ``max_children`` counts running children; past it ``start_child`` raises
  ``MaxChildrenError`` (Elixir returns ``{:error, :max_children}``).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Any

from pykka import ActorRef

from supervisors._base import ChildInfo, SupervisorBase, _Child, _count, _Retry, log
from supervisors._reasons import ExitReason, StartError
from supervisors.registry import Registry
from supervisors.spec import ChildSpec, ChildType
from supervisors.timers import Clock

__all__ = ["DynamicSupervisor", "MaxChildrenError"]


class MaxChildrenError(Exception):
    """``start_child`` on a DynamicSupervisor that already runs ``max_children`` children."""


class DynamicSupervisor(SupervisorBase):
    """Starts children on demand and restarts each on its own; see the module docstring."""

    def __init__(
        self,
        *,
        max_children: int | None = None,
        extra_args: tuple[Any, ...] = (),
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        clock: Clock | None = None,
        registry: Registry | None = None,
        name: Hashable | None = None,
    ) -> None:
        if max_children is not None and (
            isinstance(max_children, bool) or not isinstance(max_children, int) or max_children < 1
        ):
            raise ValueError(
                f"max_children={max_children!r} is not valid; pass an int >= 1 or None"
            )
        if not isinstance(extra_args, tuple):
            raise TypeError(f"extra_args={extra_args!r} is not a tuple; pass a tuple")
        super().__init__(
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            clock=clock,
            registry=registry,
            name=name,
        )
        self.max_children = max_children
        self.extra_args = extra_args
        self._keys = itertools.count()
        self._children: dict[int, _Child] = {}
        self._key_of: dict[int, int] = {}  # id(_Child) -> key

    def terminate(self, reason: ExitReason) -> None:
        """Stop every child concurrently, each under its own shutdown timeout."""
        self._shutdown_children(list(reversed(self._children.values())))
        self._children.clear()

    def _add(self, child: _Child) -> None:
        key = next(self._keys)
        self._children[key] = child
        self._key_of[id(child)] = key

    def _drop(self, child: _Child) -> None:
        key = self._key_of.pop(id(child), None)
        if key is not None:
            self._children.pop(key, None)

    def _call_start_child(self, spec: ChildSpec) -> ActorRef[Any] | None:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"start_child got {spec!r}; pass a ChildSpec")
        if self.max_children is not None and len(self._by_urn) >= self.max_children:
            raise MaxChildrenError(
                f"{self.label} already runs max_children={self.max_children} children; stop "
                "one or raise max_children"
            )
        child = _Child(spec)
        try:
            started = self._start_child_process(child, self.extra_args)
        except Exception as exc:
            raise StartError(spec.id, exc) from exc
        if started:
            self._add(child)
        return child.ref

    def _call_terminate_child(self, ref: ActorRef[Any]) -> None:
        if not isinstance(ref, ActorRef):
            raise TypeError(f"terminate_child got {ref!r}; pass the child's ActorRef")
        child = self._by_urn.get(ref.actor_urn)
        if child is None:
            child = self._restarting_child(ref.actor_urn)
            if child is None:
                raise LookupError(f"{ref} is not a running child of {self.label}")
            child.restarting = False  # ends its restart loop: the queued retry does nothing
        self._shutdown_child(child)
        self._drop(child)

    def _restarting_child(self, urn: str) -> _Child | None:
        """The restarting child whose last incarnation was ``urn`` (a scan: rare)."""
        for child in self._children.values():
            if child.restarting and child.last_urn == urn:
                return child
        return None

    def _call_which_children(self) -> list[ChildInfo]:
        return [
            ChildInfo(c.spec.id, c.ref, ChildType(c.spec.type)) for c in self._children.values()
        ]

    def _call_count_children(self) -> dict[str, int]:
        return _count(list(self._children.values()))

    def _on_child_exit(self, child: _Child, reason: ExitReason) -> None:
        if not self._may_restart(child, reason):
            self._drop(child)
            return
        if not self._add_restart():
            self._give_up()
            return
        self._restart(child)

    def _restart(self, child: _Child) -> None:
        child.restarting = False
        try:
            started = self._start_child_process(child, self.extra_args)
        except Exception as exc:
            log.error(
                "child_restart_failed", supervisor=self.label, child_id=child.spec.id,
                error=repr(exc),
            )
            child.restarting = True
            self.actor_ref.tell(_Retry((self._key_of[id(child)],)))
            return
        if not started:
            self._drop(child)
            return
        log.info(
            "child_restarted", supervisor=self.label, child_id=child.spec.id, child=str(child.ref)
        )

    def _on_retry(self, ids: tuple[Hashable, ...]) -> None:
        if self._system_stopping():
            return
        for key in ids:
            child = self._children.get(key)  # type: ignore[call-overload]
            if child is None or not child.restarting:
                continue
            if not self._add_restart():
                self._give_up()
                return
            self._restart(child)
