"""The static checks run as tests, so the README's one test command covers them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_strict_is_clean() -> None:
    """mypy --strict reports no error on supervisors/ and tinkex_actors/."""
    proc = _run(sys.executable, "-m", "mypy", "--strict", "supervisors", "tinkex_actors")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean() -> None:
    """ruff reports no finding on the packages, tests and benchmarks."""
    proc = _run(
        sys.executable, "-m", "ruff", "check", "supervisors", "tinkex_actors", "tests", "benchmarks"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_version_prints_the_version() -> None:
    """`tinkex-actors version` prints the package version and exits 0."""
    from tinkex_actors import __version__

    proc = _run(sys.executable, "-m", "tinkex_actors.cli", "version")
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
