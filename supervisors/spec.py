"""ChildSpec: how a supervisor starts, restarts and stops one child.

Differences from OTP:

- ``start`` is any callable returning the child's ``ActorRef`` (OTP's ``{ok, Pid}``) or None
  (OTP's ``ignore``); raising is OTP's ``{error, Reason}``. Arguments are bound with a lambda
  or ``functools.partial`` (a ``DynamicSupervisor`` passes its ``extra_args`` first).
- ``shutdown`` is in seconds (OTP: milliseconds); ``None`` means OTP's ``infinity`` (the
  default for supervisor children); ``BRUTAL_KILL`` abandons the child at once (see
  ``Killed``: Python cannot kill a thread).
- ``name`` registers each new incarnation of the child in the supervisor's ``Registry``, so a
  ``SupervisedRef`` keeps working across restarts (OTP registers names in ``start`` itself).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pykka import ActorRef

__all__ = ["BRUTAL_KILL", "ChildSpec", "ChildType", "Restart"]


class Restart(enum.StrEnum):
    """When a child is restarted after it ends."""

    PERMANENT = "permanent"
    """Always restarted."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal exit (not ``Normal`` nor a plain ``Shutdown``)."""
    TEMPORARY = "temporary"
    """Never restarted, and forgotten when it ends, even when a sibling's restart ended it."""


class ChildType(enum.StrEnum):
    """Whether the child is a worker or a supervisor (sets the default shutdown)."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


class _BrutalKill:
    def __repr__(self) -> str:
        return "BRUTAL_KILL"


BRUTAL_KILL: Final = _BrutalKill()
"""``shutdown=BRUTAL_KILL``: abandon the child at once instead of asking it to stop."""

_DEFAULT: Final = object()
DEFAULT_WORKER_SHUTDOWN_S: Final = 5.0

StartFn = Callable[..., "ActorRef[Any] | None"]
ShutdownValue = float | _BrutalKill | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildSpec:
    """How to start, restart and stop one child of a supervisor (OTP ``child_spec()``).

    ``shutdown``: seconds to wait for a graceful stop before abandoning the child,
    ``BRUTAL_KILL``, or ``None`` for no limit at this level; it defaults to ``None`` for
    supervisors and 5.0 s for workers.
    """

    id: Hashable
    start: StartFn
    restart: Restart | Literal["permanent", "transient", "temporary"] = Restart.PERMANENT
    shutdown: Any = field(default=_DEFAULT)
    type: ChildType | Literal["worker", "supervisor"] = ChildType.WORKER
    name: Hashable | None = None

    def __post_init__(self) -> None:
        try:
            hash(self.id)
        except TypeError:
            raise TypeError(
                f"ChildSpec.id={self.id!r} is not hashable; use a str, int or tuple"
            ) from None
        if not callable(self.start):
            raise TypeError(
                f"ChildSpec.start={self.start!r} is not callable; pass a function returning "
                "an ActorRef (or None to ignore), e.g. start=MyProcess.start"
            )
        try:
            object.__setattr__(self, "restart", Restart(self.restart))
        except ValueError:
            raise ValueError(
                f"ChildSpec.restart={self.restart!r} is not valid; use 'permanent', "
                "'transient' or 'temporary'"
            ) from None
        try:
            object.__setattr__(self, "type", ChildType(self.type))
        except ValueError:
            raise ValueError(
                f"ChildSpec.type={self.type!r} is not valid; use 'worker' or 'supervisor'"
            ) from None
        shutdown = self.shutdown
        if shutdown is _DEFAULT:
            shutdown = None if self.type == ChildType.SUPERVISOR else DEFAULT_WORKER_SHUTDOWN_S
        elif shutdown is not None and shutdown is not BRUTAL_KILL:
            if isinstance(shutdown, bool) or not isinstance(shutdown, int | float):
                raise TypeError(
                    f"ChildSpec.shutdown={shutdown!r} is not valid; use seconds (float > 0), "
                    "BRUTAL_KILL, or None for no limit"
                )
            if shutdown <= 0:
                raise ValueError(
                    f"ChildSpec.shutdown={shutdown!r} must be > 0 seconds; use BRUTAL_KILL "
                    "to abandon the child at once"
                )
            shutdown = float(shutdown)
        object.__setattr__(self, "shutdown", shutdown)
        if self.name is not None:
            try:
                hash(self.name)
            except TypeError:
                raise TypeError(
                    f"ChildSpec.name={self.name!r} is not hashable; use a str or tuple"
                ) from None

    @property
    def restart_type(self) -> Restart:
        """``restart`` as a ``Restart`` member (it is normalised at construction)."""
        return Restart(self.restart)

    @property
    def shutdown_s(self) -> ShutdownValue:
        """``shutdown`` after defaults: seconds, ``BRUTAL_KILL`` or None (no limit)."""
        value: ShutdownValue = self.shutdown
        return value
