"""What a demo user sees: the progress bar (terminal) or plain lines (pipe), metrics.jsonl,
the loss picture and curve, and the edges (--steps 1, --rl --resume, LANG=C, | head, a
service without --base-model)."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import tinkex_actors
from tinkex_actors.demo.run import CheckpointLog, DemoOptions, run_demo
from tinkex_actors.local import LocalServer
from tinkex_actors.reporting.metrics import LOSS, REWARD

FAST = ["--base-model", "tiny-byte-lm", "--lr", "2e-2"]
NO_SERVICE_ENV = {
    k: v for k, v in os.environ.items() if k not in ("TINKER_API_KEY", "TINKER_BASE_URL")
}
DEMO = [sys.executable, "-m", "tinkex_actors.cli", "demo"]


def run_piped(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEMO, *args], capture_output=True, text=True, timeout=180,
        env=env or NO_SERVICE_ENV,
    )


def run_in_terminal(
    *args: str, command: list[str] = DEMO, env: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Run a command (the demo) with a pseudo-terminal as stdin, stdout and stderr."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*command, *args], stdin=terminal, stdout=terminal, stderr=terminal,
        env={**NO_SERVICE_ENV, "COLUMNS": "120", "TERM": "xterm-256color", **(env or {})},
        close_fds=True,
    )
    os.close(terminal)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 120)
            assert ready, output.decode(errors="replace")
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process has exited
                break
            if not chunk:
                break
            output += chunk
        return proc.wait(timeout=60), output
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class TestTerminalProgress:
    def test_the_bar_renders_updates_and_ends_cleanly_in_a_terminal(self, tmp_path: Path) -> None:
        """In a pty: a rich bar with step/total, ETA and loss, redrawn in place, then the
        cursor is restored and the summary follows on fresh lines."""
        code, raw = run_in_terminal("--steps", "12", "--output-dir", str(tmp_path), *FAST)
        text = raw.decode("utf-8", errors="replace")
        assert code == 0, text
        assert "\u2501" in text  # the bar's line segments
        assert "12/12" in text and "eta" in text and "tok/s" in text and "loss " in text
        assert text.count("\r\x1b[2K") >= 2  # redrawn in place, not appended
        assert "\x1b[?25l" in text and "\x1b[?25h" in text  # cursor hidden, then restored
        after_bar = text[text.rindex("\x1b[?25h"):]
        assert "summary" in after_bar and "\x1b[2K" not in after_bar


    def test_a_table_command_in_a_terminal_gets_a_coloured_rich_table(self) -> None:
        """`model list` in a pty: the official layout, its first column coloured."""
        with LocalServer() as server:
            code, raw = run_in_terminal(
                "--base-url", server.url, "model", "list",
                command=[sys.executable, "-m", "tinkex_actors.cli"],
                env={"TINKER_API_KEY": server.api_key},
            )
        text = raw.decode("utf-8", errors="replace")
        assert code == 0, text
        assert "\u250f" in text and "Max Context" in text and "tiny-byte-lm" in text
        assert "\x1b[96m" in text  # bright cyan, as the official CLI styles the first column


class TestPipedProgress:
    def test_a_pipe_gets_a_bounded_number_of_plain_lines(self, tmp_path: Path) -> None:
        """Piped, 20 steps give about ten plain progress lines, no control characters."""
        proc = run_piped("--steps", "20", "--output-dir", str(tmp_path), *FAST)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("training ")]
        assert 3 <= len(lines) <= 14, proc.stdout
        assert lines[0].startswith("training  1/20") and lines[-1].startswith("training 20/20")
        assert all("elapsed" in ln and "eta" in ln and "tok/s" in ln for ln in lines)
        assert "\x1b" not in proc.stdout and "\r" not in proc.stdout

    def test_a_closed_pipe_ends_the_demo_quietly(self, tmp_path: Path) -> None:
        """`demo | head -n 1`: exit 0 and no 'Broken pipe' on stderr."""
        command = " ".join([*DEMO, "--steps", "30", "--output-dir", str(tmp_path), *FAST])
        proc = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {command} | head -n 1"],
            capture_output=True, text=True, timeout=180, env=NO_SERVICE_ENV,
        )
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.splitlines()) == 1
        assert "Broken pipe" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


class TestRecords:
    def test_metrics_checkpoints_and_picture_after_a_run(self, tmp_path: Path) -> None:
        """One metrics object per step (cookbook names), the checkpoints recorded, a loss.png
        that decodes as an 800x450 image, and the curve and serve command in the summary."""
        proc = run_piped("--steps", "6", "--checkpoint-every", "3", "--output-dir",
                         str(tmp_path), *FAST)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["step"] for r in records] == list(range(6))
        assert all(r[LOSS] > 0 and r["num_sequences"] == 32 and r["learning_rate"] == 2e-2
                   for r in records)
        assert records[-1]["progress"] == 1.0
        assert [e["step"] for e in CheckpointLog(tmp_path).entries()] == [3, 6]
        with Image.open(tmp_path / "loss.png") as picture:
            picture.load()  # decodes every row (zlib stream and CRCs)
            assert picture.size == (800, 450) and picture.mode == "RGB"
            assert len(picture.getcolors(maxcolors=1 << 16) or []) > 3  # not a blank canvas
        assert "loss/token curve (6 steps)" in proc.stdout
        assert "\u2588" in proc.stdout  # the block-character curve
        assert f"serve --data-dir {tmp_path / 'server'}" in proc.stdout
        assert f"plot {tmp_path}" in proc.stdout

    def test_plot_redraws_any_metrics_file(self, tmp_path: Path) -> None:
        """`tinkex-actors plot DIR` draws a cookbook-style metrics.jsonl at the asked size."""
        with (tmp_path / "metrics.jsonl").open("w") as f:
            for step in range(50):
                f.write(json.dumps({"step": step, LOSS: 3.0 / (1 + step), "learning_rate": 1e-4})
                        + "\n")
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "-f", "json", "plot", str(tmp_path),
             "--width", "400", "--height", "300"],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["metric"] == LOSS and doc["count"] == 50 and doc["first"] == 3.0
        with Image.open(doc["picture"]) as picture:
            picture.load()
            assert picture.size == (400, 300)

    def test_plot_names_the_missing_file(self, tmp_path: Path) -> None:
        """No metrics.jsonl: exit 2 with one line naming the path."""
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "plot", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: no metrics.jsonl") and str(tmp_path) in proc.stderr


class TestEdges:
    def test_one_step_is_not_a_failure(self, tmp_path: Path) -> None:
        """--steps 1: exit 0, no FAILED, a note that one step cannot show a trend."""
        proc = run_piped("--steps", "1", "--output-dir", str(tmp_path), *FAST)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "FAILED" not in proc.stdout and "one step is too few" in proc.stdout

    def test_an_ascii_locale_runs_and_prints_only_ascii(self, tmp_path: Path) -> None:
        """LANG=C and PYTHONIOENCODING=ascii: exit 0, every byte ASCII, the curve in '*'."""
        env = {**NO_SERVICE_ENV, "LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii"}
        proc = subprocess.run(
            [*DEMO, "--steps", "4", "--output-dir", str(tmp_path), *FAST],
            capture_output=True, timeout=180, env=env,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        proc.stdout.decode("ascii")
        assert b"summary" in proc.stdout and b"|*" in proc.stdout

    def test_json_has_per_step_losses_and_the_model_id(self, tmp_path: Path) -> None:
        """`--json demo`: losses (one per step), model_id, metrics and curve paths."""
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "--json", "demo", "--steps", "3",
             "--output-dir", str(tmp_path), *FAST],
            capture_output=True, text=True, timeout=180, env=NO_SERVICE_ENV,
        )
        report = json.loads(proc.stdout)
        assert report["exit_code"] == 0 and len(report["losses"]) == 3
        assert report["model_id"] and report["curve_path"] == str(tmp_path / "loss.png")
        assert report["metrics_path"] == str(tmp_path / "metrics.jsonl")

    def test_a_service_without_base_model_is_asked_what_it_serves(self, tmp_path: Path) -> None:
        """A base URL and no --base-model: the demo picks a model the server lists."""
        stream = io.StringIO()
        report: dict[str, object] = {}
        with LocalServer() as server:
            options = DemoOptions(steps=3, output_dir=tmp_path, base_url=server.url,
                                  api_key=server.api_key, learning_rate=2e-2)
            code = run_demo(options, stream, report=report)
        assert code == 0, stream.getvalue()
        assert report["base_model"] == "small-byte-lm"
        assert "base model small-byte-lm (the server serves" in stream.getvalue()
        assert "browse them: tinkex-actors checkpoint list --run-id" in stream.getvalue()

    def test_rl_records_checkpoints_and_resumes_from_them(self, tmp_path: Path) -> None:
        """--rl saves and records checkpoints; --rl --resume continues from the last one
        (no warm-up again), appending to metrics.jsonl."""
        small = ["--rl", "--batch-size", "4", "--rl-warmup-steps", "1", "--checkpoint-every",
                 "2", "--output-dir", str(tmp_path)]
        first = run_piped("--steps", "2", *small)
        assert first.returncode in (0, 1), first.stdout + first.stderr
        entries = CheckpointLog(tmp_path).entries()
        assert [(e["step"], e["mode"]) for e in entries] == [(2, "rl")]
        second = run_piped("--steps", "3", "--resume", *small)
        assert second.returncode in (0, 1), second.stdout + second.stderr
        assert f"resumed {entries[0]['path']} at RL step 2" in second.stdout
        assert "warm-up" not in second.stdout
        records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [0, 1, 2] and all(REWARD in r for r in records)
        assert (tmp_path / "reward.png").is_file()
        assert [e["step"] for e in CheckpointLog(tmp_path).entries()] == [2, 3]


class TestQuietLibrary:
    def test_the_package_namespace_has_no_future_import(self) -> None:
        """`dir(tinkex_actors)` shows the API, not `annotations` from __future__."""
        assert "annotations" not in dir(tinkex_actors)
        assert "ServiceClient" in dir(tinkex_actors)


@pytest.fixture(autouse=True)
def _no_service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    monkeypatch.delenv("TINKER_BASE_URL", raising=False)
