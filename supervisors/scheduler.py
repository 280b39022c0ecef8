"""A shared pool of worker threads for pooled processes (``Process.pooled = True``).

A thread per actor is simple and fair, but a service with thousands of light actors (one per
model or sampler, mostly idle) pays for thousands of threads: memory, and the interpreter's
switching between them. Erlang runs many processes on a few schedulers; ``Scheduler`` does the
same for processes that opt in:

- A pooled process owns no thread. When its mailbox goes from empty to non-empty it is put on
  the scheduler's run queue; a worker takes it and handles up to ``slice_messages`` messages,
  then puts it back at the end of the queue if more are waiting. A process is never on two
  workers at once, so its handlers still run one at a time, in mailbox order.
- Workers start on demand, up to ``workers``, and all of them end once no pooled process of
  this scheduler is alive: a test that stopped its actors leaves no thread behind.
- A handler that blocks holds its worker. When work waits, no worker is idle and a handler
  has run for ``stall_s`` (0.5 s), a watchdog lends the pool one more worker until that
  handler returns; killing a process whose handler is stuck does the same at once. So a
  handler waiting on a child's start, or stuck for good, cannot starve the other processes.
- Rule for pooled code: handlers should not block (no I/O, no long waits on other actors):
  a blocked handler costs a thread after all, and whatever queued behind it waits up to
  ``stall_s``. ``init`` runs on a worker too. Supervisors stay thread-based because stopping
  children waits.

``default_scheduler()`` is the process-wide scheduler used when a class names none.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from supervisors._logging import get_logger

__all__ = ["Scheduler", "default_scheduler"]

_log = get_logger("supervisors")

_IDLE_CHECK_S = 1.0
"""A worker waiting for work looks again at least this often (it is normally woken at once)."""


class Scheduler:
    """Runs pooled processes' work items on at most ``workers`` threads (see the module doc)."""

    def __init__(
        self, workers: int, *, name: str = "supervisors-pool", stall_s: float = 0.5
    ) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"Scheduler(workers={workers!r}): pass a whole number >= 1")
        if not isinstance(stall_s, int | float) or isinstance(stall_s, bool) or stall_s <= 0:
            raise ValueError(f"Scheduler(stall_s={stall_s!r}): pass seconds > 0")
        self.workers = workers
        self.name = name
        self.stall_s = float(stall_s)
        self._watchdog_stop = threading.Event()
        self._watchdog_stop.set()  # no watchdog yet
        self._cond = threading.Condition(threading.Lock())
        self._ready: deque[_Item] = deque()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._members = 0
        self._running: dict[threading.Thread, tuple[object, float]] = {}
        """Busy workers: the owner of the item each runs, and since when (monotonic)."""
        self._lent: set[threading.Thread] = set()
        self._counter = itertools.count(1)

    # -- membership -------------------------------------------------------------------------

    def join(self) -> None:
        """A pooled process starts: workers stay up while any member lives."""
        with self._cond:
            self._members += 1

    def leave(self) -> None:
        """A pooled process ended; with the last one gone, idle workers end."""
        with self._cond:
            self._members -= 1
            if self._members <= 0:
                self._members = 0
                self._cond.notify_all()
                self._watchdog_stop.set()

    # -- work -------------------------------------------------------------------------------

    def submit(self, work: Callable[[], None], owner: object) -> None:
        """Queue ``work`` (a slice of ``owner``'s mailbox); a worker runs it soon, in order."""
        with self._cond:
            self._ready.append(_Item(work, owner))
            # Always wake a sleeping worker: a busy one may be waiting on this very item (a
            # pooled handler asking a supervisor to start a pooled child).
            if self._idle > 0:
                self._cond.notify()
            elif len(self._threads) < self.workers + len(self._lent):
                self._spawn()

    def lend_worker_for(self, owner: object) -> None:
        """``owner`` was killed: if a worker is stuck in its handler, add one until it returns."""
        with self._cond:
            for thread, (running, _since) in self._running.items():
                if running is owner and thread not in self._lent:
                    self._lend(thread)
                    return

    def _lend(self, thread: threading.Thread) -> None:
        """Count a worker held by a handler as lent (call with the lock held), and start a
        replacement if work is waiting and nobody is idle to take it."""
        self._lent.add(thread)
        if self._ready and self._idle == 0 and len(self._threads) < self.workers + len(self._lent):
            _log.debug("scheduler_worker_added", scheduler=self.name, lent=len(self._lent))
            self._spawn()

    def stats(self) -> dict[str, int]:
        """Workers alive, idle, lent for stuck handlers; members alive; items queued."""
        with self._cond:
            return {
                "workers": len(self._threads),
                "idle": self._idle,
                "lent": len(self._lent),
                "members": self._members,
                "queued": len(self._ready),
            }

    def _spawn(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{next(self._counter)}", daemon=True
        )
        self._threads.add(thread)
        thread.start()
        if self._watchdog_stop.is_set():
            self._watchdog_stop = threading.Event()
            watchdog = threading.Thread(
                target=self._watch,
                args=(self._watchdog_stop,),
                name=f"{self.name}-watchdog",
                daemon=True,
            )
            watchdog.start()

    def _watch(self, stop: threading.Event) -> None:
        """While members live: when work waits, no worker is idle and some handler has run
        for ``stall_s``, count that worker as lent and start another (handlers that block,
        e.g. on a child's start, then cannot starve the pool)."""
        while not stop.wait(self.stall_s):
            with self._cond:
                if not self._ready or self._idle > 0:
                    continue
                now = time.monotonic()
                stalled = [
                    t for t, (_, since) in self._running.items() if now - since >= self.stall_s
                ]
                for thread in stalled:
                    if thread not in self._lent:
                        self._lend(thread)

    def _work(self) -> None:
        me = threading.current_thread()
        cond = self._cond
        while True:
            with cond:
                while not self._ready:
                    if self._members == 0 or len(self._threads) > self.workers + len(self._lent):
                        self._threads.discard(me)
                        return
                    self._idle += 1
                    cond.wait(_IDLE_CHECK_S)
                    self._idle -= 1
                item = self._ready.popleft()
                self._running[me] = (item.owner, time.monotonic())
            try:
                item.work()
            except BaseException as exc:  # a work item handles its own errors; this is a bug
                _log.error("scheduler_work_failed", scheduler=self.name, error=repr(exc))
            finally:
                with cond:
                    del self._running[me]
                    self._lent.discard(me)


class _Item:
    __slots__ = ("owner", "work")

    def __init__(self, work: Callable[[], None], owner: object) -> None:
        self.work = work
        self.owner = owner


_default: Scheduler | None = None
_default_lock = threading.Lock()


def default_scheduler() -> Scheduler:
    """The process-wide scheduler: ``SUPERVISORS_POOL_WORKERS`` workers, else 2x CPUs (2..16)."""
    global _default
    with _default_lock:
        if _default is None:
            raw = os.environ.get("SUPERVISORS_POOL_WORKERS", "")
            if raw:
                try:
                    workers = int(raw)
                except ValueError:
                    raise ValueError(
                        f"SUPERVISORS_POOL_WORKERS={raw!r} is not a whole number; "
                        "set it to a number of threads >= 1 or unset it"
                    ) from None
            else:
                workers = max(2, min(16, 2 * (os.cpu_count() or 1)))
            _default = Scheduler(workers, name="supervisors-pool")
        return _default
