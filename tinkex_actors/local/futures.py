"""Server-side futures: the records behind `retrieve_future` and `retrieve_futures`.

A heavy request (forward_backward, optim_step, save/load, sample, create_model...) is answered at
once with a request_id; the work runs on a worker thread and completes its record later. Pollers
long-poll a record from the server's event loop. Records are completed from any thread: the
waiters are woken with `call_soon_threadsafe`, so a worker never touches the event loop's state.

Completed records are kept for `retention_s` after completion (the service keeps results for a
while, so a client retrying a poll after a dropped connection still finds its answer), then
reaped. A sampling session's completions are also appended to a per-session log with a cursor,
for the batched `retrieve_futures` endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

FutureState = Literal["pending", "completed", "failed"]
ErrorCategory = Literal["user", "server", "unknown"]


@dataclass
class FutureRecord:
    """One server-side future: what it is, and how it ended."""

    request_id: str
    request_type: str
    owner: str
    """The model_id or sampling_session_id whose queue runs this request."""
    created_s: float
    state: FutureState = "pending"
    json_result: Any = None
    """The JSON-able result (a dict), for clients that do not ask for protobuf."""
    proto_result: bytes | None = None
    """The protobuf result, for forward / forward_backward / sample when the client accepts it."""
    error: str | None = None
    category: ErrorCategory | None = None
    finished_s: float | None = None
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)


@dataclass
class Completion:
    """One entry of a sampling session's completion log (for `retrieve_futures`)."""

    cursor: int
    request_id: str
    state: Literal["finished", "failed"]
    payload_size: int | None


