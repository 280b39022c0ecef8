"""The poller pool: a fixed, supervised set of Poller actors, their ledgers, and `track`.

A `PollerPool` supervises a fixed number of `Poller` actors (one_for_one; see `poller_actor`
for the `retrieve_future` state machine each runs). `pool.track(spec)` returns a public
`Future` at once, records it in one slot's ledger (see `poll_ledger`) and tells that slot's
Poller to drive it. Threads: one per Poller, the transport's loop, one timer thread.

A settle path never hangs. What a Poller drives is kept in its slot's ledger, outside the
actor: a restarted Poller adopts every entry of its slot and polls it again, and when the
pool's supervisor ends (stopped, or out of restarts) every entry left is failed with
`PollerStoppedError`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random as random_module
import time
from collections.abc import Callable, Hashable
from typing import Any, Final, TypeVar

from pykka import ActorDeadError, ActorRef

from supervisors import ChildSpec, ExitReason, Registry, Supervisor
from supervisors import stop as stop_process
from tinkex_actors import telemetry
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import TinkerError
from tinkex_actors.futures.future import Future
from tinkex_actors.futures.poll_ledger import PollEntry, PollLedger, PollSpec
from tinkex_actors.futures.poller_actor import DriveFuture, ForgetFuture, Poller, Timers
from tinkex_actors.restart_intensity import POLLER_POOL_RESTARTS
from tinkex_actors.transport.retry import ProgressTracker, RetryPolicy

__all__ = [
    "DEFAULT_INFLIGHT_RESPONSE_BYTES",
    "DEFAULT_POLLERS",
    "PollerPool",
    "PollerStoppedError",
]

T = TypeVar("T")

DEFAULT_POLLERS: Final = 4
DEFAULT_INFLIGHT_RESPONSE_BYTES: Final = 50 * 1024 * 1024
"""Result payload bytes being fetched at once, per pool (official client-config default)."""


class PollerStoppedError(TinkerError):
    """The poller pool stopped before the future settled; resubmit the request."""


class _PoolSupervisor(Supervisor):
    """The pool's supervisor: when it ends, every future still tracked is failed."""

    def __init__(
        self, children: list[ChildSpec], ledgers: list[PollLedger], **options: Any
    ) -> None:
        super().__init__(children, **options)
        self._ledgers = ledgers

    def terminate(self, reason: ExitReason) -> None:
        """Stop the Pollers, then fail whatever they were still driving."""
        try:
            super().terminate(reason)
        finally:
            for ledger in self._ledgers:
                for entry in ledger.drain():
                    entry.future.set_exception(
                        PollerStoppedError(
                            f"the poller pool stopped ({reason!r}) before request "
                            f"{entry.spec.request_id!r} ({entry.spec.request_type}) settled; "
                            "resubmit the request"
                        )
                    )


