"""The embedded server in its own process, for benchmarks that measure only the client."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

HOST = "127.0.0.1"
KEY = "tml-bench-embedded-server-key"
"""The key the benchmarks' server is started with (`--api-key`); every client sends it."""
HEADERS = {"X-API-Key": KEY}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def embedded_server(*extra: str, log: str = "error") -> Iterator[tuple[str, int]]:
    """Run `tinkex-actors serve --control` in a subprocess; yields (base URL, pid); stops it.

    Its key is `KEY`.
    """
    port = free_port()
    env = dict(os.environ, TINKER_LOG=log, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinkex_actors.cli", "serve", "--port", str(port),
         "--data-dir", tempfile.mkdtemp(prefix="bench-server-"), "--log-level", "warning",
         "--session-timeout", "3600", "--api-key", KEY, "--control", *extra],
        env=env, stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the embedded server did not start") from None
                time.sleep(0.05)  # a benchmark harness waiting for a child process to listen
        yield f"http://{HOST}:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:  # long-polls still open keep a graceful stop waiting
            proc.kill()
            proc.wait(15)
