"""The SessionManager actor against the embedded server, with a fake clock for heartbeats."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pykka import ActorRef

from supervisors import stop
from supervisors.testing import FakeClock, actors_cleanup
from supervisors.timers import TimerService
from tinkex_actors.clients.session import (
    CreateSession,
    FinishSession,
    HeartbeatFailing,
    HeartbeatResult,
    SessionLost,
    SessionManager,
    SessionTable,
    Subscribe,
)
from tinkex_actors.config import Config
from tinkex_actors.errors import SessionExpiredError
from tinkex_actors.local import LocalServer
from tinkex_actors.transport.transport import Transport

WAIT_S = 10.0
__all__ = ["actors_cleanup"]


@pytest.fixture(autouse=True)
def _leak_check(actors_cleanup: None) -> None:
    """Every test stops every actor it started and leaves no thread behind."""
BEAT = "/api/v1/session_heartbeat"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key="tml-session-tests") as srv:
        yield srv


@pytest.fixture
def transport(server: LocalServer) -> Iterator[Transport]:
    t = Transport(Config.resolve(base_url=server.url, api_key="tml-session-tests",
                                 environ={}))
    t.start()
    yield t
    t.close()


class Harness:
    """A SessionManager on a fake clock, with its heartbeat outcomes in a queue."""

    def __init__(self, transport: Transport, table: SessionTable | None = None) -> None:
        self.clock = FakeClock()
        self.timers = TimerService(self.clock)
        self.beats: queue.Queue[HeartbeatResult] = queue.Queue()
        self.table = table or SessionTable()
        self.ref: ActorRef[Any] = SessionManager.start(
            transport, self.table, timers=self.timers, on_heartbeat=self.beats.put
        )

    def create(self) -> str:
        future = self.ref.ask(CreateSession(tags=("t",)), timeout=WAIT_S)
        return str(future.result(WAIT_S))

    def beat(self) -> HeartbeatResult:
        """Advance 10 s and wait for the heartbeat it triggers."""
        self.clock.advance(10.0)
        return self.beats.get(timeout=WAIT_S)

    def stop(self) -> None:
        stop(self.ref, timeout_s=WAIT_S)


@pytest.fixture
def harness(transport: Transport) -> Iterator[Harness]:
    h = Harness(transport)
    yield h
    h.stop()


class TestHeartbeats:
    def test_a_session_is_created_and_beats_every_ten_seconds(
        self, server: LocalServer, harness: Harness
    ) -> None:
        """Each 10 s of clock sends one heartbeat; none before."""
        sid = harness.create()
        assert sid in server.service.sessions
        before = server.app.path_counts[BEAT]
        harness.clock.advance(9.9)
        assert harness.beats.empty()
        harness.clock.advance(0.1)
        assert harness.beats.get(timeout=WAIT_S) == HeartbeatResult(sid, None)
        assert harness.beat().error is None
        assert server.app.path_counts[BEAT] == before + 2

    def test_failures_warn_after_120_s_then_once_a_minute_and_recover(
        self, server: LocalServer, harness: Harness
    ) -> None:
        """Heartbeats failing for 120 s log one WARNING, again after 60 s, then recover."""
        sid = harness.create()
        events: queue.Queue[Any] = queue.Queue()
        harness.ref.tell(Subscribe(sid, events.put))
        server.faults.inject_status(BEAT, 503, times=18)
        with structlog.testing.capture_logs() as logs:
            for _ in range(18):
                assert harness.beat().error is not None
        warnings = [e for e in logs if e["event"] == "session_heartbeat_failing"]
        # failing since t=0; beats at 10..180 s: warnings at 120 s and 180 s
        assert [w["failed_for_s"] for w in warnings] == [120.0, 180.0]
        assert "Session heartbeat failed" in warnings[0]["message"]
        assert "tml-" not in str(logs)
        got = events.get(timeout=WAIT_S)
        assert isinstance(got, HeartbeatFailing) and got.session_id == sid
        with structlog.testing.capture_logs() as logs:
            assert harness.beat().error is None
        assert [e["event"] for e in logs] == ["session_heartbeat_recovered"]

    def test_an_expired_session_is_reported_to_subscribers_and_stops_beating(
        self, server: LocalServer, harness: Harness
    ) -> None:
        """A 410 heartbeat answer sends SessionLost with a SessionExpiredError."""
        sid = harness.create()
        events: queue.Queue[Any] = queue.Queue()
        harness.ref.tell(Subscribe(sid, events.put))
        server.expire_session(sid)
        assert harness.beat().error is not None
        lost = events.get(timeout=WAIT_S)
        assert isinstance(lost, SessionLost) and isinstance(lost.error, SessionExpiredError)
        assert "open a new session" in str(lost.error)
        count = server.app.path_counts[BEAT]
        harness.clock.advance(30.0)
        assert harness.beats.empty()
        assert server.app.path_counts[BEAT] == count

    def test_subscribing_to_an_unknown_session_reports_it_lost_at_once(
        self, harness: Harness
    ) -> None:
        """A client attaching to a session that is not open learns so immediately."""
        events: queue.Queue[Any] = queue.Queue()
        harness.ref.tell(Subscribe("s-nope", events.put))
        assert isinstance(events.get(timeout=WAIT_S), SessionLost)


class TestLifecycle:
    def test_no_heartbeat_is_sent_after_stop_returns(
        self, server: LocalServer, transport: Transport
    ) -> None:
        """Stopping the manager cancels its timers."""
        h = Harness(transport)
        h.create()
        h.stop()
        count = server.app.path_counts[BEAT]
        h.clock.advance(60.0)
        assert h.timers.pending() == 0
        assert server.app.path_counts[BEAT] == count

    def test_a_restarted_manager_resumes_the_heartbeats_of_its_table(
        self, server: LocalServer, transport: Transport
    ) -> None:
        """Sessions live in the table: a new manager over it keeps them alive."""
        first = Harness(transport)
        sid = first.create()
        first.stop()
        second = Harness(transport, table=first.table)
        try:
            assert second.beat() == HeartbeatResult(sid, None)
        finally:
            second.stop()

    def test_finish_ends_the_session_on_the_server(
        self, server: LocalServer, harness: Harness
    ) -> None:
        """FinishSession sends the official finish call and stops the heartbeats."""
        sid = harness.create()
        done = harness.ref.ask(FinishSession(sid, "success", "done"), timeout=WAIT_S)
        assert done.result(WAIT_S) is None
        assert server.service.ended[sid] == "success"
        harness.clock.advance(20.0)
        assert harness.beats.empty()

    def test_a_bad_finish_status_is_refused_naming_the_choices(self, harness: Harness) -> None:
        """FinishSession checks its status before any request."""
        sid = harness.create()
        with pytest.raises(ValueError, match="'success', 'errored' or 'interrupted'"):
            harness.ref.ask(FinishSession(sid, "ok"), timeout=WAIT_S)
