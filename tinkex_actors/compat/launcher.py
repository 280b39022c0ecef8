"""`tinkex-actors exec -- CMD ...`: run a command with `import tinker` served by tinkex-actors.

The command runs as a child process whose PYTHONPATH starts with a directory holding a
one-file `tinker` package; importing it installs the alias hook (`compat.alias`) and
hands over `tinkex_actors`. Every Python process the command starts inherits it. This
process only waits for the child and returns its exit status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["SHIM_DIR", "add_exec_command", "child_env", "main", "run"]

SHIM_DIR = str(Path(__file__).resolve().parent / "shim")
# Set in the child, so that a program (or a test) can tell it runs under the alias.
MARKER_ENV = "TINKEX_ACTORS_AS_TINKER"
EXIT_NOT_FOUND = 127


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command run under the alias: `base` with the shim first on the path."""
    env = dict(os.environ if base is None else base)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != SHIM_DIR]
    env["PYTHONPATH"] = os.pathsep.join([SHIM_DIR, *parts])
    env[MARKER_ENV] = "1"
    return env


def run(command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run `command` under the alias and return its exit status (127 if it cannot start)."""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ValueError(
            "no command to run: give one after `--`, e.g. "
            "`tinkex-actors exec -- python -m my.recipe`"
        )
    try:
        proc = subprocess.Popen(argv, env=child_env(env))
    except (FileNotFoundError, PermissionError) as exc:
        print(f"error: cannot run {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the child too; give it the chance to finish cleanly.
        return proc.wait()


def _cmd_exec(args: argparse.Namespace) -> int:
    return run(args.exec_command)


def add_exec_command(sub: Any) -> None:
    """Register `exec` on the CLI's subcommand parsers (`sub` from `add_subparsers`)."""
    text = "run a command with `import tinker` served by tinkex-actors"
    parser = sub.add_parser("exec", help=text, description=text)
    parser.add_argument(
        "exec_command", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command"
    )
    parser.set_defaults(func=_cmd_exec)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tinkex_actors.compat CMD ...`: the launcher without the CLI."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
