"""A fleet worker: samplers rebuilt from a handle, backpressure leased from the coordinator.

One `FleetWorker` lives in each Ray actor or pool process. At start it installs a
`FleetProvider` (the `backpressure` seam) and a warning sink (the `queue_state` seam) for its
process, then rebuilds the sampler from its handle once: one connection pool per worker, reused
by every rollout it runs. The sampler actors then run as they do in one process, except that

- their limiter (`FleetLimiter`) reports each 429 to the coordinator and adopts the windows the
  coordinator announces (opened by any worker);
- their budget (`LeasedBudget`) admits a request only within the capacity this worker leased,
  and asks for more when the head of its queue does not fit.

The coordinator is reached only from the `CoordinatorLink`'s own threads (a teller, a leaser,
a watcher), never from an actor's mailbox: a sampler actor's `try_acquire` stays non-blocking.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Final

from supervisors.library_logging import get_logger
from tinkex_actors.clients.backpressure import DispatchBudget, install_provider
from tinkex_actors.clients.rate_limiter import SampleRateLimiter
from tinkex_actors.config import ClientFlags
from tinkex_actors.fleet.coordinator import Key, fleet_key
from tinkex_actors.futures.queue_state import OwnerKind, QueueStateChange, install_warning_sink

__all__ = ["CoordinatorLink", "FleetLimiter", "FleetProvider", "FleetWorker", "LeasedBudget"]

CoordinatorCall = Callable[..., Any]
"""`call(method_name, *args)`: one blocking call of a coordinator method."""

WATCH_S: Final = 1.0
LEASE_WAIT_S: Final = 1.0
CLOSE_TIMEOUT_S: Final = 10.0

_log = get_logger("tinkex_actors.fleet")


class LeasedBudget(DispatchBudget):
    """A dispatch budget that admits within this worker's lease of the fleet's budget."""

    def __init__(
        self,
        flags: ClientFlags,
        *,
        rate_limiter: SampleRateLimiter | None,
        link: CoordinatorLink,
        key: Key,
    ) -> None:
        super().__init__(
            flags.sample_max_concurrent_requests,
            flags.sample_dispatch_bytes_semaphore_size,
            rate_limiter=rate_limiter,
        )
        self.key = key
        self.caps = (
            flags.sample_max_concurrent_requests,
            flags.sample_dispatch_bytes_semaphore_size,
        )
        self._link = link
        self._lease = [0, 0]
        self._want: tuple[int, int] | None = None

    def _fits(self, charge: int, cap: int) -> bool:
        need_r, need_b = len(self._tokens) + 1, self._bytes + charge
        if need_r <= min(cap, self._lease[0]) and need_b <= self._lease[1]:
            return True
        if need_r <= cap and self._want is None:
            self._want = (need_r, need_b)
            self._link.wake_leaser()
        return False

    def take_want(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(shortfall to ask for, unused lease to give back first), or None if nothing is
        wanted. The lease shrinks to what is in use, so a waiting worker holds nothing idle
        (two half-leases can never wait on each other)."""
        with self._lock:
            if self._want is None:
                return None
            need_r, need_b = self._want
            used_r, used_b = len(self._tokens), self._bytes
            unused = (self._lease[0] - used_r, self._lease[1] - used_b)
            self._lease = [used_r, used_b]
            return (max(0, need_r - used_r), max(0, need_b - used_b)), unused

    def add_lease(self, requests: int, size_bytes: int) -> None:
        """Capacity granted: admit the queued requests that fit now."""
        with self._lock:
            self._lease[0] += requests
            self._lease[1] += size_bytes
            self._want = None
        self.retry_waiters()

    def rearm(self) -> None:
        """An ask came back empty: try again (if the head still does not fit)."""
        with self._lock:
            self._want = None
        self.retry_waiters()

    def take_unused(self) -> tuple[int, int]:
        """Give up the part of the lease not in use, unless this budget is asking itself."""
        with self._lock:
            if self._want is not None or self._waiters:
                return 0, 0
            unused = (self._lease[0] - len(self._tokens), self._lease[1] - self._bytes)
            self._lease = [len(self._tokens), self._bytes]
            return unused

    def lease(self) -> tuple[int, int]:
        """This worker's lease: (requests, bytes)."""
        with self._lock:
            return self._lease[0], self._lease[1]


class FleetLimiter(SampleRateLimiter):
    """A limiter that reports 429s to the coordinator and adopts the fleet's windows."""

    def __init__(self, key: Key, link: CoordinatorLink) -> None:
        super().__init__()
        self.key = key
        self._link = link

    def on_rate_limited(self, size_bytes: int, retry_after_s: float | None = None) -> float:
        """Open the window here at once, and for the fleet through the coordinator."""
        delay_s = super().on_rate_limited(size_bytes, retry_after_s)
        self._link.tell("report_429", self.key, size_bytes, retry_after_s)
        return delay_s


