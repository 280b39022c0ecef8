"""`RequestOptions`: the official SDK's per-request options, as a type.

Official `tinker` 0.38 exports `RequestOptions` from its generated base client, where
internal resource calls take it; none of its public clients (`ServiceClient`,
`TrainingClient`, `SamplingClient`, `RestClient`) accepts one. Here the same TypedDict is
exported so code that annotates with it keeps type-checking. The settings it names come
from `Config` instead: headers (`Config.default_headers`), retries
(`Config.max_retries` / `RetryPolicy`), timeout (`Config.timeout_s`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from httpx import Timeout

__all__ = ["RequestOptions"]


class RequestOptions(TypedDict, total=False):
    """Per-request overrides of the official base client (every key optional).

    `headers` extra HTTP headers; `max_retries` retries of this request; `timeout` seconds
    or an `httpx.Timeout`; `params` extra query parameters; `extra_json` fields merged
    into the JSON body; `idempotency_key` the retry de-duplication key; `follow_redirects`.
    """

    headers: Mapping[str, str]
    max_retries: int
    timeout: float | Timeout | None
    params: Mapping[str, object]
    extra_json: Mapping[str, Any]
    idempotency_key: str
    follow_redirects: bool
