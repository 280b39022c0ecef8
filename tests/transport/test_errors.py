"""The exception tree: status mapping, messages, pickling, user and retryable rules."""

from __future__ import annotations

import pickle

import pytest

from tinkex_actors import errors
from tinkex_actors.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    RequestFailedError,
    error_for_status,
    is_retryable,
    is_retryable_status,
    is_user_error,
)


class TestStatusMapping:
    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, errors.BadRequestError),
            (401, errors.AuthenticationError),
            (402, errors.BillingError),
            (403, errors.PermissionDeniedError),
            (404, errors.NotFoundError),
            (408, errors.RequestTimeoutError),
            (409, errors.ConflictError),
            (410, errors.PromiseExpiredError),
            (422, errors.UnprocessableEntityError),
            (429, errors.RateLimitError),
            (500, errors.InternalServerError),
            (503, errors.InternalServerError),
            (418, errors.APIStatusError),
        ],
    )
    def test_each_status_maps_to_its_exception(self, status: int, cls: type) -> None:
        """error_for_status returns the official class for the status."""
        error = error_for_status(status, b"{}")
        assert type(error) is cls
        assert error.status_code == status
        assert isinstance(error, APIStatusError)

    def test_names_match_the_official_exceptions(self) -> None:
        """Every official exception name exists here with the same parentage."""
        tinker = pytest.importorskip("tinker")
        for name in (
            "BadRequestError",
            "AuthenticationError",
            "PermissionDeniedError",
            "NotFoundError",
            "ConflictError",
            "UnprocessableEntityError",
            "RateLimitError",
            "InternalServerError",
            "APIStatusError",
            "APIConnectionError",
            "APITimeoutError",
            "APIError",
            "TinkerError",
            "RequestFailedError",
        ):
            ours = getattr(errors, name)
            official = getattr(tinker, name)
            ours_parents = [c.__name__ for c in ours.__mro__ if c.__module__ == errors.__name__]
            official_parents = [
                c.__name__ for c in official.__mro__ if c.__module__.startswith("tinker")
            ]
            assert ours_parents == official_parents, name

    def test_the_message_has_the_status_the_body_and_a_fix(self) -> None:
        """The message starts like the official one and says what to do."""
        error = error_for_status(
            404, b'{"detail": "model not found"}', {}, method="POST", url="http://h/api/v1/x"
        )
        assert str(error).startswith("Error code: 404 - {'detail': 'model not found'}")
        assert "POST http://h/api/v1/x" in str(error)
        assert "check the id" in str(error)
        assert error.body == {"detail": "model not found"}

    def test_a_non_json_body_is_kept_as_text_and_an_empty_one_as_none(self) -> None:
        """Bodies decode to JSON when they can, text otherwise, None when empty."""
        assert error_for_status(502, b"bad gateway").body == "bad gateway"
        assert error_for_status(400, b"").body is None

    def test_headers_are_kept_case_insensitively_with_the_request_id(self) -> None:
        """The server's request id is available for bug reports."""
        error = error_for_status(500, b"", {"X-Request-Id": "req-1"})
        assert error.request_id == "req-1"

    def test_a_key_echoed_in_a_body_is_masked_in_the_message(self) -> None:
        """A body that echoes the API key never puts it in the message."""
        key = "tml-EchoedKey00000000000000000000009876"
        error = error_for_status(401, f'{{"detail": "bad key {key}"}}'.encode())
        assert key not in str(error)
        assert key not in repr(error)
        assert "tml-…9876" in str(error)


class TestPickling:
    def test_status_errors_survive_pickling(self) -> None:
        """A status error crosses a process boundary with its fields."""
        error = error_for_status(429, b'{"x": 1}', {"Retry-After": "2"}, method="GET", url="u")
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is errors.RateLimitError
        assert (copy.status_code, copy.body, copy.headers, copy.method, copy.url) == (
            429,
            {"x": 1},
            {"retry-after": "2"},
            "GET",
            "u",
        )
        assert str(copy) == str(error)

    def test_request_failed_errors_survive_pickling(self) -> None:
        """RequestFailedError keeps its request id and category."""
        copy = pickle.loads(pickle.dumps(RequestFailedError("boom", "req-9", "user")))
        assert (copy.message, copy.request_id, copy.category) == ("boom", "req-9", "user")

    def test_connection_errors_survive_pickling(self) -> None:
        """APITimeoutError keeps its type and message."""
        copy = pickle.loads(pickle.dumps(APITimeoutError("slow", method="POST", url="u")))
        assert type(copy) is APITimeoutError
        assert str(copy) == "slow"


class TestUserErrors:
    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 429])
    def test_4xx_other_than_408_are_user_errors(self, status: int) -> None:
        """The official rule: any 4xx except 408 is the user's."""
        assert is_user_error(error_for_status(status))

    @pytest.mark.parametrize("status", [408, 500, 503])
    def test_408_and_5xx_are_not_user_errors(self, status: int) -> None:
        """Timeouts and server failures are not the user's."""
        assert not is_user_error(error_for_status(status))

    def test_failed_futures_follow_their_category(self) -> None:
        """A failed future is a user error only when its category is 'user'."""
        assert is_user_error(RequestFailedError("m", "r", "user"))
        assert not is_user_error(RequestFailedError("m", "r", "server"))
        assert not is_user_error(RequestFailedError("m", "r", "unknown"))

    def test_a_user_error_in_the_cause_chain_counts(self) -> None:
        """A wrapper raised from a user error is a user error, as officially."""
        try:
            try:
                raise error_for_status(400)
            except APIStatusError as inner:
                raise RuntimeError("wrapped") from inner
        except RuntimeError as outer:
            assert is_user_error(outer)

    def test_a_cyclic_chain_terminates(self) -> None:
        """An exception chain with a cycle does not loop forever."""
        first, second = RuntimeError("a"), RuntimeError("b")
        first.__context__, second.__context__ = second, first
        assert not is_user_error(first)

    def test_plain_exceptions_are_not_user_errors(self) -> None:
        """An exception with no status and no category is not the user's."""
        assert not is_user_error(ValueError("x"))


class TestRetryable:
    @pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
    def test_official_retryable_statuses(self, status: int) -> None:
        """408, 409, 429 and 5xx are retried."""
        assert is_retryable_status(status)
        assert is_retryable(error_for_status(status))

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
    def test_other_4xx_are_not_retried(self, status: int) -> None:
        """Other 4xx fail at once."""
        assert not is_retryable_status(status)
        assert not is_retryable(error_for_status(status))

    def test_x_should_retry_overrides_both_ways(self) -> None:
        """x-should-retry: true retries a 400; false stops a 503."""
        assert is_retryable_status(400, {"X-Should-Retry": "true"})
        assert not is_retryable_status(503, {"x-should-retry": "false"})
        assert is_retryable(error_for_status(400, None, {"x-should-retry": "true"}))

    def test_410_is_retryable_by_resubmitting(self) -> None:
        """A dropped promise is retryable: the caller resubmits the request."""
        assert is_retryable(error_for_status(410))

    def test_connection_errors_and_timeouts_are_retryable(self) -> None:
        """No answer at all is worth retrying."""
        assert is_retryable(APIConnectionError())
        assert is_retryable(APITimeoutError())
        assert is_retryable(TimeoutError())
        assert is_retryable(errors.RetryableException("again"))

    def test_other_exceptions_are_not_retryable(self) -> None:
        """A bug is not retried."""
        assert not is_retryable(ValueError("x"))
        assert not is_retryable(RequestFailedError("m", "r", "server"))
