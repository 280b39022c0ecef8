"""``Content-Encoding: zstd`` for protobuf bodies: compress, and decompress within a size limit."""

from __future__ import annotations

from typing import Final

import zstandard

_DEFAULT_MAX_DECOMPRESSED_BYTES: Final = 1 << 30


def zstd_compress(body: bytes, level: int = 3) -> bytes:
    """Compress a request body for ``Content-Encoding: zstd`` (zstd frame with content size)."""
    return zstandard.ZstdCompressor(level=level).compress(body)


def zstd_decompress(body: bytes, max_size_bytes: int = _DEFAULT_MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress a ``Content-Encoding: zstd`` body, refusing more than ``max_size_bytes``.

    Frames with or without a declared content size are accepted; corrupt or truncated input
    and bodies that would inflate past the limit raise ``ValueError`` (no zip bombs: nothing
    larger than the limit is ever allocated).
    """
    try:
        declared = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise ValueError(
            f"zstd body is corrupt or not zstd ({exc}); check Content-Encoding"
        ) from None
    if declared > max_size_bytes:
        raise ValueError(
            f"zstd body declares {declared} bytes, past max_size_bytes={max_size_bytes}; "
            "raise the limit if such bodies are legitimate"
        )
    try:
        result: bytes = zstandard.ZstdDecompressor().decompress(
            body, max_output_size=max_size_bytes
        )
    except zstandard.ZstdError as exc:
        raise ValueError(
            f"zstd body is truncated, corrupt, or inflates past max_size_bytes="
            f"{max_size_bytes} ({exc}); resend it whole or raise the limit"
        ) from None
    return result
