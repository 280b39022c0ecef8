"""The process backend: the coordinator in a manager process, workers in spawned processes.

The same `FleetWorker` as on Ray, without Ray. A worker process that dies is started again
(its `hello` to the coordinator frees the dead one's leases and counts the restart) and is
sent the rollouts the dead one had not finished, each at most once more: the restart and the
single re-run that Ray's `max_restarts` / `max_task_retries=1` give the Ray backend.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.connection
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from typing import Any, Final

from supervisors.library_logging import get_logger
from tinkex_actors.fleet.coordinator import FleetCoordinator
from tinkex_actors.fleet.worker import FleetWorker, Secret

START_TIMEOUT_S: Final = 120.0
CALL_TIMEOUT_S: Final = 30.0

_log = get_logger("tinkex_actors.fleet")


class WorkerDiedError(RuntimeError):
    """A rollout's worker died twice while running it (once is re-run, twice is an error)."""


class _Manager(BaseManager):
    pass


_Manager.register("FleetCoordinator", FleetCoordinator)


def _child_main(
    worker: int,
    handle: str,
    rollout: Callable[[Any, Any], Any],
    coordinator: Any,
    api_key: Secret,
    conn: multiprocessing.connection.Connection,
    concurrency: int,
) -> None:
    """A worker process: run rollouts sent over `conn` on `concurrency` threads."""

    def call(method: str, *args: Any) -> Any:
        return getattr(coordinator, method)(*args)

    fleet_worker = FleetWorker(worker, handle, rollout, call, api_key)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    def run(rollout_id: Hashable, item: Any) -> None:
        try:
            result = fleet_worker.run(rollout_id, item)[1]
        except BaseException as exc:
            try:
                send(("done", rollout_id, False, exc))
            except Exception:  # the exception does not pickle: send its text
                send(("done", rollout_id, False, RuntimeError(repr(exc))))
            return
        send(("done", rollout_id, True, result))

    send(("ready", fleet_worker.stats()))
    with concurrent.futures.ThreadPoolExecutor(concurrency, "fleet-rollout") as pool:
        try:
            while True:
                message = conn.recv()
                if message[0] == "run":
                    pool.submit(run, message[1], message[2])
                elif message[0] == "stats":
                    send(("stats", message[1], fleet_worker.stats()))
                else:
                    break
        except EOFError:
            pass
    fleet_worker.close()
    send(("closed",))


@dataclass
class _Job:
    rollout_id: Hashable
    item: Any
    future: concurrent.futures.Future[Any]
    attempts: int = 1


