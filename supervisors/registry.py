"""Registry: names for processes, O(1) lookup, automatic removal when a process dies.

A ``Registry`` maps keys to live actor refs. With ``keys="unique"`` a key names one actor
(OTP's local names / Elixir's unique Registry); with ``keys="duplicate"`` a key groups many
(Elixir's duplicate Registry, used for pub/sub with ``dispatch``). An entry disappears when its
actor ends, through a death watch, so lookups never return a dead incarnation for long.

Because a restarted child is a new actor with a new ``ActorRef``, hold a ``SupervisedRef``
(a name plus a registry) rather than a raw ref: it resolves the current incarnation on every
call, for the price of one dict lookup.

Differences from OTP/Elixir:

- Keys are any hashable Python value; there is no atom table and no ``{via, ...}`` tuple.
- Removal on death is asynchronous with respect to the dying actor's last message: between
  its death and the callback, ``whereis`` may briefly return the dead ref (asking it raises
  ``ActorDeadError``, never hangs).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any, Literal

from pykka import ActorDeadError, ActorRef

from supervisors import _watch

__all__ = ["AlreadyRegisteredError", "Registry", "SupervisedRef", "default_registry"]


class AlreadyRegisteredError(Exception):
    """A unique key is already held by another live actor."""

    def __init__(self, key: Hashable, holder: ActorRef[Any]) -> None:
        super().__init__(
            f"key {key!r} is already registered to {holder}; unregister it first or use "
            "a Registry(keys='duplicate')"
        )
        self.key = key
        self.holder = holder


_Entry = tuple[ActorRef[Any], tuple[_watch.Watch, int] | None]


class Registry:
    """Key -> actor(s), dict-based, entries removed automatically when their actor dies."""

    def __init__(self, keys: Literal["unique", "duplicate"] = "unique") -> None:
        if keys not in ("unique", "duplicate"):
            raise ValueError(f"Registry(keys={keys!r}) is not valid; use 'unique' or 'duplicate'")
        self.keys_mode = keys
        self._lock = threading.Lock()
        self._unique: dict[Hashable, _Entry] = {}
        self._dups: dict[Hashable, dict[str, _Entry]] = {}

    def register(self, key: Hashable, ref: ActorRef[Any]) -> None:
        """Register ``ref`` under ``key``; raises ``AlreadyRegisteredError`` if a unique key is
        taken by a live actor, ``ActorDeadError`` if ``ref`` is dead."""
        hash(key)
        with self._lock:
            if self.keys_mode == "unique":
                held = self._unique.get(key)
                if held is not None and held[0].actor_urn != ref.actor_urn:
                    if held[0].is_alive():
                        raise AlreadyRegisteredError(key, held[0])
                    self._drop_watch(held)
                elif held is not None:
                    return
            elif ref.actor_urn in self._dups.get(key, {}):
                return
            entry: _Entry = (ref, None)
            if self.keys_mode == "unique":
                self._unique[key] = entry
            else:
                self._dups.setdefault(key, {})[ref.actor_urn] = entry
        watched = _watch.add_callback(ref, lambda _reason: self._on_death(key, ref))
        if watched is None:
            self._on_death(key, ref)
            raise ActorDeadError(f"cannot register {key!r}: {ref} is dead")
        with self._lock:
            if self.keys_mode == "unique":
                if key in self._unique and self._unique[key][0] is ref:
                    self._unique[key] = (ref, watched)
                    return
            elif ref.actor_urn in self._dups.get(key, {}):
                self._dups[key][ref.actor_urn] = (ref, watched)
                return
        watched[0].remove(watched[1])  # unregistered meanwhile

    def unregister(self, key: Hashable, ref: ActorRef[Any] | None = None) -> bool:
        """Remove ``key`` (only ``ref``'s entry if given); True if something was removed."""
        with self._lock:
            removed = self._remove(key, ref)
        for entry in removed:
            self._drop_watch(entry)
        return bool(removed)

    def whereis(self, key: Hashable) -> ActorRef[Any] | None:
        """The live actor registered under a unique key, or None."""
        entry = self._unique.get(key)
        if entry is None:
            return None
        ref = entry[0]
        return ref if ref.is_alive() else None

    def lookup(self, key: Hashable) -> list[ActorRef[Any]]:
        """Every live actor under ``key`` (at most one for a unique registry)."""
        if self.keys_mode == "unique":
            ref = self.whereis(key)
            return [] if ref is None else [ref]
        with self._lock:
            refs = [entry[0] for entry in self._dups.get(key, {}).values()]
        return [ref for ref in refs if ref.is_alive()]

    def dispatch(self, key: Hashable, message: Any) -> int:
        """``tell`` ``message`` to every live actor under ``key``; returns how many got it."""
        sent = 0
        for ref in self.lookup(key):
            try:
                ref.tell(message)
            except ActorDeadError:
                continue
            sent += 1
        return sent

    def keys_of(self, ref: ActorRef[Any]) -> list[Hashable]:
        """Every key under which ``ref`` is registered (a scan: for diagnostics)."""
        urn = ref.actor_urn
        with self._lock:
            if self.keys_mode == "unique":
                return [k for k, e in self._unique.items() if e[0].actor_urn == urn]
            return [k for k, d in self._dups.items() if urn in d]

    def __len__(self) -> int:
        with self._lock:
            return len(self._unique) + sum(len(d) for d in self._dups.values())

    def _remove(self, key: Hashable, ref: ActorRef[Any] | None) -> list[_Entry]:
        if self.keys_mode == "unique":
            entry = self._unique.get(key)
            if entry is None or (ref is not None and entry[0].actor_urn != ref.actor_urn):
                return []
            del self._unique[key]
            return [entry]
        group = self._dups.get(key)
        if group is None:
            return []
        if ref is None:
            del self._dups[key]
            return list(group.values())
        entry = group.pop(ref.actor_urn, None)
        if not group:
            del self._dups[key]
        return [] if entry is None else [entry]

    @staticmethod
    def _drop_watch(entry: _Entry) -> None:
        if entry[1] is not None:
            entry[1][0].remove(entry[1][1])

    def _on_death(self, key: Hashable, ref: ActorRef[Any]) -> None:
        with self._lock:
            self._remove(key, ref)


_default = Registry()


def default_registry() -> Registry:
    """The process-wide unique registry used when none is given."""
    return _default


class SupervisedRef:
    """A stable handle on whichever incarnation of a process is registered under ``name``.

    ``ask``/``tell`` look the name up on every call (one dict lookup). While the process is
    being restarted the name may be unregistered: calls then raise ``ActorDeadError`` at once
    (they never wait); ``resolve(timeout_s)`` waits for a new incarnation.
    """

    __slots__ = ("name", "registry")

    def __init__(self, name: Hashable, registry: Registry | None = None) -> None:
        registry = _default if registry is None else registry
        if registry.keys_mode != "unique":
            raise ValueError(
                f"SupervisedRef({name!r}) needs a Registry(keys='unique'), got keys="
                f"{registry.keys_mode!r}; use registry.dispatch for duplicate keys"
            )
        self.name = name
        self.registry = registry

    def __repr__(self) -> str:
        return f"SupervisedRef({self.name!r})"

    def current(self) -> ActorRef[Any]:
        """The live incarnation now, or ``ActorDeadError`` if none is registered."""
        ref = self.registry.whereis(self.name)
        if ref is None:
            raise ActorDeadError(f"no live process registered as {self.name!r}")
        return ref

    def resolve(self, timeout_s: float, *, poll_s: float = 0.001) -> ActorRef[Any]:
        """Wait up to ``timeout_s`` for a live incarnation (for callers riding out a restart)."""
        deadline = _now() + timeout_s
        wake = threading.Event()
        while True:
            ref = self.registry.whereis(self.name)
            if ref is not None:
                return ref
            remaining = deadline - _now()
            if remaining <= 0:
                raise ActorDeadError(
                    f"no live process registered as {self.name!r} within {timeout_s} s"
                )
            wake.wait(min(poll_s, remaining))

    def tell(self, message: Any) -> None:
        """Send ``message`` to the current incarnation."""
        self.current().tell(message)

    def ask(self, message: Any, *, timeout: float | None = 30.0) -> Any:
        """Send ``message`` to the current incarnation and wait up to ``timeout`` seconds for
        the reply (pykka's ``Timeout`` past it; ``None`` waits without limit)."""
        ref = self._unique_ref()
        return ref.ask(message, timeout=timeout)

    def _unique_ref(self) -> ActorRef[Any]:
        entry = self.registry._unique.get(self.name)
        if entry is not None:
            return entry[0]  # a dead ref answers ActorDeadError itself
        raise ActorDeadError(f"no live process registered as {self.name!r}")

    def is_alive(self) -> bool:
        """True if a live incarnation is registered now."""
        return self.registry.whereis(self.name) is not None


def _now() -> float:
    import time

    return time.monotonic()
