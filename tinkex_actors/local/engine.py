"""Where the embedded server's work runs: one ordered worker thread per model, a sampling pool.

A training model applies its requests strictly in `seq_id` order: a request that arrives early
waits for its predecessor (up to `gap_timeout_s`, after which the gap is skipped with a warning,
so one lost request cannot wedge a model forever). Requests without a seq_id run in arrival
order. Every applied seq_id is remembered with its request_id, so a resubmission of an applied
step (a client retrying after a lost answer) gets the original future back instead of applying
the step twice. A paused queue (see `faults.py`) holds its worker until resumed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from supervisors.library_logging import get_logger
from tinkex_actors.local.faults import FaultPlan
from tinkex_actors.local.futures import FutureStore
from tinkex_actors.local.model import LoraModel

log = get_logger("tinkex_actors.local")

Job = Callable[[], tuple[Any, bytes | None]]
"""Work that returns (JSON result, protobuf result or None); raises to fail its future."""


class UserError(ValueError):
    """A request the client got wrong: its future fails with category `user`."""


@dataclass
class _Queued:
    request_id: str | None
    """None for a seq_id whose request was refused before queueing: nothing to run."""
    job: Job


def _nothing() -> tuple[Any, bytes | None]:
    return None, None


def run_job(store: FutureStore, request_id: str, job: Job) -> None:
    """Run a job and settle its future: completed, or failed as user or server error."""
    try:
        json_result, proto_result = job()
    except ValueError as exc:  # UserError included: the request was wrong
        store.fail(request_id, f"{type(exc).__name__}: {exc}", "user")
    except Exception as exc:
        log.exception("job_crashed", request_id=request_id)
        store.fail(request_id, f"internal error: {type(exc).__name__}: {exc}", "server")
    else:
        store.complete(request_id, json_result, proto_result)


class OrderedWorker:
    """One owner's queue: jobs run one at a time, in seq_id order, on a dedicated thread."""

    def __init__(
        self,
        owner: str,
        kind: str,
        store: FutureStore,
        faults: FaultPlan,
        *,
        first_seq_id: int = 1,
        gap_timeout_s: float = 30.0,
        applied_capacity: int = 10_000,
    ) -> None:
        self.owner = owner
        self.kind = kind
        self._store = store
        self._faults = faults
        self._cond = threading.Condition()
        self._pending: dict[int, _Queued] = {}
        self._fifo: list[_Queued] = []
        self._expected = first_seq_id
        self._applied: OrderedDict[int, str] = OrderedDict()
        self._applied_capacity = applied_capacity
        self._gap_timeout_s = gap_timeout_s
        self._stopping = False
        self._thread = threading.Thread(
            target=self._loop, name=f"tinkex-local:{owner}", daemon=True
        )
        self._thread.start()

    def known(self, seq_id: int) -> str | None:
        """The request_id already given to a seq_id (applied or queued), if any."""
        with self._cond:
            if seq_id in self._applied:
                return self._applied[seq_id]
            queued = self._pending.get(seq_id)
            return queued.request_id if queued is not None else None

    def consume(self, seq_id: int) -> None:
        """Count `seq_id` as used by a request refused before queueing.

        Its successors then run at once instead of waiting `gap_timeout_s` for it.
        """
        with self._cond:
            if self._stopping or seq_id < self._expected or seq_id in self._pending:
                return
            self._pending[seq_id] = _Queued(None, _nothing)
            self._cond.notify_all()

    def submit(self, seq_id: int | None, request_id: str, job: Job) -> None:
        """Queue a job; a seq_id below the next expected one is refused (UserError)."""
        with self._cond:
            if self._stopping:
                raise UserError(f"model {self.owner} is unloaded; create a new one")
            if seq_id is None:
                self._fifo.append(_Queued(request_id, job))
            else:
                if seq_id < self._expected or seq_id in self._pending:
                    raise UserError(
                        f"seq_id {seq_id} was already used on {self.owner} (next is "
                        f"{self._expected}); send each request with the next seq_id"
                    )
                self._pending[seq_id] = _Queued(request_id, job)
            self._cond.notify_all()

    def _next(self) -> tuple[int | None, _Queued] | None:
        gap_since: float | None = None
        with self._cond:
            while True:
                if self._stopping and not self._pending and not self._fifo:
                    return None
                if self._expected in self._pending:
                    seq = self._expected
                    self._expected += 1
                    return seq, self._pending.pop(seq)
                if self._fifo:
                    return None, self._fifo.pop(0)
                if self._pending:
                    now = time.monotonic()
                    gap_since = gap_since or now
                    if now - gap_since >= self._gap_timeout_s or self._stopping:
                        skipped_to = min(self._pending)
                        log.warning(
                            "seq_id_gap_skipped",
                            owner=self.owner,
                            missing=self._expected,
                            next=skipped_to,
                        )
                        self._expected = skipped_to
                        continue
                    self._cond.wait(self._gap_timeout_s - (now - gap_since))
                else:
                    gap_since = None
                    self._cond.wait(1.0)

    def _loop(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            seq, queued = item
            if queued.request_id is None:
                continue
            while not self._faults.wait_resumed(self.kind, self.owner, 0.5):
                with self._cond:
                    if self._stopping:
                        break
            if seq is not None:
                with self._cond:
                    self._applied[seq] = queued.request_id
                    while len(self._applied) > self._applied_capacity:
                        self._applied.popitem(last=False)
            run_job(self._store, queued.request_id, queued.job)

    @property
    def alive(self) -> bool:
        """Whether the worker thread still runs."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)


@dataclass
class ModelEntry:
    """A training model on the server."""

    model_id: str
    session_id: str
    base_model: str
    model: LoraModel
    worker: OrderedWorker
    user_metadata: dict[str, Any] | None = None
    created_s: float = field(default_factory=time.time)
    last_request_s: float = field(default_factory=time.time)


@dataclass
class SamplerEntry:
    """A sampling session: a frozen copy of some weights to sample from."""

    sampling_session_id: str
    session_id: str
    base_model: str
    model_path: str | None
    model: LoraModel
    clients: int = 1
    """How many clients joined (clone ids handed out by join_sampling_session)."""
    seen_seq_ids: dict[int, str] = field(default_factory=dict)


class SamplingPool:
    """A small thread pool running sample requests (sampling has no order to keep)."""

    def __init__(self, store: FutureStore, faults: FaultPlan, max_workers: int = 4) -> None:
        self._store = store
        self._faults = faults
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="tinkex-local-sample"
        )

    def submit(self, owner: str, request_id: str, job: Job) -> None:
        """Run a sampling job on the pool, after any pause of its queue."""

        def run() -> None:
            while not self._faults.wait_resumed("sampling", owner, 0.5):
                if self._stopping.is_set():
                    break
            run_job(self._store, request_id, job)

        self._pool.submit(run)

    def stop(self) -> None:
        """Stop taking work and wait for running jobs."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
