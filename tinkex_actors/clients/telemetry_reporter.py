"""The TelemetryReporter actor: a session's events, batched to `POST /api/v1/telemetry`.

The official wire and limits: batches of at most 100 events, a flush every 10 s or as soon as
100 are queued, a queue capped at 10,000 (further events are dropped and counted), and at most
30 s of draining on shutdown. SESSION_START is queued when the reporter starts and SESSION_END
when it is drained; GENERIC_EVENT carries every event of the SDK's event bus
(`tinkex_actors.telemetry`) and `log(...)` calls; UNHANDLED_EXCEPTION carries `log_exception`.

It never blocks a request path: `log` is a message, the HTTP send goes through the Transport
(whose retries back off), and a batch the server refuses is dropped with a warning, as the
official client does. Each ServiceClient has its own reporter; stopping one stops no other.
Disabled with `TINKER_TELEMETRY=0` (`Config.telemetry_enabled`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import platform
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from supervisors import Process
from supervisors.library_logging import get_logger
from supervisors.timers import Timer, TimerService, default_timer_service
from tinkex_actors import telemetry, types
from tinkex_actors._version import __version__
from tinkex_actors.clients.actor_support import tell_quietly
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import APIStatusError
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport

log = get_logger("tinkex_actors.telemetry")

MAX_BATCH_SIZE: Final = 100
FLUSH_INTERVAL_S: Final = 10.0
MAX_QUEUE_SIZE: Final = 10_000
DRAIN_TIMEOUT_S: Final = 30.0
HTTP_TIMEOUT_S: Final = 5.0
PROCESS_UUID: Final = str(uuid.uuid4())

__all__ = ["DRAIN_TIMEOUT_S", "Drain", "Log", "LogException", "Stats", "TelemetryReporter"]


@dataclass(frozen=True)
class Log:
    """Tell: queue a GENERIC_EVENT `event_name` with `event_data`."""

    event_name: str
    event_data: dict[str, Any]
    severity: str = "INFO"


@dataclass(frozen=True)
class LogException:
    """Tell: queue an UNHANDLED_EXCEPTION event for an error."""

    error: BaseException
    severity: str = "ERROR"


@dataclass(frozen=True)
class Drain:
    """Ask: queue SESSION_END and answer a Future settled once everything queued was sent."""


@dataclass(frozen=True)
class Stats:
    """Ask: `{queued, in_flight, sent, dropped}`."""


@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _Sent:
    count: int
    outcome: Any


class TelemetryReporter(Process):
    """Batches one session's telemetry (see the module docstring)."""

    pooled = True  # its handlers never wait (sends come back as messages): no thread of its own

    def __init__(
        self,
        transport: Transport,
        session_id: str,
        *,
        timers: TimerService | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_queue: int = MAX_QUEUE_SIZE,
        bus: bool = True,
    ) -> None:
        super().__init__()
        self.transport = transport
        self.session_id = session_id
        self.timers = timers if timers is not None else default_timer_service()
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.queue: collections.deque[Any] = collections.deque()
        self.dropped = 0
        self.disabled = False
        self.sent = 0
        self.in_flight = 0
        self.index = 0
        self.started = datetime.now(UTC)
        self.drains: list[concurrent.futures.Future[int]] = []
        self._tick: Timer | None = None
        self._bus = bus
        self._attachment: telemetry.Attachment | None = None

    def init(self) -> None:
        """Queue SESSION_START, start the flush timer and listen to the event bus."""
        self._queue(types.SessionStartEvent(**self._common("INFO")))
        self._tick = self.timers.send_interval(self.flush_interval_s, self.actor_ref, _Tick())
        if self._bus:
            me = self.actor_ref
            self._attachment = telemetry.attach(
                telemetry.ALL_EVENTS, lambda e: tell_quietly(me, _from_bus(e))
            )

    def terminate(self, reason: Any) -> None:
        """Stop listening; fail drains still waiting (nothing more will be sent)."""
        if self._attachment is not None:
            telemetry.detach(self._attachment, timeout_s=0.0)
        for waiter in self.drains:
            if not waiter.done():
                waiter.set_result(len(self.queue))

    def _common(self, severity: str) -> dict[str, Any]:
        self.index += 1
        return {
            "event_id": str(uuid.uuid4()),
            "event_session_index": self.index - 1,
            "severity": severity,
            "timestamp": datetime.now(UTC),
        }

    def on_receive(self, message: Any) -> Any:
        """Handle one message."""
        if isinstance(message, Log):
            self._queue(
                types.GenericEvent(
                    event_name=message.event_name,
                    event_data=message.event_data,
                    **self._common(message.severity),
                )
            )
        elif isinstance(message, LogException):
            exc = message.error
            self._queue(
                types.UnhandledExceptionEvent(
                    error_type=type(exc).__name__,
                    error_message=str(exc),
                    traceback="".join(traceback.format_exception(exc)) or None,
                    **self._common(message.severity),
                )
            )
        elif isinstance(message, _Tick):
            self._flush()
        elif isinstance(message, _Sent):
            self._sent(message)
        elif isinstance(message, Drain):
            return self._drain()
        elif isinstance(message, Stats):
            return {
                "queued": len(self.queue),
                "in_flight": self.in_flight,
                "sent": self.sent,
                "dropped": self.dropped,
                "disabled": self.disabled,
            }
        else:
            raise TypeError(f"TelemetryReporter got an unknown message: {message!r}")
        return None

    def _queue(self, event: Any) -> None:
        if self.disabled:
            self.dropped += 1
            return
        if len(self.queue) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("telemetry_queue_full", dropped=self.dropped)
            return
        self.queue.append(event)
        if len(self.queue) >= MAX_BATCH_SIZE:
            self._flush()

    def _flush(self) -> None:
        if self.in_flight or not self.queue:
            self._settle_drains()
            return
        batch = [self.queue.popleft() for _ in range(min(MAX_BATCH_SIZE, len(self.queue)))]
        body = types.TelemetrySendRequest(
            events=batch,
            platform=platform.system(),
            sdk_version=__version__,
            session_id=self.session_id,
            process_uuid=PROCESS_UUID,
        )
        self.in_flight = len(batch)
        outcome = self.transport.submit(
            HttpRequest(
                "POST",
                "telemetry",
                types.to_json(body),
                pool=PoolKind.TELEMETRY,
                timeout_s=HTTP_TIMEOUT_S,
            )
        )
        me = self.actor_ref
        outcome.add_done_callback(lambda f: tell_quietly(me, _Sent(len(batch), f)))

    def _sent(self, message: _Sent) -> None:
        self.in_flight = 0
        error = message.outcome.exception()
        if error is None:
            self.sent += message.count
        elif isinstance(error, APIStatusError) and error.status_code in (404, 405, 501):
            # A server without the endpoint: stop reporting rather than fail every 10 s.
            log.info("telemetry_unsupported", status=error.status_code)
            self.disabled = True
            self.dropped += len(self.queue) + message.count
            self.queue.clear()
        else:
            # Telemetry is best effort (a batch lost at exit is normal): nothing for the user.
            log.info("telemetry_batch_dropped", events=message.count, error=str(error))
        if self.queue and (len(self.queue) >= MAX_BATCH_SIZE or self.drains):
            self._flush()
        else:
            self._settle_drains()

    def _drain(self) -> concurrent.futures.Future[int]:
        waiter: concurrent.futures.Future[int] = concurrent.futures.Future()
        duration = datetime.now(UTC) - self.started
        self._queue(types.SessionEndEvent(duration=str(duration), **self._common("INFO")))
        self.drains.append(waiter)
        self._flush()
        return waiter

    def _settle_drains(self) -> None:
        if self.queue or self.in_flight:
            return
        for waiter in self.drains:
            if not waiter.done():
                waiter.set_result(0)
        self.drains.clear()


def _from_bus(event: telemetry.TelemetryEvent) -> Log:
    data = {**event.metadata, **event.measurements}
    return Log(event.name, {k: _plain(v) for k, v in data.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
