"""Exit reasons and the errors of process start-up: small frozen values, compared by value.

Differences from OTP:

- Reasons are typed values, not arbitrary terms. ``Crashed(exc)`` wraps the Python exception
  that ended the process; ``Unknown`` is the reason reported for a plain pykka actor (one that
  does not inherit :class:`~supervisors.Process`), whose end we can observe but not explain.
- ``Killed`` means *abandoned*: Python cannot kill a thread, so a killed process is marked dead,
  unregistered and reported, while its thread may still be finishing the handler it was in.
- ``Shutdown("reached_max_restart_intensity")`` is abnormal (OTP uses plain ``shutdown``, which a
  *transient* parent would not restart); every other ``Shutdown`` is normal, as in OTP.
"""

from __future__ import annotations

from dataclasses import dataclass

REACHED_MAX_RESTART_INTENSITY = "reached_max_restart_intensity"


@dataclass(frozen=True, slots=True)
class Normal:
    """The process finished its work and stopped on purpose (OTP ``normal``)."""

    @property
    def abnormal(self) -> bool:
        """False: a transient child that exits normally is not restarted."""
        return False


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The process was asked to stop by its supervisor or owner (OTP ``{shutdown, Detail}``)."""

    detail: str = ""

    @property
    def abnormal(self) -> bool:
        """True only for the escalation a supervisor makes when it gives up restarting."""
        return self.detail == REACHED_MAX_RESTART_INTENSITY


@dataclass(frozen=True, slots=True)
class Killed:
    """The process was abandoned past its shutdown timeout or by ``kill`` (OTP ``killed``).

    Python cannot end a thread from outside: the actor is marked dead, unregistered and
    reported at once, and its late results are never delivered, but its thread may still be
    running the handler it was in until that handler returns.
    """

    @property
    def abnormal(self) -> bool:
        """True: a killed child is restarted unless it is temporary."""
        return True


@dataclass(frozen=True, slots=True)
class Crashed:
    """The process ended because an exception escaped a handler or ``init``."""

    exc: BaseException

    @property
    def abnormal(self) -> bool:
        """True: crashes are what supervisors restart."""
        return True

    def __repr__(self) -> str:
        return f"Crashed({self.exc!r})"


@dataclass(frozen=True, slots=True)
class NoProc:
    """The process was already dead when it was monitored or linked (OTP ``noproc``)."""

    @property
    def abnormal(self) -> bool:
        """True, as a link to a dead process is an exit signal in OTP."""
        return True


@dataclass(frozen=True, slots=True)
class Unknown:
    """A plain pykka actor stopped; pykka does not tell whether it crashed (no OTP equivalent)."""

    @property
    def abnormal(self) -> bool:
        """True: without a reason we assume the worst, so transient plain actors restart."""
        return True


ExitReason = Normal | Shutdown | Killed | Crashed | NoProc | Unknown
"""Why a process ended: one of the six frozen reason types."""


class StartError(Exception):
    """A process or a supervisor child could not be started; ``cause`` is the real error.

    ``child_id`` names the child spec (or the class, for a bare ``Process.start``).
    """

    def __init__(self, child_id: object, cause: BaseException) -> None:
        super().__init__(f"child {child_id!r} failed to start: {cause!r}")
        self.child_id = child_id
        self.cause = cause

    def __reduce__(self) -> tuple[type[StartError], tuple[object, BaseException]]:
        return (StartError, (self.child_id, self.cause))
