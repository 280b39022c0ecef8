"""Training values: Datum, forward/backward input and output, LoRA and Adam settings."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, get_args

import msgspec
import numpy as np

from ._base import Metrics, TypeTagged, WireStruct, coerce_floats, float_dict, sent
from ._model_input import ModelInput
from ._tensor import (
    TensorData,
    as_array,
    is_torch_tensor,
    numpy_dtype,
    pack_flat_list,
    tensor_dtype_of,
)

__all__ = [
    "AdamParams",
    "Datum",
    "ForwardBackwardInput",
    "ForwardBackwardOutput",
    "LoraConfig",
    "LossFnInputs",
    "LossFnOutput",
    "LossFnType",
    "PromptProvenanceSpan",
    "ProvenanceSpans",
    "SampledProvenanceSpan",
]

LossFnType: TypeAlias = Literal[
    "cross_entropy",
    "importance_sampling",
    "ppo",
    "cispo",
    "dro",
    "gspo",
    "stable_reinforce",
    "custom",
]
LOSS_FN_TYPES: tuple[str, ...] = get_args(LossFnType)

LossFnInputs: TypeAlias = dict[str, TensorData]
LossFnOutput: TypeAlias = dict[str, TensorData]

# The official dtype for a plain list under each known loss_fn_inputs key.
KEY_DTYPES: dict[str, str] = {
    "target_tokens": "int64",
    "weights": "float32",
    "advantages": "float32",
    "logprobs": "float32",
    "clip_low_threshold": "float32",
    "clip_high_threshold": "float32",
    "sequence_ratio_mask": "float32",
}


def loss_fn_input(key: str, value: Any) -> TensorData:
    """Coerce one `loss_fn_inputs` value (TensorData, numpy array, list) by the official rules.

    A numpy array keeps its kind (ints -> int64, floats -> float32); a plain list
    takes the dtype of its key (`target_tokens` -> int64; weights, advantages,
    logprobs, clip thresholds, sequence_ratio_mask -> float32).
    """
    if isinstance(value, TensorData):
        return value
    if type(value) is list and key in KEY_DTYPES:
        # The common case, a flat list of numbers: struct packs it in one checked pass.
        dtype = KEY_DTYPES[key]
        packed = pack_flat_list(value, numpy_dtype(dtype))
        if packed is not None:
            return TensorData(data=packed, dtype=dtype, shape=[len(value)])  # type: ignore[arg-type]
    field = f"Datum.loss_fn_inputs[{key!r}]"
    if is_torch_tensor(value):
        return TensorData.from_torch(value)
    if isinstance(value, np.ndarray):
        dtype = tensor_dtype_of(value.dtype, field)
        return TensorData(data=value, dtype=dtype, shape=list(value.shape))
    if isinstance(value, list | tuple):
        if key not in KEY_DTYPES:
            raise ValueError(
                f"{field} is a plain list, and only {sorted(KEY_DTYPES)} have a known dtype; "
                "pass TensorData(data=..., dtype='int64'|'float32') or a numpy array"
            )
        arr = as_array(value, numpy_dtype(KEY_DTYPES[key]), field)
        return TensorData(data=arr, dtype=KEY_DTYPES[key], shape=list(arr.shape))  # type: ignore[arg-type]
    raise TypeError(
        f"{field} must be TensorData, a numpy array or a list, got {type(value).__name__}"
    )


class PromptProvenanceSpan(TypeTagged, frozen=True, tag="prompt_tokens"):
    """A run of datum positions copied from a sampled sequence's request prompt."""

    sequence_id: str
    length: int
    offset: int = sent(0)

    def __post_init__(self) -> None:
        _check_span(self)


class SampledProvenanceSpan(TypeTagged, frozen=True, tag="sampled_tokens"):
    """A run of datum positions copied from a sampled sequence's tokens."""

    sequence_id: str
    length: int
    offset: int = sent(0)

    def __post_init__(self) -> None:
        _check_span(self)


ProvenanceSpans: TypeAlias = list[PromptProvenanceSpan | SampledProvenanceSpan]


def _check_span(span: PromptProvenanceSpan | SampledProvenanceSpan) -> None:
    name = type(span).__name__
    if span.length < 0 or span.offset < 0:
        raise ValueError(
            f"{name}.length and .offset must be >= 0, got length={span.length}, "
            f"offset={span.offset}"
        )
    if not span.sequence_id:
        raise ValueError(f"{name}.sequence_id must be non-empty: use SampledSequence.sequence_id")


