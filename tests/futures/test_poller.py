"""The retrieve_future state machine over real HTTP against the embedded server.

Every row of the futures table: the number of polls, the delays chosen (through the injected
timers), the queue-state messages to the owner, the log lines, and the final result or error.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pykka import ActorRef

from supervisors.testing import FakeClock
from tests.futures._support import (
    CountingTransport,
    FakeTimers,
    Owner,
    ScriptedTransport,
    json_answer,
    make_futures,
    wait_until,
)
from tinkex_actors import errors
from tinkex_actors.futures.future import FutureTimeoutError
from tinkex_actors.futures.poll_ledger import PollSpec
from tinkex_actors.futures.poller_actor import POLL_TIMEOUT_S
from tinkex_actors.futures.poller_pool import PollerPool
from tinkex_actors.futures.queue_state import QueueState, QueueStateChange, QueueStateDebouncer
from tinkex_actors.local.server import LocalServer
from tinkex_actors.transport.messages import Headers, HttpResponse

RETRIEVE = "/api/v1/retrieve_future"
RESULT = {"metrics": {}}


@pytest.fixture
def owner() -> Iterator[ActorRef[Owner]]:
    ref = Owner.start()
    yield ref
    ref.stop()


def changes(owner: ActorRef[Owner]) -> list[QueueStateChange]:
    got: list[QueueStateChange] = owner.ask("changes", timeout=5)
    return got


def track(pool: PollerPool, request_id: str, **options: Any) -> Any:
    return pool.track(PollSpec(request_id, "OptimStep", **options))


class TestCompletion:
    def test_a_future_completing_during_the_first_long_poll_takes_one_poll(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
        timers: FakeTimers,
    ) -> None:
        """A future answered within the long poll settles after exactly one poll."""
        [rid] = make_futures(local, resolve_after_s=0.05)
        assert track(pool, rid).result(timeout=10) == RESULT
        assert transport.count == 1
        assert timers.delays == []
        assert pool.tracked() == 0

    def test_a_long_poll_expiry_408_is_polled_again_at_once(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
        timers: FakeTimers,
    ) -> None:
        """HTTP 408 (the server's long poll of 0.2 s ran out) re-polls with no delay."""
        [rid] = make_futures(local, resolve_after_s=0.7)
        assert track(pool, rid).result(timeout=10) == RESULT
        assert transport.count >= 2
        assert timers.delays == []  # every re-poll went out at once, no timer

    def test_polls_carry_the_official_headers_and_no_http_retries(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
    ) -> None:
        """Iteration counts up, the request type is sent, HTTP retries are off, 45 s timeout."""
        local.faults.inject_status(RETRIEVE, 408, body={"type": "try_again"})
        [rid] = make_futures(local)
        track(pool, rid, create_roundtrip_s=0.25).result(timeout=10)
        first, second = transport.requests[:2]
        assert first.headers["X-Tinker-Request-Iteration"] == "0"
        assert second.headers["X-Tinker-Request-Iteration"] == "1"
        assert first.headers["X-Tinker-Request-Type"] == "OptimStep"
        assert first.headers["X-Tinker-Create-Promise-Roundtrip-Time"] == "0.25"
        assert "X-Tinker-Create-Promise-Roundtrip-Time" not in second.headers
        assert "Accept" not in first.headers
        assert (first.max_retries, first.timeout_s, first.pool.value) == (
            0, POLL_TIMEOUT_S, "retrieve_promise"
        )
        assert first.path == "/api/v1/retrieve_future"

    def test_a_json_result_is_decoded_by_the_spec(
        self, local: LocalServer, pool: PollerPool
    ) -> None:
        """decode_json turns the result into the caller's type."""
        [rid] = make_futures(local)
        assert track(pool, rid, decode_json=lambda r: sorted(r)).result(timeout=10) == ["metrics"]

    def test_a_result_that_does_not_decode_fails_with_a_validation_error(
        self, local: LocalServer, pool: PollerPool
    ) -> None:
        """A decode error becomes APIResponseValidationError naming the request."""
        [rid] = make_futures(local)

        def bad(_raw: object) -> object:
            raise ValueError("missing field")

        with pytest.raises(errors.APIResponseValidationError, match=rid):
            track(pool, rid, decode_json=bad).result(timeout=10)

    def test_a_result_timeout_leaves_the_poll_running(
        self, local: LocalServer, pool: PollerPool
    ) -> None:
        """result(timeout) raises FutureTimeoutError; polling goes on to the result."""
        [rid] = make_futures(local, resolve_after_s=0.3)
        future = track(pool, rid)
        with pytest.raises(FutureTimeoutError):
            future.result(timeout=0.01)
        assert future.result(timeout=10) == RESULT


class TestQueueStates:
    def test_a_paused_queue_notifies_the_owner_and_waits_one_second_per_try_again(
        self, local: LocalServer, transport: CountingTransport, clock: FakeClock,
        owner: ActorRef[Owner],
    ) -> None:
        """try_again with a state: one message to the owner, 1 s delays, ACTIVE when done."""
        timers = FakeTimers(clock, auto=False)
        local.faults.pause("control", "paused_capacity", "maintenance window")
        [rid] = make_futures(local, resolve_after_s=1.0)
        with PollerPool(transport, size=1, timers=timers, clock=clock.monotonic,
                        random=lambda: 0.0) as pool:
            future = track(pool, rid, owner=owner)
            assert timers.wait_pending(1) == [1.0]
            timers.fire_all()
            assert timers.wait_pending(1) == [1.0]
            local.faults.resume("control")
            timers.fire_all()
            assert future.result(timeout=10) == RESULT
            assert transport.count >= 3  # 2 try_again, then (408s and) the result
            assert timers.delays == [1.0, 1.0]
        wait_until(lambda: len(changes(owner)) == 2)
        assert [(c.state, c.reason) for c in changes(owner)] == [
            (QueueState.PAUSED_CAPACITY, "maintenance window"),
            (QueueState.ACTIVE, None),
        ]
        assert changes(owner)[0].request_id == rid

    def test_try_again_honours_retry_after_ms(
        self, local: LocalServer, pool: PollerPool, timers: FakeTimers,
        owner: ActorRef[Owner],
    ) -> None:
        """A try_again with retry_after_ms waits that long; PAUSED_RATE_LIMIT is reported."""
        body = {"type": "try_again", "queue_state": "PAUSED_RATE_LIMIT", "retry_after_ms": 2500}
        local.faults.inject_status(RETRIEVE, 200, body=body, times=2)
        [rid] = make_futures(local)
        assert track(pool, rid, owner=owner).result(timeout=10) == RESULT
        assert timers.delays == [2.5, 2.5]
        wait_until(lambda: len(changes(owner)) == 2)
        assert [c.state for c in changes(owner)] == [
            QueueState.PAUSED_RATE_LIMIT, QueueState.ACTIVE
        ]

    def test_a_408_body_queue_state_is_reported_like_the_official_sdk(
        self, local: LocalServer, pool: PollerPool, owner: ActorRef[Owner],
        timers: FakeTimers,
    ) -> None:
        """A 408 whose body says paused_capacity notifies the owner and re-polls at once."""
        body = {"type": "try_again", "queue_state": "paused_capacity",
                "queue_state_reason": "busy"}
        local.faults.inject_status(RETRIEVE, 408, body=body)
        [rid] = make_futures(local)
        assert track(pool, rid, owner=owner).result(timeout=10) == RESULT
        assert timers.delays == []
        wait_until(lambda: len(changes(owner)) == 2)
        assert changes(owner)[0].state is QueueState.PAUSED_CAPACITY
        assert changes(owner)[0].reason == "busy"

    def test_an_owner_with_a_debouncer_logs_one_warning_in_the_official_words(
        self, local: LocalServer, pool: PollerPool,
    ) -> None:
        """The owning client actor logs 'Training for <id> is paused' once for many polls."""
        debouncer = QueueStateDebouncer("training", "model-7")
        ref = Owner.start(debouncer)
        try:
            bodies = [{"type": "try_again", "queue_state": s}
                      for s in ("paused_capacity", "paused_rate_limit", "paused_capacity")]
            for body in bodies:
                local.faults.inject_status(RETRIEVE, 200, body=body)
            [rid] = make_futures(local)
            with structlog.testing.capture_logs() as logs:
                assert track(pool, rid, owner=ref).result(timeout=10) == RESULT
                wait_until(lambda: len(changes(ref)) == 4)
        finally:
            ref.stop()
        paused = [e for e in logs if e["event"] == "queue_paused"]
        assert [e["message"] for e in paused] == [
            "Training for model-7 is paused. Reason: Tinker backend is running short on "
            "capacity, please wait."
        ]

    def test_a_future_without_an_owner_emits_the_telemetry_itself(
        self, local: LocalServer, pool: PollerPool,
    ) -> None:
        """With no owner, each change is a queue.state_change event with id, type, state."""
        from tinkex_actors import telemetry

        got: list[telemetry.TelemetryEvent] = []
        attachment = telemetry.attach(telemetry.EVENT_QUEUE_STATE_CHANGE, got.append)
        try:
            local.faults.inject_status(
                RETRIEVE, 200, body={"type": "try_again", "queue_state": "paused_capacity"}
            )
            [rid] = make_futures(local)
            track(pool, rid).result(timeout=10)
            assert telemetry.flush(5.0)
        finally:
            telemetry.detach(attachment)
        seen = [(e.metadata["request_id"], e.metadata["request_type"], e.metadata["state"])
                for e in got]
        assert seen == [(rid, "OptimStep", "paused_capacity"), (rid, "OptimStep", "active")]


class TestFailures:
    def test_a_user_failure_fails_after_exactly_one_poll(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
    ) -> None:
        """{error, category: user} raises RequestFailedError at once; it is a user error."""
        local.faults.inject_status(RETRIEVE, 200, body={"error": "bad loss_fn", "category": "user"})
        [rid] = make_futures(local, resolve_after_s=5)
        with pytest.raises(errors.RequestFailedError, match="bad loss_fn") as caught:
            track(pool, rid).result(timeout=10)
        assert transport.count == 1
        assert caught.value.category == "user" and errors.is_user_error(caught.value)
        assert caught.value.request_id == rid

    def test_a_server_failure_also_fails_at_once(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
    ) -> None:
        """As official 0.38: a failed future is final whatever its category."""
        local.faults.inject_status(RETRIEVE, 200, body={"error": "oom", "category": "server"})
        [rid] = make_futures(local, resolve_after_s=5)
        with pytest.raises(errors.RequestFailedError) as caught:
            track(pool, rid).result(timeout=10)
        assert transport.count == 1
        assert caught.value.category == "server" and not errors.is_user_error(caught.value)

    def test_a_410_is_a_retryable_promise_expired_error(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
    ) -> None:
        """HTTP 410 fails at once with PromiseExpiredError, which callers resubmit on."""
        local.faults.inject_status(RETRIEVE, 410)
        [rid] = make_futures(local, resolve_after_s=5)
        with pytest.raises(errors.PromiseExpiredError) as caught:
            track(pool, rid).result(timeout=10)
        assert transport.count == 1
        assert errors.is_retryable(caught.value)

    def test_other_4xx_are_fatal_after_one_poll(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
    ) -> None:
        """A 404 (unknown request id) fails with NotFoundError after one poll."""
        with pytest.raises(errors.NotFoundError):
            track(pool, "no-such-request").result(timeout=10)
        assert transport.count == 1

    def test_a_400_is_retried_three_times_then_fails(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
        timers: FakeTimers,
    ) -> None:
        """Four 400s: three retries with backoff, then BadRequestError."""
        local.faults.inject_status(RETRIEVE, 400, times=4)
        [rid] = make_futures(local)
        with pytest.raises(errors.BadRequestError):
            track(pool, rid).result(timeout=10)
        assert transport.count == 4
        assert timers.delays == [0.5, 1.0, 2.0]

    def test_three_400s_then_success_settles(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
    ) -> None:
        """Three 400s stay within the budget; the fourth poll gets the result."""
        local.faults.inject_status(RETRIEVE, 400, times=3)
        [rid] = make_futures(local)
        assert track(pool, rid).result(timeout=10) == RESULT
        assert transport.count == 4


class TestRetries:
    def test_5xx_is_retried_at_once_then_with_backoff(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
        timers: FakeTimers,
    ) -> None:
        """503 x3: the first retry is immediate, then 0.5 s and 1 s."""
        local.faults.inject_status(RETRIEVE, 503, times=3)
        [rid] = make_futures(local)
        assert track(pool, rid).result(timeout=10) == RESULT
        assert transport.count == 4
        assert timers.delays == [0.5, 1.0]

    def test_429_honours_retry_after_and_reports_a_queue_state_in_its_body(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
        timers: FakeTimers, owner: ActorRef[Owner],
    ) -> None:
        """429 with Retry-After: 3 waits 3 s; a queue_state in its body reaches the owner."""
        local.faults.inject_status(
            RETRIEVE, 429, retry_after_s=3, body={"queue_state": "paused_rate_limit"}
        )
        [rid] = make_futures(local)
        assert track(pool, rid, owner=owner).result(timeout=10) == RESULT
        assert timers.delays == [3.0]
        wait_until(lambda: len(changes(owner)) == 2)
        assert changes(owner)[0].state is QueueState.PAUSED_RATE_LIMIT

    def test_429_without_retry_after_backs_off(
        self, local: LocalServer, pool: PollerPool, timers: FakeTimers,
    ) -> None:
        """429s without a server delay back off 0.5, 1 s."""
        local.faults.inject_status(RETRIEVE, 429, times=2)
        [rid] = make_futures(local)
        assert track(pool, rid).result(timeout=10) == RESULT
        assert timers.delays == [0.5, 1.0]

    def test_dropped_connections_back_off_and_reset_after_any_answer(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
        timers: FakeTimers,
    ) -> None:
        """Two drops back off 0.5 s then 1 s; after a 503 answer, a drop starts at 0.5 s again."""
        local.faults.drop(RETRIEVE, times=2)
        local.faults.inject_status(RETRIEVE, 503)
        local.faults.drop(RETRIEVE)
        [rid] = make_futures(local, resolve_after_s=0.05)
        assert track(pool, rid).result(timeout=10) == RESULT
        assert timers.delays[:2] == [0.5, 1.0]
        assert 0.5 in timers.delays[2:]
        assert 1.0 not in timers.delays[2:] or timers.delays.count(1.0) == 1

    def test_pending_answers_back_off(self, timers: FakeTimers, clock: FakeClock) -> None:
        """{status: pending} re-polls after 0.5 s, then 1 s."""
        pending = json_answer(b'{"status": "pending"}')
        done = json_answer(b'{"status": "completed", "result": {"ok": true}}')
        scripted = ScriptedTransport(pending, pending, done)
        with PollerPool(scripted, size=1, timers=timers, clock=clock.monotonic,
                        random=lambda: 0.0) as pool:
            assert track(pool, "r-1").result(timeout=10) == {"ok": True}
        assert timers.delays == [0.5, 1.0]


class TestPayloads:
    def test_a_metadata_only_answer_fetches_the_payload_next(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """complete_metadata: the next poll turns allow_metadata_only off and gets the result."""
        meta = json_answer(b'{"status": "complete_metadata", "response_payload_size": 1000}')
        done = json_answer(b'{"value": 3}')
        scripted = ScriptedTransport(meta, done)
        with PollerPool(scripted, size=1, timers=timers, clock=clock.monotonic) as pool:
            assert track(pool, "r-1").result(timeout=10) == {"value": 3}
        bodies = [r.body for r in scripted.requests]
        assert b'"allow_metadata_only":true' in bodies[0]
        assert b'"allow_metadata_only":false' in bodies[1]

    def test_payloads_over_the_byte_budget_wait_their_turn(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """With a 1,000-byte budget, a second 800-byte payload is fetched after the first."""
        meta = json_answer(b'{"status": "complete_metadata", "response_payload_size": 800}')
        held: concurrent.futures.Future[HttpResponse] = concurrent.futures.Future()
        sent: list[tuple[str, bool]] = []

        class Transport(ScriptedTransport):
            def submit(self, request: Any) -> Any:
                rid = request.body.split(b'"request_id":"')[1].split(b'"')[0].decode()
                fetch = b'"allow_metadata_only":false' in request.body
                sent.append((rid, fetch))
                if fetch and rid == "a":
                    return held
                self.answers = [json_answer(b"{}") if fetch else meta]
                return super().submit(request)

        with PollerPool(Transport(meta), size=1, timers=timers, clock=clock.monotonic,
                        inflight_response_bytes=1000) as pool:
            first, second = track(pool, "a"), track(pool, "b")
            wait_until(lambda: len(sent) >= 3)
            poller = pool.poller(0)
            assert poller is not None
            poller.ask("sync", timeout=5)  # every answer sent so far has been handled
            assert sent == [("a", False), ("b", False), ("a", True)]
            held.set_result(json_answer(b'{"n": 1}'))
            assert first.result(timeout=10) == {"n": 1}
            assert second.result(timeout=10) == {}
        assert sent[3:] == [("b", True)]

    def test_a_protobuf_answer_is_read_by_decode_proto_and_asked_for(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """With decode_proto, polls send Accept: application/x-protobuf and read the body."""
        answer = HttpResponse(200, Headers({"content-type": "application/x-protobuf"}), b"\x01\x02")
        scripted = ScriptedTransport(answer)
        with PollerPool(scripted, size=1, timers=timers, clock=clock.monotonic) as pool:
            future = track(pool, "r-1", decode_proto=lambda body: len(body))
            assert future.result(timeout=10) == 2
        assert scripted.requests[0].headers["Accept"] == "application/x-protobuf"

    def test_an_unrequested_protobuf_answer_fails_clearly(
        self, timers: FakeTimers, clock: FakeClock
    ) -> None:
        """A protobuf body for a JSON-only request is a protocol disagreement, not a hang."""
        answer = HttpResponse(200, Headers({"content-type": "application/x-protobuf"}), b"\x01")
        with PollerPool(ScriptedTransport(answer), size=1, timers=timers,
                        clock=clock.monotonic) as pool, pytest.raises(
            errors.APIResponseValidationError, match="protobuf"
        ):
            track(pool, "r-1").result(timeout=10)


class TestCancel:
    def test_cancel_stops_polling_and_frees_the_slot(
        self, local: LocalServer, pool: PollerPool, transport: CountingTransport,
    ) -> None:
        """cancel() removes the future from its Poller and cancels its poll in flight."""
        [rid] = make_futures(local, resolve_after_s=3600)
        future = track(pool, rid)
        wait_until(lambda: transport.count >= 1)
        assert future.cancel()
        assert pool.tracked() == 0
        sent = transport.count
        [other] = make_futures(local)
        assert track(pool, other).result(timeout=10) == RESULT
        assert transport.count == sent + 1
