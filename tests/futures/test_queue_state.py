"""Queue states: parsing, the per-client debouncer, observers and telemetry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from supervisors.testing import FakeClock
from tinkex_actors import telemetry
from tinkex_actors.futures.queue_state import (
    QueueState,
    QueueStateChange,
    QueueStateDebouncer,
    parse_queue_state,
    pause_message,
)

PAUSED = QueueStateChange("r-1", "ForwardBackward", QueueState.PAUSED_CAPACITY, None)


@pytest.fixture
def events() -> Iterator[list[telemetry.TelemetryEvent]]:
    got: list[telemetry.TelemetryEvent] = []
    attachment = telemetry.attach(telemetry.EVENT_QUEUE_STATE_CHANGE, got.append)
    try:
        yield got
    finally:
        telemetry.detach(attachment)


def warnings(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["log_level"] == "warning"]


class TestParsing:
    @pytest.mark.parametrize(
        ("wire", "state"),
        [
            ("active", QueueState.ACTIVE),
            ("PAUSED_RATE_LIMIT", QueueState.PAUSED_RATE_LIMIT),
            (" Paused_Capacity ", QueueState.PAUSED_CAPACITY),
            ("paused_for_lunch", QueueState.UNKNOWN),
            (None, QueueState.UNKNOWN),
        ],
    )
    def test_wire_values_parse_ignoring_case_and_unknowns_read_as_unknown(
        self, wire: object, state: QueueState
    ) -> None:
        """parse_queue_state ignores case and maps anything else to UNKNOWN."""
        assert parse_queue_state(wire) is state


class TestWording:
    def test_training_pauses_use_the_official_wording_with_the_server_reason(self) -> None:
        """Training: 'Training for <model_id> is paused. Reason: <reason>.'"""
        text = pause_message("training", "m-1", QueueState.PAUSED_CAPACITY, "maintenance")
        assert text == "Training for m-1 is paused. Reason: maintenance."

    def test_sampling_pauses_use_the_official_wording_and_default_reasons(self) -> None:
        """Sampling: 'Sampling is paused for sampler <id>. Reason: <default>'."""
        text = pause_message("sampling", "s-1", QueueState.PAUSED_RATE_LIMIT, None)
        assert text == (
            "Sampling is paused for sampler s-1. Reason: concurrent sampler weights limit hit"
        )

    def test_each_state_has_its_default_reason(self) -> None:
        """Rate limit, capacity and unknown each have the official default text."""
        assert pause_message("training", "m", QueueState.PAUSED_RATE_LIMIT, "").endswith(
            "concurrent training clients rate limit hit."
        )
        assert pause_message("training", "m", QueueState.PAUSED_CAPACITY, None).endswith(
            "Tinker backend is running short on capacity, please wait."
        )
        assert pause_message("training", "m", QueueState.UNKNOWN, None).endswith("unknown.")


class TestDebouncer:
    def test_ten_changes_in_five_seconds_log_once_and_telemetry_fires_every_time(
        self, events: list[telemetry.TelemetryEvent]
    ) -> None:
        """Ten pause reports within 5 s give one warning and ten telemetry events."""
        clock = FakeClock()
        debouncer = QueueStateDebouncer("training", "m-1", clock=clock.monotonic)
        with structlog.testing.capture_logs() as logs:
            logged = []
            for _ in range(10):
                logged.append(debouncer.handle(PAUSED))
                clock.advance(0.5)
        assert logged == [True] + [False] * 9
        [warning] = warnings(logs)
        assert warning["event"] == "queue_paused"
        assert warning["message"] == (
            "Training for m-1 is paused. Reason: Tinker backend is running short on capacity, "
            "please wait."
        )
        assert telemetry.flush(5.0)
        assert len(events) == 10
        assert dict(events[0].metadata) == {
            "request_id": "r-1",
            "request_type": "ForwardBackward",
            "state": "paused_capacity",
            "reason": None,
            "owner_kind": "training",
            "owner": "m-1",
        }

    def test_a_change_after_61_seconds_logs_again(self) -> None:
        """The next warning comes once 60 s have passed."""
        clock = FakeClock()
        debouncer = QueueStateDebouncer("sampling", "s-1", clock=clock.monotonic)
        with structlog.testing.capture_logs() as logs:
            assert debouncer.handle(PAUSED)
            clock.advance(59.0)
            assert not debouncer.handle(PAUSED)
            clock.advance(2.0)
            assert debouncer.handle(PAUSED)
        assert len(warnings(logs)) == 2

    def test_two_clients_debounce_independently(self) -> None:
        """Each client's debouncer has its own 60 s window."""
        clock = FakeClock()
        first = QueueStateDebouncer("training", "m-1", clock=clock.monotonic)
        second = QueueStateDebouncer("training", "m-2", clock=clock.monotonic)
        with structlog.testing.capture_logs() as logs:
            assert first.handle(PAUSED)
            assert second.handle(PAUSED)
            assert not first.handle(PAUSED)
        assert [w["owner"] for w in warnings(logs)] == ["m-1", "m-2"]

    def test_active_never_logs_but_is_reported(
        self, events: list[telemetry.TelemetryEvent]
    ) -> None:
        """ACTIVE gives no warning, still a telemetry event and an observer call."""
        seen: list[tuple[QueueState, str | None]] = []

        class Observer:
            def on_queue_state_change(self, state: QueueState, reason: str | None) -> None:
                seen.append((state, reason))

        debouncer = QueueStateDebouncer("training", "m-1", observers=(Observer(),))
        active = QueueStateChange("r-1", "OptimStep", QueueState.ACTIVE, None)
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                assert not debouncer.handle(active)
        assert warnings(logs) == []
        assert seen == [(QueueState.ACTIVE, None)] * 3
        assert telemetry.flush(5.0) and len(events) == 3

    def test_the_server_reason_wins_over_the_default(self) -> None:
        """A reason from the server is logged as is."""
        debouncer = QueueStateDebouncer("training", "m-1")
        change = QueueStateChange("r", "Forward", QueueState.PAUSED_RATE_LIMIT, "quota of team")
        with structlog.testing.capture_logs() as logs:
            debouncer.handle(change)
        assert warnings(logs)[0]["message"] == "Training for m-1 is paused. Reason: quota of team."

    def test_a_raising_observer_is_logged_and_the_others_still_hear(self) -> None:
        """An observer that raises is logged as an error; the next observer is still called."""
        seen: list[QueueState] = []

        class Broken:
            def on_queue_state_change(self, state: QueueState, reason: str | None) -> None:
                raise RuntimeError("observer bug")

        class Good:
            def on_queue_state_change(self, state: QueueState, reason: str | None) -> None:
                seen.append(state)

        debouncer = QueueStateDebouncer("sampling", "s", observers=(Broken(), Good()))
        with structlog.testing.capture_logs() as logs:
            debouncer.handle(PAUSED)
        assert seen == [QueueState.PAUSED_CAPACITY]
        assert [e["event"] for e in logs if e["log_level"] == "error"] == [
            "queue_state_observer_failed"
        ]

    def test_a_grace_period_delays_the_first_warning(self) -> None:
        """With grace_period_s=900 (official), a pause is logged once it lasted 15 min."""
        clock = FakeClock()
        debouncer = QueueStateDebouncer(
            "training", "m-1", grace_period_s=900, clock=clock.monotonic
        )
        assert not debouncer.handle(PAUSED)
        clock.advance(899.0)
        assert not debouncer.handle(PAUSED)
        clock.advance(2.0)
        assert debouncer.handle(PAUSED)

    def test_observers_can_be_added_and_removed(self) -> None:
        """remove_observer stops forwarding; an object without the method is refused."""
        seen: list[QueueState] = []

        class Observer:
            def on_queue_state_change(self, state: QueueState, reason: str | None) -> None:
                seen.append(state)

        debouncer = QueueStateDebouncer("training", "m")
        observer = Observer()
        debouncer.add_observer(observer)
        debouncer.handle(PAUSED)
        assert debouncer.remove_observer(observer)
        assert not debouncer.remove_observer(observer)
        debouncer.handle(PAUSED)
        assert seen == [QueueState.PAUSED_CAPACITY]
        with pytest.raises(TypeError, match="on_queue_state_change"):
            debouncer.add_observer(object())  # type: ignore[arg-type]

    def test_bad_settings_name_the_field(self) -> None:
        """A wrong kind or a negative interval raises ValueError naming it."""
        with pytest.raises(ValueError, match="kind='train'"):
            QueueStateDebouncer("train", "m")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="interval_s=-1"):
            QueueStateDebouncer("training", "m", interval_s=-1)
