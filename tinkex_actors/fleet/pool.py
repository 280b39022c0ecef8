"""RolloutFleet: a user's rollout function over a batch of prompts, on many workers.

    fleet = RolloutFleet(sampler, rollout, backend="ray", workers=4)
    with fleet:
        results = fleet.run(prompts, progress=lambda done, total: ...)

`rollout(sampler, item)` samples and grades (or steps an environment) for one item; it runs in a
worker (a Ray actor, or a process with `backend="process"`) whose sampler was rebuilt once from
`sampler.get_sampler_handle()`. Results come back in the order of `items`.

Supervision: a worker that dies mid-rollout is restarted and its unfinished rollouts are run
again, once (Ray: `max_restarts` and `max_task_retries=1`; process backend: the same by
hand); results are kept by rollout id, so a rollout counts once. More than `max_restarts`
restarts within `max_seconds` (the `supervisors` intensity) fail the run with
`FleetIntensityError`; under a supervision tree (`child_spec`) the fleet's process then crashes
with it, and its supervisor restarts the fleet or gives up by its own intensity.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, Generic, Literal, TypeVar

from supervisors import REACHED_MAX_RESTART_INTENSITY, ChildSpec, Process
from supervisors.library_logging import get_logger
from tinkex_actors.clients.actor_support import tell_quietly
from tinkex_actors.fleet.worker import Secret

__all__ = ["FleetIntensityError", "RolloutError", "RolloutFleet"]

T = TypeVar("T")
R = TypeVar("R")

Backend = Literal["process", "ray"]
_BACKENDS: Final = ("process", "ray")
INTENSITY_CHECK_S: Final = 0.5

_log = get_logger("tinkex_actors.fleet")
_runs = itertools.count(1)


class RolloutError(RuntimeError):
    """A rollout failed: `index` is its position in the batch, the cause is chained."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"rollout {index} failed: {cause!r}")
        self.index = index


