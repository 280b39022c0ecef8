"""RestBase: what every RestClient call stands on (transport, lifetime, plumbing, workers).

A call is submitted on the Transport's loop thread and its answer decoded there, so the
caller blocks only in `.result()`. The few calls that wait between requests (a checkpoint
archive being generated, a session trace being built) or write files run on a small worker
pool: two threads at most, started on first use, joined by `close()`. The pool exists
because the Transport offers no public way to run such waits on its loop, and a blocking
wait must never run in the caller's thread nor on that loop.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from tinkex_actors.config import Config, PoolKind
from tinkex_actors.errors import APIResponseValidationError
from tinkex_actors.futures.future import Future
from tinkex_actors.rest.paths import checkpoint_route, parse_tinker_path
from tinkex_actors.transport.messages import HttpRequest, HttpResponse
from tinkex_actors.transport.transport import Transport
from tinkex_actors.types import from_json

__all__ = ["MAX_WORKERS", "RestBase", "error_of"]

T = TypeVar("T")
MAX_WORKERS: Final = 2
"""Threads of a RestClient's worker pool (archive and trace waits, downloads)."""


class RestBase:
    """A RestClient's transport, lifetime, request plumbing and worker pool.

    `RestClient(transport)` uses a Transport someone else owns (a ServiceClient's);
    `RestClient(api_key=..., base_url=...)` or `RestClient(config=...)` builds its own and
    closes it in `close()` (or on leaving a `with` block). `sleep` waits between archive
    retries on a worker thread (tests pass a fake).
    """

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        config: Config | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        archive_timeout_s: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if transport is not None and (config, api_key, base_url) != (None, None, None):
            raise ValueError(
                "RestClient takes either a transport or config/api_key/base_url, not both: "
                "a transport already carries its own base URL and credentials"
            )
        if not archive_timeout_s > 0:
            raise ValueError(f"archive_timeout_s must be > 0, got {archive_timeout_s!r}")
        self._owns_transport = transport is None
        if transport is None:
            if config is None:
                config = Config.resolve(api_key=api_key, base_url=base_url)
            elif api_key is not None or base_url is not None:
                raise ValueError("pass config or api_key/base_url, not both")
            transport = Transport(config)
        self._transport = transport
        self._archive_timeout_s = archive_timeout_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._workers: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    # -- lifetime ----------------------------------------------------------------------------

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the workers and, if this client built it, close the Transport."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)
        if self._owns_transport:
            self._transport.close(timeout_s)

    def __enter__(self) -> Self:
        """Use as a context manager: closes on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _get(
        self, route: str, type_: type[T], params: dict[str, str | int] | None = None
    ) -> Future[T]:
        return self._send(HttpRequest("GET", route, params=params, pool=PoolKind.TRAIN), type_)

    def _checkpoint_action(
        self, method: str, tinker_path: str, action: str, payload: Any = None
    ) -> Future[None]:
        parsed = parse_tinker_path(tinker_path)
        route = checkpoint_route(parsed.training_run_id, parsed.checkpoint_id, action)
        return self._send(HttpRequest.json(method, route, payload, pool=PoolKind.TRAIN), None)

    def _send(self, request: HttpRequest, type_: type[T] | None) -> Future[Any]:
        """Submit on the transport; the answer is decoded and settled on its loop thread."""
        self._check_open()
        inner = self._transport.submit(request)
        outcome: Future[Any] = Future(request_type=request.path, canceller=inner.cancel)

        def settle(done: concurrent.futures.Future[HttpResponse]) -> None:
            if done.cancelled():
                outcome.cancel()
                return
            error = done.exception()
            if error is not None:
                outcome.set_exception(error)
                return
            if type_ is None:
                outcome.set_result(None)
                return
            answer = done.result()
            try:
                outcome.set_result(from_json(answer.content, type_))
            except Exception as exc:
                outcome.set_exception(
                    APIResponseValidationError(
                        f"{request.method} {request.path} answered a body that is not a "
                        f"{type_.__name__}: {exc}",
                        method=request.method,
                        url=answer.url,
                        body=answer.content[:200],
                    )
                )

        inner.add_done_callback(settle)
        return outcome

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this RestClient is closed; create a new one")

    def _in_worker(self, name: str, work: Callable[[threading.Event], T]) -> Future[T]:
        """Run blocking `work(stop)` on the client's worker pool; cancel sets `stop`."""
        stop = threading.Event()
        with self._lock:
            self._check_open()
            if self._workers is None:
                self._workers = concurrent.futures.ThreadPoolExecutor(
                    max_workers=MAX_WORKERS, thread_name_prefix="tinkex-rest"
                )
            workers = self._workers
        outcome: Future[T] = Future(request_type=name, canceller=stop.set)

        def run() -> None:
            if outcome.done():
                return
            try:
                outcome.set_result(work(stop))
            except BaseException as exc:
                outcome.set_exception(exc)

        workers.submit(run)
        return outcome

    def _wait_s(self) -> float:
        config = self._transport.config
        # Bound on one call with all its HTTP retries (each up to the timeout plus a 60 s pause).
        return (config.timeout_s + 60.0) * (config.max_retries + 1)


def error_of(future: Future[Any]) -> BaseException | None:
    """The error a settled future ended with (a CancelledError if cancelled), or None."""
    if future.cancelled():
        return concurrent.futures.CancelledError("cancelled")
    return future.exception(0)
