"""TaskSupervisor: run functions as supervised, temporary processes and get futures back.

``run(sup, fn, *args)`` starts ``fn(*args)`` in a new temporary child process of the task
supervisor and returns a pykka ``Future``. A crash of ``fn`` becomes the future's exception;
the supervisor lives on (temporary children are never restarted, so a crash does not count
against restart intensity). ``map_unordered(sup, fn, items, max_concurrency=...)`` yields
results as they complete, with at most ``max_concurrency`` tasks running.

Differences from Elixir's ``Task.Supervisor``:

- Tasks are not linked to the caller: a caller that dies does not take its tasks down.
- If the supervisor stops while a task runs, the task gets its shutdown timeout, is then
  abandoned (``Killed``), and its future fails with ``ActorDeadError``.
- Each task is one thread, started and ended with the task; for large numbers of short
  items, batch them (``map_unordered`` bounds how many run at once).
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from pykka import ActorDeadError, ActorRef, Future, ThreadingFuture

from supervisors import _watch
from supervisors._base import _Call
from supervisors._process import Process
from supervisors._reasons import Crashed, ExitReason, Normal
from supervisors.dynamic import DynamicSupervisor
from supervisors.spec import ChildSpec, Restart

__all__ = ["TaskSupervisor", "map_unordered", "run"]

T = TypeVar("T")
Done = Callable[[bool, Any], None]


class _Once:
    """Calls the wrapped completion callback at most once, from any thread."""

    __slots__ = ("_done", "_fired", "_lock")

    def __init__(self, done: Done) -> None:
        self._done = done
        self._lock = threading.Lock()
        self._fired = False

    def __call__(self, ok: bool, value: Any) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
        self._done(ok, value)


class _Go:
    pass


_GO = _Go()


class _Task(Process):
    """One task: runs ``fn`` once, reports through ``done``, then exits."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], done: _Once) -> None:
        super().__init__()
        self._fn = fn
        self._args = args
        self._done = done

    def init(self) -> None:
        self.actor_ref.tell(_GO)

    def on_receive(self, message: Any) -> Any:
        if message is not _GO:
            return super().on_receive(message)
        try:
            value = self._fn(*self._args)
        except Exception as exc:
            self._done(False, exc)
            self.exit(Crashed(exc))
        else:
            self._done(True, value)
            self.exit(Normal())
        return None


class TaskSupervisor(DynamicSupervisor):
    """A DynamicSupervisor of temporary task processes; use ``run`` and ``map_unordered``.

    ``shutdown_s`` is how long a running task may take to finish when the supervisor stops.
    """

    def __init__(self, *, shutdown_s: float = 5.0, **options: Any) -> None:
        super().__init__(**options)
        self._spec_shutdown = shutdown_s
        ChildSpec(id="task", start=lambda: None, shutdown=shutdown_s)  # validates shutdown_s

    def _call_run(self, fn: Callable[..., Any], args: tuple[Any, ...], done: _Once) -> None:
        spec = ChildSpec(
            id=getattr(fn, "__name__", "task"),
            start=functools.partial(_Task.start, fn, args, done),
            restart=Restart.TEMPORARY,
            shutdown=self._spec_shutdown,
        )
        ref = self._call_start_child(spec)
        if ref is not None:
            _watch_task(ref, done)


def _watch_task(ref: ActorRef[Any], done: _Once) -> None:
    def on_death(reason: ExitReason) -> None:
        done(False, ActorDeadError(f"task {ref} ended with {reason!r} before reporting"))

    if _watch.add_callback(ref, on_death) is None:
        on_death(Normal())


def _submit(sup: ActorRef[Any], fn: Callable[..., Any], args: tuple[Any, ...], done: _Once,
            timeout_s: float) -> None:
    try:
        sup.ask(_Call("run", (fn, args, done)), timeout=timeout_s)
    except Exception as exc:
        done(False, exc)


def run(
    sup: ActorRef[Any], fn: Callable[..., T], *args: Any, timeout_s: float = 30.0
) -> Future[T]:
    """Run ``fn(*args)`` as a task of ``sup``; its result or exception arrives in the future.

    Waits at most ``timeout_s`` for the task to be started; a start failure or a dead
    supervisor also ends up as the future's exception.
    """
    future: ThreadingFuture[T] = ThreadingFuture()

    def complete(ok: bool, value: Any) -> None:
        if ok:
            future.set(value)
        else:
            future.set_exception(exc_info=(type(value), value, value.__traceback__))

    _submit(sup, fn, args, _Once(complete), timeout_s)
    return future


def map_unordered(
    sup: ActorRef[Any],
    fn: Callable[[Any], T],
    items: Iterable[Any],
    *,
    max_concurrency: int,
    timeout_s: float = 60.0,
) -> Iterator[T]:
    """Yield ``fn(item)`` for every item in completion order, ``max_concurrency`` at a time.

    The first task exception is raised from the iterator (tasks already running finish on
    their own). Waiting for any one result is bounded by ``timeout_s`` (``TimeoutError``).
    """
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or (
        max_concurrency < 1
    ):
        raise ValueError(f"max_concurrency={max_concurrency!r} is not valid; pass an int >= 1")
    results: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    pending = iter(items)
    running = 0

    def submit_next() -> bool:
        nonlocal running
        for item in pending:
            _submit(sup, fn, (item,), _Once(lambda ok, v: results.put((ok, v))), timeout_s)
            running += 1
            return True
        return False

    for _ in range(max_concurrency):
        if not submit_next():
            break
    while running:
        try:
            ok, value = results.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(
                f"no task of map_unordered finished within timeout_s={timeout_s}; raise it "
                "for slow functions"
            ) from None
        running -= 1
        if not ok:
            raise value
        yield value
        submit_next()
