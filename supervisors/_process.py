"""The Process base actor: synchronous start, exit reasons, ``terminate``, no lost replies.

``Process`` is a ``pykka.ThreadingActor`` whose actor loop is our own, so that it can tell
its watchers *why* it ended and never leave an ``ask`` unanswered.

Differences from OTP and from plain pykka, each on purpose:

- **Start handshake.** ``Process.start(...)`` runs ``init()`` in the new thread and returns the
  ref only once ``init`` returned; if it raised, ``start`` raises ``StartError`` with the real
  cause (pykka's ``start`` returns at once and reports nothing). ``init`` is bounded by the
  class attribute ``start_timeout_s``; past it the process is abandoned (see ``Killed``).
- **Crashes.** An exception in a ``tell`` handler ends the process with ``Crashed(exc)``. An
  exception in an ``ask`` handler goes back to the caller and the process lives on (pykka's
  rule; in OTP a crashing ``handle_call`` kills the server).
- **Stop is queued.** ``stop(ref)`` and ``ref.stop()`` are messages behind those already in the
  mailbox (OTP's exit signals overtake messages). Exit signals from *links* do overtake: they
  are put at the front of the mailbox, but cannot interrupt a handler that is running.
- **Kill is abandon.** Python cannot stop a thread. ``kill(ref)`` marks the actor dead,
  unregisters it, fails the ask it was handling and all queued asks with ``ActorDeadError``,
  cancels its timers and reports ``Killed`` at once; its thread finishes the current handler
  in the background, its result is dropped, and ``terminate`` is not called.
- **No lost replies.** pykka checks ``is_alive()`` and then enqueues, so an ``ask`` that races
  with the actor's teardown can sit forever in a drained mailbox. Our mailbox is closed under
  its own lock; an envelope that arrives after closing is answered with ``ActorDeadError``
  (see ``_mailbox``).
- **terminate(reason)** is called for every end except ``Killed`` and a failed ``init`` (OTP
  calls it only when trapping exits or on a callback crash, and never after a failed init).
  pykka's ``on_stop``/``on_failure`` are not called.
- **KeyboardInterrupt/SystemExit** in a handler stops every actor (as pykka does) without
  blocking, and tells every supervisor running at that moment to restart nothing more.
- **pykka's stop_all** also tells every running supervisor to restart nothing more, from the
  first ``Process`` it stops (pykka itself calls it when a plain actor gets a
  ``KeyboardInterrupt``). Supervisors started afterwards restart as usual.
- **Daemon threads.** A process's thread is a daemon thread (``use_daemon_thread = True``), so
  a program whose main thread ends is never held alive by its actors.

How it stands on pykka: only pykka's public API and the extension points pykka documents for
implementors of new actor types (the ones its gevent and eventlet actors used):
``_create_actor_inbox`` gives a ``Mailbox`` and ``_start_actor_loop`` starts our own loop on a
thread or a pooled worker; the loop reads the ``message`` and ``reply_to`` of the envelopes
that ``ActorRef.tell``/``ask`` put in that inbox, and answers proxy calls with the public
``pykka.messages`` types. ``Process.actor_ref`` is a ``ProcessRef`` (a public ``ActorRef``
subclass) whose ``stop`` sends our ``StopRequest``. Nothing of pykka is patched.

One capability needs more than that, noticing ``ActorRegistry.stop_all``: see ``_ref``.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from typing import Any, ClassVar, Self

import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry
from pykka.messages import ProxyCall, ProxyGetAttr, ProxySetAttr

from supervisors import _context, _watch, timers
from supervisors._logging import get_logger
from supervisors._mailbox import Envelope, Letter, Mailbox, reject
from supervisors._reasons import (
    Crashed,
    ExitReason,
    Killed,
    Normal,
    Shutdown,
    StartError,
)
from supervisors._ref import ProcessRef
from supervisors._signals import Exit, ExitSignal, StopRequest
from supervisors.scheduler import Scheduler, default_scheduler

__all__ = [
    "ExitSignal",
    "Mailbox",
    "Process",
    "ProcessRef",
    "StopRequest",
    "actor_of",
    "kill",
    "stop",
]

_log = get_logger("supervisors")
_thread_ids = itertools.count()


class _Wake:
    """Unblocks an abandoned actor's thread waiting on an empty mailbox."""


_WAKE = Letter(_Wake())


class _Continue:
    """The envelope was handled and the process goes on."""


