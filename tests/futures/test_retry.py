"""RetryPolicy delays and the progress tracker."""

from __future__ import annotations

import pytest

from supervisors.testing import FakeClock
from tinkex_actors.errors import APIConnectionError
from tinkex_actors.transport.retry import ProgressTimeoutError, ProgressTracker, RetryPolicy


class TestRetryPolicy:
    def test_the_defaults_are_the_official_ones(self) -> None:
        """Base 0.5 s, cap 10 s, jitter 25%, progress timeout 120 min."""
        policy = RetryPolicy()
        assert (policy.base_delay_s, policy.max_delay_s, policy.jitter) == (0.5, 10.0, 0.25)
        assert policy.progress_timeout_s == 120 * 60

    def test_backoff_doubles_from_the_base_up_to_the_cap(self) -> None:
        """Without jitter the delays are 0.5, 1, 2, 4, 8, 10, 10."""
        policy = RetryPolicy()
        assert [policy.backoff_s(n, lambda: 0.0) for n in range(7)] == [
            0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0
        ]

    def test_jitter_shortens_a_delay_by_at_most_its_fraction(self) -> None:
        """The largest jitter draw gives 75% of the delay."""
        assert RetryPolicy().backoff_s(5, lambda: 1.0) == pytest.approx(7.5)

    def test_a_huge_failure_count_does_not_overflow(self) -> None:
        """Thousands of failures still give the cap."""
        assert RetryPolicy().backoff_s(10_000, lambda: 0.0) == 10.0

    def test_try_again_honours_retry_after_ms_and_defaults_to_one_second(self) -> None:
        """retry_after_ms in (0, 60 s] is used; none or too large gives try_again_delay_s."""
        policy = RetryPolicy()
        assert policy.try_again_s(2500) == 2.5
        assert policy.try_again_s(None) == 1.0
        assert policy.try_again_s(0) == 1.0
        assert policy.try_again_s(3_600_000) == 1.0

    def test_retry_after_headers_win_over_backoff_when_reasonable(self) -> None:
        """Retry-After: 3 gives 3 s; an absurd one gives backoff."""
        policy = RetryPolicy()
        assert policy.retry_after_s({"retry-after": "3"}, 0, random=lambda: 0.0) == 3.0
        assert policy.retry_after_s({"retry-after-ms": "1500"}, 0, random=lambda: 0.0) == 1.5
        assert policy.retry_after_s({"retry-after": "999"}, 2, random=lambda: 0.0) == 2.0
        assert policy.retry_after_s(None, 0, random=lambda: 0.0) == 0.5

    @pytest.mark.parametrize(
        ("field", "value", "hint"),
        [
            ("base_delay_s", 0, "> 0"),
            ("max_delay_s", -1, "> 0"),
            ("jitter", 1.5, "[0, 1]"),
            ("progress_timeout_s", "long", "not a number"),
            ("max_bad_request_retries", -1, "int >= 0"),
        ],
    )
    def test_bad_settings_name_the_field_the_value_and_the_fix(
        self, field: str, value: object, hint: str
    ) -> None:
        """Each invalid setting raises ValueError naming it."""
        with pytest.raises(ValueError, match=f"RetryPolicy.{field}=") as caught:
            RetryPolicy(**{field: value})  # type: ignore[arg-type]
        assert hint in str(caught.value)

    def test_a_cap_below_the_base_is_refused(self) -> None:
        """max_delay_s < base_delay_s raises, naming both."""
        with pytest.raises(ValueError, match=r"max_delay_s=1\.0 is below base_delay_s=2\.0"):
            RetryPolicy(base_delay_s=2.0, max_delay_s=1.0)


class TestProgressTracker:
    def test_a_request_expires_only_after_the_timeout_without_progress(self) -> None:
        """expired() turns true only past progress_timeout_s after the start."""
        clock = FakeClock()
        tracker = ProgressTracker(60.0, clock=clock.monotonic)
        started = clock.monotonic()
        clock.advance(60.0)
        assert not tracker.expired(started)
        clock.advance(0.001)
        assert tracker.expired(started)

    def test_progress_of_the_client_pushes_the_deadline_back(self) -> None:
        """note_progress() resets the clock for every request of the client."""
        clock = FakeClock()
        tracker = ProgressTracker(60.0, clock=clock.monotonic)
        started = clock.monotonic()
        clock.advance(50.0)
        tracker.note_progress()
        clock.advance(50.0)
        assert not tracker.expired(started)
        assert tracker.deadline(started) == pytest.approx(110.0)

    def test_the_timeout_error_is_a_connection_error_as_officially(self) -> None:
        """ProgressTimeoutError is an APIConnectionError."""
        assert issubclass(ProgressTimeoutError, APIConnectionError)