class _ProcWorker:
    """The parent's side of one worker process, across its restarts."""

    def __init__(self, backend: ProcessBackend, index: int) -> None:
        self.backend = backend
        self.index = index
        self.lock = threading.Lock()
        self.jobs: dict[Hashable, _Job] = {}
        self.stats_waiters: dict[int, concurrent.futures.Future[Any]] = {}
        self.process: Any = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.reader: threading.Thread | None = None
        self.closing = False
        self.closed = threading.Event()

    def spawn(self) -> None:
        b = self.backend
        parent, child = b.ctx.Pipe()
        process = b.ctx.Process(
            target=_child_main,
            args=(self.index, b.handle, b.rollout, b.coordinator, b.api_key, child, b.concurrency),
            name=f"tinkex-fleet-worker-{self.index}",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            process.kill()
            process.join(CALL_TIMEOUT_S)
            raise TimeoutError(f"fleet worker {self.index} did not start in {START_TIMEOUT_S} s")
        try:
            ready = parent.recv()
        except EOFError:
            process.join(CALL_TIMEOUT_S)
            raise RuntimeError(
                f"fleet worker {self.index} exited during start (exit code "
                f"{process.exitcode}); see its stderr"
            ) from None
        assert ready[0] == "ready"
        self.process, self.conn = process, parent
        self.closed.clear()
        self.reader = threading.Thread(
            target=self._read, args=(process, parent), name=f"fleet-reader-{self.index}",
            daemon=True,
        )
        self.reader.start()

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock:
            conn = self.conn
            if conn is None:
                return  # restarting: the job is re-sent by _died
            try:
                conn.send(message)
            except OSError:
                return  # the reader sees the death and re-sends

    def _read(self, process: Any, conn: multiprocessing.connection.Connection) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "done":
                with self.lock:
                    job = self.jobs.pop(message[1], None)
                if job is not None:
                    if message[2]:
                        job.future.set_result((message[1], message[3]))
                    else:
                        job.future.set_exception(message[3])
            elif message[0] == "stats":
                with self.lock:
                    waiter = self.stats_waiters.pop(message[1], None)
                if waiter is not None:
                    waiter.set_result(message[2])
            elif message[0] == "closed":
                break
        conn.close()
        process.join(CALL_TIMEOUT_S)
        self.closed.set()
        if not self.closing:
            self._died(process.exitcode)

    def _died(self, exitcode: int | None) -> None:
        _log.warning("fleet_worker_died", worker=self.index, exitcode=exitcode)
        with self.lock:
            self.conn = None
            jobs = list(self.jobs.values())
        try:
            self.spawn()
        except BaseException as exc:
            for job in jobs:
                self.jobs.pop(job.rollout_id, None)
                job.future.set_exception(exc)
            return
        for job in jobs:
            if job.attempts >= 2:
                with self.lock:
                    self.jobs.pop(job.rollout_id, None)
                job.future.set_exception(
                    WorkerDiedError(
                        f"rollout {job.rollout_id!r}: its worker died on the re-run too"
                    )
                )
            else:
                job.attempts += 1
                self.send(("run", job.rollout_id, job.item))

    def stop(self) -> None:
        self.closing = True
        self.send(("close",))
        if not self.closed.wait(CALL_TIMEOUT_S) and self.process is not None:
            self.process.kill()
        if self.reader is not None:
            self.reader.join(CALL_TIMEOUT_S)
        for job in list(self.jobs.values()):
            job.future.cancel()


class ProcessBackend:
    """Coordinator and workers as processes of this machine (no Ray needed)."""

    def __init__(self, *, workers: int, concurrency: int, coordinator_args: dict[str, Any]) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.count = workers
        self.concurrency = concurrency
        self.coordinator_args = coordinator_args
        self.manager: _Manager | None = None
        self.coordinator: Any = None
        self.workers: list[_ProcWorker] = []
        self.handle = ""
        self.rollout: Callable[[Any, Any], Any] | None = None
        self.api_key = Secret(None)
        self._stats_ids = iter(range(1 << 62))

    def call(self, method: str, *args: Any) -> Any:
        """Call the coordinator and wait for the answer."""
        return getattr(self.coordinator, method)(*args)

    def pids(self) -> list[int]:
        """The worker processes' pids (for tests that kill one)."""
        return [w.process.pid for w in self.workers if w.process is not None]

    def start(self, handle: str, rollout: Callable[[Any, Any], Any], api_key: Secret) -> None:
        """Start the coordinator's manager process, then the workers, in parallel."""
        self.handle, self.rollout, self.api_key = handle, rollout, api_key
        manager = _Manager(ctx=self.ctx)
        manager.start()
        self.manager = manager
        self.coordinator = self.manager.FleetCoordinator(**self.coordinator_args)  # type: ignore[attr-defined]
        self.workers = [_ProcWorker(self, i) for i in range(self.count)]
        with concurrent.futures.ThreadPoolExecutor(self.count) as pool:
            for done in [pool.submit(w.spawn) for w in self.workers]:
                done.result()

    def submit(
        self, worker: int, rollout_id: Hashable, item: Any
    ) -> concurrent.futures.Future[Any]:
        """Run one rollout on a worker; the Future gives (rollout_id, result)."""
        w = self.workers[worker]
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with w.lock:
            w.jobs[rollout_id] = _Job(rollout_id, item, future)
        w.send(("run", rollout_id, item))
        return future

    def worker_stats(self) -> list[dict[str, Any]]:
        """Every worker's stats."""
        waiters = []
        for w in self.workers:
            token = next(self._stats_ids)
            waiter: concurrent.futures.Future[Any] = concurrent.futures.Future()
            with w.lock:
                w.stats_waiters[token] = waiter
            w.send(("stats", token))
            waiters.append(waiter)
        return [f.result(CALL_TIMEOUT_S) for f in waiters]

    def close(self) -> None:
        """Close the workers (leases back), then the manager process."""
        try:
            for w in self.workers:
                w.stop()
        finally:
            self.workers = []
            if self.manager is not None:
                self.manager.shutdown()
                self.manager = None
