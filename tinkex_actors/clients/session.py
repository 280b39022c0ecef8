"""The SessionManager actor: opens sessions, keeps them alive, reports their loss, ends them.

Each session gets its own heartbeat timer (every 10 s, as the official SDK). A heartbeat is
sent with no HTTP retries and at most one in flight per session; failures are counted and the
session is kept. Once failures have lasted `warn_after_s` (120 s) a WARNING is logged, then at
most once per `warn_every_s` (60 s) while they go on. A heartbeat answered 404 or 410 means the
server no longer has the session (expired or finished): the session's subscribers get a
`SessionLost` message carrying a `SessionExpiredError`, and its heartbeats stop.

No I/O blocks the mailbox: HTTP goes through the `Transport`, whose answers come back as
messages. Sessions live in a `SessionTable` owned by whoever starts the actor, so a restarted
SessionManager resumes every heartbeat where its predecessor left off.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from pykka import ActorRef

from supervisors import Process
from supervisors.library_logging import get_logger
from supervisors.timers import Timer, TimerService, default_timer_service
from tinkex_actors._version import __version__
from tinkex_actors.clients.actor_support import tell_quietly
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import APIStatusError, SessionExpiredError, TinkerError
from tinkex_actors.transport.messages import HttpRequest, HttpResponse
from tinkex_actors.transport.transport import Transport

log = get_logger("tinkex_actors.clients.session")

HEARTBEAT_INTERVAL_S = 10.0
HEARTBEAT_TIMEOUT_S = 10.0
WARN_AFTER_S = 120.0
WARN_EVERY_S = 60.0

Listener = Callable[[Any], None]
"""A subscriber: called with each session event in the SessionManager's thread; must not block.
An actor subscribes with its `tell`."""


@dataclass
class SessionRecord:
    """One open session and its heartbeat health."""

    session_id: str
    last_ok_s: float
    failing_since_s: float | None = None
    last_warning_s: float | None = None
    last_error: str | None = None
    beat_in_flight: bool = False
    lost: bool = False
    subscribers: list[Listener] = field(default_factory=list)


class SessionTable:
    """The sessions a SessionManager serves, kept outside the actor so a restart keeps them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, SessionRecord] = {}


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateSession:
    """Ask: open a session; answers a `concurrent.futures.Future[str]` of its id at once."""

    tags: tuple[str, ...] = ()
    user_metadata: dict[str, Any] | None = None
    project_id: str | None = None
    display_name: str | None = None


@dataclass(frozen=True)
class FinishSession:
    """Ask: end a session on the server; answers a Future of None. Heartbeats stop at once."""

    session_id: str
    status: str = "success"
    detail: str | None = None


@dataclass(frozen=True)
class Subscribe:
    """Tell: send this session's events (`SessionLost`, `HeartbeatFailing`) to a listener."""

    session_id: str
    listener: Listener


@dataclass(frozen=True)
class SessionLost:
    """Event: the server no longer has this session; its clients must open a new one."""

    session_id: str
    error: SessionExpiredError


@dataclass(frozen=True)
class HeartbeatFailing:
    """Event: heartbeats of this session have failed for `for_s` seconds."""

    session_id: str
    for_s: float
    last_error: str | None


@dataclass(frozen=True)
class HeartbeatResult:
    """Event for `on_heartbeat` watchers: one heartbeat's outcome (None: it succeeded)."""

    session_id: str
    error: BaseException | None


@dataclass(frozen=True)
class _Beat:
    session_id: str


@dataclass(frozen=True)
class _BeatDone:
    session_id: str
    error: BaseException | None


@dataclass(frozen=True)
class _Created:
    tags: tuple[str, ...]
    user_metadata: dict[str, Any] | None
    reply: concurrent.futures.Future[str]
    outcome: concurrent.futures.Future[HttpResponse]


