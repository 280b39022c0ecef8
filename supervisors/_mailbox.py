"""The mailbox of a Process: an unbounded FIFO that never loses a reply, and its envelopes.

pykka puts its own envelopes in an actor's inbox (``ActorRef.tell``/``ask``); this package puts
``Letter`` objects (stop requests, exit signals). Both carry the two fields every pykka actor
loop reads, ``message`` and ``reply_to``, so the mailbox holds either and the loop reads both
the same way, without pykka's private envelope class.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from pykka import ActorDeadError, ActorRef, Future

from supervisors._signals import StopRequest

__all__ = ["Envelope", "Letter", "Mailbox", "reject"]


class Envelope(Protocol):
    """What an inbox holds: a message and the future to answer (None for ``tell``)."""

    @property
    def message(self) -> Any:
        """The message to handle."""
        ...

    @property
    def reply_to(self) -> Future[Any] | None:
        """The future of an ``ask``, or None."""
        ...


class Letter:
    """An envelope this package puts in a mailbox itself (a signal or a stop request)."""

    __slots__ = ("message", "reply_to")

    def __init__(self, message: Any, reply_to: Future[Any] | None = None) -> None:
        self.message = message
        self.reply_to = reply_to

    def __repr__(self) -> str:
        return f"Letter({self.message!r})"


def _dead_error(ref: ActorRef[Any]) -> ActorDeadError:
    return ActorDeadError(f"{ref} stopped before handling the message")


def reject(envelope: Envelope, ref: ActorRef[Any]) -> None:
    """Answer an envelope that will never be handled (stop requests succeed, asks fail)."""
    reply_to = envelope.reply_to
    if reply_to is None:
        return
    try:
        if isinstance(envelope.message, StopRequest):
            reply_to.set(None)  # "it was already being stopped": ref.stop() returns True
        else:
            error = _dead_error(ref)
            reply_to.set_exception(exc_info=(ActorDeadError, error, None))
    except queue.Full:
        pass


class Mailbox(queue.Queue[Any]):
    """An unbounded FIFO that answers ``ActorDeadError`` to any ask put after ``close()``."""

    def __init__(self) -> None:
        super().__init__()
        self._closed = False
        self.owner: ActorRef[Any] | None = None
        self._wake: Callable[[], None] | None = None
        """Pooled mode: schedules the owner when an envelope arrives in an idle mailbox."""
        self._scheduled = False
        """Pooled mode: the owner is queued on, or running on, a worker (set under ``mutex``)."""

    def make_pooled(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` whenever an envelope arrives while the owner is not scheduled; the
        owner starts scheduled (booting) and idles with ``take()`` returning None."""
        with self.mutex:
            self._wake = wake
            self._scheduled = True

    def put(self, item: Envelope, block: bool = True, timeout: float | None = None) -> None:
        """Enqueue ``item``, or answer it with ``ActorDeadError`` if the mailbox is closed."""
        with self.mutex:
            closed = self._closed
            if not closed:
                self.queue.append(item)
                wake = self._arrived()
        if not closed:
            if wake is not None:
                wake()
            return
        if item.reply_to is None and self.owner is not None:
            raise ActorDeadError(f"{self.owner} not found")
        if self.owner is not None:
            reject(item, self.owner)

    def put_first(self, item: Envelope, *, force: bool = False) -> bool:
        """Put ``item`` at the front (system signals); False if closed and not ``force``."""
        with self.mutex:
            if self._closed and not force:
                return False
            self.queue.appendleft(item)
            wake = self._arrived()
        if wake is not None:
            wake()
        return True

    def _arrived(self) -> Callable[[], None] | None:
        """An envelope was just queued (``mutex`` held): wake the owner's thread, or return
        the pooled owner's wake function to call (outside the lock) if it is not scheduled."""
        self.unfinished_tasks += 1
        if self._wake is None:
            self.not_empty.notify()  # a thread of its own may be waiting in get()
            return None
        if self._scheduled:
            return None
        self._scheduled = True
        return self._wake

    def take(self) -> Envelope | None:
        """Pooled mode: the next envelope, or None after marking the mailbox idle (unscheduled)."""
        with self.mutex:
            if self.queue:
                return self.queue.popleft()
            self._scheduled = False
            return None

    def close(self) -> list[Envelope]:
        """Refuse further envelopes and return those still queued."""
        with self.mutex:
            self._closed = True
            left = list(self.queue)
            self.queue.clear()
            return left

    def _init(self, maxsize: int) -> None:
        self.queue: deque[Envelope] = deque()
