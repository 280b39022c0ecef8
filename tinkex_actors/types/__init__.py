"""Wire types shared by the client and the embedded server (names as in `tinker.types`).

Every request, response and value type of the Tinker API as a msgspec Struct,
plus `to_json` / `from_json`. For the same values our JSON equals the official
SDK's (see `_base` for the rule on omitted fields). This package imports nothing
else from `tinkex_actors`.
"""

from __future__ import annotations

from ._base import convert, from_json, to_builtins, to_json
from ._model_input import (
    DmelChunk,
    EncodedTextChunk,
    ImageAssetPointerChunk,
    ImageChunk,
    ModelInput,
    ModelInputChunk,
)
from ._sampling import (
    PromptAltTokens,
    SampledSequence,
    SampleRequest,
    SampleResponse,
    SamplingParams,
    StopReason,
    TopkLogprobs,
)
from ._tensor import TensorData, TensorDtype
from ._training import (
    AdamParams,
    Datum,
    ForwardBackwardInput,
    ForwardBackwardOutput,
    LoraConfig,
    LossFnInputs,
    LossFnOutput,
    LossFnType,
    PromptProvenanceSpan,
    ProvenanceSpans,
    SampledProvenanceSpan,
)

__all__ = [
    "AdamParams",
    "Datum",
    "DmelChunk",
    "EncodedTextChunk",
    "ForwardBackwardInput",
    "ForwardBackwardOutput",
    "ImageAssetPointerChunk",
    "ImageChunk",
    "LoraConfig",
    "LossFnInputs",
    "LossFnOutput",
    "LossFnType",
    "ModelInput",
    "ModelInputChunk",
    "PromptAltTokens",
    "PromptProvenanceSpan",
    "ProvenanceSpans",
    "SampleRequest",
    "SampleResponse",
    "SampledProvenanceSpan",
    "SampledSequence",
    "SamplingParams",
    "StopReason",
    "TensorData",
    "TensorDtype",
    "TopkLogprobs",
    "convert",
    "from_json",
    "to_builtins",
    "to_json",
]
