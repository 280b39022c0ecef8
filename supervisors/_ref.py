"""ProcessRef: the ``ActorRef`` of a Process, whose pykka ``stop`` is a queued ``StopRequest``.

It is a public ``ActorRef`` subclass. Its ``stop`` keeps pykka's contract (True once the
process stopped, False if it was already dead, a future with ``block=False``) and ends the
process with ``Normal()``.

Beyond pykka's public API, one capability needs more: noticing ``ActorRegistry.stop_all``,
which offers no hook. ``stop_all`` stops the newest actor first, so children before their
supervisor, and the supervisor would restart each child it loses. ``ProcessRef.stop`` looks at
its callers' frames for the code object of ``ActorRegistry.stop_all`` (read, never replaced)
and, when it finds it, tells every running supervisor to restart nothing more before it
stops. If a pykka release called ``stop`` from elsewhere, supervisors would restart those
children until ``stop_all`` reached the supervisor itself (which then stops them);
``tests/supervisors/test_process.py`` checks it against the pykka installed.
"""

from __future__ import annotations

import sys
import weakref
from types import FrameType
from typing import Any, Literal, overload

import pykka
from pykka import ActorDeadError, ActorRef, Future, ThreadingFuture

from supervisors import _watch
from supervisors._reasons import ExitReason, Normal
from supervisors._signals import StopRequest

__all__ = ["ProcessRef"]

_STOP_ALL_CODE = vars(pykka.ActorRegistry)["stop_all"].__func__.__code__


def _called_by_stop_all() -> bool:
    """True if ``ActorRegistry.stop_all`` is among the few callers of our caller (the module
    docstring says why this looks at frames)."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):  # stop_all -> (a comprehension) -> ProcessRef.stop
        if frame is None:
            return False
        if frame.f_code is _STOP_ALL_CODE:
            return True
        frame = frame.f_back
    return False


class ProcessRef(ActorRef[Any]):
    """The ``ActorRef`` of a Process; it remembers the exit reason after the actor is gone,
    and its ``stop`` is a queued ``StopRequest`` ending the process with ``Normal()``."""

    exit_reason: ExitReason | None = None

    def __init__(self, actor: pykka.Actor) -> None:
        super().__init__(actor)
        self._actor = weakref.ref(actor)

    def actor(self) -> pykka.Actor | None:
        """The Process behind this ref, or None once it has been collected."""
        return self._actor()

    @overload
    def stop(self, *, block: Literal[True], timeout: float | None = ...) -> bool: ...

    @overload
    def stop(self, *, block: Literal[False], timeout: float | None = ...) -> Future[bool]: ...

    @overload
    def stop(self, *, block: bool = True, timeout: float | None = None) -> Future[bool] | bool: ...

    def stop(self, *, block: bool = True, timeout: float | None = None) -> Future[bool] | bool:
        """pykka's ``stop``: queue a stop after the messages already in the mailbox; True (or a
        future of True) once it stopped, False if it was already dead."""
        if _called_by_stop_all():
            _watch.mark_system_stopping()
        asked = self.ask(StopRequest(Normal()), block=False)

        def stopped(timeout: float | None) -> bool:
            try:
                asked.get(timeout=timeout)
            except ActorDeadError:
                return False
            return True

        result: ThreadingFuture[bool] = ThreadingFuture()
        result.set_get_hook(stopped)
        if block:
            return result.get(timeout=timeout)  # type: ignore[no-any-return]
        return result
