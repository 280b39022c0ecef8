"""Every supervisors test runs under the leak check: all actors stopped, no thread left."""

from __future__ import annotations

import pytest

from supervisors.testing import actors_cleanup

__all__ = ["actors_cleanup"]


@pytest.fixture(autouse=True)
def _leak_check(actors_cleanup: None) -> None:
    """Apply the supervisors leak check to every test in this directory."""