_CONTINUE = _Continue()


class Process(pykka.ThreadingActor):
    """A pykka actor with OTP's process life cycle (see the module docstring for differences).

    Override ``init`` (runs in the actor's thread before ``start`` returns), ``on_receive`` and
    ``terminate(reason)``. Set ``self.trap_exits = True`` to receive ``Exit`` messages from
    linked processes instead of dying with them.
    """

    start_timeout_s: ClassVar[float] = 5.0
    """How long ``start`` waits for ``init``; past it the process is abandoned."""

    trap_exits: bool = False
    """Receive exit signals from links as ``Exit`` messages instead of dying with them."""

    pooled: ClassVar[bool] = False
    """Run on a shared ``Scheduler``'s workers instead of a thread of its own (handlers must
    not block; see ``supervisors.scheduler``)."""

    pool_scheduler: ClassVar[Scheduler | None] = None
    """The scheduler of a pooled class; None means ``default_scheduler()``."""

    slice_messages: ClassVar[int] = 64
    """Pooled: messages handled in a row before the worker serves other processes."""

    use_daemon_thread: ClassVar[bool] = True
    """A process's own thread never keeps the interpreter alive (pykka's default is False)."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        super().__init__()
        self._process_ref = ProcessRef(self)
        self.actor_inbox: Mailbox
        self.actor_inbox.owner = self._process_ref
        self._watch = _watch.Watch(self.actor_urn)  # published by start(), once constructed
        self._pending_stop_reply: pykka.Future[Any] | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._abandoned = False
        self._current: Envelope | None = None
        self._exit_request: ExitReason | None = None
        self.exit_reason: ExitReason | None = None
        self._owned_watches: dict[int, _watch.Watch] = {}
        self._pool_scheduler: Scheduler | None = None
        if self.pooled:
            self._pool_scheduler = type(self).pool_scheduler or default_scheduler()
            self.actor_inbox.make_pooled(self._schedule_slice)

    @property
    def actor_ref(self) -> ActorRef[Self]:
        """This process's ``ProcessRef``."""
        return self._process_ref

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    def stop(self) -> None:
        """pykka's ``Actor.stop``: end this process with ``Normal()`` after the queued
        messages (from a handler, prefer ``self.exit(reason)``)."""
        self._process_ref.tell(StopRequest(Normal()))

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> ActorRef[Self]:
        """Start the process and return its ref once ``init`` succeeded.

        Raises ``StartError(cls name, cause)`` when construction or ``init`` fails or does not
        finish within ``start_timeout_s`` (a ``StartError`` raised by ``init`` passes as is).
        """
        try:
            obj = cls(*args, **kwargs)
        except StartError:
            raise
        except Exception as exc:
            raise StartError(cls.__name__, exc) from exc
        _watch.publish(obj._watch)
        ActorRegistry.register(obj.actor_ref)
        obj._start_actor_loop()
        if not obj._started.wait(cls.start_timeout_s):
            obj._abandon()
            error = TimeoutError(
                f"{cls.__name__}.init did not return within start_timeout_s="
                f"{cls.start_timeout_s}; raise start_timeout_s or make init faster"
            )
            raise StartError(cls.__name__, error)
        if obj._start_error is not None:
            if isinstance(obj._start_error, StartError):
                raise obj._start_error
            raise StartError(cls.__name__, obj._start_error) from obj._start_error
        return obj.actor_ref

    def init(self) -> None:
        """Set the process up, in its own thread, before ``start`` returns; raise to refuse."""

    def terminate(self, reason: ExitReason) -> None:
        """Clean up when the process ends for any reason but ``Killed``; runs in its thread."""

    def exit(self, reason: ExitReason) -> None:
        """From inside a handler: end this process with ``reason`` once the handler returns."""
        self._exit_request = reason

    def handle_exit(self, message: Exit) -> None:
        """Called for an ``Exit`` from a link while trapping exits; default: ``on_receive``."""
        self.on_receive(message)

    # -- the actor loop ------------------------------------------------------------------

    def _start_actor_loop(self) -> None:
        scheduler = self._pool_scheduler
        if scheduler is None:
            thread = threading.Thread(
                target=self._run_thread,
                name=f"{type(self).__name__}-{next(_thread_ids)}",
                daemon=self.use_daemon_thread,
            )
            thread.start()
            return
        scheduler.join()
        scheduler.submit(self._boot, self)

    def _init_and_start(self) -> bool:
        """Run ``init``; on failure record it, end the process and return False."""
        try:
            self.init()
            self.on_start()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            self._finish(Crashed(exc), call_terminate=False)  # as OTP: no terminate after init
            return False
        self._started.set()
        return True

    def _run_thread(self) -> None:
        """Thread mode: ``init``, then every message until the process ends."""
        _context.set_current(self.actor_urn)  # this thread runs this process for good
        if not self._init_and_start():
            return
        inbox = self.actor_inbox
        while True:
            outcome = self._step(inbox.get())
            if not isinstance(outcome, _Continue):
                break
        if outcome is not None:
            self._finish(outcome)

    def _boot(self) -> None:
        """Pooled: ``init`` on a worker, then the messages that arrived meanwhile."""
        assert self._pool_scheduler is not None
        if self._abandoned:
            self._pool_scheduler.leave()
            return
        _context.set_current(self.actor_urn)
        try:
            started = self._init_and_start()
        finally:
            _context.set_current(None)
        if not started:
            self._pool_scheduler.leave()
            return
        self._slice()

    def _schedule_slice(self) -> None:
        assert self._pool_scheduler is not None
        self._pool_scheduler.submit(self._slice, self)

    def _slice(self) -> None:
        """Pooled: handle up to ``slice_messages`` messages, then yield the worker."""
        _context.set_current(self.actor_urn)  # timers set by the handlers belong to us
        try:
            self._run_slice()
        finally:
            _context.set_current(None)

    def _run_slice(self) -> None:
        assert self._pool_scheduler is not None
        inbox = self.actor_inbox
        for _ in range(self.slice_messages):
            envelope = inbox.take()
            if envelope is None:
                return
            outcome = self._step(envelope)
            if isinstance(outcome, _Continue):
                continue
            if outcome is not None:
                self._finish(outcome)
            self._pool_scheduler.leave()
            return
        self._pool_scheduler.submit(self._slice, self)

    def _step(self, envelope: Envelope) -> ExitReason | _Continue | None:
        """Handle one envelope: ``_CONTINUE``, an exit reason, or None once abandoned."""
        if self._abandoned:
            return None
        message = envelope.message
        reply_to = envelope.reply_to
        if isinstance(message, ExitSignal):
            reason = self._on_exit_signal(message)
            return _CONTINUE if reason is None else reason
        if isinstance(message, StopRequest):
            self._pending_stop_reply = reply_to
            return message.reason
        self._current = envelope
        try:
            result = self._receive_message(message)
        except Exception as exc:
            self._current = None
            if self._abandoned:
                return None
            if reply_to is None:
                _log.error("process_crashed", process=str(self), error=repr(exc), exc_info=exc)
                return Crashed(exc)
            try:  # noqa: SIM105 - hot path: try is cheaper than contextlib.suppress
                reply_to.set_exception()
            except queue.Full:
                pass
        except BaseException as exc:  # KeyboardInterrupt, SystemExit
            self._current = None
            _watch.mark_system_stopping()
            if reply_to is not None:
                reject(envelope, self.actor_ref)
            self._stop_everything_async()
            return Crashed(exc)
        else:
            self._current = None
            if self._abandoned:
                return None
            if reply_to is not None:
                try:  # noqa: SIM105 - hot path: try is cheaper than contextlib.suppress
                    reply_to.set(result)
                except queue.Full:
                    pass
        if self._exit_request is not None:
            return self._exit_request
        return _CONTINUE

    def _receive_message(self, message: Any) -> Any:
        """Answer pykka's proxy messages as pykka's own actors do; the rest is ``on_receive``."""
        if isinstance(message, ProxyCall):
            return _follow(self, message.attr_path)(*message.args, **message.kwargs)
        if isinstance(message, ProxyGetAttr):
            return _follow(self, message.attr_path)
        if isinstance(message, ProxySetAttr):
            parent = _follow(self, message.attr_path[:-1])
            return setattr(parent, message.attr_path[-1], message.value)
        return self.on_receive(message)

    def _on_exit_signal(self, signal: ExitSignal) -> ExitReason | None:
        if self.trap_exits:
            try:
                self.handle_exit(Exit(signal.sender, signal.reason))
            except Exception as exc:
                _log.error("process_crashed", process=str(self), error=repr(exc), exc_info=exc)
                return Crashed(exc)
            return self._exit_request
        if signal.reason.abnormal:
            return signal.reason
        return None

    def _stop_everything_async(self) -> None:
        me = self.actor_ref
        for ref in reversed(ActorRegistry.get_all()):
            if ref is not me and ref.actor_urn != me.actor_urn:
                with contextlib.suppress(ActorDeadError):
                    ref.stop(block=False)

    def _finish(self, reason: ExitReason, *, call_terminate: bool = True) -> None:
        """End of life in the actor's own thread: terminate, answer the mailbox, notify."""
        if self._abandoned:
            return
        self.exit_reason = reason
        self._process_ref.exit_reason = reason
        self.actor_stopped.set()
        ActorRegistry.unregister(self.actor_ref)
        try:
            if call_terminate:
                self.terminate(reason)
        except Exception:
            _log.exception("terminate_failed", process=str(self), reason=repr(reason))
        self._release(reason)
        stop_reply = self._pending_stop_reply
        if stop_reply is not None:
            with contextlib.suppress(queue.Full):
                stop_reply.set(None)

    def _release(self, reason: ExitReason) -> None:
        timers.cancel_all_for(self.actor_urn)
        for envelope in self.actor_inbox.close():
            reject(envelope, self.actor_ref)
        for key, watch in list(self._owned_watches.items()):
            watch.remove(key)
        self._owned_watches.clear()
        self._watch.fire(reason)

    def _abandon(self) -> bool:
        """Kill from another thread: mark dead, fail asks, report ``Killed``; False if dead."""
        if self._watch.reason is not None:
            return False
        self._abandoned = True
        self.exit_reason = Killed()
        self._process_ref.exit_reason = self.exit_reason
        self.actor_stopped.set()
        ActorRegistry.unregister(self.actor_ref)
        current = self._current
        if current is not None:
            reject(current, self.actor_ref)
        self._release(Killed())
        if self._pool_scheduler is not None:
            self._pool_scheduler.lend_worker_for(self)
        self.actor_inbox.put_first(_WAKE, force=True)  # after close(), which empties the queue
        return True

    def own_watch(self, watch: _watch.Watch, key: int) -> None:
        """Remember a callback this process placed on another's watch, removed at its exit."""
        self._owned_watches[key] = watch

    def disown_watch(self, key: int) -> None:
        """Forget a callback recorded with ``own_watch``."""
        self._owned_watches.pop(key, None)


