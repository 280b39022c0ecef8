"""Outages, the progress timeout, and Poller deaths: a future never hangs."""

from __future__ import annotations

import socket

import pytest

from supervisors import kill
from supervisors.testing import FakeClock
from tests.futures._support import (
    CountingTransport,
    FakeTimers,
    ScriptedTransport,
    json_answer,
    make_futures,
    wait_until,
)
from tinkex_actors import errors
from tinkex_actors.config import Config
from tinkex_actors.futures.poll_ledger import PollSpec
from tinkex_actors.futures.poller_pool import PollerPool, PollerStoppedError
from tinkex_actors.local.server import LocalServer
from tinkex_actors.transport.retry import ProgressTimeoutError, ProgressTracker
from tinkex_actors.transport.transport import Transport

RETRIEVE = "/api/v1/retrieve_future"
RESULT = {"metrics": {}}
TWO_HOURS_S = 120 * 60.0


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestOutages:
    def test_a_30_second_outage_of_5xx_and_dropped_connections_is_survived(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
        timers: FakeTimers,
    ) -> None:
        """503s and dropped connections for over 30 s of (fake) time; then the result."""
        local.faults.inject_status(RETRIEVE, 503, times=4)
        local.faults.drop(RETRIEVE, times=3)
        local.faults.inject_status(RETRIEVE, 502, times=4)
        local.faults.drop(RETRIEVE, times=2)
        [rid] = make_futures(local)
        assert pool.track(PollSpec(rid, "OptimStep")).result(timeout=20) == RESULT
        assert sum(timers.delays) >= 30.0
        assert max(timers.delays) <= 10.0
        assert transport.count == 4 + 3 + 4 + 2 + 1

    def test_refused_connections_are_retried_with_capped_backoff(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """Against a port nothing listens on: backoff 0.5, 1, 2 ... capped at 10 s, no fail."""
        dead = Transport(Config(api_key="tml-x", base_url=f"http://127.0.0.1:{closed_port()}"))
        try:
            with PollerPool(dead, size=1, timers=timers, clock=clock.monotonic,
                            random=lambda: 0.0) as pool:
                future = pool.track(PollSpec("r-1", "OptimStep"))
                wait_until(lambda: len(timers.delays) >= 8)
                assert not future.done()
                assert future.cancel()
        finally:
            dead.close()
        assert timers.delays[:8] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


class TestProgressTimeout:
    def test_the_progress_timeout_fires_after_120_minutes_without_progress(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """Connection errors for 2 h of fake time: ProgressTimeoutError, not before."""
        scripted = ScriptedTransport(errors.APIConnectionError("refused"))
        start = clock.monotonic()
        with (
            PollerPool(scripted, size=1, timers=timers, clock=clock.monotonic,
                       random=lambda: 0.0) as pool,
            pytest.raises(ProgressTimeoutError, match="No progress made in 7200 s"),
        ):
            pool.track(PollSpec("r-1", "Sample")).result(timeout=20)
        waited = clock.monotonic() - start
        assert TWO_HOURS_S < waited <= TWO_HOURS_S + 10.0

    def test_progress_of_another_request_of_the_client_keeps_it_polling(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """While the client completes other requests, a 3 h outage of one poll never fails it."""
        tracker = ProgressTracker(TWO_HOURS_S, clock=clock.monotonic)
        start = clock.monotonic()

        def answer() -> object:
            if clock.monotonic() - start < 3 * 3600:
                return errors.APIConnectionError("refused")
            return json_answer(b'{"ok": 1}')

        def other_request_completed() -> None:
            tracker.note_progress()

        timers.on_fire = other_request_completed
        scripted = ScriptedTransport(answer)  # type: ignore[arg-type]
        with PollerPool(scripted, size=1, timers=timers, clock=clock.monotonic,
                        random=lambda: 0.0) as pool:
            future = pool.track(PollSpec("r-1", "ForwardBackward", progress=tracker))
            assert future.result(timeout=20) == {"ok": 1}
        assert clock.monotonic() - start >= 3 * 3600

    def test_a_completion_counts_as_progress_for_the_client(
        self, local: LocalServer, pool: PollerPool, clock: FakeClock
    ) -> None:
        """A settled future moves its client's last progress to now."""
        tracker = ProgressTracker(TWO_HOURS_S, clock=clock.monotonic)
        clock.advance(100.0)
        [rid] = make_futures(local)
        pool.track(PollSpec(rid, "OptimStep", progress=tracker)).result(timeout=10)
        assert tracker.last_progress == clock.monotonic()


class TestPollerDeaths:
    def test_a_killed_poller_is_restarted_and_its_futures_are_polled_again(
        self, local: LocalServer, transport: CountingTransport, timers: FakeTimers,
        clock: FakeClock,
    ) -> None:
        """Kill the Poller mid-poll: its successor adopts the future, which still settles."""
        with PollerPool(transport, size=1, timers=timers, clock=clock.monotonic) as pool:
            [rid] = make_futures(local, resolve_after_s=0.5)
            future = pool.track(PollSpec(rid, "OptimStep"))
            wait_until(lambda: transport.count >= 1)
            first = pool.poller(0)
            assert first is not None
            assert kill(first)
            wait_until(lambda: pool.poller(0) not in (None, first))
            assert future.result(timeout=10) == RESULT
            assert pool.tracked() == 0

    def test_stopping_the_pool_fails_every_pending_future(
        self, local: LocalServer, transport: CountingTransport, timers: FakeTimers,
        clock: FakeClock,
    ) -> None:
        """Pool stop: futures still pending fail with PollerStoppedError, never hang."""
        ids = make_futures(local, count=5, resolve_after_s=3600)
        with PollerPool(transport, size=2, timers=timers, clock=clock.monotonic) as pool:
            futures = [pool.track(PollSpec(rid, "OptimStep")) for rid in ids]
            wait_until(lambda: transport.count >= 5)
        for future in futures:
            with pytest.raises(PollerStoppedError, match="resubmit"):
                future.result(timeout=5)
        assert pool.tracked() == 0

    def test_tracking_on_a_stopped_pool_fails_at_once(
        self, transport: CountingTransport, timers: FakeTimers
    ) -> None:
        """track() on a pool that is not running returns a failed future."""
        pool = PollerPool(transport, size=1, timers=timers)
        with pytest.raises(PollerStoppedError, match="not running"):
            pool.track(PollSpec("r-1", "OptimStep")).result(timeout=1)

    def test_a_pool_that_runs_out_of_restarts_fails_its_futures(
        self, local: LocalServer, transport: CountingTransport, timers: FakeTimers,
        clock: FakeClock,
    ) -> None:
        """Past its restart intensity the supervisor ends, and pending futures fail."""
        pool = PollerPool(transport, size=1, timers=timers, max_restarts=0).start()
        try:
            [rid] = make_futures(local, resolve_after_s=3600)
            future = pool.track(PollSpec(rid, "OptimStep"))
            wait_until(lambda: transport.count >= 1)
            poller = pool.poller(0)
            assert poller is not None
            kill(poller)
            with pytest.raises(PollerStoppedError):
                future.result(timeout=10)
            wait_until(lambda: not pool.is_running)
        finally:
            pool.stop()


class TestValidation:
    def test_bad_pool_settings_name_the_field(self, transport: CountingTransport) -> None:
        """size, max_inflight_polls and the byte budget are checked with the fix."""
        with pytest.raises(ValueError, match="size=0"):
            PollerPool(transport, size=0)
        with pytest.raises(ValueError, match="max_inflight_polls=1"):
            PollerPool(transport, size=2, max_inflight_polls=1)
        with pytest.raises(ValueError, match="inflight_response_bytes=0"):
            PollerPool(transport, inflight_response_bytes=0)

    def test_a_poll_spec_needs_a_request_id(self) -> None:
        """An empty request_id is refused, naming the field."""
        with pytest.raises(ValueError, match="request_id=''"):
            PollSpec("", "OptimStep")


class TestBoundedResources:
    def test_hundreds_of_futures_use_no_thread_per_future(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport
    ) -> None:
        """500 futures in flight: the thread count does not grow with them."""
        import threading

        [warm] = make_futures(local)
        pool.track(PollSpec(warm, "OptimStep")).result(timeout=10)
        before = threading.active_count()
        ids = make_futures(local, count=500, resolve_after_s=0.3, spread_s=0.3)
        futures = [pool.track(PollSpec(rid, "OptimStep")) for rid in ids]
        wait_until(lambda: transport.count >= 400)
        during = threading.active_count()
        assert [f.result(timeout=20) for f in futures] == [RESULT] * 500
        assert during <= before + 1  # at most the timer thread

    def test_a_closed_transport_fails_the_future_instead_of_hanging(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """A TransportClosedError from the transport is final: the future fails at once."""
        scripted = ScriptedTransport(errors.TransportClosedError("closed"))
        with (
            PollerPool(scripted, size=1, timers=timers, clock=clock.monotonic) as pool,
            pytest.raises(errors.TransportClosedError),
        ):
            pool.track(PollSpec("r-1", "OptimStep")).result(timeout=10)
        assert len(scripted.requests) == 1


class TestBugsStayContained:
    def test_an_answer_the_poller_cannot_handle_fails_only_its_future(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """A handler error fails that future; the same Poller goes on serving others."""
        good = json_answer(b'{"ok": true}')
        scripted = ScriptedTransport("not an HttpResponse", good)  # type: ignore[arg-type]
        with PollerPool(scripted, size=1, timers=timers, clock=clock.monotonic) as pool:
            poller = pool.poller(0)
            with pytest.raises(AttributeError):
                pool.track(PollSpec("r-1", "OptimStep")).result(timeout=10)
            assert pool.track(PollSpec("r-2", "OptimStep")).result(timeout=10) == {"ok": True}
            assert pool.poller(0) is poller
