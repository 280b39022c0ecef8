"""The public Future: one Tinker operation's result, from threads, asyncio or callbacks.

A `Future[T]` is what every Tinker operation returns at once. It works from any thread
(`result(timeout)`), from asyncio (`await fut`, `await fut.result_async(timeout)`), with
callbacks (`add_done_callback`), and can be cancelled (`cancel()` stops its polling). A
`result(timeout)` that runs out raises `FutureTimeoutError` (a `TimeoutError`) and leaves the
future running: the poll behind it keeps its own deadline (the client's progress timeout).

Callbacks run in the thread that settles the future (a Poller actor, or the caller's own
thread if it was already settled): keep them short, hand heavy work to another thread.
A raising callback is logged and does not stop the others.

`combine(futures, transform)` waits for several futures and settles with
`transform([results...])`; `relay(source, target)` settles one future as another does. What
the transform of a chunked forward_backward does is in `tinkex_actors.clients.chunked_results`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

from supervisors.library_logging import get_logger
from tinkex_actors.errors import TinkerError

__all__ = [
    "CancelledError",
    "Future",
    "FutureTimeoutError",
    "combine",
    "relay",
]

T = TypeVar("T")
U = TypeVar("U")

CancelledError = concurrent.futures.CancelledError
"""Raised by `result()` of a cancelled future."""

_log = get_logger("tinkex_actors.futures.future")


class FutureTimeoutError(TinkerError, TimeoutError):
    """`result(timeout)` ran out; the future itself keeps running (call `result` again)."""


class Future(Generic[T]):
    """The result of a Tinker operation, settled later by a Poller (or at once).

    Built by the SDK, not by users. `request_id` is the server's id of the operation (None
    for results computed client-side, e.g. a combination).
    """

    __slots__ = ("__weakref__", "_canceller", "_inner", "request_id", "request_type")

    def __init__(
        self,
        request_id: str | None = None,
        request_type: str = "",
        *,
        canceller: Callable[[], object] | None = None,
    ) -> None:
        self.request_id = request_id
        self.request_type = request_type
        self._inner: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._canceller = canceller

    @classmethod
    def completed(cls, value: T) -> Future[T]:
        """A future already settled with `value`."""
        future: Future[T] = cls()
        future._inner.set_result(value)
        return future

    @classmethod
    def failed(cls, error: BaseException) -> Future[T]:
        """A future already failed with `error`."""
        future: Future[T] = cls()
        future._inner.set_exception(error)
        return future

    # -- waiting ---------------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> T:
        """The result, waiting up to `timeout` seconds (None: until settled).

        Raises the operation's error, `CancelledError` if cancelled, or `FutureTimeoutError`
        when `timeout` runs out (the operation goes on).
        """
        _check_timeout(timeout)
        try:
            return self._inner.result(timeout)
        except concurrent.futures.TimeoutError:
            raise FutureTimeoutError(
                f"{self._describe()} did not finish within timeout={timeout} s; it is still "
                "running: call result() again, or give a larger timeout"
            ) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The error the operation failed with (None if it succeeded); waits like `result`."""
        _check_timeout(timeout)
        try:
            return self._inner.exception(timeout)
        except concurrent.futures.TimeoutError:
            raise FutureTimeoutError(
                f"{self._describe()} did not finish within timeout={timeout} s"
            ) from None

    async def result_async(self, timeout: float | None = None) -> T:
        """Await the result from asyncio; `FutureTimeoutError` after `timeout` (the operation
        goes on). Cancelling the awaiting task does not cancel the operation."""
        _check_timeout(timeout)
        waiter = asyncio.wrap_future(self._inner)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            raise FutureTimeoutError(
                f"{self._describe()} did not finish within timeout={timeout} s; it is still "
                "running: await result_async() again, or give a larger timeout"
            ) from None

    def __await__(self) -> Generator[Any, None, T]:
        """`await future` waits without a timeout."""
        return self.result_async().__await__()

    def done(self) -> bool:
        """True once settled: succeeded, failed or cancelled."""
        return self._inner.done()

    def cancelled(self) -> bool:
        """True if `cancel()` settled it."""
        return self._inner.cancelled()

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call `fn(self)` once settled (at once, in this thread, if it already is)."""
        if not callable(fn):
            raise TypeError(f"add_done_callback(fn={fn!r}): fn must be callable")

        def call(_inner: concurrent.futures.Future[T]) -> None:
            try:
                fn(self)
            except Exception as exc:
                _log.error(
                    "future_callback_failed",
                    request_id=self.request_id,
                    callback=repr(fn),
                    error=repr(exc),
                    exc_info=exc,
                )

        self._inner.add_done_callback(call)

    def cancel(self) -> bool:
        """Stop waiting for the operation and stop polling it; False if already settled.

        The server may still run the operation (a sampling request is cancelled server-side
        where the server supports it).
        """
        if self._inner.done() or not self._inner.cancel():
            return False
        canceller, self._canceller = self._canceller, None
        if canceller is not None:
            try:
                canceller()
            except Exception as exc:
                _log.error("future_cancel_failed", request_id=self.request_id, error=repr(exc))
        return True

    def future(self) -> concurrent.futures.Future[T]:
        """The underlying `concurrent.futures.Future` (as the official SDK offers)."""
        return self._inner

    # -- settling (the SDK's side) --------------------------------------------------------------

    def set_result(self, value: T) -> bool:
        """Settle with `value`; False if already settled (e.g. cancelled). SDK use only."""
        try:
            self._inner.set_result(value)
        except concurrent.futures.InvalidStateError:
            return False
        self._canceller = None
        return True

    def set_exception(self, error: BaseException) -> bool:
        """Fail with `error`; False if already settled. SDK use only."""
        try:
            self._inner.set_exception(error)
        except concurrent.futures.InvalidStateError:
            return False
        self._canceller = None
        return True

    def _describe(self) -> str:
        if self.request_id is None:
            return "the future"
        return f"request {self.request_id!r} ({self.request_type or 'unknown type'})"

    def __repr__(self) -> str:
        inner = self._inner
        state = "pending"
        if inner.cancelled():
            state = "cancelled"
        elif inner.done():
            state = "failed" if inner.exception() is not None else "done"
        return f"Future(request_id={self.request_id!r}, {state})"


def _check_timeout(timeout: float | None) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(f"timeout={timeout!r} is not valid; pass seconds >= 0, or None")


def relay(
    source: Future[T], target: Future[T], on_settled: Callable[[], object] | None = None
) -> None:
    """Settle `target` as `source` settles (result, error or cancellation), and cancel
    `source` if `target` is cancelled first; `on_settled()` runs once `source` settles."""

    def copy(done: Future[T]) -> None:
        if on_settled is not None:
            on_settled()
        if done.cancelled():
            target.cancel()
            return
        error = done.exception()
        if error is not None:
            target.set_exception(error)
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)
    target.add_done_callback(lambda t: source.cancel() if t.cancelled() else None)


def combine(futures: Sequence[Future[T]], transform: Callable[[list[T]], U]) -> Future[U]:
    """A future of `transform([f.result() for f in futures])`, settled once all are.

    Fails with the first failure among the inputs (in order of settling) and stops waiting
    for the rest; cancelling it cancels every input still running. No thread is used: the
    last input to settle runs `transform` in its own thread.
    """
    parts = list(futures)
    combined: Future[U] = Future(
        request_type="combined", canceller=lambda: [part.cancel() for part in parts]
    )
    if not parts:
        try:
            combined.set_result(transform([]))
        except Exception as exc:
            combined.set_exception(exc)
        return combined
    lock = threading.Lock()
    remaining = [len(parts)]

    def settled(part: Future[T]) -> None:
        if combined.done():
            return
        if part.cancelled():
            combined.set_exception(
                CancelledError(f"an input of the combination ({part._describe()}) was cancelled")
            )
            return
        error = part.exception()
        if error is not None:
            combined.set_exception(error)
            return
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            try:
                combined.set_result(transform([p.result() for p in parts]))
            except Exception as exc:
                combined.set_exception(exc)

    for part in parts:
        part.add_done_callback(settled)
    return combined
