"""Lifecycle tests: real servers on 127.0.0.1 (in this process, or in a child process that a
test can kill), user scripts in subprocesses, and the leak check of the client tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._leaks import leak_check as leak_check  # the shared autouse fixture
from tinkex_actors.local import LocalServer

KEY = "tml-lifecycle-tests"
SCRIPT_WAIT_S = 60.0
NOISE = ("Traceback", "Exception in thread", "Event loop is closed", "CancelledError")
"""What a clean exit never prints."""

_SERVE = """
import sys
from tinkex_actors.local import LocalServer
server = LocalServer(api_key=sys.argv[1], control=True).start()
print(server.url, flush=True)
sys.stdin.read()
"""




@pytest.fixture
def server() -> Iterator[LocalServer]:
    """An embedded server in this process, for one test."""
    with LocalServer(api_key=KEY, control=True) as local:
        yield local


@dataclass
class ServerProcess:
    """An embedded server in a child process: `kill()` makes it vanish (SIGKILL)."""

    url: str
    process: subprocess.Popen[str]

    def kill(self) -> None:
        """SIGKILL the server and reap it: from now on its port refuses connections."""
        self.process.kill()
        self.process.wait(SCRIPT_WAIT_S)


@pytest.fixture
def server_process() -> Iterator[ServerProcess]:
    """A killable embedded server in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE, KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    try:
        yield ServerProcess(url, process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(SCRIPT_WAIT_S)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@dataclass
class ScriptRun:
    """A user script run in a subprocess: its output, and how long it took to exit."""

    returncode: int
    output: str
    exit_after_s: float
    """From the script's last statement (it prints `END <time>`) to the process's end."""

    def lines(self, prefix: str) -> list[str]:
        """The lines of output starting with `prefix`."""
        return [line for line in self.output.splitlines() if line.startswith(prefix)]


class Script:
    """Runs a user script; `on_ready` (e.g. kill the server) runs when it prints READY."""

    def __init__(self, tmp_path: Path) -> None:
        self._dir = tmp_path

    def run(
        self,
        body: str,
        *args: str,
        on_ready: Callable[[subprocess.Popen[str]], None] | None = None,
    ) -> ScriptRun:
        """Run `body` (dedented) with `args`. A script that prints READY then waits for a line
        on stdin: `on_ready(process)` runs first, then the line is sent."""
        path = self._dir / "user_script.py"
        path.write_text(textwrap.dedent(body))
        env = dict(os.environ, TINKER_LOG="info", TINKER_LOG_FORMAT="json")
        process = subprocess.Popen(
            [sys.executable, str(path), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert process.stdout is not None and process.stdin is not None
        stdout, stdin = process.stdout, process.stdin
        seen: list[str] = []

        def read() -> None:
            for line in stdout:
                seen.append(line)
                if line.startswith("READY"):
                    if on_ready is not None:
                        on_ready(process)
                    stdin.write("go\n")
                    stdin.flush()

        reader = threading.Thread(target=read, name="script-output")
        reader.start()
        try:
            process.wait(SCRIPT_WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(SCRIPT_WAIT_S)
        ended = time.time()
        reader.join(SCRIPT_WAIT_S)
        stdout.close()
        stdin.close()
        output = "".join(seen)
        end = [line for line in output.splitlines() if line.startswith("END ")]
        assert end, f"the script did not reach its end:\n{output}"
        return ScriptRun(process.returncode, output, ended - float(end[0].split()[1]))


@pytest.fixture
def script(tmp_path: Path) -> Script:
    """Runs user scripts in subprocesses."""
    return Script(tmp_path)
