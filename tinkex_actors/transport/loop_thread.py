"""One asyncio event loop in its own thread, fed coroutines from any thread.

Callers get a `concurrent.futures.Future` at once; the coroutine runs on the
loop. Submissions are batched: while a hand-off is pending, further submits
only join a queue, so a burst of N submits costs one loop wake-up, not N.

`close()` cancels what is in flight (it fails with `ClientClosedError`), runs the
owner's cleanup coroutine, and joins the thread. A forgotten `close()` never keeps
the interpreter alive: every loop still open is closed (bounded, quietly) by a
`threading` exit hook, which Python runs when the main thread ends and before it
joins the other (non-daemon) threads; as a last net the loop also stops itself
once the main thread has finished.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from tinkex_actors.errors import ClientClosedError

__all__ = ["LoopThread", "run_at_exit"]

T = TypeVar("T")
_MAIN_THREAD_CHECK_S: Final = 1.0
_EXIT_CLOSE_S: Final = 1.0
"""How long the exit hook gives each loop still open to close."""

_open_loops: weakref.WeakSet[LoopThread] = weakref.WeakSet()
_exit_hooks_lock = threading.Lock()
_exit_hooks: list[Callable[[], None]] = []
_hook_installed = False


def run_at_exit(hook: Callable[[], None]) -> None:
    """Run `hook` when the main thread ends, before Python joins the remaining threads and
    before any loop still open is closed (hooks run newest first); it must be bounded."""
    with _exit_hooks_lock:
        if hook not in _exit_hooks:
            _exit_hooks.append(hook)
    _install_exit_hook()


def _install_exit_hook() -> None:
    global _hook_installed
    with _exit_hooks_lock:
        if _hook_installed:
            return
        _hook_installed = True
    # The hook of `threading._shutdown`, as concurrent.futures uses: plain `atexit` runs
    # only after every non-daemon thread was joined, too late to stop ours. It refuses
    # (RuntimeError) once the interpreter is shutting down.
    with contextlib.suppress(RuntimeError):
        threading._register_atexit(_at_exit)  # type: ignore[attr-defined]


def _at_exit() -> None:
    with _exit_hooks_lock:
        hooks = list(reversed(_exit_hooks))
    for hook in hooks:
        with contextlib.suppress(Exception):
            hook()
    for runner in list(_open_loops):
        with contextlib.suppress(Exception):
            runner.close(_EXIT_CLOSE_S)

_Start = Callable[[], Coroutine[Any, Any, Any]]
_Item = tuple[_Start, "concurrent.futures.Future[Any]", str]


class LoopThread:
    """The loop, its thread, and the queue of work handed to it."""

    def __init__(
        self, name: str, *, cleanup: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._name = name
        self._cleanup = cleanup
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._inbox: collections.deque[_Item] = collections.deque()
        self._drain_scheduled = False
        self._closing = False
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The running loop, or None before start()."""
        return self._loop

    @property
    def closing(self) -> bool:
        """True once close() has begun (or the interpreter is exiting)."""
        return self._closing

    @property
    def started(self) -> bool:
        """True once start() has run."""
        return self._thread is not None

    def start(self, timeout_s: float = 5.0) -> None:
        """Start the thread (idempotent); raises if the loop does not come up in time."""
        with self._lock:
            if self._closing:
                raise ClientClosedError(f"{self._name} is closed; create a new one")
            if self._thread is not None:
                return
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(ready,), name=self._name, daemon=False
            )
            self._thread = thread
            thread.start()
            _open_loops.add(self)
        _install_exit_hook()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"{self._name} loop thread did not start within {timeout_s} s")

    def submit(
        self, start: Callable[[], Coroutine[Any, Any, T]], label: str
    ) -> concurrent.futures.Future[T]:
        """Run `start()` on the loop; returns at once. Cancelling the future cancels it.

        `label` names the work in the ClientClosedError of work cut short by close().
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            loop = self._loop
            if loop is None or self._closing:
                future.set_exception(
                    ClientClosedError(
                        f"{self._name} is not running (closed or never started); "
                        "create a new one (or call start())"
                    )
                )
                return future
            self._inbox.append((start, future, label))
            if self._drain_scheduled:
                return future
            self._drain_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop closed meanwhile (exit safety net)
            _fail_all(self._take_inbox())
        return future

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancel in-flight work, run the cleanup, stop the loop and join the thread.

        Idempotent. Raises RuntimeError when called from the loop thread itself
        (it would wait for itself) or when the thread does not stop in time.
        """
        with self._lock:
            if self._closed:
                return
            self._closing = True
            loop, thread = self._loop, self._thread
        if thread is None or loop is None:
            self._closed = True
            return
        if threading.current_thread() is thread:
            raise RuntimeError(f"{self._name}: close() called from its own loop thread")
        deadline = time.monotonic() + timeout_s
        if not loop.is_closed():
            shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                shutdown.result(timeout_s)
            except (concurrent.futures.TimeoutError, RuntimeError):
                shutdown.cancel()
            # The loop may already be gone if the main-thread watchdog stopped it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            raise RuntimeError(f"{self._name} thread did not stop within {timeout_s} s")
        self._closed = True
        _open_loops.discard(self)

    # -- on the loop thread ----------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        with self._lock:
            self._loop = loop
        loop.call_soon(self._watch_main_thread)
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                # Reached after close() or the watchdog: finish whatever is left.
                loop.run_until_complete(self._shutdown())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _take_inbox(self) -> list[_Item]:
        with self._lock:
            self._drain_scheduled = False
            items = list(self._inbox)
            self._inbox.clear()
        return items

    def _drain(self) -> None:
        loop = self._loop
        items = self._take_inbox()
        if self._closing or loop is None:
            _fail_all(items)
            return
        for start, future, _label in items:
            if future.cancelled():
                continue
            task = loop.create_task(start())
            task.add_done_callback(functools.partial(_settle, future))
            future.add_done_callback(functools.partial(_cancel_task, loop, task))

    def _watch_main_thread(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if not threading.main_thread().is_alive():
            with self._lock:
                self._closing = True
            loop.stop()
            return
        loop.call_later(_MAIN_THREAD_CHECK_S, self._watch_main_thread)

    async def _shutdown(self) -> None:
        _fail_all(self._take_inbox())
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._cleanup is not None:
            await self._cleanup()


def _settle(future: concurrent.futures.Future[Any], task: asyncio.Task[Any]) -> None:
    """Copy a finished task's outcome into the caller's future (on the loop thread)."""
    if future.done():
        return
    try:
        if task.cancelled():
            future.cancel()
        elif (error := task.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(task.result())
    except concurrent.futures.InvalidStateError:
        pass  # the caller cancelled it meanwhile, from its own thread


def _cancel_task(
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[Any],
    future: concurrent.futures.Future[Any],
) -> None:
    """When the caller cancels its future, cancel the task on the loop."""
    if future.cancelled() and not task.done():
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(task.cancel)


def _fail_all(items: list[_Item]) -> None:
    for _start, future, label in items:
        if not future.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(
                    ClientClosedError(
                        f"{label} was submitted while the client closed; resubmit it "
                        "on a new one"
                    )
                )
