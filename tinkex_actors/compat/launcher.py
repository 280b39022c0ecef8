"""`tinkex-actors exec -- CMD ...`: run a command with `import tinker` served by tinkex-actors.

The command runs as a child process whose PYTHONPATH starts with a directory holding a
one-file `tinker` package; importing it installs the alias hook (`compat.alias`) and
hands over `tinkex_actors`. Every Python process the command starts inherits it. This
process only waits for the child and returns its exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

__all__ = ["SHIM_DIR", "child_env", "exec_command", "main", "run"]

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


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD ...")
def exec_command(command: tuple[str, ...]) -> None:
    """Run a command with `import tinker` served by tinkex-actors.

    \b
    Examples:
      tinkex-actors exec -- python -m tinker_cookbook.recipes.sl_loop
      tinkex-actors exec -- python my_script.py
    """
    try:
        code = run(command)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    raise click.exceptions.Exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tinkex_actors.compat CMD ...`: the launcher without the CLI."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
