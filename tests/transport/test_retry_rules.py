"""The pure retry rules: server delays, backoff and jitter, platform headers."""

from __future__ import annotations

import email.utils

import pytest

from tinkex_actors.transport.http_retry import platform_headers, retry_delay_s
from tinkex_actors.transport.retry import backoff_s, parse_retry_after_s

NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


class TestRetryAfter:
    def test_retry_after_ms_wins_over_retry_after(self) -> None:
        """retry-after-ms is read first and converted to seconds."""
        assert parse_retry_after_s({"retry-after-ms": "250", "retry-after": "9"}, clock) == 0.25

    def test_retry_after_in_seconds_allows_floats(self) -> None:
        """Retry-After: 1.5 is 1.5 s."""
        assert parse_retry_after_s({"Retry-After": "1.5"}, clock) == 1.5

    def test_retry_after_as_an_http_date_is_measured_from_now(self) -> None:
        """Retry-After as an HTTP date gives the seconds until that date."""
        date = email.utils.formatdate(NOW + 7, usegmt=True)
        assert parse_retry_after_s({"retry-after": date}, clock) == pytest.approx(7.0)

    def test_garbage_and_absence_mean_no_server_delay(self) -> None:
        """An unparsable or missing header gives None."""
        assert parse_retry_after_s({"retry-after": "soon"}, clock) is None
        assert parse_retry_after_s({}, clock) is None

    def test_a_malformed_ms_header_falls_back_to_retry_after(self) -> None:
        """A bad retry-after-ms is skipped, then Retry-After is read."""
        assert parse_retry_after_s({"retry-after-ms": "x", "retry-after": "3"}, clock) == 3.0


class TestDelay:
    def test_backoff_doubles_from_half_a_second_up_to_ten(self) -> None:
        """Without jitter: 0.5, 1, 2, 4, 8, then capped at 10."""
        delays = [backoff_s(n, random=lambda: 0.0) for n in range(7)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]

    def test_jitter_shortens_the_delay_by_at_most_a_quarter(self) -> None:
        """The jitter factor lies in [0.75, 1]."""
        assert backoff_s(0, random=lambda: 1.0) == pytest.approx(0.375)
        assert backoff_s(10, random=lambda: 0.5) == pytest.approx(8.75)

    def test_huge_retry_counts_do_not_overflow(self) -> None:
        """The exponent is capped, so the delay stays at the maximum."""
        assert backoff_s(10**9, random=lambda: 0.0) == 10.0

    @pytest.mark.parametrize(("asked", "expected"), [("2", 2.0), ("60", 60.0), ("0.001", 0.001)])
    def test_a_reasonable_server_delay_is_obeyed(self, asked: str, expected: float) -> None:
        """A server delay in (0, 60] s is used as is, without jitter."""
        delay = retry_delay_s(3, {"retry-after": asked}, random=lambda: 1.0, now=clock)
        assert delay == expected

    @pytest.mark.parametrize("asked", ["0", "-5", "61", "3600"])
    def test_an_unreasonable_server_delay_falls_back_to_backoff(self, asked: str) -> None:
        """A delay of 0, negative or over 60 s is ignored for our backoff."""
        delay = retry_delay_s(2, {"retry-after": asked}, random=lambda: 0.0, now=clock)
        assert delay == 2.0

    def test_a_past_http_date_falls_back_to_backoff(self) -> None:
        """A Retry-After date in the past gives our backoff."""
        date = email.utils.formatdate(NOW - 30, usegmt=True)
        delay = retry_delay_s(0, {"retry-after": date}, random=lambda: 0.0, now=clock)
        assert delay == 0.5


class TestPlatformHeaders:
    def test_the_official_x_stainless_names_are_present(self) -> None:
        """Package version, OS, arch, runtime and runtime version are described."""
        headers = platform_headers("9.9.9")
        assert headers["X-Stainless-Package-Version"] == "9.9.9"
        for name in ("OS", "Arch", "Runtime", "Runtime-Version", "Async"):
            assert headers[f"X-Stainless-{name}"]

    def test_our_values_agree_with_the_official_sdk_on_this_machine(self) -> None:
        """OS, arch, runtime and version are computed as the official SDK does."""
        base = pytest.importorskip("tinker._base_client")
        official = base.platform_headers("9.9.9", platform=None)
        ours = platform_headers("9.9.9")
        for name, value in official.items():
            assert ours[name] == value, name
