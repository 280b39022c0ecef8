"""The messages that carry an ending: a stop request, an exit signal, and a trapped exit.

They sit below both ``_process`` (which acts on them) and ``monitor`` (which sends them), so
that neither of those imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from supervisors._reasons import ExitReason

__all__ = ["Exit", "ExitSignal", "StopRequest"]


@dataclass(frozen=True, slots=True)
class StopRequest:
    """Ask a Process to stop with ``reason`` after the messages already queued."""

    reason: ExitReason


@dataclass(frozen=True, slots=True)
class ExitSignal:
    """A linked process ended: delivered at the front of the mailbox."""

    sender: ActorRef[Any]
    reason: ExitReason


@dataclass(frozen=True, slots=True)
class Exit:
    """A linked actor ended and this process traps exits (OTP ``{'EXIT', Pid, Reason}``)."""

    sender: ActorRef[Any]
    reason: ExitReason