class SessionManager(Process):
    """Creates sessions and heartbeats each one on its own timer (see the module docstring)."""

    pooled = True  # its handlers never wait (sends come back as messages): no thread of its own

    def __init__(
        self,
        transport: Transport,
        table: SessionTable | None = None,
        *,
        timers: TimerService | None = None,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        warn_after_s: float = WARN_AFTER_S,
        warn_every_s: float = WARN_EVERY_S,
        sdk_version: str = __version__,
        on_heartbeat: Listener | None = None,
    ) -> None:
        super().__init__()
        self._on_heartbeat = on_heartbeat
        self._transport = transport
        self._table = table if table is not None else SessionTable()
        self._timers = timers if timers is not None else default_timer_service()
        self._interval_s = heartbeat_interval_s
        self._warn_after_s = warn_after_s
        self._warn_every_s = warn_every_s
        self._sdk_version = sdk_version
        self._beat_timers: dict[str, Timer] = {}

    def _now(self) -> float:
        return self._timers.clock.monotonic()

    def init(self) -> None:
        """Re-arm a heartbeat for every session a predecessor left in the table."""
        with self._table.lock:
            ids = [sid for sid, rec in self._table.records.items() if not rec.lost]
            for sid in ids:
                self._table.records[sid].beat_in_flight = False
        for sid in ids:
            self._arm(sid)

    def terminate(self, reason: Any) -> None:
        """Cancel every heartbeat timer: after stop returns, no heartbeat is sent."""
        for timer in self._beat_timers.values():
            self._timers.cancel(timer)
        self._beat_timers.clear()

    def _arm(self, session_id: str) -> None:
        self._beat_timers[session_id] = self._timers.send_interval(
            self._interval_s, self.actor_ref, _Beat(session_id)
        )

    def _disarm(self, session_id: str) -> None:
        timer = self._beat_timers.pop(session_id, None)
        if timer is not None:
            self._timers.cancel(timer)

    # -- dispatch -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Handle one message (see the message types above)."""
        if isinstance(message, _Beat):
            self._beat(message.session_id)
        elif isinstance(message, _BeatDone):
            self._beat_done(message)
        elif isinstance(message, CreateSession):
            return self._create(message)
        elif isinstance(message, _Created):
            self._created(message)
        elif isinstance(message, FinishSession):
            return self._finish_session(message)
        elif isinstance(message, Subscribe):
            self._subscribe(message)
        else:
            raise TypeError(f"SessionManager got an unknown message: {message!r}")
        return None

    # -- creating and finishing -----------------------------------------------------------------

    def _create(self, message: CreateSession) -> concurrent.futures.Future[str]:
        reply: concurrent.futures.Future[str] = concurrent.futures.Future()
        body = {
            "tags": list(message.tags),
            "user_metadata": message.user_metadata or {},  # never null, as officially
            "sdk_version": self._sdk_version,
            "type": "create_session",
        }
        for name in ("project_id", "display_name"):
            if getattr(message, name) is not None:
                body[name] = getattr(message, name)
        outcome = self._transport.submit(
            HttpRequest("POST", "create_session", msgspec.json.encode(body), pool=PoolKind.SESSION)
        )
        me = self.actor_ref
        outcome.add_done_callback(
            lambda f: tell_quietly(me, _Created(message.tags, message.user_metadata, reply, f))
        )
        return reply

    def _created(self, message: _Created) -> None:
        try:
            session_id = str(message.outcome.result(timeout=0).json()["session_id"])
        except BaseException as exc:
            message.reply.set_exception(exc)
            return
        with self._table.lock:
            self._table.records[session_id] = SessionRecord(session_id, last_ok_s=self._now())
        self._arm(session_id)
        log.info("session_created", session_id=session_id, tags=list(message.tags))
        message.reply.set_result(session_id)

    def _finish_session(self, message: FinishSession) -> concurrent.futures.Future[None]:
        if message.status not in ("success", "errored", "interrupted"):
            raise ValueError(
                f"status must be 'success', 'errored' or 'interrupted', got {message.status!r}"
            )
        self._disarm(message.session_id)
        with self._table.lock:
            self._table.records.pop(message.session_id, None)
        reply: concurrent.futures.Future[None] = concurrent.futures.Future()
        body = {"reason": {"type": message.status}, "detail": message.detail}
        outcome = self._transport.submit(
            HttpRequest(
                "POST",
                f"sessions/{message.session_id}/finish",
                msgspec.json.encode(body),
                pool=PoolKind.SESSION,
            )
        )

        def done(f: concurrent.futures.Future[HttpResponse]) -> None:
            exc = f.exception()
            if exc is None or (isinstance(exc, APIStatusError) and exc.status_code in (404, 410)):
                reply.set_result(None)  # already gone counts as finished
            else:
                reply.set_exception(exc)

        outcome.add_done_callback(done)
        log.info("session_finishing", session_id=message.session_id, status=message.status)
        return reply

    def _subscribe(self, message: Subscribe) -> None:
        with self._table.lock:
            record = self._table.records.get(message.session_id)
            if record is not None:
                record.subscribers.append(message.listener)
        if record is None:
            error = SessionExpiredError(
                f"session {message.session_id} is not open in this ServiceClient; open a new one"
            )
            _notify(message.listener, SessionLost(message.session_id, error))

    # -- heartbeats -----------------------------------------------------------------------------

    def _beat(self, session_id: str) -> None:
        with self._table.lock:
            record = self._table.records.get(session_id)
            if record is None or record.lost or record.beat_in_flight:
                return
            record.beat_in_flight = True
        outcome = self._transport.submit(
            HttpRequest(
                "POST",
                "session_heartbeat",
                msgspec.json.encode({"session_id": session_id}),
                pool=PoolKind.SESSION,
                max_retries=0,
                timeout_s=HEARTBEAT_TIMEOUT_S,
            ),
            probe=True,  # never held at the outage gate: a heartbeat is the client's probe
        )
        me = self.actor_ref
        outcome.add_done_callback(lambda f: tell_quietly(me, _BeatDone(session_id, f.exception())))

    def _beat_done(self, message: _BeatDone) -> None:
        try:
            self._record_beat(message)
        finally:
            if self._on_heartbeat is not None:
                _notify(self._on_heartbeat, HeartbeatResult(message.session_id, message.error))

    def _record_beat(self, message: _BeatDone) -> None:
        now = self._now()
        events: list[Any] = []
        with self._table.lock:
            record = self._table.records.get(message.session_id)
            if record is None:
                return
            record.beat_in_flight = False
            error = message.error
            if error is None:
                if record.failing_since_s is not None:
                    log.info(
                        "session_heartbeat_recovered",
                        session_id=record.session_id,
                        failed_for_s=round(now - record.failing_since_s, 1),
                    )
                record.last_ok_s = now
                record.failing_since_s = None
                record.last_warning_s = None
                record.last_error = None
                return
            record.last_error = f"{type(error).__name__}: {error}"
            if isinstance(error, APIStatusError) and error.status_code in (404, 410):
                record.lost = True
                lost = SessionExpiredError(
                    f"session {record.session_id} is gone on the server (HTTP "
                    f"{error.status_code}: expired or finished); open a new session "
                    "(ServiceClient.reconnect) and recreate its clients"
                )
                events.append(SessionLost(record.session_id, lost))
            else:
                if record.failing_since_s is None:
                    record.failing_since_s = record.last_ok_s
                failing_for = now - record.failing_since_s
                due = record.last_warning_s is None or (
                    now - record.last_warning_s >= self._warn_every_s
                )
                if failing_for >= self._warn_after_s and due:
                    record.last_warning_s = now
                    events.append(
                        HeartbeatFailing(record.session_id, failing_for, record.last_error)
                    )
            subscribers = list(record.subscribers)
        for event in events:
            if isinstance(event, SessionLost):
                self._disarm(event.session_id)
                log.warning("session_lost", session_id=event.session_id, error=str(event.error))
            else:
                log.warning(
                    "session_heartbeat_failing",
                    session_id=event.session_id,
                    failed_for_s=round(event.for_s, 1),
                    last_error=event.last_error,
                    message=(
                        f"Session heartbeat failed for {event.for_s:.0f} seconds for session "
                        f"{event.session_id}. Your connection may be unreliable or Tinker is "
                        "down. If this persists, the session will be terminated."
                    ),
                )
            for listener in subscribers:
                _notify(listener, event)


def _notify(listener: Listener, event: Any) -> None:
    try:
        listener(event)
    except Exception:
        log.exception("session_listener_failed", message=type(event).__name__)


def start_session_manager(
    transport: Transport, table: SessionTable | None = None, **options: Any
) -> ActorRef[SessionManager]:
    """Start a SessionManager (outside a supervisor, e.g. in tests)."""
    ref: ActorRef[SessionManager] = SessionManager.start(transport, table, **options)
    return ref


__all__ = [
    "CreateSession",
    "FinishSession",
    "HeartbeatFailing",
    "HeartbeatResult",
    "SessionLost",
    "SessionManager",
    "SessionRecord",
    "SessionTable",
    "Subscribe",
    "TinkerError",
    "start_session_manager",
]
