"""Death watches: one per watched actor, firing callbacks exactly once when the actor ends.

A :class:`~supervisors.Process` owns a watch from birth and fires it with its exit reason. A
plain pykka actor gets one on first use, fired with ``Unknown()`` by a small daemon thread
that waits on the actor's public ``actor_stopped`` event. pykka offers no callback on an
actor's end, and changing its objects is not ours to do, so a thread waiting on the event is
the one way to learn of that end at once without polling; it ends with the actor.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supervisors._logging import get_logger
from supervisors._reasons import ExitReason, Unknown

if TYPE_CHECKING:
    from pykka import ActorRef

Callback = Callable[["ExitReason"], None]

_ids = itertools.count(1)
_log = get_logger("supervisors")


def new_key() -> int:
    """A fresh callback key, for callers that need it before registering."""
    return next(_ids)
_table_lock = threading.Lock()
_watches: dict[str, Watch] = {}

# Bumped whenever everything is being stopped (ActorRegistry.stop_all reaching a Process,
# KeyboardInterrupt or SystemExit in a Process): a supervisor started before the bump
# restarts nothing any more, while supervisors started afterwards (a new application, the
# next test) work normally.
_stop_epoch = 0
_epoch_lock = threading.Lock()


def mark_system_stopping() -> None:
    """Tell every running supervisor that the whole system is going down: no restarts."""
    global _stop_epoch
    with _epoch_lock:
        _stop_epoch += 1


def stop_epoch() -> int:
    """The current stop epoch; a supervisor records it when it starts."""
    return _stop_epoch


class Watch:
    """The callbacks waiting for one actor's death, and the reason once it is known."""

    __slots__ = ("_callbacks", "_lock", "reason", "urn")

    def __init__(self, urn: str) -> None:
        self.urn = urn
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callback] = {}
        self.reason: ExitReason | None = None

    def add(self, callback: Callback, key: int | None = None) -> int | None:
        """Register a callback (under ``key`` from ``new_key()`` if given); None if the actor is
        already dead (the caller reports NoProc)."""
        with self._lock:
            if self.reason is not None:
                return None
            if key is None:
                key = next(_ids)
            self._callbacks[key] = callback
            return key

    def remove(self, key: int) -> bool:
        """Forget a callback; True if it had not fired yet."""
        with self._lock:
            return self._callbacks.pop(key, None) is not None

    def fire(self, reason: ExitReason) -> bool:
        """Record the death and run every callback once; later calls do nothing."""
        with self._lock:
            if self.reason is not None:
                return False
            self.reason = reason
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        with _table_lock:
            if _watches.get(self.urn) is self:
                del _watches[self.urn]
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:  # one broken watcher must not hide the death from the others
                _log.exception("death_callback_failed", urn=self.urn, reason=repr(reason))
        return True


_WATCHER_CHECK_S = 5.0
"""A watcher thread looks at its watch this often (it is woken at once by the actor's end)."""


def _await_end(event: threading.Event, watch: Watch) -> None:
    """A plain actor's watcher: fire its watch once its ``actor_stopped`` event is set."""
    while not event.wait(_WATCHER_CHECK_S):
        if watch.reason is not None:  # killed: already reported
            return
    watch.fire(Unknown())


def publish(watch: Watch) -> None:
    """Make a new Process's watch findable (called by ``Process.start`` before its thread)."""
    with _table_lock:
        _watches[watch.urn] = watch


def watch_of(ref: ActorRef[Any]) -> Watch | None:
    """The live watch of an actor, creating one for a plain pykka actor; None if it is dead."""
    with _table_lock:
        watch = _watches.get(ref.actor_urn)
        if watch is not None:
            return watch
        if not ref.is_alive():
            return None
        watch = Watch(ref.actor_urn)
        _watches[ref.actor_urn] = watch
    threading.Thread(
        target=_await_end,
        args=(ref.actor_stopped, watch),
        name=f"supervisors-watch-{ref.actor_class.__name__}",
        daemon=True,
    ).start()
    return watch


def add_callback(ref: ActorRef[Any], callback: Callback) -> tuple[Watch, int] | None:
    """Run ``callback(reason)`` once when the actor ends; None (not run) if it is already dead."""
    watch = watch_of(ref)
    if watch is None:
        return None
    key = watch.add(callback)
    if key is None:
        return None
    return watch, key


def live_watch_count() -> int:
    """How many actors are being watched (for leak checks in tests)."""
    with _table_lock:
        return len(_watches)
