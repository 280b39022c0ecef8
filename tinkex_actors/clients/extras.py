"""Small pieces of the official 0.38 client surface that several clients share.

Argument checks for the options official clients take (`optimizer`, `optim_params`,
`retry_config`), console URLs, the `get_telemetry()` handle, `user_error` telemetry for failed
calls, and the `LossHandle` of `ServiceClient.create_custom_loss`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tinkex_actors import types
from tinkex_actors.errors import RequestFailedError, is_user_error
from tinkex_actors.transport.retry import RetryPolicy

if TYPE_CHECKING:
    from tinkex_actors.futures.future import Future

__all__ = [
    "LossHandle",
    "PerDatumLossFn",
    "SessionTelemetry",
    "check_input_ranks",
    "check_optim_params",
    "check_optimizer",
    "check_retry_config",
    "console_url",
    "report_user_errors",
    "user_error_data",
]



def console_url(kind: str, ident: str | None = None) -> str:
    """The console page of a session or training run (`kind` "sessions" / "training_runs")."""
    if ident is None:
        return f"{types.CONSOLE_BASE_URL}/{kind}"
    return f"{types.CONSOLE_BASE_URL}/{kind}/{quote(ident, safe=':')}"


def check_optimizer(optimizer: object) -> None:
    """Refuse an `optimizer` that is not one of the optimizer configs of `types`."""
    if optimizer is None or isinstance(
        optimizer, types.AdamOptimizerConfig | types.DimuonOptimizerConfig
    ):
        return
    raise TypeError(
        f"optimizer is a {type(optimizer).__name__}; pass types.AdamOptimizerConfig() or "
        "types.DimuonOptimizerConfig(), or None for Adam"
    )


def check_optim_params(
    optim_params: object, adam_params: object
) -> types.AdamParams | types.DimuonParams:
    """The step's params from `optim_step(optim_params, adam_params=...)`, checked."""
    if optim_params is not None and adam_params is not None:
        raise ValueError(
            "optim_step got both optim_params and adam_params; pass one (adam_params is the "
            "older name of optim_params for Adam)"
        )
    params = optim_params if optim_params is not None else adam_params
    if isinstance(params, types.AdamParams | types.DimuonParams):
        return params
    raise TypeError(
        f"optim_params is a {type(params).__name__}; pass types.AdamParams(learning_rate=...) "
        "or, for a model made with DimuonOptimizerConfig, types.DimuonParams(learning_rate=...)"
    )


def check_retry_config(retry_config: object) -> None:
    """Refuse a `retry_config` that is not a `RetryPolicy`."""
    if retry_config is not None and not isinstance(retry_config, RetryPolicy):
        raise TypeError(
            f"retry_config is a {type(retry_config).__name__}; pass a "
            "tinkex_actors.RetryPolicy(...) or None for the default"
        )


def user_error_data(error: BaseException) -> dict[str, Any]:
    """The data of the official `user_error` event: error type, message, status and body."""
    data: dict[str, Any] = {"error_type": type(error).__name__}
    message = str(error)
    if message:
        data["message"] = message
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        data["status_code"] = status
    body = getattr(error, "body", None)
    if body:
        data["body"] = body if isinstance(body, str | dict | list) else str(body)
    if isinstance(error, RequestFailedError):
        data["category"] = str(error.category)
    return data


def report_user_errors(
    future: Future[Any], report: Callable[[str, dict[str, Any], str], None]
) -> None:
    """Report `future`'s failure as a WARNING `user_error` event when it is the caller's fault
    (a 4xx other than 408, or a failed request of category user), as official clients do."""

    def settled(done: Future[Any]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None and is_user_error(error):
            report("user_error", user_error_data(error), "WARNING")

    future.add_done_callback(settled)


class SessionTelemetry:
    """What `get_telemetry()` returns: log events into the session's telemetry stream."""

    def __init__(self, report: Callable[[str, dict[str, Any], str], None]) -> None:
        self._report = report

    def log(
        self, event_name: str, event_data: dict[str, Any] | None = None, severity: str = "INFO"
    ) -> bool:
        """Queue a GENERIC_EVENT; True (it is sent with the next batch)."""
        if not isinstance(event_name, str) or not event_name:
            raise ValueError(f"event_name={event_name!r}: name the event, e.g. 'eval_done'")
        self._report(event_name, dict(event_data or {}), severity)
        return True

    def log_exception(self, exception: BaseException, severity: str = "ERROR") -> bool:
        """Queue a `user_error` event for a user error, else an exception event."""
        if is_user_error(exception):
            self._report("user_error", user_error_data(exception), "WARNING")
        else:
            self._report(
                "exception",
                {"error_type": type(exception).__name__, "message": str(exception)},
                severity,
            )
        return True

    def __repr__(self) -> str:
        return "SessionTelemetry()"


Telemetry = SessionTelemetry
"""The official name of the same class (`get_telemetry()`'s return type)."""

PerDatumLossFn = Callable[..., tuple[Any, Mapping[str, Any]]]
"""A per-datum custom loss, as officially: `(logprobs, *inputs) -> (loss, metrics)`, each a
torch tensor (typed `Any` here: torch is an optional dependency)."""


@dataclasses.dataclass(frozen=True)
class LossHandle:
    """A custom loss made by `ServiceClient.create_custom_loss`, for `forward_backward_custom`.

    It runs client-side: `fn` is called once per datum with the datum's target logprobs and
    one tensor per other input, and returns `(loss, metrics)`; gradients come from torch.
    """

    name: str
    fn: Callable[..., Any]
    input_ranks: Mapping[str, int]
    session_id: str
    loss_id: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the loss_fn_inputs the loss reads (logprobs excluded)."""
        return tuple(name for name in self.input_ranks if name != "logprobs")


def check_input_ranks(fn: object, input_ranks: object) -> dict[str, int]:
    """The ranks of a custom loss's parameters, checked against `fn`'s signature."""
    if not callable(fn):
        raise TypeError("fn must be callable: fn(logprobs, <inputs>...) -> (loss, metrics)")
    if not isinstance(input_ranks, Mapping) or "logprobs" not in input_ranks:
        raise ValueError(
            "input_ranks must map every parameter of fn to its rank (0, 1 or 2), "
            "'logprobs' included, e.g. {'logprobs': 1, 'weights': 1}"
        )
    ranks: dict[str, int] = {}
    for name, rank in input_ranks.items():
        if isinstance(rank, bool) or rank not in (0, 1, 2):
            raise ValueError(f"input_ranks[{name!r}]={rank!r}: a rank is 0, 1 or 2")
        ranks[str(name)] = int(rank)
    params = list(inspect.signature(fn).parameters)
    if not params or params[0] != "logprobs" or set(params) != set(ranks):
        raise ValueError(
            f"fn takes {params}; its first parameter must be 'logprobs' and input_ranks must "
            f"name exactly its parameters (got {sorted(ranks)})"
        )
    return ranks