class PollerPool:
    """A fixed, supervised pool of Poller actors; `track(spec)` returns a `Future`.

    Start with `start()` (or use as a context manager), stop with `stop()`: every future still
    pending then fails with `PollerStoppedError`. `timers` (default: the supervisors'
    timer service), `clock` (monotonic seconds) and `random` are injectable for tests.
    `max_inflight_polls` caps polls in flight over the whole pool (default: the connection
    limit of the transport's `retrieve_promise` pool); further polls wait their turn in the
    Poller, not in the HTTP pool.
    """

    def __init__(
        self,
        transport: Any,
        *,
        size: int = DEFAULT_POLLERS,
        policy: RetryPolicy | None = None,
        timers: Timers | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random_module.random,
        max_inflight_polls: int | None = None,
        inflight_response_bytes: int = DEFAULT_INFLIGHT_RESPONSE_BYTES,
        max_restarts: int = POLLER_POOL_RESTARTS.max_restarts,
        max_seconds: float = POLLER_POOL_RESTARTS.max_seconds,
        name: Hashable | None = None,
    ) -> None:
        for field, value, low in (
            ("size", size, 1),
            ("inflight_response_bytes", inflight_response_bytes, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PollerPool {field}={value!r} is not valid; pass an int >= {low}")
        if max_inflight_polls is None:
            max_inflight_polls = transport.config.limits_for(
                PoolKind.RETRIEVE_PROMISE
            ).max_connections
        if (
            isinstance(max_inflight_polls, bool)
            or not isinstance(max_inflight_polls, int)
            or max_inflight_polls < size
        ):
            raise ValueError(
                f"PollerPool max_inflight_polls={max_inflight_polls!r} is not valid; pass an "
                f"int >= size ({size})"
            )
        if timers is None:
            from supervisors import default_timer_service

            timers = default_timer_service()
        self.transport = transport
        self.size = size
        self.policy = policy if policy is not None else RetryPolicy()
        self.clock = clock
        self._timers = timers
        self._random = random
        self._per_poller = max_inflight_polls // size
        self._bytes = max(inflight_response_bytes // size, 1)
        self._registry = Registry()
        self._ledgers = [PollLedger() for _ in range(size)]
        self._keys = itertools.count()
        self._name = name
        self._intensity = (max_restarts, max_seconds)
        self.supervisor: ActorRef[Any] | None = None

    def child_specs(self) -> list[ChildSpec]:
        """One ChildSpec per Poller (registered in this pool's own registry)."""
        return [
            ChildSpec(
                id=("poller", slot),
                start=functools.partial(
                    Poller.start,
                    self._ledgers[slot],
                    self.transport,
                    self._timers,
                    self.clock,
                    self._random,
                    self._per_poller,
                    self._bytes,
                ),
                name=("poller", slot),
            )
            for slot in range(self.size)
        ]

    def start(self) -> PollerPool:
        """Start the supervisor and its Pollers (idempotent); returns self."""
        if self.supervisor is None:
            max_restarts, max_seconds = self._intensity
            self.supervisor = _PoolSupervisor.start(
                self.child_specs(),
                self._ledgers,
                strategy="one_for_one",
                max_restarts=max_restarts,
                max_seconds=max_seconds,
                registry=self._registry,
                name=self._name,
            )
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every Poller; futures still pending fail with PollerStoppedError."""
        supervisor = self.supervisor
        if supervisor is not None:
            stop_process(supervisor, timeout_s=timeout_s)

    def __enter__(self) -> PollerPool:
        """Start the pool."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the pool."""
        self.stop()

    @property
    def is_running(self) -> bool:
        """True while the pool's supervisor is alive."""
        return self.supervisor is not None and self.supervisor.is_alive()

    def poller(self, slot: int) -> ActorRef[Any] | None:
        """The current Poller of a slot (None while it restarts)."""
        return self._registry.whereis(("poller", slot))

    def tracked(self) -> int:
        """How many futures the pool is driving now."""
        return sum(len(ledger.entries) for ledger in self._ledgers)

    def track(self, spec: PollSpec[T]) -> Future[T]:
        """Poll `spec.request_id` until it settles; returns its Future at once."""
        if not isinstance(spec, PollSpec):
            raise TypeError(f"track(spec={spec!r}): pass a PollSpec")
        key = next(self._keys)
        slot = key % self.size
        ledger = self._ledgers[slot]
        future: Future[T] = Future(
            spec.request_id,
            spec.request_type,
            canceller=functools.partial(self._forget, slot, key),
        )
        if not self.is_running:
            future.set_exception(
                PollerStoppedError(
                    f"the poller pool is not running; start it before tracking request "
                    f"{spec.request_id!r}"
                )
            )
            return future
        policy = spec.policy if spec.policy is not None else self.policy
        progress = spec.progress
        if progress is None:
            progress = ProgressTracker(policy.progress_timeout_s, clock=self.clock)
        ledger.add(PollEntry(key, spec, future, policy, progress, self.clock()))
        telemetry.emit(
            telemetry.EVENT_FUTURE_START,
            None,
            {"request_id": spec.request_id, "request_type": spec.request_type},
        )
        poller = self.poller(slot)
        if poller is not None:
            with contextlib.suppress(ActorDeadError):  # if dead, its successor adopts it
                poller.tell(DriveFuture(key))
        if not self.is_running:  # stopped meanwhile: the supervisor may have drained already
            entry = ledger.pop(key)
            if entry is not None:
                future.set_exception(PollerStoppedError("the poller pool stopped; resubmit"))
        return future

    def fail_all(self, error: BaseException) -> int:
        """Fail every future the pool is driving with `error` (the client closed or lost its
        session); their Pollers drop the polls still out. Returns how many failed."""
        failed = 0
        for ledger in self._ledgers:
            for entry in ledger.drain():
                failed += entry.future.set_exception(error)
        return failed

    def _forget(self, slot: int, key: int) -> None:
        entry = self._ledgers[slot].pop(key)
        if entry is None:
            return
        poller = self.poller(slot)
        if poller is not None:
            with contextlib.suppress(ActorDeadError):
                poller.tell(ForgetFuture(entry))
