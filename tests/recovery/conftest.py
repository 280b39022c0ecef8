"""Recovery tests: real servers on 127.0.0.1 (in this process, or a `tinkex-actors serve`
child process that a test kills and restarts on the same port and data directory)."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests._leaks import leak_check as leak_check  # the shared autouse fixture
from tinkex_actors import types
from tinkex_actors.demo.data import example_pairs, supervised_datum

KEY = "tml-recovery-tests-key"
START_WAIT_S = 60.0




def batch(count: int = 4, seed: int = 0) -> list[types.Datum]:
    """A fixed supervised batch of the demo task."""
    return [supervised_datum(w, t) for w, t in example_pairs(count, seed=seed)]


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServeProcess:
    """`python -m tinkex_actors.cli serve` on a fixed port and data directory; `kill()` is a
    SIGKILL, `start()` starts it again on the same port and directory."""

    port: int
    data_dir: Path
    process: subprocess.Popen[str] | None = None
    kills: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it announces its URL (up to START_WAIT_S)."""
        env = dict(os.environ, TINKER_API_KEY=KEY)
        process = subprocess.Popen(
            [sys.executable, "-m", "tinkex_actors.cli", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + START_WAIT_S
            line = ""
            while "serving" not in line:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    process.kill()
                    raise TimeoutError("the server did not start within START_WAIT_S")
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(f"the server exited with {process.wait(START_WAIT_S)}")
        with self._lock:
            self.process = process

    def kill(self) -> None:
        """SIGKILL the server and reap it."""
        with self._lock:
            process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(START_WAIT_S)
            if process.stdout is not None:
                process.stdout.close()
            self.kills += 1

    def restart(self) -> None:
        """Kill, then start again on the same port and data directory."""
        self.kill()
        self.start()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServeProcess]:
    """A killable `tinkex-actors serve` child process."""
    server = ServeProcess(free_port(), tmp_path / "server-data")
    server.start()
    try:
        yield server
    finally:
        server.kill()
