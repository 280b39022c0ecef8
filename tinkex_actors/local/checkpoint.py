"""Checkpoint files of the tiny model: atomic .npz writes and checked reads.

A state is a flat mapping of names to arrays (``meta/...``, ``lora/...`` and, when
saved with the optimizer, ``optimizer/...``), self-describing so a sampler or a
restarted server can rebuild the model from the file alone.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_state", "state_config", "take_array", "write_state"]


def write_state(path: str | os.PathLike[str], state: Mapping[str, np.ndarray]) -> None:
    """Write ``state`` to ``path`` as .npz via a temporary file and a rename."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, **state)  # type: ignore[arg-type]
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def read_state(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the arrays of a file written by ````write_state`` (``LoraModel.save``)``."""
    with np.load(Path(path), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def state_config(state: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Return the LoRA config a state records, or raise ValueError if it is not one."""
    try:
        flags = [bool(x) for x in np.asarray(state["meta/train_flags"])]
        return {
            "base_model": bytes(np.asarray(state["meta/base_model"], np.uint8)).decode("utf-8"),
            "rank": int(state["meta/rank"]),
            "seed": int(state["meta/seed"]),
            "train_mlp": flags[0],
            "train_attn": flags[1],
            "train_unembed": flags[2],
        }
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ValueError(
            f"the state is not a LoraModel checkpoint ({exc!r}); pass what LoraModel.state "
            "returned or a file LoraModel.save wrote"
        ) from exc


def take_array(
    state: Mapping[str, np.ndarray], key: str, like: np.ndarray, dtype: np.dtype[Any]
) -> np.ndarray:
    """Return a finite copy of ``state[key]`` in ``dtype``, checked against ``like``'s shape."""
    if key not in state:
        raise ValueError(f"the checkpoint lacks {key!r}; it is incomplete or of another model")
    array = np.asarray(state[key])
    if array.shape != like.shape:
        raise ValueError(
            f"checkpoint {key!r} has shape {array.shape} but the model expects {like.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"checkpoint {key!r} holds NaN or inf; refusing to load it")
    return array.astype(dtype, copy=True)
