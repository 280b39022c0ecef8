"""`RequestOptions` under its official top-level name (issue 15)."""

from __future__ import annotations

import tinker

import tinkex_actors
from tinkex_actors import RequestOptions


class TestRequestOptions:
    def test_same_keys_and_totality_as_the_official_typed_dict(self) -> None:
        """tinkex_actors.RequestOptions has the official keys, all optional."""
        assert set(RequestOptions.__annotations__) == set(tinker.RequestOptions.__annotations__)
        assert RequestOptions.__total__ is False and not RequestOptions.__required_keys__
        assert "RequestOptions" in tinkex_actors.__all__

    def test_is_a_plain_dict_at_runtime(self) -> None:
        """Built like the official one: a dict holding only the keys given."""
        options = RequestOptions(max_retries=2, idempotency_key="k-1")
        assert options == {"max_retries": 2, "idempotency_key": "k-1"}
