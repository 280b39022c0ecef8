"""Server-driven client configuration: the `client/config` handshake and dynamic flags.

Every flag has the official default, so a server that answers `{}` (or omits a
flag) leaves the client at the official behaviour; unknown flags are ignored, so
that a newer server never breaks an older client. `ClientConfigResponse` is the one
definition of these flags: the client holds it as `tinkex_actors.config.ClientFlags`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import msgspec

from ._base import WireStruct, sent

__all__ = ["ClientConfigRequest", "ClientConfigResponse", "ClientDynamicConfigResponse"]

MIB = 1024 * 1024


class ClientConfigRequest(WireStruct, frozen=True):
    """`POST client/config`: the SDK version the flags are resolved for."""

    sdk_version: str


class ClientConfigResponse(WireStruct, frozen=True):
    """Flags the server sets for this client (see the protocol notes for each one)."""

    pjwt_auth_enabled: bool = sent(False)
    credential_default_source: str = sent("api_key")
    sample_dispatch_bytes_semaphore_size: int = sent(10 * MIB)
    inflight_response_bytes_semaphore_size: int = sent(50 * MIB)
    parallel_fwdbwd_chunks: bool = sent(True)
    proto_compress_fwdbwd: bool = sent(False)
    fwdbwd_max_chunk_len: int = sent(1024)
    fwdbwd_max_chunk_bytes_count: int = sent(5_000_000)
    fwdbwd_dispatch_bytes_semaphore_size: int = sent(50_000_000)
    billing_exception_max_pause_duration_sec: int = sent(3600)
    sample_no_retries: bool = sent(False)
    sample_enable_stuck_detection: bool = sent(True)
    sample_max_concurrent_requests: int = sent(2000)
    use_pyqwest_transport: bool = sent(True)
    sample_use_retrieve_futures: bool = sent(False)
    custom_loss_server_side: bool = sent(False)
    sample_join_sampling_session: bool = sent(False)

    def __post_init__(self) -> None:
        for name in (
            "fwdbwd_max_chunk_len",
            "fwdbwd_max_chunk_bytes_count",
            "fwdbwd_dispatch_bytes_semaphore_size",
            "sample_dispatch_bytes_semaphore_size",
            "inflight_response_bytes_semaphore_size",
            "sample_max_concurrent_requests",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"ClientConfigResponse.{name} must be >= 1, got {getattr(self, name)}; "
                    "leave the flag out to get the default"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Flags from a decoded `client/config` answer; unknown keys are ignored.

        A known flag of the wrong type, or a size below 1, raises ValueError naming it.
        """
        known = {field.name: field.type for field in msgspec.structs.fields(cls)}
        chosen: dict[str, Any] = {}
        for name, value in values.items():
            wanted = known.get(name)
            if wanted is None:
                continue
            # bool is an int subclass: check it first so 1 is not taken for True.
            ok = (
                isinstance(value, bool)
                if wanted is bool
                else isinstance(value, wanted) and not isinstance(value, bool)
            )
            if not ok:
                raise ValueError(
                    f"client config flag {name!r} must be a {wanted.__name__}, got {value!r}; "
                    "the server's answer does not match the protocol"
                )
            chosen[name] = value
        return cls(**chosen)


class ClientDynamicConfigResponse(WireStruct, frozen=True):
    """`POST client/dynamic_config`: flags re-read every `refresh_interval_sec`."""

    refresh_interval_sec: int = sent(300)
    sample_cancel_enabled: bool = sent(False)
    sample_cancel_max_batch_size: int = sent(64)
