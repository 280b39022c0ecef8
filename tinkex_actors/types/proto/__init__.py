"""The binary wire: protobuf bodies of forward_backward requests, their results, sample results.

Message layouts are in ``tinker_public.proto`` next to this file (package ``tinker_public``, as
the official SDK speaks it). Encoders write each array's own buffer into a single
``b"".join``, so the body costs one copy of the data; decoders return read-only numpy views
over the received body (no copy; pass ``copy=True`` for writable arrays of their own).
Unknown fields of any wire type are skipped; malformed input raises ``ValueError``.

Which values mean what, as in the official SDK: tokens travel as int32, tensors in their
declared dtype (float32 or int64), missing prompt logprobs as NaN, per-datum outputs as one
``BatchedTensor`` per field with int64 *byte* offsets, one per datum plus the end.

Speed paths (each gives exactly the bytes or values of the general code it shortcuts; the
tests compare them): a datum of one text chunk and dense tensors, and a sampled sequence with
plain arrays, are written from heads cached per layout (sizes, names, dtypes, shapes), so the
encoder touches no varint for them; token ids come packed as int32 from their chunk. A sample
result's sequences of one layout are read by comparing the bytes around their arrays with the
last parsed sequence's (or the last result's) instead of parsing each field.

What this wire cannot say (the official SDK has the same limits): an empty ``loss_fn_config``
reads back as None, a tensor without a shape and one of shape ``[]`` look alike, a 0-d
per-datum output comes back with shape ``[1]``, a top-k block with no rows or k = 0 reads as
None, and ``SampledSequence.sequence_id`` is not carried (the sample promise carries it).

Each message has its modules here: ``_request_encoding`` and ``_request_decoding`` (the
``ForwardBackwardRequest``), ``_forward_backward_output`` (its result, both ways),
``_sample_encoding`` and ``_sample_decoding`` (the ``SampleResponse``); ``_tensor_message`` is
the ``Tensor`` message they share, ``_fields`` the field keys, dtype codes and small readers,
``_zstd`` the body compression.
"""

from __future__ import annotations

from typing import Final

from ._forward_backward_output import (
    decode_forward_backward_output,
    encode_forward_backward_output,
)
from ._request_decoding import ForwardBackwardRequestProto, decode_forward_backward_request
from ._request_encoding import encode_forward_backward_request
from ._sample_decoding import decode_sample_response
from ._sample_encoding import encode_sample_response
from ._zstd import zstd_compress, zstd_decompress

__all__ = [
    "PROTOBUF_CONTENT_TYPE",
    "ForwardBackwardRequestProto",
    "decode_forward_backward_output",
    "decode_forward_backward_request",
    "decode_sample_response",
    "encode_forward_backward_output",
    "encode_forward_backward_request",
    "encode_sample_response",
    "zstd_compress",
    "zstd_decompress",
]

PROTOBUF_CONTENT_TYPE: Final = "application/x-protobuf"
