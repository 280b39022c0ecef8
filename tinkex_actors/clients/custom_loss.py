"""Custom losses run client-side: `TrainingClient.forward_backward_custom`.

The forward runs first; the user's loss gets the model's target-token logprobs (in a thread of
its own: it may be slow, and must never run in a Poller's thread) and returns `(loss, metrics,
grads)`; the backward is a cross_entropy pass with `weights = -grads` (the official
weighting), whose seq_id is reserved only when it is sent, as officially.

A `LossHandle` (from `ServiceClient.create_custom_loss`) is written for torch, as officially: it
is called once per datum with the datum's target logprobs and one tensor per input it names,
and returns `(loss, metrics)`. Gradients of the summed loss with respect to each datum's
logprobs come from torch autograd, then go through the same linearised backward.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from tinkex_actors import types
from tinkex_actors.clients.extras import LossHandle
from tinkex_actors.clients.training_requests import check_data
from tinkex_actors.futures.future import Future

__all__ = ["CustomLossFn", "handle_as_loss_fn", "run_custom_loss"]

CustomLossFn = Callable[
    [list[types.Datum], list[np.ndarray]],
    tuple[float, Mapping[str, float], Sequence[np.ndarray]],
]
"""`(data, logprobs_list) -> (loss, metrics, grads)` for `forward_backward_custom`."""

Pass = Callable[[list[types.Datum], str], Future[types.ForwardBackwardOutput]]
"""A model's `forward` or `forward_backward` with a loss function named (no config)."""


def run_custom_loss(
    data: Sequence[types.Datum],
    loss_fn: CustomLossFn | LossHandle,
    loss_type_input: Literal["logprobs"] | None,
    *,
    forward: Pass,
    forward_backward: Pass,
) -> Future[types.ForwardBackwardOutput]:
    """Train on `loss_fn` through a model's `forward` and `forward_backward` (see the module
    docstring); checks the arguments in the caller's thread, returns a Future at once."""
    if loss_type_input not in (None, "logprobs"):
        raise ValueError(f"loss_type_input={loss_type_input!r}: only 'logprobs' (or None)")
    if isinstance(loss_fn, LossHandle):
        loss_fn = handle_as_loss_fn(loss_fn)
    items = check_data(data)
    for i, datum in enumerate(items):
        if "target_tokens" not in datum.loss_fn_inputs:
            raise ValueError(
                f"data[{i}].loss_fn_inputs has no 'target_tokens'; the custom "
                "loss needs the tokens whose logprobs it differentiates"
            )
    if not callable(loss_fn):
        raise TypeError(
            "loss_fn must be callable: (data, logprobs_list) -> (loss, metrics, grads)"
        )
    result: Future[types.ForwardBackwardOutput] = Future(request_type="ForwardBackwardCustom")
    forwarded = forward(items, "cross_entropy")

    def backward(fwd: types.ForwardBackwardOutput) -> None:
        try:
            logprobs = [out["logprobs"].to_numpy() for out in fwd.loss_fn_outputs]
            loss, metrics, grads = loss_fn(items, logprobs)
            if len(grads) != len(items):
                raise ValueError(
                    f"loss_fn returned {len(grads)} gradients for "
                    f"{len(items)} datums; return one per datum"
                )
            linear = []
            for i, (datum, grad, lp) in enumerate(zip(items, grads, logprobs, strict=True)):
                g = np.asarray(grad, dtype=np.float32)
                if g.shape != lp.shape:
                    raise ValueError(
                        f"gradient {i} has shape {g.shape}, its logprobs "
                        f"{lp.shape}; return dLoss/dlogprobs of that shape"
                    )
                linear.append(
                    types.Datum(
                        model_input=datum.model_input,
                        loss_fn_inputs={
                            "target_tokens": datum.loss_fn_inputs["target_tokens"],
                            "weights": types.TensorData.from_numpy(-g),
                        },
                    )
                )
            sent = forward_backward(linear, "cross_entropy")
        except BaseException as exc:
            result.set_exception(exc)
            return

        def done(out: Future[types.ForwardBackwardOutput]) -> None:
            error = out.exception()
            if error is not None:
                result.set_exception(error)
                return
            value = out.result()
            merged = {
                **value.metrics,
                **{k: float(v) for k, v in metrics.items()},
                "loss:sum": float(loss),
            }
            result.set_result(
                types.ForwardBackwardOutput(
                    loss_fn_output_type=value.loss_fn_output_type,
                    loss_fn_outputs=fwd.loss_fn_outputs,
                    metrics=merged,
                )
            )

        sent.add_done_callback(done)

    def after_forward(done: Future[types.ForwardBackwardOutput]) -> None:
        error = done.exception()
        if error is not None:
            result.set_exception(error)
            return
        # The user's loss may be slow: never run it in a Poller's thread.
        threading.Thread(
            target=backward, args=(done.result(),), daemon=True, name="tinkex-custom-loss"
        ).start()

    forwarded.add_done_callback(after_forward)
    return result


def handle_as_loss_fn(
    handle: LossHandle,
) -> Any:
    """A `(data, logprobs_list) -> (loss, metrics, grads)` function that runs `handle` in torch."""
    try:
        torch: Any = importlib.import_module("torch")
    except ImportError as exc:
        raise ImportError(
            f"custom loss {handle.name!r} is written for torch, which is not installed; "
            "pip install torch, or pass forward_backward_custom a numpy loss function"
        ) from exc

    def loss_fn(
        data: Sequence[types.Datum], logprobs_list: Sequence[np.ndarray]
    ) -> tuple[float, Mapping[str, float], list[np.ndarray]]:
        total: Any = 0.0
        metrics: dict[str, float] = {}
        leaves = []
        for datum, logprobs in zip(data, logprobs_list, strict=True):
            leaf = torch.tensor(np.asarray(logprobs, dtype=np.float32), requires_grad=True)
            leaves.append(leaf)
            inputs = []
            for name in handle.inputs:
                if name not in datum.loss_fn_inputs:
                    raise ValueError(
                        f"custom loss {handle.name!r} reads loss_fn_inputs[{name!r}], which a "
                        "datum lacks; give every datum that input"
                    )
                inputs.append(torch.tensor(datum.loss_fn_inputs[name].to_numpy()))
            loss, datum_metrics = handle.fn(leaf, *inputs)
            total = total + loss
            for key, value in dict(datum_metrics).items():
                value = value.detach() if hasattr(value, "detach") else value
                metrics[key] = metrics.get(key, 0.0) + float(value)
        total.backward()
        for key in metrics:
            if key.endswith(":mean"):  # per-datum means average; sums add up
                metrics[key] /= max(len(leaves), 1)
        grads = [leaf.grad.detach().numpy() for leaf in leaves]
        return float(total.detach()), metrics, grads

    return loss_fn
