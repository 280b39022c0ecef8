"""The arguments of TrainingClient calls: checks in the caller's thread, and request bodies.

Every check raises a clear ValueError or TypeError before anything is reserved or sent; the
builders turn a request made for a seq_id into its JSON body; the decoders turn an answer into
the response type of the call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tinkex_actors import types
from tinkex_actors.errors import APIResponseValidationError
from tinkex_actors.types import proto

__all__ = [
    "LOSS_FNS",
    "SAVES",
    "BodyBuilder",
    "JsonBuilder",
    "check_age_recipients",
    "check_data",
    "check_loss",
    "check_name",
    "decode_fb_json",
    "decoder",
    "forward_backward_bodies",
    "json_body",
    "optim_step_body",
    "sampling_session_of",
]

BodyBuilder = Callable[[int], tuple[bytes, str]]
"""`seq_id -> (body, content type)`: one request's body, built once its seq_id is known."""
JsonBuilder = Callable[[int], tuple[str, bytes]]
"""`seq_id -> (route, JSON body)`: the same request as JSON, for a server that refuses protobuf."""

LOSS_FNS = ("cross_entropy", "importance_sampling", "ppo", "cispo", "dro")

SAVES: dict[str, tuple[Any, Any, str, str]] = {
    # folder of the tinker path: request type, response type, route (= response type tag),
    # the request type as futures name it
    "weights": (types.SaveWeightsRequest, types.SaveWeightsResponse, "save_weights", "SaveWeights"),
    "sampler_weights": (
        types.SaveWeightsForSamplerRequest,
        types.SaveWeightsForSamplerResponse,
        "save_weights_for_sampler",
        "SaveWeightsForSampler",
    ),
}


def check_loss(loss_fn: object, loss_fn_config: Mapping[str, Any] | None) -> None:
    """A clear ValueError for an unknown loss function or a config value that is no number."""
    if not isinstance(loss_fn, str) or loss_fn not in LOSS_FNS:
        raise ValueError(
            f"loss_fn={loss_fn!r} is not a Tinker loss function; use one of {', '.join(LOSS_FNS)}"
        )
    for key, value in (loss_fn_config or {}).items():
        if (
            not isinstance(key, str)
            or isinstance(value, bool)
            or not isinstance(value, int | float | str)
        ):
            raise ValueError(
                f"loss_fn_config[{key!r}]={value!r} is not valid; keys are strings and values "
                "numbers (or strings)"
            )


def check_data(data: Sequence[types.Datum], where: str = "data") -> list[types.Datum]:
    """The data as a list, refusing an empty batch or something that is not Datums."""
    items = list(data)
    if not items:
        raise ValueError(f"{where} is empty; pass at least one Datum")
    for i, datum in enumerate(items):
        if not isinstance(datum, types.Datum):
            raise TypeError(
                f"{where}[{i}] is a {type(datum).__name__}; build it with "
                "tinkex_actors.types.Datum(model_input=..., loss_fn_inputs=...)"
            )
    return items


def decode_fb_json(value: Any) -> types.ForwardBackwardOutput:
    """A forward(_backward) answer given as JSON, as a ForwardBackwardOutput."""
    return types.convert(value, types.ForwardBackwardOutput)


def decoder(kind: type[Any]) -> Callable[[Any], Any]:
    """A decoder of a JSON answer into `kind`."""
    return lambda value: types.convert(value, kind)


def sampling_session_of(value: Any) -> str:
    """The sampling session an ephemeral `save_weights_for_sampler` answered."""
    sid = value.get("sampling_session_id") if isinstance(value, dict) else None
    if not isinstance(sid, str) or not sid:
        raise APIResponseValidationError(
            "save_weights_for_sampler without a path answered no sampling_session_id; "
            "the server may predate ephemeral sampler saves: pass a name instead"
        )
    return sid


def check_name(name: object) -> None:
    """A clear ValueError for a checkpoint name that is empty or holds a '/'."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(
            f"name={name!r} is not a valid checkpoint name; use letters, digits, '.', '_' or '-'"
        )


def check_age_recipients(recipients: object) -> None:
    """A clear ValueError unless `recipients` is None or a list of 1 to 10 public keys."""
    if recipients is not None and (
        not isinstance(recipients, list)
        or not 1 <= len(recipients) <= 10
        or not all(isinstance(r, str) and r for r in recipients)
    ):
        raise ValueError(
            "age_encryption_recipients must be a list of 1 to 10 age or SSH public keys "
            "(strings), or None for unencrypted files"
        )


def json_body(make: Callable[[int], Any]) -> BodyBuilder:
    """A request builder: the body `make(seq_id)` returns, as JSON."""
    return lambda seq_id: (types.to_json(make(seq_id)), "application/json")


def forward_backward_bodies(
    model_id: str,
    chunk: list[types.Datum],
    loss_fn: str,
    config: dict[str, Any] | None,
    forward_only: bool,
) -> tuple[BodyBuilder, JsonBuilder]:
    """The builders of one chunk's forward(_backward) request: protobuf, and JSON (the route
    differs: `forward` or `forward_backward`) for a server that refuses protobuf."""

    def fbi() -> types.ForwardBackwardInput:
        return types.ForwardBackwardInput(
            data=chunk,
            loss_fn=loss_fn,  # type: ignore[arg-type]
            loss_fn_config=config,
        )

    def as_proto(seq_id: int) -> tuple[bytes, str]:
        body = proto.encode_forward_backward_request(
            fbi(), model_id=model_id, seq_id=seq_id, forward_only=forward_only
        )
        return body, proto.PROTOBUF_CONTENT_TYPE

    def as_json(seq_id: int) -> tuple[str, bytes]:
        if forward_only:
            fwd = types.ForwardRequest(forward_input=fbi(), model_id=model_id, seq_id=seq_id)
            return "forward", types.to_json(fwd)
        req = types.ForwardBackwardRequest(
            forward_backward_input=fbi(), model_id=model_id, seq_id=seq_id
        )
        return "forward_backward", types.to_json(req)

    return as_proto, as_json


def optim_step_body(model_id: str, params: types.AdamParams | types.DimuonParams) -> BodyBuilder:
    """The builder of an optim_step request (Adam's params under their older field name)."""

    def request(seq_id: int) -> types.OptimStepRequest:
        if isinstance(params, types.AdamParams):
            return types.OptimStepRequest(model_id=model_id, adam_params=params, seq_id=seq_id)
        return types.OptimStepRequest(model_id=model_id, optimizer_params=params, seq_id=seq_id)

    return json_body(request)
