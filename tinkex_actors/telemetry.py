"""The telemetry event bus: `attach` a handler to an event name, `emit` events, `detach`.

Every part of the SDK reports what it does here (request start/stop/error, retries, queue-state
changes, futures) as a `TelemetryEvent` with a `measurements` dict (numbers: durations, counts,
delays) and a `metadata` dict (ids, states, reasons). Handlers never block the emitter: `emit`
only appends to a bounded queue, and one dispatcher thread calls the handlers. The thread runs
only while at least one handler is attached, so a program that never attaches pays one dict
lookup per `emit` and keeps no thread. When the queue is full (`MAX_QUEUED_EVENTS`), new events
are dropped and counted (`dropped_events()`): a slow handler costs it its events, never the
emitter its time. A handler that raises is logged and stays attached.

Attach to `"*"` to receive every event. The names the SDK emits are the `EVENT_*` constants
below: `future.*` and `queue.state_change` come from the futures layer (`poller.py`,
`queue_state.py`); `request.*` are for the layers that send requests.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from supervisors.library_logging import get_logger

__all__ = [
    "ALL_EVENTS",
    "EVENT_FUTURE_ERROR",
    "EVENT_FUTURE_RETRY",
    "EVENT_FUTURE_START",
    "EVENT_FUTURE_STOP",
    "EVENT_QUEUE_STATE_CHANGE",
    "EVENT_REQUEST_ERROR",
    "EVENT_REQUEST_START",
    "EVENT_REQUEST_STOP",
    "MAX_QUEUED_EVENTS",
    "Attachment",
    "Handler",
    "TelemetryEvent",
    "attach",
    "detach",
    "dropped_events",
    "emit",
    "flush",
]

ALL_EVENTS: Final = "*"
EVENT_FUTURE_START: Final = "future.start"
EVENT_FUTURE_STOP: Final = "future.stop"
EVENT_FUTURE_ERROR: Final = "future.error"
EVENT_FUTURE_RETRY: Final = "future.retry"
EVENT_QUEUE_STATE_CHANGE: Final = "queue.state_change"
EVENT_REQUEST_START: Final = "request.start"
EVENT_REQUEST_STOP: Final = "request.stop"
EVENT_REQUEST_ERROR: Final = "request.error"
MAX_QUEUED_EVENTS: Final = 10_000
"""Events waiting for the dispatcher beyond this are dropped (and counted)."""

_log = get_logger("tinkex_actors.telemetry")


@dataclasses.dataclass(frozen=True, slots=True)
class TelemetryEvent:
    """One event: its name, numbers (`measurements`), context (`metadata`) and wall time."""

    name: str
    measurements: Mapping[str, float]
    metadata: Mapping[str, Any]
    time_s: float


Handler = Callable[[TelemetryEvent], object]


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    """What `attach` returns; pass it to `detach`."""

    event: str
    handler: Handler
    id: int


class _Bus:
    """Handlers by event name, the queue and the dispatcher thread (one per process)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.handlers: dict[str, tuple[Attachment, ...]] = {}
        self.queue: collections.deque[TelemetryEvent] = collections.deque()
        self.thread: threading.Thread | None = None
        self.dropped = 0
        self.emitted = 0
        self.delivered = 0
        self.ids = itertools.count(1)

    def dispatch_loop(self) -> None:
        while True:
            with self.lock:
                while not self.queue and self.handlers:
                    self.lock.wait(1.0)
                if not self.handlers:
                    self.delivered += len(self.queue)
                    self.queue.clear()
                    self.thread = None
                    self.lock.notify_all()
                    return
                event = self.queue.popleft()
                targets = self.handlers.get(event.name, ()) + self.handlers.get(ALL_EVENTS, ())
            for attachment in targets:
                try:
                    attachment.handler(event)
                except Exception as exc:
                    _log.error(
                        "telemetry_handler_failed",
                        event_name=event.name,
                        handler=repr(attachment.handler),
                        error=repr(exc),
                    )
            with self.lock:
                self.delivered += 1
                self.lock.notify_all()


_bus = _Bus()


def attach(event: str, handler: Handler) -> Attachment:
    """Call `handler(event)` for every event named `event` (`"*"`: all) until detached."""
    if not isinstance(event, str) or not event:
        raise ValueError(
            f"attach(event={event!r}): the event name must be a non-empty str, e.g. "
            f"'{EVENT_QUEUE_STATE_CHANGE}' or '*' for every event"
        )
    if not callable(handler):
        raise TypeError(f"attach(handler={handler!r}): the handler must be callable")
    attachment = Attachment(event, handler, next(_bus.ids))
    with _bus.lock:
        _bus.handlers[event] = (*_bus.handlers.get(event, ()), attachment)
        if _bus.thread is None:
            _bus.thread = threading.Thread(
                target=_bus.dispatch_loop, name="tinkex-telemetry", daemon=True
            )
            _bus.thread.start()
    return attachment


def detach(attachment: Attachment, timeout_s: float = 5.0) -> bool:
    """Remove a handler; False if it was not attached. Waits for the dispatcher thread to end
    (up to `timeout_s`) when this was the last handler, so tests leave no thread behind."""
    with _bus.lock:
        current = _bus.handlers.get(attachment.event, ())
        kept = tuple(a for a in current if a.id != attachment.id)
        if len(kept) == len(current):
            return False
        if kept:
            _bus.handlers[attachment.event] = kept
        else:
            del _bus.handlers[attachment.event]
        thread = _bus.thread if not _bus.handlers else None
        _bus.lock.notify_all()
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout_s)
    return True


def emit(
    name: str,
    measurements: Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Queue an event for the handlers attached to `name` (and to `"*"`); never blocks."""
    handlers = _bus.handlers  # read without the lock: a stale read only drops or sends one more
    if name not in handlers and ALL_EVENTS not in handlers:
        return
    event = TelemetryEvent(name, measurements or {}, metadata or {}, time.time())
    with _bus.lock:
        if len(_bus.queue) >= MAX_QUEUED_EVENTS:
            _bus.dropped += 1
            return
        _bus.queue.append(event)
        _bus.emitted += 1
        _bus.lock.notify_all()


def flush(timeout_s: float = 5.0) -> bool:
    """Wait until every event queued so far reached its handlers; False on timeout."""
    deadline = time.monotonic() + timeout_s
    with _bus.lock:
        target = _bus.emitted
        while _bus.delivered < target and _bus.thread is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _bus.lock.wait(remaining)
        return True


def dropped_events() -> int:
    """How many events were dropped because the queue was full (since the process started)."""
    with _bus.lock:
        return _bus.dropped
