"""Restart intensity checked against a naive reference model, with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisors import REACHED_MAX_RESTART_INTENSITY, Shutdown, Supervisor, which_children
from supervisors.supervisor import add_restart
from supervisors.testing import FakeClock, wait_for_down

from ._actors import WAIT_S, Starts, worker_spec


def reference_gives_up_at(times: list[float], max_restarts: int, max_seconds: float) -> int | None:
    """Naive model: restart i fails if more than max_restarts restarts (itself included)
    happened within max_seconds before it."""
    for i, now in enumerate(times):
        in_window = sum(1 for t in times[: i + 1] if now - t <= max_seconds)
        if in_window > max_restarts:
            return i
    return None


def implementation_gives_up_at(
    times: list[float], max_restarts: int, max_seconds: float
) -> int | None:
    restarts: list[float] = []
    for i, now in enumerate(times):
        restarts, ok = add_restart(restarts, now, max_restarts, max_seconds)
        if not ok:
            return i
    return None


gaps = st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.9, 5.0, 5.1, 10.0]), max_size=25)


def _times(steps: list[float]) -> list[float]:
    times, now = [], 0.0
    for step in steps:
        now += step
        times.append(now)
    return times


class TestIntensityModel:
    """The pure intensity rule agrees with the reference model."""

    @given(
        steps=gaps,
        max_restarts=st.integers(min_value=0, max_value=5),
        max_seconds=st.sampled_from([1.0, 5.0, 10.0]),
    )
    def test_the_rule_gives_up_exactly_when_the_model_does(self, steps, max_restarts, max_seconds):
        """For any crash timing, the first refused restart is the model's."""
        times = _times(steps)
        assert implementation_gives_up_at(times, max_restarts, max_seconds) == (
            reference_gives_up_at(times, max_restarts, max_seconds)
        )


class TestIntensityLive:
    """A live supervisor on a FakeClock survives or escalates as the model predicts."""

    @settings(max_examples=8, deadline=None)
    @given(steps=st.lists(st.sampled_from([0.0, 2.0, 5.0, 6.0]), min_size=1, max_size=5))
    def test_a_live_supervisor_follows_the_model(self, steps):
        """Crashes at the generated times end the supervisor iff the model says so."""
        clock, starts = FakeClock(), Starts()
        sup = Supervisor.start(
            [worker_spec("a", starts)], max_restarts=2, max_seconds=5.0, clock=clock
        )
        (ref,) = starts.expect("a")
        gives_up = reference_gives_up_at(_times(steps), 2, 5.0)
        try:
            for i, step in enumerate(steps):
                clock.advance(step)
                ref.tell("crash")
                if i == gives_up:
                    assert wait_for_down(sup, WAIT_S) == Shutdown(REACHED_MAX_RESTART_INTENSITY)
                    return
                (ref,) = starts.expect("a")
            assert which_children(sup)[0].ref is ref
        finally:
            from supervisors import stop

            stop(sup, timeout_s=WAIT_S)
