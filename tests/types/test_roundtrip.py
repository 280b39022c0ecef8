"""Property-based round trips: every wire type survives encode -> decode unchanged."""

from __future__ import annotations

import datetime as dt
import types
import typing
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinkex_actors.types as t

MISSING = object()
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
NONEMPTY = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
NAT = st.integers(0, 2**62)
I64 = st.integers(-(2**63), 2**63 - 1)
F64 = st.floats(allow_nan=False, allow_infinity=False)
F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    st.none() | st.booleans() | I64 | F64 | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
WHEN = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1),
    timezones=st.sampled_from([dt.UTC]),
)


@st.composite
def tensors(draw: Any) -> t.TensorData:
    dtype = draw(st.sampled_from(["int64", "float32"]))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    size = int(np.prod(shape))
    values = draw(st.lists(I64 if dtype == "int64" else F32, min_size=size, max_size=size))
    as_numpy = draw(st.booleans())
    data: Any = np.array(values, dtype=dtype).reshape(shape) if as_numpy else values
    return t.TensorData(data=data, dtype=dtype, shape=draw(st.sampled_from([shape, None])))


TOKENS = st.lists(st.integers(0, 2**31 - 1), max_size=20)
TOKEN_LISTS_OR_ARRAYS = TOKENS | TOKENS.map(lambda x: np.array(x, dtype=np.int64))
TOPK = st.lists(
    st.none() | st.lists(st.tuples(st.integers(1, 2**31 - 1), F32), min_size=1, max_size=3),
    max_size=4,
)

# Field-name rules shared by every type (what construction accepts).
BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "ttl_seconds": st.none() | st.integers(1, 2**40),
    "model_seq_id": NAT, "sampling_session_seq_id": NAT, "seq_id": st.none() | NAT,
    "event_data": st.dictionaries(TEXT, JSON, max_size=3),
    "result": JSON,
    "metrics": st.dictionaries(TEXT, F64, max_size=3),
    "severity": st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    "expected_tokens": st.none() | NAT,
    "timeout": st.none() | F64,
}

# Per-type rules for validated fields.
BY_TYPE: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "LoraConfig": {"rank": st.integers(1, 4096)},
    "AdamParams": {
        "learning_rate": st.floats(0, 1), "beta1": st.floats(0, 0.999),
        "beta2": st.floats(0, 0.999), "eps": st.floats(1e-30, 1),
        "weight_decay": st.floats(0, 1), "grad_clip_norm": st.floats(0, 100),
    },
    "DimuonParams": {"learning_rate": st.floats(0, 1), "beta1": st.floats(0, 0.999),
                     "grad_clip_norm": F64},
    "SamplingParams": {
        "temperature": st.floats(0, 5), "top_p": st.floats(0, 1, exclude_min=True),
        "top_k": st.integers(-1, 1000), "max_tokens": st.none() | NAT,
        "seed": st.none() | NAT,
        "stop": st.none() | TEXT | st.lists(TEXT, max_size=3)
        | st.lists(st.integers(0, 2**31), max_size=3),
    },
    "SampleRequest": {
        "num_samples": st.integers(1, 64), "topk_prompt_logprobs": st.integers(0, 20),
        "topk_sample_logprobs": st.integers(0, 20), "prompt_alt_tokens_k": st.integers(0, 20),
    },
    "EncodedTextChunk": {"tokens": TOKEN_LISTS_OR_ARRAYS},
    "CreateModelRequest": {"base_model": NONEMPTY},
    "PromptProvenanceSpan": {"sequence_id": NONEMPTY, "length": NAT, "offset": NAT},
    "SampledProvenanceSpan": {"sequence_id": NONEMPTY, "length": NAT, "offset": NAT},
    "Datum": {"model_input_spans": st.none(), "loss_fn_input_spans": st.none()},
    "ForwardBackwardInput": {
        "loss_fn_config": st.none() | st.dictionaries(TEXT, F64 | TEXT, max_size=3),
        "data": st.lists(st.deferred(lambda: strategy_for(t.Datum)), max_size=2),
    },
    "LoadWeightsRequest": {"path": TEXT.map(lambda s: "tinker://" + s), "session_id": st.none()},
    "SampledSequence": {
        "tokens_np": TOKENS.map(lambda x: np.array(x, dtype=np.int32)),
        "logprobs_np": st.none() | st.lists(F32, max_size=5).map(
            lambda x: np.array(x, dtype=np.float32)),
        "topk_logprobs_np": st.none() | TOPK,
    },
    "SampleResponse": {
        "prompt_logprobs_np": st.none() | st.lists(st.none() | F32, max_size=5),
        "topk_prompt_logprobs_np": st.none() | TOPK,
    },
    "ClientConfigResponse": {
        name: st.integers(1, 2**40) for name in (
            "fwdbwd_max_chunk_len", "fwdbwd_max_chunk_bytes_count",
            "fwdbwd_dispatch_bytes_semaphore_size", "sample_dispatch_bytes_semaphore_size",
            "inflight_response_bytes_semaphore_size", "sample_max_concurrent_requests")
    },
    "SessionSearchRequest": {
        "limit": st.integers(1, 200), "display_name": st.none() | NONEMPTY,
        "statuses": st.none() | st.lists(
            st.deferred(lambda: _from_hint(t.SessionStatusQuery)), min_size=1, max_size=2),
    },
    "GetBillingUsageRequest": {
        "starting_on": st.just(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        "ending_before": st.just(dt.datetime(2025, 1, 2, tzinfo=dt.UTC)),
    },
    "UserSearchOwner": {"owner_urns": st.lists(TEXT, min_size=1, max_size=10)},
    "ClientFinishedSessionStatusQuery": {
        "reasons": st.none() | st.lists(
            st.sampled_from(["success", "errored", "interrupted"]), min_size=1, max_size=3),
    },
    "RequestFailedResponse": {"category": st.sampled_from(list(t.RequestErrorCategory))},
}

