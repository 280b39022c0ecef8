"""`metrics.jsonl`: one JSON object per training step, in the tinker-cookbook's conventions.

Each line is `{"step": N, <metric>: <value>, ...}` (the cookbook's `JsonLogger` layout), so
the same tools read a cookbook run and a demo run. The names follow the cookbook where it has
one: `train_mean_nll` (loss per target token), `learning_rate`, `num_sequences`, `num_tokens`,
`progress` (fraction of the run done), `time/total` (seconds since the run started), and for RL
`env/all/reward/total` (mean reward of the step's samples).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LOSS",
    "METRICS_FILE",
    "REWARD",
    "MetricsLog",
    "choose_metric",
    "read_metrics",
    "smoothed",
]

METRICS_FILE = "metrics.jsonl"
LOSS = "train_mean_nll"
REWARD = "env/all/reward/total"
_PREFERRED = (LOSS, REWARD, "loss", "reward")


class MetricsLog:
    """Appends one line per step to `<directory>/metrics.jsonl`, flushed as each step ends."""

    def __init__(self, directory: Path, *, append: bool = False) -> None:
        self.path = Path(directory) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A fresh run starts a fresh curve; a resumed run continues the one it resumes.
        if not append:
            self.path.write_text("", encoding="utf-8")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append `{"step": step, **metrics}` as one line."""
        entry = {"step": step, **metrics}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True, allow_nan=False) + "\n")


def read_metrics(source: Path) -> list[dict[str, Any]]:
    """Every object in a metrics file (or `<dir>/metrics.jsonl`); a torn line is skipped."""
    path = Path(source)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {METRICS_FILE} at {path}: pass a run's output directory or its {METRICS_FILE}"
        )
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found


def choose_metric(records: Sequence[dict[str, Any]], wanted: str | None = None) -> str:
    """The metric to draw: `wanted`, else the loss, else the reward, else the first numeric."""
    numeric = {
        key
        for entry in records
        for key, value in entry.items()
        if key != "step" and isinstance(value, int | float) and not isinstance(value, bool)
    }
    if wanted is not None:
        if wanted not in numeric:
            known = ", ".join(sorted(numeric)) or "none"
            raise ValueError(f"metric {wanted!r} is not in the file (numeric metrics: {known})")
        return wanted
    for name in _PREFERRED:
        if name in numeric:
            return name
    if not numeric:
        raise ValueError("the metrics file has no numeric metric to draw")
    return sorted(numeric)[0]


def smoothed(values: Iterable[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing).

    The correction keeps the first points honest: without it the curve would start near 0.
    """
    out: list[float] = []
    average = 0.0
    for n, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**n) if weight < 1 else value)
    return out


def series(records: Sequence[dict[str, Any]], metric: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric, skipping lines without a finite value."""
    xs: list[float] = []
    ys: list[float] = []
    for index, entry in enumerate(records):
        value = entry.get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            step = entry.get("step", index)
            xs.append(float(step) if isinstance(step, int | float) else float(index))
            ys.append(float(value))
    return xs, ys
