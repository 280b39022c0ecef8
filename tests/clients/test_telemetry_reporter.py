"""The TelemetryReporter actor against the embedded server, on a fake clock."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any, cast

import pytest

from supervisors import stop
from supervisors.testing import FakeClock
from supervisors.timers import TimerService
from tinkex_actors import telemetry
from tinkex_actors.clients.telemetry_reporter import (
    Drain,
    Log,
    LogException,
    Stats,
    TelemetryReporter,
)
from tinkex_actors.config import Config
from tinkex_actors.local import LocalServer
from tinkex_actors.service.service_client import ServiceClient
from tinkex_actors.transport.transport import Transport

WAIT_S = 30.0
PATH = "/api/v1/telemetry"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key="tml-telemetry") as srv:
        yield srv


@pytest.fixture
def transport(server: LocalServer) -> Iterator[Transport]:
    t = Transport(Config.resolve(base_url=server.url, api_key="tml-telemetry", environ={}))
    yield t
    t.close()


def drain(ref: Any) -> int:
    future = cast(concurrent.futures.Future[int], ref.ask(Drain(), timeout=WAIT_S))
    return future.result(WAIT_S)


class TestBatching:
    def test_events_are_sent_in_batches_of_at_most_100(
        self, server: LocalServer, transport: Transport
    ) -> None:
        """250 events plus start and end go out as batches of 100, 100 and 52."""
        server.service.telemetry_events.clear()
        before = server.app.path_counts[PATH]
        ref = TelemetryReporter.start(
            transport, "s-t1", timers=TimerService(FakeClock()), bus=False
        )
        try:
            for i in range(250):
                ref.tell(Log("step", {"i": i}))
            assert drain(ref) == 0
        finally:
            stop(ref, timeout_s=WAIT_S)
        events = server.service.telemetry_events
        assert server.app.path_counts[PATH] - before == 3
        assert [e["event"] for e in (events[0], events[-1])] == ["SESSION_START", "SESSION_END"]
        assert [e["event_session_index"] for e in events] == list(range(252))
        assert sum(e["event"] == "GENERIC_EVENT" for e in events) == 250

    def test_a_partial_batch_waits_for_the_ten_second_tick(
        self, server: LocalServer, transport: Transport
    ) -> None:
        """Fewer than 100 events are flushed by the timer, not before."""
        clock = FakeClock()
        before = server.app.path_counts[PATH]
        ref = TelemetryReporter.start(transport, "s-t2", timers=TimerService(clock), bus=False)
        try:
            ref.tell(Log("one", {}))
            ref.ask(Log("two", {}), timeout=WAIT_S)  # processed: still nothing sent
            assert server.app.path_counts[PATH] == before
            clock.advance(10.0)
            assert drain(ref) == 0
            assert server.app.path_counts[PATH] - before >= 1
        finally:
            stop(ref, timeout_s=WAIT_S)

    def test_a_full_queue_drops_and_counts(self, transport: Transport) -> None:
        """Past the queue cap, events are dropped and counted, never blocking the sender."""
        ref = TelemetryReporter.start(
            transport, "s-t3", timers=TimerService(FakeClock()), max_queue=5, bus=False
        )
        try:
            # Below a full batch nothing is sent before the (fake) tick: the queue fills up.
            for i in range(10):
                ref.tell(Log("x", {"i": i}))
            stats = ref.ask(Stats(), timeout=WAIT_S)
            assert stats["queued"] == 5 and stats["dropped"] == 6  # SESSION_START + 4 kept
        finally:
            stop(ref, timeout_s=WAIT_S)


class TestContent:
    def test_exceptions_and_bus_events_are_reported(
        self, server: LocalServer, transport: Transport
    ) -> None:
        """LogException sends UNHANDLED_EXCEPTION; bus events become GENERIC_EVENTs."""
        server.service.telemetry_events.clear()
        ref = TelemetryReporter.start(transport, "s-t4", timers=TimerService(FakeClock()))
        try:
            ref.tell(LogException(ValueError("boom")))
            telemetry.emit("future.retry", {"delay_s": 0.5}, {"request_id": "r-1"})
            assert telemetry.flush(WAIT_S)
            drain(ref)
        finally:
            stop(ref, timeout_s=WAIT_S)
        kinds = {e["event"] for e in server.service.telemetry_events}
        assert "UNHANDLED_EXCEPTION" in kinds
        generic = [e for e in server.service.telemetry_events if e["event"] == "GENERIC_EVENT"]
        assert any(
            e["event_name"] == "future.retry" and e["event_data"]["request_id"] == "r-1"
            for e in generic
        )
        assert not any("tml-" in str(e) for e in server.service.telemetry_events)


class TestServiceClient:
    def test_a_service_client_reports_its_session_and_drains_on_close(
        self, server: LocalServer
    ) -> None:
        """SESSION_START and SESSION_END of the session reach the server by close()."""
        server.service.telemetry_events.clear()
        with ServiceClient(base_url=server.url, api_key="tml-telemetry") as sc:
            sc.report("custom", {"k": 1})
        events = server.service.telemetry_events
        assert events[0]["event"] == "SESSION_START"
        assert "SESSION_END" in [e["event"] for e in events]
        assert any(e.get("event_name") == "custom" for e in events)

    def test_telemetry_can_be_turned_off(self, server: LocalServer) -> None:
        """TINKER_TELEMETRY=0 starts no reporter and sends nothing."""
        before = server.app.path_counts[PATH]
        with ServiceClient(
            base_url=server.url, api_key="tml-telemetry", environ={"TINKER_TELEMETRY": "0"}
        ) as sc:
            assert sc.registry.whereis("telemetry") is None
        assert server.app.path_counts[PATH] == before


class TestOtherServers:
    def test_a_server_without_the_telemetry_endpoint_turns_reporting_off(
        self, server: LocalServer, transport: Transport
    ) -> None:
        """A 404 on telemetry stops the reporter from trying again every 10 s."""
        server.faults.inject_status(PATH, 404, times=50)
        ref = TelemetryReporter.start(transport, "s-t5", timers=TimerService(FakeClock()),
                                      bus=False)
        try:
            drain(ref)
            ref.tell(Log("after", {}))
            stats = ref.ask(Stats(), timeout=WAIT_S)
            assert stats["disabled"] is True and stats["queued"] == 0
        finally:
            stop(ref, timeout_s=WAIT_S)
            server.faults.clear()


class TestNeverBlocks:
    def test_a_slow_telemetry_endpoint_does_not_hold_a_training_step(
        self, server: LocalServer
    ) -> None:
        """While a telemetry batch is held by the server, training steps still complete."""
        import numpy as np

        from tinkex_actors import types

        with ServiceClient(base_url=server.url, api_key="tml-telemetry") as sc:
            tc = sc.create_lora_training_client("tiny-byte-lm", rank=2).result(WAIT_S)
            server.faults.delay(PATH, 3.0)
            for i in range(120):  # over the 100-event threshold: a flush starts now
                sc.report("load", {"i": i})
            reporter = sc.registry.whereis("telemetry")
            assert reporter is not None
            datum = types.Datum(
                model_input=types.ModelInput.from_ints([1, 2, 3]),
                loss_fn_inputs={"target_tokens": types.TensorData.from_numpy(
                    np.array([2, 3, 4], dtype=np.int64))},
            )
            out = tc.forward_backward([datum], "cross_entropy").result(WAIT_S)
            assert out.metrics["loss:sum"] > 0
            assert reporter.ask(Stats(), timeout=WAIT_S)["in_flight"] > 0
        server.faults.clear()


class TestRetries:
    def test_a_failed_send_is_retried_and_the_batch_arrives(
        self, server: LocalServer, transport: Transport
    ) -> None:
        """A 503 on telemetry is retried (with backoff) and the batch is delivered once."""
        server.service.telemetry_events.clear()
        server.faults.inject_status(PATH, 503, times=1)
        before = server.app.path_counts[PATH]
        ref = TelemetryReporter.start(transport, "s-t6", timers=TimerService(FakeClock()),
                                      bus=False)
        try:
            ref.tell(Log("retried", {}))
            assert drain(ref) == 0
            assert ref.ask(Stats(), timeout=WAIT_S)["sent"] == 3  # start, event, end
        finally:
            stop(ref, timeout_s=WAIT_S)
            server.faults.clear()
        assert server.app.path_counts[PATH] - before == 2  # the 503, then the retry
        names = [e.get("event_name") for e in server.service.telemetry_events]
        assert names.count("retried") == 1