STRUCTS = sorted(
    (getattr(t, n) for n in t.__all__
     if isinstance(getattr(t, n), type) and issubclass(getattr(t, n), msgspec.Struct)),
    key=lambda c: c.__name__,
)


def _from_hint(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for a runtime annotation, with finite floats and safe ints/texts."""
    if hint is float:
        return F64
    if hint is int:
        return I64
    if hint is str:
        return TEXT
    if hint is Any:
        return JSON
    if hint is dt.datetime:
        return WHEN
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_from_hint(a) for a in args))
    if origin is list:
        return st.lists(_from_hint(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(_from_hint(args[0]), _from_hint(args[1]), max_size=3)
    if origin is tuple:
        return st.tuples(*(_from_hint(a) for a in args))
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return st.deferred(lambda: strategy_for(hint))
    return st.from_type(hint)


_CACHE: dict[type, st.SearchStrategy[Any]] = {}


def strategy_for(cls: type) -> st.SearchStrategy[Any]:
    """Values of a Struct type: required fields always, optional ones sometimes."""
    if cls is t.TensorData:
        return tensors()
    if cls is t.OptimStepRequest:
        return st.builds(
            lambda adam, model_id, seq: t.OptimStepRequest(
                model_id=model_id, seq_id=seq,
                **({"adam_params": adam} if isinstance(adam, t.AdamParams)
                   else {"optimizer_params": adam})),
            strategy_for(t.AdamParams) | strategy_for(t.DimuonParams), TEXT, st.none() | NAT)
    if cls in _CACHE:
        return _CACHE[cls]
    hints = typing.get_type_hints(cls)
    rules = BY_TYPE.get(cls.__name__, {})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in msgspec.structs.fields(cls):
        if field.name in rules:
            strat = rules[field.name]
        elif field.name in BY_NAME:
            strat = BY_NAME[field.name]
        else:
            strat = _from_hint(hints[field.name])
        fields[field.name] = strat if field.required else st.just(MISSING) | strat
    strategy = st.fixed_dictionaries(fields).map(
        lambda kw: cls(**{k: v for k, v in kw.items() if v is not MISSING}))
    _CACHE[cls] = strategy
    return strategy


class TestRoundTrip:
    @pytest.mark.parametrize("cls", STRUCTS, ids=lambda c: c.__name__)
    def test_encode_then_decode_gives_an_equal_value(self, cls):
        """from_json(to_json(x)) == x, and encoding the result gives the same bytes."""

        @settings(max_examples=25, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(strategy_for(cls))
        def check(value: Any) -> None:
            body = t.to_json(value)
            decoded = t.from_json(body, cls)
            assert decoded == value
            assert t.to_json(decoded) == body

        check()