class CoordinatorLink:
    """A worker's three threads to the coordinator: tells, lease asks, and the watch."""

    def __init__(self, call: CoordinatorCall, worker: int) -> None:
        self.call = call
        self.worker = worker
        self._closed = threading.Event()
        self._tells: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._lease_wake = threading.Event()
        self._lock = threading.Lock()
        self.limiters: dict[Key, FleetLimiter] = {}
        self.budgets: list[LeasedBudget] = []
        self._threads = [
            threading.Thread(target=self._run_tells, name=f"fleet-tell-{worker}", daemon=True),
            threading.Thread(target=self._run_leases, name=f"fleet-lease-{worker}", daemon=True),
            threading.Thread(target=self._run_watch, name=f"fleet-watch-{worker}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def tell(self, method: str, *args: Any) -> None:
        """Call `method` on the coordinator later, without waiting (safe from any thread)."""
        if not self._closed.is_set():
            self._tells.put((method, args))

    def wake_leaser(self) -> None:
        """A budget wants capacity."""
        self._lease_wake.set()

    def close(self) -> None:
        """Give every lease back and stop the threads (the watch ends within its poll)."""
        for budget in list(self.budgets):
            unused = budget.take_unused()
            if any(unused):
                self.tell("give_back", self.worker, budget.key, *unused)
        self._tells.put(None)
        self._closed.set()
        self._lease_wake.set()
        for thread in self._threads:
            thread.join(CLOSE_TIMEOUT_S)

    def _safe_call(self, method: str, *args: Any) -> Any:
        try:
            return self.call(method, *args)
        except Exception as exc:
            if not self._closed.is_set():
                _log.error("fleet_coordinator_call_failed", method=method, error=repr(exc))
            return None

    def _run_tells(self) -> None:
        while True:
            item = self._tells.get()
            if item is None:
                return
            self._safe_call(item[0], *item[1])

    def _run_leases(self) -> None:
        while not self._closed.is_set():
            self._lease_wake.wait(WATCH_S)
            self._lease_wake.clear()
            for budget in list(self.budgets):
                want = budget.take_want()
                if want is None:
                    continue
                (need_r, need_b), unused = want
                if any(unused):
                    self._safe_call("give_back", self.worker, budget.key, *unused)
                granted = self._safe_call(
                    "lease", self.worker, budget.key, budget.caps, need_r, need_b, LEASE_WAIT_S
                )
                if granted and any(granted):
                    budget.add_lease(*granted)
                else:
                    budget.rearm()

    def _run_watch(self) -> None:
        epoch = -1
        while not self._closed.is_set():
            answer = self._safe_call("watch", epoch, WATCH_S)
            if answer is None:
                self._closed.wait(0.1)  # the coordinator is unreachable: do not spin
                continue
            epoch, state = answer
            for key, (remaining, throttle, waiting) in state.items():
                key = (key[0], key[1])  # a manager or Ray may hand tuples back as lists
                limiter = self.limiters.get(key)
                if limiter is not None and (remaining > 0 or throttle > 0):
                    limiter.adopt_window(remaining, throttle)
                if waiting or remaining > 0:
                    self._give_back_unused(key)

    def _give_back_unused(self, key: Key) -> None:
        for budget in list(self.budgets):
            if budget.key == key:
                unused = budget.take_unused()
                if any(unused):
                    self.tell("give_back", self.worker, key, *unused)


class FleetProvider:
    """The `backpressure` provider a worker installs: fleet limiters and leased budgets."""

    def __init__(self, link: CoordinatorLink) -> None:
        self.link = link

    def rate_limiter_for(self, base_url: str, api_key: str | None) -> SampleRateLimiter | None:
        """One `FleetLimiter` per key in this worker."""
        key = fleet_key(base_url, api_key)
        with self.link._lock:
            limiter = self.link.limiters.get(key)
            if limiter is None:
                limiter = self.link.limiters[key] = FleetLimiter(key, self.link)
            return limiter

    def budget_for(
        self, flags: ClientFlags, rate_limiter: SampleRateLimiter | None
    ) -> DispatchBudget | None:
        """A `LeasedBudget` for a fleet limiter's key (None for any other limiter)."""
        if not isinstance(rate_limiter, FleetLimiter):
            return None
        key = rate_limiter.key
        budget = LeasedBudget(flags, rate_limiter=rate_limiter, link=self.link, key=key)
        with self.link._lock:
            self.link.budgets.append(budget)
        return budget


class Secret:
    """An API key in transit to a worker: never shown by repr or str."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret(None)"

    __str__ = __repr__


class FleetWorker:
    """What one Ray actor or pool process runs: a sampler from `handle`, and the rollouts."""

    def __init__(
        self,
        worker: int,
        handle: str,
        rollout: Callable[[Any, Any], Any],
        call: CoordinatorCall,
        api_key: Secret,
    ) -> None:
        from tinkex_actors.clients.sampling import SamplingClient

        self.worker = worker
        self.rollout = rollout
        self.incarnation: int = call("hello", worker)
        self.link = CoordinatorLink(call, worker)
        self._previous = install_provider(FleetProvider(self.link))
        self._previous_sink = install_warning_sink(self._warn)
        self._cpu0 = time.process_time()
        try:
            self.sampler = SamplingClient.from_sampler_handle(handle, api_key=api_key.value)
        except BaseException:
            self.close()
            raise

    def _warn(self, kind: OwnerKind, identifier: str, change: QueueStateChange) -> None:
        self.link.tell(
            "queue_state",
            kind,
            identifier,
            change.state.value,
            change.reason,
            change.request_id,
            self.worker,
        )

    def run(self, rollout_id: Hashable, item: Any) -> tuple[Hashable, Any]:
        """Run the rollout function on one item; returns (rollout_id, its result)."""
        return rollout_id, self.rollout(self.sampler, item)

    def stats(self) -> dict[str, Any]:
        """This worker's process: pid, incarnation, CPU seconds since start, leases."""
        import os

        return {
            "worker": self.worker,
            "pid": os.getpid(),
            "incarnation": self.incarnation,
            "cpu_s": time.process_time() - self._cpu0,
            "leases": [b.lease() for b in self.link.budgets],
            "peak_in_flight_bytes": max((b.stats().peak_bytes for b in self.link.budgets),
                                        default=0),
        }

    def close(self) -> None:
        """Close the sampler, give the leases back, restore the process's defaults."""
        sampler = getattr(self, "sampler", None)
        try:
            if sampler is not None:
                with contextlib.suppress(Exception):
                    sampler.close()
        finally:
            self.link.close()
            install_provider(self._previous)
            install_warning_sink(self._previous_sink)
