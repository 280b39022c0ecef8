"""Sampling values: SamplingParams, the sample request, sampled sequences and responses.

Reading results fast (for codecs): the array fields are numpy arrays
(`SampledSequence.tokens_np` int32, `.logprobs_np` float32, `SampleResponse
.prompt_logprobs_np` float32 with NaN where the wire has null). Build them with
`np.frombuffer(...)` and pass them in: nothing is converted until a caller reads
the list properties (`.tokens`, `.logprobs`, `.prompt_logprobs`), which convert once
and cache. On the JSON wire these fields are named `tokens`, `logprobs`,
`prompt_logprobs`, `topk_logprobs`, `topk_prompt_logprobs`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from ._base import WireStruct, coerce_floats, coerce_ints, sent
from ._model_input import ModelInput
from ._tensor import TensorData, pack_flat_list

__all__ = [
    "PromptAltTokens",
    "SampleRequest",
    "SampleResponse",
    "SampledSequence",
    "SamplingParams",
    "StopReason",
    "TopkLogprobs",
]

StopReason: TypeAlias = Literal["length", "stop"]
_STOP_REASONS = ("length", "stop")

# Sentinel the official SDK uses for an empty top-k slot.
MASK_LOGPROB = -99999.0

TopkLists: TypeAlias = list[list[tuple[int, float]] | None]

if TYPE_CHECKING:
    IntArray: TypeAlias = npt.NDArray[Any] | list[int]
    FloatArray: TypeAlias = npt.NDArray[Any] | list[float]
    PromptLogprobs: TypeAlias = npt.NDArray[Any] | list[float | None]
    TopkField: TypeAlias = "TopkLogprobs | TopkLists"
    StopField: TypeAlias = str | Sequence[str] | Sequence[int]
else:
    # What msgspec decodes from JSON; __post_init__ turns lists into arrays.
    IntArray = list[int]
    FloatArray = list[float | None]  # null: NaN/inf written by a JSON encoder
    PromptLogprobs = list[float | None]
    TopkField = TopkLists
    StopField = str | list[str | int]


class TopkLogprobs:
    """Top-k tokens at each position as two dense `(length, k)` matrices.

    `token_ids` is int32, `logprobs` float32; an empty slot holds token 0 with
    logprob -99999.0. On the JSON wire it is a list per position of
    `[token_id, logprob]` pairs, or null where nothing was reported.
    """

    __slots__ = ("logprobs", "token_ids")

    def __init__(self, token_ids: npt.NDArray[Any], logprobs: npt.NDArray[Any]) -> None:
        if token_ids.shape != logprobs.shape or token_ids.ndim != 2:
            raise ValueError(
                f"TopkLogprobs needs two (length, k) matrices of one shape, got "
                f"{token_ids.shape} and {logprobs.shape}"
            )
        self.token_ids = token_ids
        self.logprobs = logprobs

    @classmethod
    def from_lists(cls, rows: TopkLists) -> TopkLogprobs:
        """Dense matrices from the list-of-pairs form (missing slots get the sentinel)."""
        k = max((len(r) for r in rows if r), default=0)
        ids = np.zeros((len(rows), k), dtype=np.int32)
        lps = np.full((len(rows), k), MASK_LOGPROB, dtype=np.float32)
        for i, row in enumerate(rows):
            for j, (token, logprob) in enumerate(row or ()):
                ids[i, j] = token
                lps[i, j] = logprob
        return cls(ids, lps)

    def to_lists(self) -> TopkLists:
        """The list-of-pairs form: per position, (token_id, logprob) pairs or None."""
        n, k = self.token_ids.shape
        if n == 0 or k == 0:
            return []
        ids, lps = self.token_ids.tolist(), self.logprobs.tolist()
        out: TopkLists = []
        for row_ids, row_lps in zip(ids, lps, strict=True):
            pairs = [
                (t, lp)
                for t, lp in zip(row_ids, row_lps, strict=True)
                if not (t == 0 and lp == MASK_LOGPROB)
            ]
            out.append(pairs or None)
        return out

    def __wire__(self) -> Any:
        return self.to_lists()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopkLogprobs):
            return NotImplemented
        return self.to_lists() == other.to_lists()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TopkLogprobs(shape={self.token_ids.shape})"


def _as_topk(value: Any, field: str) -> TopkLogprobs | None:
    if value is None or isinstance(value, TopkLogprobs):
        return value
    if isinstance(value, list):
        return TopkLogprobs.from_lists(value)
    raise TypeError(f"{field} must be TopkLogprobs or a list of pairs, got {type(value).__name__}")


_I4: Final = np.dtype(np.int32)
_F4: Final = np.dtype(np.float32)


def _as_array(value: Any, dtype: np.dtype[Any], field: str) -> Any:
    if value is None or (isinstance(value, np.ndarray) and value.dtype == dtype):
        return value
    if type(value) is list:
        packed = pack_flat_list(value, dtype)  # struct: 2-3x numpy's speed on a flat list
        if packed is not None:
            return packed
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(
            f"{field} must be a 1-D numeric array or list, got {type(value).__name__}"
        ) from None


def _check_stop_reason(value: object, owner: str) -> None:
    if value not in _STOP_REASONS:
        raise ValueError(f"{owner}.stop_reason must be 'length' or 'stop', got {value!r}")


class SampledSequence(WireStruct, frozen=True, dict=True):
    """One generated sequence: tokens, optional logprobs, and why it stopped."""

    stop_reason: StopReason
    sequence_id: str | None = None
    tokens_np: IntArray = msgspec.field(default_factory=list, name="tokens")
    logprobs_np: FloatArray | None = msgspec.field(default=None, name="logprobs")
    topk_logprobs_np: TopkField | None = msgspec.field(default=None, name="topk_logprobs")

    def __post_init__(self) -> None:
        # Decoders build one per sampled sequence, so the common case (arrays of the right
        # dtypes, no top-k) is recognised by one expression of `is` tests and returns.
        tokens: Any = self.tokens_np
        logprobs: Any = self.logprobs_np
        if (
            type(tokens) is np.ndarray
            and tokens.dtype is _I4
            and (logprobs is None or (type(logprobs) is np.ndarray and logprobs.dtype is _F4))
            and self.topk_logprobs_np is None
            and self.stop_reason in _STOP_REASONS
        ):
            return
        self._normalise()

    def _normalise(self) -> None:
        if self.stop_reason not in _STOP_REASONS:
            _check_stop_reason(self.stop_reason, "SampledSequence")
        set_ = msgspec.structs.force_setattr
        tokens: Any = self.tokens_np
        if type(tokens) is not np.ndarray or tokens.dtype is not _I4:
            set_(self, "tokens_np", _as_array(tokens, _I4, "SampledSequence.tokens"))
        logprobs: Any = self.logprobs_np
        if logprobs is not None and (type(logprobs) is not np.ndarray or logprobs.dtype is not _F4):
            set_(self, "logprobs_np", _as_array(logprobs, _F4, "SampledSequence.logprobs"))
        topk = self.topk_logprobs_np
        if topk is not None and type(topk) is not TopkLogprobs:
            set_(self, "topk_logprobs_np", _as_topk(topk, "SampledSequence.topk_logprobs"))

    @functools.cached_property
    def tokens(self) -> list[int]:
        """Generated token ids as a list (converted on first access)."""
        result: list[int] = np.asarray(self.tokens_np).tolist()
        return result

    @functools.cached_property
    def logprobs(self) -> list[float] | None:
        """Logprob of each generated token, or None if not requested."""
        if self.logprobs_np is None:
            return None
        result: list[float] = np.asarray(self.logprobs_np).tolist()
        return result

    @functools.cached_property
    def topk_logprobs(self) -> TopkLists | None:
        """Per position, up to k (token_id, logprob) pairs; None if not requested."""
        topk = self.topk_logprobs_np
        return topk.to_lists() if isinstance(topk, TopkLogprobs) else topk

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SampledSequence):
            return NotImplemented
        return (
            self.stop_reason == other.stop_reason
            and self.sequence_id == other.sequence_id
            and self.tokens == other.tokens
            and _floats_equal(self.logprobs_np, other.logprobs_np)
            and self.topk_logprobs == other.topk_logprobs
        )

    __hash__ = None  # type: ignore[assignment]


def _floats_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b, equal_nan=True))


class PromptAltTokens(WireStruct, frozen=True):
    """k independent draws at every prompt position after the first, with logprobs."""

    tokens: TensorData
    logprobs: TensorData


class SampleResponse(WireStruct, frozen=True, dict=True):
    """The result of a sample request: sequences and optional prompt logprobs."""

    sequences: list[SampledSequence]
    prompt_logprobs_np: PromptLogprobs | None = msgspec.field(
        default=None, name="prompt_logprobs"
    )
    topk_prompt_logprobs_np: TopkField | None = msgspec.field(
        default=None, name="topk_prompt_logprobs"
    )
    target_prompt_logprobs: TensorData | None = None
    prompt_cache_hit_tokens: int = 0
    prompt_alt_tokens: PromptAltTokens | None = None

    def __post_init__(self) -> None:
        if self.prompt_logprobs_np is None and self.topk_prompt_logprobs_np is None:
            return  # a sample result without prompt logprobs, the common case
        set_ = msgspec.structs.force_setattr
        # None entries (positions without a logprob) become NaN in the float array.
        set_(
            self,
            "prompt_logprobs_np",
            _as_array(self.prompt_logprobs_np, _F4, "SampleResponse.prompt_logprobs"),
        )
        set_(
            self,
            "topk_prompt_logprobs_np",
            _as_topk(self.topk_prompt_logprobs_np, "SampleResponse.topk_prompt_logprobs"),
        )

    @functools.cached_property
    def prompt_logprobs(self) -> list[float | None] | None:
        """Prompt logprobs as a list, None where not computed; None if not requested."""
        arr = self.prompt_logprobs_np
        if arr is None:
            return None
        arr = np.asarray(arr)
        result: list[float | None] = arr.tolist()
        for i in np.flatnonzero(np.isnan(arr)).tolist():
            result[i] = None
        return result

    @functools.cached_property
    def topk_prompt_logprobs(self) -> TopkLists | None:
        """Per prompt position, up to k (token_id, logprob) pairs; None if not requested."""
        topk = self.topk_prompt_logprobs_np
        return topk.to_lists() if isinstance(topk, TopkLogprobs) else topk

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SampleResponse):
            return NotImplemented
        return (
            self.sequences == other.sequences
            and _floats_equal(self.prompt_logprobs_np, other.prompt_logprobs_np)
            and self.topk_prompt_logprobs == other.topk_prompt_logprobs
            and self.target_prompt_logprobs == other.target_prompt_logprobs
            and self.prompt_cache_hit_tokens == other.prompt_cache_hit_tokens
            and self.prompt_alt_tokens == other.prompt_alt_tokens
        )

    __hash__ = None  # type: ignore[assignment]


class SamplingParams(WireStruct, frozen=True):
    """Generation settings; `stop` may be a str, a list of str, or a list of token ids."""

    max_tokens: int | None = None
    seed: int | None = None
    stop: StopField | None = None
    temperature: float = sent(1.0)
    top_k: int = sent(-1)
    top_p: float = sent(1.0)

    def __post_init__(self) -> None:
        coerce_floats(self, ("temperature", "top_p"))
        coerce_ints(self, ("max_tokens", "seed", "top_k"))
        if self.max_tokens is not None and self.max_tokens < 0:
            raise ValueError(f"SamplingParams.max_tokens must be >= 0, got {self.max_tokens}")
        if not self.temperature >= 0:
            raise ValueError(
                f"SamplingParams.temperature must be >= 0, got {self.temperature}; "
                "0 is greedy, 1 samples the model's distribution"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < -1:
            raise ValueError(
                f"SamplingParams.top_k must be -1 (no limit) or >= 0, got {self.top_k}"
            )
        stop: Any = self.stop
        if isinstance(stop, tuple):
            stop = list(stop)
            msgspec.structs.force_setattr(self, "stop", stop)
        if isinstance(stop, list):
            kinds = {type(s) for s in stop}
            if not (kinds <= {str} or kinds <= {int}):
                raise TypeError(
                    "SamplingParams.stop must be all strings or all token ids, got a mix of "
                    f"{sorted(k.__name__ for k in kinds)}"
                )
        elif stop is not None and not isinstance(stop, str):
            raise TypeError(
                f"SamplingParams.stop must be a str, a list of str or a list of ints, got "
                f"{type(stop).__name__}"
            )


class SampleRequest(WireStruct, frozen=True):
    """`POST asample` body: a prompt, sampling settings and what to return."""

    prompt: ModelInput
    sampling_params: SamplingParams
    num_samples: int = sent(1)
    base_model: str | None = None
    model_path: str | None = None
    sampling_session_id: str | None = None
    seq_id: int | None = None
    prompt_logprobs: bool | None = None
    topk_prompt_logprobs: int = sent(0)
    topk_sample_logprobs: int = sent(0)
    target_prompt_logprobs: TensorData | None = None
    prompt_alt_tokens_k: int = sent(0)
    prompt_logprobs_last_n: int | None = None
    record_stability_info: bool | None = None
    type: Literal["sample"] = sent("sample")

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"SampleRequest.num_samples must be >= 1, got {self.num_samples}")
        for name in ("topk_prompt_logprobs", "topk_sample_logprobs", "prompt_alt_tokens_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"SampleRequest.{name} must be >= 0, got {getattr(self, name)}")
