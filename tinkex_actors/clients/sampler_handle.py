"""A sampler's handle: a string naming a sampler for any process (base64 JSON, no credentials).

`SamplingClient.get_sampler_handle()` makes one; `SamplingClient.from_sampler_handle`, the
out-of-process sampling child and the fleet's workers read it back.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

__all__ = ["parse_handle", "sampler_handle"]


def sampler_handle(
    sampling_session_id: str, base_url: str, base_model: str | None, model_path: str | None
) -> str:
    """The handle of a sampler: base64 JSON of where it is, with no credentials."""
    payload = {
        "v": 1,
        "sampling_session_id": sampling_session_id,
        "base_url": base_url,
        "base_model": base_model,
        "model_path": model_path,
    }
    return base64.urlsafe_b64encode(msgspec.json.encode(payload)).decode()


def parse_handle(handle: str) -> dict[str, Any]:
    """The fields of a sampler handle (`sampling_session_id`, `base_url`, `base_model`,
    `model_path`); a ValueError for a string that is no handle."""
    try:
        fields: dict[str, Any] = msgspec.json.decode(base64.urlsafe_b64decode(handle.encode()))
        if not isinstance(fields.get("sampling_session_id"), str) or not isinstance(
            fields.get("base_url"), str
        ):
            raise KeyError("sampling_session_id and base_url")
    except Exception as exc:
        raise ValueError(
            "handle is not a sampler handle; pass what get_sampler_handle() returned"
        ) from exc
    return fields