class Datum(WireStruct, frozen=True):
    """One training example: the model input and the loss function's named tensors."""

    model_input: ModelInput
    loss_fn_inputs: LossFnInputs = sent({})
    model_input_spans: ProvenanceSpans | None = None
    loss_fn_input_spans: ProvenanceSpans | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model_input, ModelInput):
            raise TypeError(
                f"Datum.model_input must be a ModelInput, got {type(self.model_input).__name__};"
                " use ModelInput.from_ints(tokens)"
            )
        inputs: Any = self.loss_fn_inputs
        if not isinstance(inputs, dict):
            raise TypeError(
                f"Datum.loss_fn_inputs must be a dict of name -> tensor, got "
                f"{type(inputs).__name__}"
            )
        coerced = {str(k): loss_fn_input(str(k), v) for k, v in inputs.items()}
        msgspec.structs.force_setattr(self, "loss_fn_inputs", coerced)
        if (self.model_input_spans is None) != (self.loss_fn_input_spans is None):
            raise ValueError(
                "Datum provenance comes as a pair: set both model_input_spans and "
                "loss_fn_input_spans, or neither"
            )

    def with_provenance(
        self, model_input: ProvenanceSpans, loss_fn_inputs: ProvenanceSpans
    ) -> Datum:
        """A copy carrying provenance spans; each span list must tile its field exactly."""
        _check_tiling("model_input", model_input, self.model_input.length)
        target = self.loss_fn_inputs.get("target_tokens")
        if target is not None and target.shape is not None and len(target.shape) == 1:
            _check_tiling("loss_fn_inputs", loss_fn_inputs, target.shape[0])
        return msgspec.structs.replace(
            self, model_input_spans=list(model_input), loss_fn_input_spans=list(loss_fn_inputs)
        )


def _check_tiling(kwarg: str, spans: ProvenanceSpans, expected: int) -> None:
    total = sum(span.length for span in spans)
    if total != expected:
        raise ValueError(
            f"with_provenance {kwarg} spans cover {total} positions but the field has "
            f"{expected}; the runs must tile it exactly"
        )


class ForwardBackwardInput(WireStruct, frozen=True):
    """The data and loss function of one forward or forward_backward call."""

    data: list[Datum]
    loss_fn: LossFnType
    loss_fn_config: dict[str, float | str] | None = None

    def __post_init__(self) -> None:
        check_loss_fn(self.loss_fn)
        if isinstance(self.data, tuple):
            msgspec.structs.force_setattr(self, "data", list(self.data))
        for i, datum in enumerate(self.data):
            if not isinstance(datum, Datum):
                raise TypeError(
                    f"ForwardBackwardInput.data[{i}] must be a Datum, got "
                    f"{type(datum).__name__}"
                )
        if self.loss_fn_config is not None:
            msgspec.structs.force_setattr(
                self, "loss_fn_config", _loss_fn_config(self.loss_fn_config)
            )


def check_loss_fn(loss_fn: object) -> None:
    """Raise a clear error unless `loss_fn` is one of the official loss functions."""
    if loss_fn not in LOSS_FN_TYPES:
        raise ValueError(
            f"loss_fn must be one of {list(LOSS_FN_TYPES)}, got {loss_fn!r}; "
            "check the spelling"
        )


def _loss_fn_config(config: dict[str, Any]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for key, value in config.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool
        ):
            out[key] = float(value)
        else:
            raise TypeError(
                f"loss_fn_config[{key!r}] must be a number or a str, got "
                f"{type(value).__name__} {value!r}"
            )
    return out


class ForwardBackwardOutput(WireStruct, frozen=True):
    """Per-datum loss outputs and the metrics (`"name:reduction"` -> value) of one call."""

    loss_fn_output_type: str
    loss_fn_outputs: list[LossFnOutput]
    metrics: Metrics = sent({})

    def __post_init__(self) -> None:
        float_dict(self, "metrics")


class LoraConfig(WireStruct, frozen=True):
    """LoRA adapter settings: rank and which layers get adapters."""

    rank: int
    seed: int | None = None
    train_unembed: bool = sent(True)
    train_mlp: bool = sent(True)
    train_attn: bool = sent(True)

    def __post_init__(self) -> None:
        if isinstance(self.rank, np.integer):
            msgspec.structs.force_setattr(self, "rank", int(self.rank))
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(
                f"LoraConfig.rank must be an integer >= 1, got {self.rank!r}; "
                "common ranks are 8, 16, 32"
            )


class AdamParams(WireStruct, frozen=True):
    """Adam hyperparameters for one optim_step (official defaults)."""

    learning_rate: float = sent(0.0001)
    beta1: float = sent(0.9)
    beta2: float = sent(0.95)
    eps: float = sent(1e-12)
    weight_decay: float = sent(0.0)
    grad_clip_norm: float = sent(0.0)

    def __post_init__(self) -> None:
        coerce_floats(
            self,
            ("learning_rate", "beta1", "beta2", "eps", "weight_decay", "grad_clip_norm"),
            finite=True,
        )
        if not self.learning_rate >= 0:
            raise ValueError(
                f"AdamParams.learning_rate must be >= 0, got {self.learning_rate}; "
                "typical values are 1e-5 to 1e-3"
            )
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"AdamParams.{name} must be in [0, 1), got {value}; the default is "
                    f"{0.9 if name == 'beta1' else 0.95}"
                )
        if not self.eps > 0:
            raise ValueError(f"AdamParams.eps must be > 0, got {self.eps}; the default is 1e-12")
        if not self.weight_decay >= 0 or not self.grad_clip_norm >= 0:
            raise ValueError(
                "AdamParams.weight_decay and grad_clip_norm must be >= 0 (0 disables them), "
                f"got {self.weight_decay} and {self.grad_clip_norm}"
            )
