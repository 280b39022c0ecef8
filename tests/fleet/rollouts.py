"""Rollout functions the fleet tests run in their workers (importable by spawned processes)."""

from __future__ import annotations

import os
from typing import Any

from tinkex_actors import types

WAIT_S = 60.0


def sample_and_grade(sampler: Any, item: int) -> dict[str, Any]:
    """Sample 1 continuation of a prompt made from `item`, and grade it by its length."""
    prompt = types.ModelInput.from_ints([97 + item % 26, 98, 99])
    response = sampler.sample(
        prompt, 1, types.SamplingParams(max_tokens=4, seed=item)
    ).result(WAIT_S)
    tokens = response.sequences[0].tokens
    return {"item": item, "tokens": list(tokens), "pid": os.getpid()}


def sample_and_report(sampler: Any, item: dict[str, Any]) -> dict[str, Any]:
    """Tell `item["started"]` (a queue) that rollout `item["i"]` started here, then sample."""
    item["started"].put((item["i"], os.getpid()))
    result = sample_and_grade(sampler, item["i"])
    return {**result, "i": item["i"]}


def sample_prompt_of(sampler: Any, tokens: int) -> int:
    """Sample from a prompt of `tokens` tokens (estimated at 10 bytes each); its length back."""
    prompt = types.ModelInput.from_ints([97 + i % 26 for i in range(tokens)])
    sampler.sample(prompt, 1, types.SamplingParams(max_tokens=1, seed=tokens)).result(WAIT_S)
    return tokens