class FleetIntensityError(RuntimeError):
    """Workers restarted more than `max_restarts` times within `max_seconds`."""


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class RolloutFleet(Generic[T, R]):
    """A pool of workers running `rollout(sampler, item)` with fleet-wide backpressure.

    `sampler`: a SamplingClient or its handle string. `backend`: "process" (this machine, no
    Ray) or "ray" (the Ray runtime already initialised, or a local one). `concurrency`:
    rollouts a worker runs at once. `max_in_flight_requests` / `max_in_flight_bytes` cap the
    fleet's sampling requests and estimated prompt bytes in flight (default: the server's
    flags). `api_key`: given to the workers (default: their own TINKER_API_KEY).
    `ray_options`: extra options for the worker actors (e.g. `num_cpus`, `resources`).
    """

    def __init__(
        self,
        sampler: Any,
        rollout: Callable[[Any, T], R],
        *,
        backend: Backend = "process",
        workers: int = 4,
        concurrency: int = 4,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        max_in_flight_requests: int | None = None,
        max_in_flight_bytes: int | None = None,
        api_key: str | None = None,
        ray_options: dict[str, Any] | None = None,
    ) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend={backend!r} is not valid; use 'process' or 'ray'")
        if not callable(rollout):
            raise TypeError("rollout must be a function rollout(sampler, item) -> result")
        handle = sampler if isinstance(sampler, str) else sampler.get_sampler_handle()
        from tinkex_actors.clients.sampler_handle import parse_handle

        parse_handle(handle)  # a clear error now, not in every worker
        self._handle = handle
        self._rollout = rollout
        self.backend_name: Backend = backend
        self.workers = _check_int("workers", workers, 1)
        self.concurrency = _check_int("concurrency", concurrency, 1)
        self.max_restarts = _check_int("max_restarts", max_restarts, 0)
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float) or (
            max_seconds <= 0
        ):
            raise ValueError(f"max_seconds must be seconds > 0, got {max_seconds!r}")
        self.max_seconds = float(max_seconds)
        self._coordinator_args = {
            "max_requests": max_in_flight_requests,
            "max_bytes": max_in_flight_bytes,
        }
        self._api_key = Secret(api_key)
        self._ray_options = ray_options
        self._backend: Any = None
        self._process: Any = None  # the FleetProcess supervising this fleet, if any
        self._lock = threading.Lock()
        self._running = threading.Condition(self._lock)
        self.generation = 0
        """How many times this fleet was started (a supervisor's restart adds one)."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RolloutFleet[T, R]:
        """Start the coordinator and the workers; returns once every worker is ready."""
        with self._lock:
            if self._backend is not None:
                return self
            backend: Any
            if self.backend_name == "ray":
                from tinkex_actors.fleet._ray import RayBackend

                backend = RayBackend(
                    workers=self.workers,
                    concurrency=self.concurrency,
                    max_restarts=self.max_restarts,
                    coordinator_args=self._coordinator_args,
                    actor_options=self._ray_options,
                )
            else:
                from tinkex_actors.fleet._process import ProcessBackend

                backend = ProcessBackend(
                    workers=self.workers,
                    concurrency=self.concurrency,
                    coordinator_args=self._coordinator_args,
                )
            try:
                backend.start(self._handle, self._rollout, self._api_key)
            except BaseException:
                backend.close()
                raise
            self._backend = backend
            self.generation += 1
            self._running.notify_all()
            return self

    def wait_started(self, after: int, timeout_s: float) -> int:
        """Wait until the fleet runs with a generation above `after` (e.g. restarted by its
        supervisor); returns that generation. TimeoutError after `timeout_s`."""
        with self._running:
            if not self._running.wait_for(
                lambda: self._backend is not None and self.generation > after, timeout_s
            ):
                raise TimeoutError(f"the fleet did not start (again) within {timeout_s} s")
            return self.generation

    def close(self) -> None:
        """Stop the workers (their leases go back) and the coordinator. Idempotent."""
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    def __enter__(self) -> RolloutFleet[T, R]:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RolloutFleet(backend={self.backend_name!r}, workers={self.workers}, "
            f"concurrency={self.concurrency}, running={self._backend is not None})"
        )

    def child_spec(self, id: Hashable = "rollout_fleet") -> ChildSpec:
        """A ChildSpec for a supervision tree: its process starts the fleet and closes it."""
        return ChildSpec(id=id, start=lambda: FleetProcess.start(self), name=id)

    # -- running -----------------------------------------------------------------------------

    @property
    def backend(self) -> Any:
        """The running backend (for tests and benchmarks); RuntimeError if not started."""
        backend = self._backend
        if backend is None:
            raise RuntimeError("the fleet is not running; call start() or use it in a with block")
        return backend

    def run(
        self,
        items: Sequence[T],
        *,
        progress: Callable[[int, int], object] | None = None,
        timeout_s: float = 3600.0,
    ) -> list[R]:
        """Run the rollout on every item; the results in the order of `items`.

        `progress(done, total)` is called in this thread after each rollout completes.
        Raises `RolloutError` (the first failed rollout), `FleetIntensityError`, or
        TimeoutError after `timeout_s`.
        """
        backend = self.backend
        items = list(items)
        total = len(items)
        run_id = next(_runs)
        results: dict[int, R] = {}
        failed: list[RolloutError] = []
        done: list[int] = []
        changed = threading.Condition()
        pending = list(range(total - 1, -1, -1))
        in_flight = [0] * self.workers

        def finished(worker: int, index: int, future: concurrent.futures.Future[Any]) -> None:
            with changed:
                in_flight[worker] -= 1
                error = future.exception() if not future.cancelled() else None
                if future.cancelled():
                    failed.append(RolloutError(index, concurrent.futures.CancelledError()))
                elif error is not None:
                    failed.append(RolloutError(index, error))
                    failed[-1].__cause__ = error
                elif index not in results:  # a rollout counts once
                    results[index] = future.result()[1]
                    done.append(index)
                changed.notify_all()

        def assign() -> list[tuple[int, int]]:
            chosen = []
            for worker in range(self.workers):
                while pending and in_flight[worker] < self.concurrency:
                    in_flight[worker] += 1
                    chosen.append((worker, pending.pop()))
            return chosen

        # Never hold `changed` while calling the backend: Ray runs the done callbacks on its
        # own IO thread, which a call waiting on that thread would then deadlock.
        deadline = time.monotonic() + timeout_s
        reported = 0
        checked = time.monotonic()
        while True:
            with changed:
                chosen = [] if failed else assign()
            for worker, index in chosen:
                future = backend.submit(worker, (run_id, index), items[index])
                future.add_done_callback(lambda f, w=worker, i=index: finished(w, i, f))
            with changed:
                left = deadline - time.monotonic()
                if len(done) == reported and not failed and len(results) < total:
                    if left <= 0:
                        raise TimeoutError(
                            f"{total - len(results)} of {total} rollouts unfinished after "
                            f"{timeout_s} s; raise timeout_s"
                        )
                    changed.wait(min(left, INTENSITY_CHECK_S))
                now_done = len(done)
                complete = len(results) == total
                first = min(failed, key=lambda e: e.index) if failed else None
            if first is not None:
                raise first
            if progress is not None:
                for count in range(reported + 1, now_done + 1):
                    progress(count, total)
            reported = now_done
            if complete or time.monotonic() - checked >= INTENSITY_CHECK_S:
                self._check_intensity()
                checked = time.monotonic()
            if complete:
                return [results[i] for i in range(total)]

    def _check_intensity(self) -> None:
        restarts = self.backend.call("restarts_within", self.max_seconds)
        if restarts > self.max_restarts:
            error = FleetIntensityError(
                f"{restarts} worker restarts within {self.max_seconds} s (max_restarts="
                f"{self.max_restarts}); the fleet gives up ({REACHED_MAX_RESTART_INTENSITY})"
            )
            if self._process is not None:
                tell_quietly(self._process, error)
            raise error

    def stats(self) -> dict[str, Any]:
        """The coordinator's counters and every worker's (pid, CPU seconds, leases)."""
        backend = self.backend
        return {"coordinator": backend.call("stats"), "workers": backend.worker_stats()}


class FleetProcess(Process):
    """The fleet as a child of a supervision tree: starts it in init, closes it on exit,
    and crashes with the `FleetIntensityError` when its workers restarted too often."""

    start_timeout_s = 55.0  # workers spawn and rebuild their samplers (a supervisor waits 60 s)

    def __init__(self, fleet: RolloutFleet[Any, Any]) -> None:
        super().__init__()
        self.fleet = fleet

    def terminate(self, reason: Any) -> None:
        """Close the fleet however the process ends."""
        self.fleet.close()

    def init(self) -> None:
        """Start the fleet (the supervisor's start waits for it)."""
        self.fleet._process = self.actor_ref
        self.fleet.start()

    def on_receive(self, message: Any) -> Any:
        """A `FleetIntensityError` told by the fleet crashes this process, so that its
        supervisor restarts it (a fresh fleet) or gives up by its own intensity."""
        if isinstance(message, FleetIntensityError):
            raise message
        raise TypeError(f"FleetProcess got an unknown message: {message!r}")