def _follow(root: object, path: tuple[str, ...]) -> Any:
    """The attribute at the end of a proxy's attribute path."""
    value = root
    for name in path:
        value = getattr(value, name)
    return value


def actor_of(ref: ActorRef[Any]) -> Process | None:
    """The Process behind a ref, or None for a plain pykka actor or once it was collected."""
    if isinstance(ref, ProcessRef):
        actor = ref.actor()
        if isinstance(actor, Process):
            return actor
    return None


def stop(ref: ActorRef[Any], reason: ExitReason | None = None, *, timeout_s: float = 5.0) -> bool:
    """Stop an actor gracefully (queued), abandoning it if it is still alive after ``timeout_s``.

    ``reason`` defaults to ``Shutdown()``. Returns True if it stopped within the timeout,
    False if it had to be killed (or was already dead).
    """
    if timeout_s < 0:
        raise ValueError(f"timeout_s={timeout_s!r} is negative; pass seconds >= 0")
    done = threading.Event()
    entry = _watch.add_callback(ref, lambda _reason: done.set())
    if entry is None:
        return False
    with contextlib.suppress(ActorDeadError):
        if issubclass(ref.actor_class, Process):
            ref.tell(StopRequest(reason or Shutdown()))
        else:
            ref.stop(block=False)
    if done.wait(timeout_s):
        return True
    kill(ref)
    return False


def kill(ref: ActorRef[Any]) -> bool:
    """Abandon an actor now: it is dead for everyone, ``Killed`` is reported (see module doc).

    For a plain pykka actor a stop is queued (pykka's ``stop``) and its stop flag set, so its
    thread ends after the handler it is in, or runs its ``on_stop`` if it was idle. Returns
    False if the actor was already dead.
    """
    actor = actor_of(ref)
    if isinstance(actor, Process):
        return actor._abandon()
    watch = _watch.watch_of(ref)
    if watch is None:
        return False
    watch.fire(Killed())
    with contextlib.suppress(ActorDeadError):
        ref.stop(block=False)  # wakes its thread if it waits on an empty inbox
    ref.actor_stopped.set()
    ActorRegistry.unregister(ref)
    return True
