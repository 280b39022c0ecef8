"""Running a `LossHandle` (from `ServiceClient.create_custom_loss`) as a client-side loss.

The handle's function is written for torch, as officially: it is called once per datum with
the datum's target logprobs and one tensor per input it names, and returns `(loss, metrics)`.
Gradients of the summed loss with respect to each datum's logprobs come from torch autograd,
then go through the same linearised backward as a numpy custom loss.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinkex_actors import types
from tinkex_actors.client_extras import LossHandle

__all__ = ["handle_as_loss_fn"]


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
