"""Server-driven client configuration: the `client/config` handshake and dynamic flags.

Every flag has the official default, so a server that answers `{}` (or omits a
flag) leaves the client at the official behaviour; unknown flags are ignored.
"""

from __future__ import annotations

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


class ClientDynamicConfigResponse(WireStruct, frozen=True):
    """`POST client/dynamic_config`: flags re-read every `refresh_interval_sec`."""

    refresh_interval_sec: int = sent(300)
    sample_cancel_enabled: bool = sent(False)
    sample_cancel_max_batch_size: int = sent(64)
