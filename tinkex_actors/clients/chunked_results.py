"""Combining the results of a forward_backward sent in chunks into one result.

`combine_forward_backward_outputs` is the transform a chunked forward_backward hands to
`futures.combine`: outputs concatenated in chunk order, metrics reduced by the suffix of their
name (`loss:sum`, `loss:mean` weighted by each chunk's number of outputs, `:min`, `:max`,
`:slack`, `:hash2`, `:unique`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

from supervisors.library_logging import get_logger
from tinkex_actors.types import ForwardBackwardOutput

__all__ = ["METRIC_REDUCTIONS", "combine_forward_backward_outputs", "reduce_metrics"]

_log = get_logger("tinkex_actors.clients.chunked_results")


def _mean(values: Sequence[float], weights: Sequence[float]) -> float:
    total = math.fsum(weights)
    if total <= 0:
        return math.fsum(values) / len(values)
    return math.fsum(v * w for v, w in zip(values, weights, strict=True)) / total


def _hash2(values: Sequence[float], _weights: Sequence[float]) -> float:
    mask = 0xFFFF_FFFF_FFFF_FFFF
    return float(sum(int(v) & mask for v in values) & mask)


METRIC_REDUCTIONS: Final[dict[str, Callable[[Sequence[float], Sequence[float]], float]]] = {
    "sum": lambda values, _w: math.fsum(values),
    "mean": _mean,
    "min": lambda values, _w: min(values),
    "max": lambda values, _w: max(values),
    "slack": lambda values, weights: max(values) - _mean(values, weights),
    "hash2": _hash2,
}
"""How a metric named `name:<reduction>` folds over chunks; `unique` is handled apart: the
first chunk's value keeps the name, the others are added as `name:unique_1`, `..._2`."""


def reduce_metrics(
    metrics: Sequence[dict[str, float]], weights: Sequence[float]
) -> dict[str, float]:
    """Fold per-chunk metrics into one dict by their reduction suffix.

    Only metrics present in every chunk are kept; a name without a known suffix is dropped
    (as officially: a newer server may add reductions this client does not know).
    """
    if not metrics:
        return {}
    if len(weights) != len(metrics):
        raise ValueError(
            f"reduce_metrics: {len(metrics)} metric dicts but {len(weights)} weights; "
            "pass one weight (the number of outputs) per chunk"
        )
    out: dict[str, float] = {}
    for key in metrics[0]:
        _, sep, reduction = key.rpartition(":")
        if not sep or not all(key in m for m in metrics):
            continue
        values = [float(m[key]) for m in metrics]
        if reduction == "unique":
            out[key] = values[0]
            out.update({f"{key}_{i}": v for i, v in enumerate(values[1:], start=1)})
            continue
        reduce = METRIC_REDUCTIONS.get(reduction)
        if reduce is None:
            _log.debug("metric_reduction_unknown", metric=key, reduction=reduction)
            continue
        out[key] = reduce(values, weights)
    return out


def combine_forward_backward_outputs(
    results: Sequence[ForwardBackwardOutput],
) -> ForwardBackwardOutput:
    """One ForwardBackwardOutput from the outputs of consecutive chunks, in chunk order."""
    if not results:
        return ForwardBackwardOutput(loss_fn_output_type="", loss_fn_outputs=[], metrics={})
    weights = [float(len(r.loss_fn_outputs)) for r in results]
    return ForwardBackwardOutput(
        loss_fn_output_type=results[0].loss_fn_output_type,
        loss_fn_outputs=[output for r in results for output in r.loss_fn_outputs],
        metrics=reduce_metrics([dict(r.metrics) for r in results], weights),
    )
