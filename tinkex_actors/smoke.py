"""A smoke check of what the package has so far, run by `tinkex-actors demo`."""

from __future__ import annotations

from tinkex_actors._version import __version__


def run_smoke() -> int:
    """Print what works; returns an exit code."""
    print(f"tinkex-actors {__version__}: smoke check passed")
    return 0
