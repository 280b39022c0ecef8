"""Monitors and links: an actor's death delivered to others as an ordinary message.

``monitor(target, watcher)`` sends ``Down(ref, target, reason)`` to ``watcher`` once, when
``target`` ends; monitoring a dead actor sends ``Down(..., NoProc())`` at once. ``link(a, b)``
ties two actors: when one ends abnormally the other ends with the same reason, unless it traps
exits, in which case it receives ``Exit(sender, reason)`` as a message.

Differences from OTP:

- Any pykka actor can be monitored; for a plain pykka actor (not a ``Process``) the reason is
  ``Unknown()``, as pykka does not record why an actor stopped.
- A plain pykka actor linked to a process that ends abnormally is stopped with pykka's queued
  ``stop()``; it cannot trap exits.
- A normal exit never ends a linked process, as in OTP; ``Shutdown`` reasons count as normal
  except the supervisor escalation ``Shutdown("reached_max_restart_intensity")``.
- Monitors and links are kept in the target's watch; a ``Process`` removes the ones it placed
  when it exits (OTP removes them in the runtime).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorDeadError, ActorRef

from supervisors import _watch
from supervisors._mailbox import Letter, Mailbox
from supervisors._process import Process, actor_of
from supervisors._reasons import ExitReason, NoProc
from supervisors._signals import Exit, ExitSignal

__all__ = ["Down", "Exit", "MonitorRef", "demonitor", "link", "monitor", "trap_exits", "unlink"]


@dataclass(frozen=True, slots=True)
class MonitorRef:
    """The handle of one monitor, for ``demonitor`` and for matching ``Down`` messages."""

    key: int
    target_urn: str
    _watch: _watch.Watch | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Down:
    """A monitored actor ended (OTP ``{'DOWN', Ref, process, Pid, Reason}``)."""

    ref: MonitorRef
    target: ActorRef[Any]
    reason: ExitReason


def _tell(watcher: ActorRef[Any], message: object) -> None:
    with contextlib.suppress(ActorDeadError):
        watcher.tell(message)


def monitor(target: ActorRef[Any], watcher: ActorRef[Any]) -> MonitorRef:
    """Send ``Down(mref, target, reason)`` to ``watcher`` once ``target`` ends.

    If ``target`` is already dead the ``Down`` carries ``NoProc()`` and is sent at once.
    """
    watch = _watch.watch_of(target)
    key = _watch.new_key()
    mref = MonitorRef(key, target.actor_urn, watch)

    def deliver(reason: ExitReason) -> None:
        _tell(watcher, Down(mref, target, reason))

    if watch is None or watch.add(deliver, key) is None:
        dead = MonitorRef(0, target.actor_urn)
        _tell(watcher, Down(dead, target, NoProc()))
        return dead
    owner = actor_of(watcher)
    if isinstance(owner, Process):
        owner.own_watch(watch, key)
    return mref


def demonitor(mref: MonitorRef) -> bool:
    """Cancel a monitor; True if it was active (its ``Down`` had not been sent)."""
    if mref._watch is None:
        return False
    return mref._watch.remove(mref.key)


def _signal(receiver: ActorRef[Any], sender: ActorRef[Any], reason: ExitReason) -> None:
    """Deliver an exit signal from ``sender`` to ``receiver``."""
    if issubclass(receiver.actor_class, Process):
        inbox = receiver.actor_inbox
        assert isinstance(inbox, Mailbox)
        inbox.put_first(Letter(ExitSignal(sender, reason)))
    elif reason.abnormal:
        with contextlib.suppress(ActorDeadError):
            receiver.stop(block=False)


_links: dict[frozenset[str], tuple[tuple[_watch.Watch, int], tuple[_watch.Watch, int]]] = {}


def link(a: ActorRef[Any], b: ActorRef[Any]) -> None:
    """Link two actors both ways. If either is dead, the other gets an exit signal ``NoProc``."""
    if a.actor_urn == b.actor_urn:
        raise ValueError(f"cannot link {a} to itself; pass two different actors")
    pair = frozenset((a.actor_urn, b.actor_urn))
    with _watch._table_lock:
        if pair in _links:
            return
    entry_a = _watch.add_callback(a, lambda reason: _on_link_fired(pair, b, a, reason))
    if entry_a is None:
        _signal(b, a, NoProc())
        return
    entry_b = _watch.add_callback(b, lambda reason: _on_link_fired(pair, a, b, reason))
    if entry_b is None:
        entry_a[0].remove(entry_a[1])
        _signal(a, b, NoProc())
        return
    with _watch._table_lock:
        _links[pair] = (entry_a, entry_b)


def _on_link_fired(
    pair: frozenset[str], receiver: ActorRef[Any], sender: ActorRef[Any], reason: ExitReason
) -> None:
    with _watch._table_lock:
        entries = _links.pop(pair, None)
    if entries is not None:
        for watch, key in entries:
            watch.remove(key)
    _signal(receiver, sender, reason)


def unlink(a: ActorRef[Any], b: ActorRef[Any]) -> bool:
    """Remove the link between ``a`` and ``b``; True if there was one."""
    with _watch._table_lock:
        entries = _links.pop(frozenset((a.actor_urn, b.actor_urn)), None)
    if entries is None:
        return False
    for watch, key in entries:
        watch.remove(key)
    return True


def trap_exits(ref: ActorRef[Any], enabled: bool = True) -> None:
    """Make a Process receive ``Exit`` messages from its links instead of dying with them.

    Call it from inside the process (``trap_exits(self.actor_ref)``) or set
    ``self.trap_exits = True`` in ``init``; plain pykka actors cannot trap exits.
    """
    actor = actor_of(ref)
    if not isinstance(actor, Process):
        raise TypeError(
            f"trap_exits needs a supervisors.Process, got {ref.actor_class.__name__}; "
            "inherit from supervisors.Process to trap exits"
        )
    actor.trap_exits = enabled
