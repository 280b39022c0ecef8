"""tinker:// checkpoint paths split into parts, and the official console links to them.

`SaveWeightsResponse.get_console_url` and friends build the same URLs as the official SDK
so code that logs or prints them keeps working (the embedded server has no console:
offline they lead nowhere). The path rule lives here, below both the responses and
`ParsedCheckpointTinkerPath`, so neither imports the other.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

__all__ = [
    "CHECKPOINT_SEGMENTS",
    "CONSOLE_BASE_URL",
    "checkpoint_console_url",
    "checkpoint_playground_url",
    "split_tinker_path",
]

CHECKPOINT_SEGMENTS: Final = ("weights", "sampler_weights", "external_weights")
"""The kind segment of a checkpoint path: training, sampler and external weights."""

CONSOLE_BASE_URL: Final = "https://tinker.thinkingmachines.ai"
"""Where the official console lives (the embedded server has none: its URLs lead nowhere)."""


def split_tinker_path(tinker_path: str) -> tuple[str, str, str]:
    """`tinker://<run_id>/<segment>/<name>` as (run_id, segment, name); ValueError naming it."""
    parts = tinker_path.removeprefix("tinker://").split("/")
    if (
        not tinker_path.startswith("tinker://")
        or len(parts) != 3
        or parts[1] not in CHECKPOINT_SEGMENTS
    ):
        raise ValueError(
            f"Invalid tinker path: {tinker_path!r}; expected "
            "tinker://<run_id>/<weights|sampler_weights|external_weights>/<name>"
        )
    return parts[0], parts[1], parts[2]


def checkpoint_console_url(tinker_path: str) -> str:
    """The console page of the checkpoint at `tinker_path` (ValueError if malformed)."""
    run_id, segment, name = split_tinker_path(tinker_path)
    checkpoint_id = quote(f"{segment}/{name}", safe="")
    return f"{CONSOLE_BASE_URL}/checkpoints/{quote(run_id, safe='')}/{checkpoint_id}"


def checkpoint_playground_url(tinker_path: str) -> str:
    """The console playground opened on the checkpoint at `tinker_path`."""
    return f"{CONSOLE_BASE_URL}/playground?mode=checkpoint&checkpoint={quote(tinker_path, safe='')}"
