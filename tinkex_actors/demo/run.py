"""The main job: fine-tune a LoRA to speak pig latin, end to end, in about a minute.

`tinkex-actors demo` runs it on the embedded server (started by the ServiceClient when neither
`TINKER_API_KEY` nor `TINKER_BASE_URL` is set) or on the service they name; there, without
`--base-model`, it asks the server which models it serves. It shows what a Tinker training
loop looks like:

- forward_backward and optim_step of a step are submitted back to back, one step ahead of the
  results being read (pipelined), so the server never waits for the client;
- a progress bar (step/total, elapsed, ETA, smoothed loss, tokens/s, queue state when paused);
- `<out>/metrics.jsonl` (one line per step, tinker-cookbook names) and a loss curve at the end:
  `<out>/loss.png` and a compact curve in the summary;
- a `save_state` checkpoint every N steps, each recorded in `<out>/checkpoints.jsonl`;
  `--resume` continues from the last one with its optimizer state;
- greedy samples before and after training, so the change is visible;
- Ctrl-C stops submitting, saves a checkpoint and exits with 130.

`tinkex-actors demo --rl` is the RL-shaped variant (`demo_rl`): after a short supervised
warm-up, each step samples a fresh sampler of the current weights, scores the samples with a
dense reward and trains on them with the importance_sampling loss.

Exit codes: 0 success, 1 the loss did not fall (or the reward did not rise), 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, TextIO

from tinkex_actors.demo.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_LEARNING,
    CheckpointLog,
    DemoOptions,
)
from tinkex_actors.demo.rl import run_rl
from tinkex_actors.demo.sft import run_supervised

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_LEARNING",
    "CheckpointLog",
    "DemoOptions",
    "run_demo",
    "run_rl_demo",
]


# -- entry point ------------------------------------------------------------------------------


def run_demo(
    options: DemoOptions,
    stdout: TextIO | None = None,
    stop: threading.Event | None = None,
    report: dict[str, Any] | None = None,
) -> int:
    """Run the supervised demo (or the RL demo when `options.rl`); returns the exit code.

    `stop` ends training early as Ctrl-C does (a checkpoint is saved, the code is 130).
    `report`, when given, is filled with the run's figures (what `demo --json` prints).
    """
    if options.rl:
        return run_rl_demo(options, stdout, stop, report)
    return run_supervised(options, stdout, stop, report)


def run_rl_demo(
    options: DemoOptions,
    stdout: TextIO | None = None,
    stop: threading.Event | None = None,
    report: dict[str, Any] | None = None,
) -> int:
    """The RL demo (see `tinkex_actors.demo.rl`); returns the exit code."""
    return run_rl(dataclasses.replace(options, rl=True), stdout, stop, report)
