"""The telemetry bus: attach, emit, detach; handlers never block the emitter."""

from __future__ import annotations

import threading

import pytest
import structlog

from tinkex_actors import telemetry


class TestTelemetryBus:
    def test_a_handler_receives_measurements_and_metadata(self) -> None:
        """emit reaches the handler attached to its name, with both dicts."""
        got: list[telemetry.TelemetryEvent] = []
        attachment = telemetry.attach("future.retry", got.append)
        try:
            telemetry.emit("future.retry", {"delay_s": 0.5}, {"request_id": "r"})
            telemetry.emit("other.event", {"x": 1.0})
            assert telemetry.flush(5.0)
        finally:
            telemetry.detach(attachment)
        assert [(e.name, dict(e.measurements), dict(e.metadata)) for e in got] == [
            ("future.retry", {"delay_s": 0.5}, {"request_id": "r"})
        ]

    def test_a_star_handler_receives_every_event(self) -> None:
        """A handler attached to '*' gets events of every name."""
        got: list[str] = []
        attachment = telemetry.attach(telemetry.ALL_EVENTS, lambda e: got.append(e.name))
        try:
            telemetry.emit("a")
            telemetry.emit("b")
            assert telemetry.flush(5.0)
        finally:
            telemetry.detach(attachment)
        assert got == ["a", "b"]

    def test_a_detached_handler_hears_nothing_more(self) -> None:
        """After detach, emit does not reach the handler; detaching twice returns False."""
        got: list[str] = []
        attachment = telemetry.attach("x", lambda e: got.append(e.name))
        assert telemetry.detach(attachment)
        assert not telemetry.detach(attachment)
        telemetry.emit("x")
        assert got == []

    def test_a_raising_handler_is_logged_and_stays_attached(self) -> None:
        """A handler error is logged; the handler still gets the next event."""
        calls: list[str] = []

        def handler(event: telemetry.TelemetryEvent) -> None:
            calls.append(event.name)
            raise RuntimeError("handler bug")

        attachment = telemetry.attach("y", handler)
        try:
            with structlog.testing.capture_logs() as logs:
                telemetry.emit("y")
                telemetry.emit("y")
                assert telemetry.flush(5.0)
        finally:
            telemetry.detach(attachment)
        assert calls == ["y", "y"]
        assert [e["event"] for e in logs] == ["telemetry_handler_failed"] * 2

    def test_a_blocked_handler_never_blocks_the_emitter(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While a handler is stuck, emit returns at once and drops past the queue cap."""
        monkeypatch.setattr(telemetry, "MAX_QUEUED_EVENTS", 3)
        release = threading.Event()
        entered = threading.Event()

        def stuck(_event: telemetry.TelemetryEvent) -> None:
            entered.set()
            release.wait(10.0)

        attachment = telemetry.attach("z", stuck)
        try:
            dropped_before = telemetry.dropped_events()
            telemetry.emit("z")
            assert entered.wait(5.0)
            for _ in range(10):
                telemetry.emit("z")
            assert telemetry.dropped_events() - dropped_before == 7
        finally:
            release.set()
            telemetry.detach(attachment)

    def test_no_thread_runs_while_nothing_is_attached(self) -> None:
        """The dispatcher thread exists only while a handler is attached."""
        names = lambda: {t.name for t in threading.enumerate()}  # noqa: E731
        telemetry.emit("nobody.listens")
        assert "tinkex-telemetry" not in names()
        attachment = telemetry.attach("q", lambda e: None)
        assert "tinkex-telemetry" in names()
        telemetry.detach(attachment)
        assert "tinkex-telemetry" not in names()

    def test_bad_arguments_are_refused_with_the_fix(self) -> None:
        """An empty event name or a non-callable handler raises a clear error."""
        with pytest.raises(ValueError, match="event=''"):
            telemetry.attach("", lambda e: None)
        with pytest.raises(TypeError, match="must be callable"):
            telemetry.attach("x", 3)  # type: ignore[arg-type]
