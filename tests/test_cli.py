"""The command line: the README's main job and the serve command."""

from __future__ import annotations

import re
import subprocess
import sys

from tinkex_actors.cli import build_parser


class TestDemo:
    def test_the_demo_trains_on_the_embedded_server_and_the_loss_falls(self) -> None:
        """`tinkex-actors demo` exits 0, prints falling loss, a checkpoint and samples."""
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "demo", "--steps", "8"],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        match = re.search(r"loss/token ([0-9.]+) -> ([0-9.]+)", proc.stdout)
        assert match, proc.stdout
        assert float(match.group(2)) < float(match.group(1)) / 2
        assert "checkpoint tinker://" in proc.stdout
        assert proc.stdout.count("sample  ") == 2


class TestServeArguments:
    def test_serve_defaults_to_loopback(self) -> None:
        """`serve` listens on 127.0.0.1 unless told otherwise."""
        args = build_parser().parse_args(["serve"])
        assert args.host == "127.0.0.1" and args.port == 8765

    def test_serve_refuses_a_non_loopback_host(self) -> None:
        """Asking `serve` for a public address exits with a one-line error."""
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "serve", "--host", "0.0.0.0",
             "--port", "0"],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 2
        assert "loopback" in proc.stderr
