"""Run a program in a subprocess the way a user would, and read what it printed.

A program written for the official SDK that runs on our client may not exit by itself yet
(see test_scripts.py), so the runner waits for its last line (or its traceback), then gives
it a short grace to exit, then stops it and its children.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Run", "run_script"]

RESULT_DEADLINE_S = 120.0  # the program's last line (or its traceback) comes by then
EXIT_GRACE_S = 5.0  # then it must have exited
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")


@dataclass
class Run:
    """What one run of a script printed, and whether it ended by itself."""

    result: dict[str, object] | None
    exited: bool
    stderr: str
    lines: list[str] = field(default_factory=list)


def run_script(
    script: Path | str,
    ours: bool,
    env: dict[str, str],
    args: list[str] | None = None,
    python: str = sys.executable,
    done: re.Pattern[str] | None = None,
    deadline_s: float = RESULT_DEADLINE_S,
) -> Run:
    """Run `python script args`; wait for its last line or its traceback, then a grace to exit.

    The last line is a JSON line on stdout, or any line matching `done`. `script` may be
    `-m module`. With `ours`, the program runs under `tinkex-actors exec`.
    """
    target = str(script).split(" ") if str(script).startswith("-m ") else [str(script)]
    argv = [python, *target, *(args or [])]
    if ours:
        argv = [python, "-m", "tinkex_actors.cli", "exec", "--", *argv]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # so the launcher and the program can be stopped together
    )
    finished = threading.Event()
    out: list[str] = []
    err: list[str] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("{") or (done is not None and done.search(line)):
                finished.set()
        finished.set()

    def read_stderr() -> None:
        assert proc.stderr is not None
        in_traceback = False
        for line in proc.stderr:
            err.append(line)
            if done is not None and done.search(line):
                finished.set()
            in_traceback = in_traceback or line.startswith("Traceback (most recent call last)")
            if in_traceback and _ERROR_LINE.match(line):
                finished.set()  # the program's main code died; it may still not exit

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()
    finished.wait(deadline_s)
    try:
        proc.wait(EXIT_GRACE_S)
        exited = True
    except subprocess.TimeoutExpired:
        exited = False
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(EXIT_GRACE_S)
    for reader in readers:
        reader.join(EXIT_GRACE_S)
    results = [json.loads(line) for line in out if line.startswith("{")]
    return Run(results[-1] if results else None, exited, "".join(err), out)
