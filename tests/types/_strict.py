"""Strict comparison of parsed JSON: equal values AND equal number kinds (1 vs 1.0)."""

from __future__ import annotations

from typing import Any


def assert_same_json(ours: Any, official: Any, path: str = "$") -> None:
    """Assert two parsed JSON values are equal, with ints, floats and bools kept apart."""
    assert type(ours) is type(official), (
        f"{path}: ours is {type(ours).__name__} {ours!r}, "
        f"official is {type(official).__name__} {official!r}"
    )
    if isinstance(ours, dict):
        assert set(ours) == set(official), (
            f"{path}: keys differ: only ours {sorted(set(ours) - set(official))}, "
            f"only official {sorted(set(official) - set(ours))}"
        )
        for key in ours:
            assert_same_json(ours[key], official[key], f"{path}.{key}")
    elif isinstance(ours, list):
        assert len(ours) == len(official), f"{path}: lengths {len(ours)} != {len(official)}"
        for i, (a, b) in enumerate(zip(ours, official, strict=True)):
            assert_same_json(a, b, f"{path}[{i}]")
    else:
        assert ours == official, f"{path}: {ours!r} != {official!r}"