class FutureStore:
    """Every server-side future of one server, thread-safe."""

    def __init__(
        self,
        *,
        retention_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, FutureRecord] = {}
        self._by_owner: dict[str, set[str]] = {}
        self._retention_s = retention_s
        self._clock = clock
        self._ids = itertools.count(1)
        self._cursors = itertools.count(1)
        self._logs: dict[str, list[Completion]] = {}
        self._log_waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._acked: dict[str, set[str]] = {}

    def create(self, request_type: str, owner: str, request_id: str | None = None) -> FutureRecord:
        """Make a pending record; a request_id is derived from the owner when not given."""
        with self._lock:
            rid = request_id or f"{owner}:{request_type}:{next(self._ids)}"
            record = FutureRecord(
                request_id=rid, request_type=request_type, owner=owner, created_s=self._clock()
            )
            self._records[rid] = record
            self._by_owner.setdefault(owner, set()).add(rid)
            return record

    def get(self, request_id: str) -> FutureRecord | None:
        """The record, or None when it never existed or was reaped."""
        with self._lock:
            return self._records.get(request_id)

    def complete(
        self, request_id: str, json_result: Any, proto_result: bytes | None = None
    ) -> None:
        """Mark a record completed with its result and wake its pollers (any thread)."""
        self._finish(request_id, "completed", json_result=json_result, proto_result=proto_result)

    def fail(self, request_id: str, error: str, category: ErrorCategory) -> None:
        """Mark a record failed with an error of a category and wake its pollers (any thread)."""
        self._finish(request_id, "failed", error=error, category=category)

    def _finish(
        self,
        request_id: str,
        state: FutureState,
        *,
        json_result: Any = None,
        proto_result: bytes | None = None,
        error: str | None = None,
        category: ErrorCategory | None = None,
    ) -> None:
        with self._lock:
            record = self._records.get(request_id)
            if record is None or record.state != "pending":
                return
            record.state = state
            record.json_result = json_result
            record.proto_result = proto_result
            record.error = error
            record.category = category
            record.finished_s = self._clock()
            waiters, record._waiters = record._waiters, []
            size = len(proto_result) if proto_result is not None else None
            log = self._logs.get(record.owner)
            log_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
            if log is not None:
                log.append(
                    Completion(
                        cursor=next(self._cursors),
                        request_id=request_id,
                        state="finished" if state == "completed" else "failed",
                        payload_size=size,
                    )
                )
                log_waiters = self._log_waiters.pop(record.owner, [])
        for loop, event in [*waiters, *log_waiters]:
            _wake(loop, event)

    async def wait(self, request_id: str, timeout_s: float) -> FutureRecord | None:
        """Wait on the running loop until the record is finished or the timeout passes.

        Returns the record (finished or still pending), or None for an unknown request_id.
        """
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            record = self._records.get(request_id)
            if record is None:
                return None
            if record.state != "pending":
                return record
            record._waiters.append((loop, event))
        try:
            await asyncio.wait_for(event.wait(), timeout=timeout_s)
        except TimeoutError:
            with self._lock:
                if (loop, event) in record._waiters:
                    record._waiters.remove((loop, event))
        return record

    # -- the batched completion log of a sampling session ---------------------------------------

    def open_log(self, owner: str) -> None:
        """Start keeping a completion log for an owner (a sampling session)."""
        with self._lock:
            self._logs.setdefault(owner, [])
            self._acked.setdefault(owner, set())

    def ack(self, owner: str, request_ids: list[str]) -> None:
        """Record that a client fetched these payloads, so their records may be dropped."""
        with self._lock:
            for rid in request_ids:
                record = self._records.get(rid)
                if record is not None and record.owner == owner and record.state != "pending":
                    self._forget(rid)

    async def wait_log(
        self, owner: str, prev_cursor: int | None, timeout_s: float
    ) -> tuple[list[Completion], int] | None:
        """Completions after `prev_cursor`, waiting up to timeout_s for one; None if no log.

        Entries at or before `prev_cursor` are trimmed: the client has seen them.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            event = asyncio.Event()
            with self._lock:
                log = self._logs.get(owner)
                if log is None:
                    return None
                if prev_cursor is not None:
                    log[:] = [c for c in log if c.cursor > prev_cursor]
                fresh = list(log)
                cursor = fresh[-1].cursor if fresh else (prev_cursor or 0)
                if fresh or timeout_s <= 0:
                    return fresh, cursor
                self._log_waiters.setdefault(owner, []).append((loop, event))
            remaining = deadline - loop.time()
            if remaining <= 0:
                return [], cursor
            try:
                await asyncio.wait_for(event.wait(), timeout=remaining)
            except TimeoutError:
                return [], cursor

    # -- housekeeping -----------------------------------------------------------------------------

    def reap(self) -> int:
        """Drop finished records older than the retention; returns how many were dropped."""
        now = self._clock()
        with self._lock:
            old = [
                rid
                for rid, r in self._records.items()
                if r.finished_s is not None and now - r.finished_s > self._retention_s
            ]
            for rid in old:
                self._forget(rid)
            return len(old)

    def drop_owner(self, owner: str, reason: str) -> int:
        """Forget every record and the completion log of an owner (a model or sampler gone).

        Pending records fail with `reason` first, so a poll waiting on one answers at once.
        Returns how many records were dropped.
        """
        wake: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        with self._lock:
            ids = self._by_owner.pop(owner, set())
            for rid in ids:
                record = self._records.pop(rid, None)
                if record is not None and record.state == "pending":
                    record.state, record.error, record.category = "failed", reason, "user"
                    record.finished_s = self._clock()
                    wake += record._waiters
                    record._waiters = []
            self._logs.pop(owner, None)
            self._acked.pop(owner, None)
            wake += self._log_waiters.pop(owner, [])
        for loop, event in wake:
            _wake(loop, event)
        return len(ids)

    def _forget(self, request_id: str) -> None:
        record = self._records.pop(request_id, None)
        if record is not None:
            ids = self._by_owner.get(record.owner)
            if ids is not None:
                ids.discard(request_id)
                if not ids:
                    del self._by_owner[record.owner]

    def waiting_count(self) -> int:
        """How many polls are waiting on a record right now."""
        with self._lock:
            return sum(len(r._waiters) for r in self._records.values())

    def pending_count(self) -> int:
        """How many records are still pending."""
        with self._lock:
            return sum(1 for r in self._records.values() if r.state == "pending")

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    if loop.is_closed():
        return
    # The loop may close between the check and the call: then nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(event.set)
