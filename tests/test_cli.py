"""The command line against an embedded server the tests start, and the logging setup."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import tinkex_actors as tx
from tinkex_actors import logs
from tinkex_actors.cli import app as cli
from tinkex_actors.cli.app import cli as root_command
from tinkex_actors.cli.app import main
from tinkex_actors.cli.output import relative_time
from tinkex_actors.local import LocalServer
from tinkex_actors.logs import configure_logging

KEY = "tml-cli-tests-0000"


class Served:
    """The server's URL and what the fixture created on it."""

    def __init__(self, url: str, run_id: str, states: list[str], sampler: str) -> None:
        self.url = url
        self.run_id = run_id
        self.states = states
        self.sampler = sampler


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("server")
    with LocalServer(data_dir=data, api_key=KEY) as server:
        with tx.ServiceClient(api_key=KEY, base_url=server.url) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(60)
            states = [trainer.save_state(name).result(60).path for name in ("a", "b", "c", "d")]
            sampler = trainer.save_weights_for_sampler("s").result(60).path
            run_id = trainer.model_id
        yield Served(server.url, run_id, states, sampler)


@pytest.fixture(autouse=True)
def quiet_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # In-process runs must not reconfigure structlog for the rest of the test session, and
    # the library's own events must stay off the captured stdout, as `main` arranges.
    monkeypatch.setattr(logs, "configure_logging", lambda *a, **k: False)
    monkeypatch.setenv("TINKER_API_KEY", KEY)
    monkeypatch.delenv("TINKER_BASE_URL", raising=False)
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**saved)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, "--json", *argv)
    assert code == 0, err
    return json.loads(out)


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


class TestVersion:
    def test_version_prints_the_package_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`version` prints one line; `--json` gives name and version."""
        code, out, _ = run(capsys, "version")
        assert code == 0 and out == f"tinkex-actors {tx.__version__}\n"
        assert run_json(capsys, "version")["version"] == tx.__version__


class TestRuns:
    def test_run_list_shows_the_run_as_a_table_and_as_json(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The table has the run id and its columns; JSON has a `runs` list."""
        code, out, _ = run(capsys, "run", "list", "--base-url", served.url)
        assert code == 0 and served.run_id in out and "Base Model" in out
        runs = run_json(capsys, "run", "list", "--base-url", served.url)["runs"]
        assert served.run_id in [r["training_run_id"] for r in runs]

    def test_run_info_gives_the_run_and_its_last_checkpoint(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`run info` JSON is the training run; flags also work after the subcommand."""
        info = run_json(capsys, "run", "info", served.run_id, "--base-url", served.url)
        assert info["training_run_id"] == served.run_id
        assert info["base_model"] == "tiny-byte-lm" and info["lora_rank"] == 4

    def test_an_unknown_run_exits_3_with_one_line(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A 404 is exit code 3 and a single `error: not found` line, no traceback."""
        code, out, err = run(capsys, "--base-url", served.url, "run", "info", "nope")
        assert code == cli.EXIT_NOT_FOUND and out == ""
        assert_one_error_line(err, "not found", "nope")


class TestCheckpointReads:
    def test_list_by_run_gives_every_checkpoint(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`checkpoint list --run-id` lists training and sampler checkpoints."""
        doc = run_json(capsys, "--base-url", served.url, "checkpoint", "list", "--run-id",
                       served.run_id)
        assert doc["run_id"] == served.run_id
        paths = {c["tinker_path"] for c in doc["checkpoints"]}
        assert {served.states[0], served.sampler} <= paths
        code, out, _ = run(capsys, "--base-url", served.url, "checkpoint", "list", "--run-id",
                           served.run_id)
        assert code == 0 and f"checkpoints for run {served.run_id}" in out and "Path" in out

    def test_list_across_runs_honours_the_limit(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a run id, at most `--limit` checkpoints are shown."""
        doc = run_json(capsys, "--base-url", served.url, "checkpoint", "list", "--limit", "2")
        assert len(doc["checkpoints"]) == 2

    def test_info_adds_the_run_s_lora_settings(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`checkpoint info` JSON is the checkpoint plus base model and LoRA rank."""
        info = run_json(capsys, "--base-url", served.url, "checkpoint", "info", served.states[0])
        assert info["tinker_path"] == served.states[0]
        assert info["checkpoint_type"] == "training"
        assert info["base_model"] == "tiny-byte-lm" and info["lora_rank"] == 4

    def test_a_malformed_path_is_bad_usage(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A path that is not tinker://... exits 2 before any request, naming the path."""
        code, _, err = run(capsys, "--base-url", served.url, "checkpoint", "info", "weights/a")
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "'weights/a'", "tinker://")


class TestCheckpointChanges:
    def test_publish_and_unpublish_flip_public(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """publish makes the checkpoint public, unpublish private again."""
        path = served.states[1]
        assert run_json(capsys, "--base-url", served.url, "checkpoint", "publish", path) == {
            "tinker_path": path, "public": True,
        }
        info = run_json(capsys, "--base-url", served.url, "checkpoint", "info", path)
        assert info["public"] is True
        code, out, _ = run(capsys, "--base-url", served.url, "checkpoint", "unpublish", path)
        assert code == 0 and out == f"Unpublished {path}\n"
        info = run_json(capsys, "--base-url", served.url, "checkpoint", "info", path)
        assert info["public"] is False

    def test_set_ttl_sets_and_removes_the_expiry(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--ttl gives an expiry, --remove clears it; neither or both is bad usage."""
        path = served.states[1]
        run_json(capsys, "--base-url", served.url, "checkpoint", "set-ttl", path, "--ttl", "3600")
        info = run_json(capsys, "--base-url", served.url, "checkpoint", "info", path)
        assert info["expires_at"] is not None
        run_json(capsys, "--base-url", served.url, "checkpoint", "set-ttl", path, "--remove")
        info = run_json(capsys, "--base-url", served.url, "checkpoint", "info", path)
        assert info.get("expires_at") is None
        code, _, err = run(capsys, "--base-url", served.url, "checkpoint", "set-ttl", path)
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "--ttl", "--remove")

    def test_download_extracts_into_a_new_directory(
        self, served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """The archive lands in <output>/<run>_<type>_<name>; again needs --force."""
        path = served.states[2]
        args = ("--base-url", served.url, "checkpoint", "download", path, "-o", str(tmp_path))
        doc = run_json(capsys, *args)
        target = Path(doc["destination"])
        assert target.parent == tmp_path and any(target.iterdir())
        assert doc["file_size_bytes"] > 0
        code, _, err = run(capsys, *args)
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "--force")
        assert run_json(capsys, *args, "--force")["destination"] == str(target)

    def test_delete_needs_confirmation_then_removes(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a terminal, delete refuses unless --yes; after it the checkpoint is gone."""
        path = served.states[3]
        code, _, err = run(capsys, "--base-url", served.url, "checkpoint", "delete", path)
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "--yes")
        doc = run_json(capsys, "--base-url", served.url, "checkpoint", "delete", path, "--yes")
        assert doc == {"deleted_count": 1, "deleted": [path], "failed": []}
        code, _, err = run(capsys, "--base-url", served.url, "checkpoint", "info", path)
        assert code == cli.EXIT_NOT_FOUND
        assert_one_error_line(err, "not found")


class TestSample:
    def test_sampling_a_base_model_returns_the_asked_number_of_samples(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`sample --base-model` JSON has one entry per sample with text and tokens."""
        doc = run_json(capsys, "--base-url", served.url, "sample", "--base-model",
                       "tiny-byte-lm", "--prompt", "chip -> ", "--max-tokens", "5",
                       "--num-samples", "2", "--temperature", "1.0", "--seed", "1")
        assert doc["prompt"] == "chip -> " and len(doc["samples"]) == 2
        assert all(len(s["tokens"]) <= 5 for s in doc["samples"])

    def test_sampling_saved_weights_reads_the_prompt_file(
        self, served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """`--model-path` finds the base model itself; `--prompt-file` supplies the prompt."""
        prompt = tmp_path / "prompt.txt"
        prompt.write_text("hello")
        code, out, err = run(capsys, "--base-url", served.url, "sample", "--model-path",
                             served.sampler, "--prompt-file", str(prompt), "--max-tokens", "3")
        assert code == 0, err
        assert out.startswith("--- sample 0 (") and "hello" in out

    def test_prompt_and_model_choices_are_checked_first(
        self, served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """No prompt, or both model flags, or a missing file: exit 2 with one line."""
        code, _, err = run(capsys, "--base-url", served.url, "sample", "--base-model", "m")
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "--prompt")
        code, _, err = run(capsys, "--base-url", served.url, "sample", "--prompt", "x",
                           "--base-model", "m", "--model-path", served.sampler)
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "--model-path", "--base-model")
        missing = str(tmp_path / "missing.txt")
        code, _, err = run(capsys, "--base-url", served.url, "sample", "--prompt-file", missing,
                           "--base-model", "tiny-byte-lm")
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "missing.txt")


class TestErrors:
    def test_no_service_named_is_bad_usage(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With no URL and no key anywhere, a service command says how to name one."""
        monkeypatch.delenv("TINKER_API_KEY")
        code, _, err = run(capsys, "run", "list")
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "--base-url", "TINKER_BASE_URL")

    def test_an_unreachable_service_exits_5_within_seconds(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A refused connection: a few retries, then exit 5 with a line naming --base-url."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, never listening
            code, _, err = run(capsys, "--base-url", url, "run", "list")
        assert code == cli.EXIT_UNREACHABLE
        assert_one_error_line(err, "cannot reach the service", "--base-url")

    def test_debug_adds_the_traceback(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With --debug the error line follows a traceback."""
        code, _, err = run(capsys, "--debug", "--base-url", served.url, "run", "info", "nope")
        assert code == cli.EXIT_NOT_FOUND
        assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: not found")

    def test_a_real_process_prints_one_line_and_no_traceback(self) -> None:
        """A bad TINKER_LOG in a real process: exit 2, one line naming the variable."""
        env = {**os.environ, "TINKER_LOG": "loud"}
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "version"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert proc.returncode == cli.EXIT_USAGE
        assert_one_error_line(proc.stderr, "TINKER_LOG", "'loud'")


class TestCliLogging:
    def test_a_piped_cli_logs_json_lines_without_the_key(self, served: Served) -> None:
        """TINKER_LOG=info with stderr not a TTY: every log line is JSON; the key never shows."""
        env = {**os.environ, "TINKER_LOG": "info", "TINKER_API_KEY": KEY}
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "--json", "sample", "--base-model",
             "tiny-byte-lm", "--prompt", "hi", "--max-tokens", "1", "--base-url", served.url],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)["samples"]) == 1
        events = [json.loads(line) for line in proc.stderr.splitlines()]
        assert events and all({"event", "level", "timestamp"} <= set(e) for e in events)
        assert KEY[4:] not in proc.stderr


class TestServeArguments:
    def test_serve_defaults_to_loopback(self) -> None:
        """`serve` listens on 127.0.0.1 unless told otherwise."""
        defaults = {p.name: p.default for p in root_command.commands["serve"].params}
        assert defaults["host"] == "127.0.0.1" and defaults["port"] == 8765

    def test_serve_refuses_a_non_loopback_host(self) -> None:
        """Asking `serve` for a public address exits with a one-line error."""
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "serve", "--host", "0.0.0.0",
             "--port", "0"],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 2
        assert "loopback" in proc.stderr


class TestServe:
    def test_serve_answers_the_cli_and_stops_on_ctrl_c(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`serve` in a real process: the CLI can list its runs; SIGINT stops it cleanly."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tinkex_actors.cli", "serve", "--port", str(port),
             "--data-dir", str(tmp_path), "--log-level", "info"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            seen = []
            while not any("startup complete" in line for line in seen):
                line = lines.get(timeout=30)
                assert line is not None, "".join(seen)
                seen.append(line)
            assert f"http://127.0.0.1:{port}" in seen[0]
            doc = run_json(capsys, "--base-url", f"http://127.0.0.1:{port}", "run", "list")
            assert doc == {"runs": []}
            proc.send_signal(signal.SIGINT)
            # uvicorn shuts down, then re-raises the signal: the Unix code for Ctrl-C.
            assert proc.wait(timeout=30) == cli.EXIT_INTERRUPTED
            reader.join(10)
            rest = []
            while (line := lines.get(timeout=10)) is not None:
                rest.append(line)
            assert any("shutdown complete" in line for line in rest), "".join(rest)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            reader.join(10)


@pytest.fixture
def fresh_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    saved_state = logs._configured
    logs._configured = None
    try:
        yield
    finally:
        structlog.configure(**saved)
        logs._configured = saved_state


@pytest.mark.usefixtures("fresh_structlog")
class TestLogging:
    def test_json_lines_have_stable_keys_and_no_secrets(self) -> None:
        """JSON output: event, level, timestamp and fields; API keys are masked."""
        stream = io.StringIO()
        assert configure_logging("info", json=True, stream=stream, environ={})
        structlog.get_logger("t").info(
            "session_created", api_key="tml-abcdefghijklmnop", note="key tml-abcdefghijklmnop",
            tokens_per_s=5,
        )
        line = json.loads(stream.getvalue())
        assert line["event"] == "session_created" and line["level"] == "info"
        assert "timestamp" in line and line["tokens_per_s"] == 5
        assert "abcdefghijkl" not in stream.getvalue()

    def test_the_level_comes_from_tinker_log_and_defaults_to_warning(self) -> None:
        """TINKER_LOG=error hides warnings; with no setting, info is hidden."""
        stream = io.StringIO()
        configure_logging(json=True, stream=stream, environ={"TINKER_LOG": "error"})
        structlog.get_logger("t").warning("hidden")
        assert stream.getvalue() == ""
        assert logs.resolve_level(None, {}) == logs.LEVELS["warning"]

    def test_a_terminal_gets_the_console_renderer_unless_json_is_asked(self) -> None:
        """A TTY stream renders for people; TINKER_LOG_FORMAT=json forces JSON lines."""

        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        tty = Tty()
        configure_logging("info", stream=tty, environ={})
        structlog.get_logger("t").info("hello", n=1)
        assert "hello" in tty.getvalue() and not tty.getvalue().startswith("{")
        forced = Tty()
        configure_logging(
            "info", stream=forced, environ={"TINKER_LOG_FORMAT": "json"}, force=True
        )
        structlog.get_logger("t").info("hello")
        assert json.loads(forced.getvalue())["event"] == "hello"

    def test_it_configures_once(self) -> None:
        """A second call is a no-op unless forced."""
        assert configure_logging("info", json=True, stream=io.StringIO(), environ={})
        assert not configure_logging("debug", json=True, stream=io.StringIO(), environ={})


class TestOfficialConventions:
    def test_format_json_before_or_after_the_command_and_the_json_alias(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`-f json CMD`, `CMD -f json` and `--json CMD` print the same document."""
        docs = []
        for argv in (("-f", "json", "run", "list"), ("run", "list", "--format", "json"),
                     ("--json", "run", "list")):
            code, out, err = run(capsys, "--base-url", served.url, *argv)
            assert code == 0, err
            docs.append(json.loads(out))
        assert docs[0] == docs[1] == docs[2] and docs[0]["runs"]

    def test_tables_have_a_title_box_drawing_and_relative_times(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`run list` as a table: the count as title, rich box lines, 'just now'-style times."""
        code, out, _ = run(capsys, "--base-url", served.url, "run", "list")
        assert code == 0 and "training run" in out.splitlines()[0]
        assert "\u250f" in out and "Last Update" in out
        assert "just now" in out or " ago" in out

    def test_a_cut_list_says_how_many_more_exist(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`checkpoint list --limit 2` with more checkpoints: 'N more not shown'."""
        code, out, _ = run(capsys, "--base-url", served.url, "checkpoint", "list", "--limit", "2")
        assert code == 0
        assert re.search(r"2 checkpoints \(\d+ more not shown, use --limit to see more\)", out)

    def test_model_list_shows_and_filters_what_the_server_serves(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`model list` lists the server's models; a substring filters; no match exits 3."""
        names = [m["model_name"] for m in
                 run_json(capsys, "--base-url", served.url, "model", "list")["models"]]
        assert "tiny-byte-lm" in names
        code, out, _ = run(capsys, "--base-url", served.url, "model", "list", "SMALL")
        assert code == 0 and "small-byte-lm" in out and "tiny-byte-lm" not in out
        code, _, err = run(capsys, "--base-url", served.url, "model", "list", "nosuch")
        assert code == cli.EXIT_NOT_FOUND
        assert_one_error_line(err, "'nosuch'")

    def test_auth_status_and_whoami(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`auth status` checks the key and access; `auth whoami` names user and org."""
        code, out, _ = run(capsys, "--base-url", served.url, "auth", "status")
        assert code == 0
        assert out == "Credentials available: yes\nTinker accessible: yes\n"
        identity = run_json(capsys, "--base-url", served.url, "auth", "whoami")
        assert identity["user_urn"] and identity["org_urn"]

    def test_version_flag_bare_group_help_and_examples(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--version prints the version; a bare group prints its help; --help has examples."""
        code, out, _ = run(capsys, "--version")
        assert code == 0 and out == f"tinkex-actors {tx.__version__}\n"
        code, out, err = run(capsys, "checkpoint")
        assert code == cli.EXIT_USAGE and "Commands:" in out + err and "set-ttl" in out + err
        code, out, _ = run(capsys, "demo", "--help")
        assert code == 0 and "Examples:" in out and "--lr" in out

    def test_relative_times_read_as_the_official_cli_s(self) -> None:
        """Seconds are 'just now', then minutes, hours, days, weeks; a month on is a date."""
        now = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
        cases = {
            dt.timedelta(seconds=-30): "just now",
            dt.timedelta(minutes=-5): "5 minutes ago",
            dt.timedelta(hours=-2, minutes=-1): "2 hours ago",
            dt.timedelta(days=-1, hours=-1): "1 day ago",
            dt.timedelta(days=-15): "2 weeks ago",
            dt.timedelta(days=3, hours=1): "in 3 days",
            dt.timedelta(days=-45): "2025-12-17",
        }
        for offset, expected in cases.items():
            assert relative_time(now + offset, now) == expected
        assert relative_time(None) == "N/A"


class TestReadableOutput:
    def test_a_400_is_one_readable_line_without_dict_or_port(
        self, served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A refused request: one line with the server's detail, no raw dict, no URL."""
        code, _, err = run(capsys, "--base-url", served.url, "demo", "--base-model",
                           "Qwen/Qwen3-8B", "--steps", "2", "--output-dir", str(tmp_path))
        assert code == cli.EXIT_USAGE
        assert_one_error_line(err, "invalid request (400)", "'Qwen/Qwen3-8B'", "tiny-byte-lm")
        assert "{" not in err and "127.0.0.1" not in err

    def test_sample_never_prints_raw_control_bytes(
        self, served: Served, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Escape sequences in the prompt or the output are shown escaped, not sent."""
        code, out, err = run(capsys, "--base-url", served.url, "sample", "--base-model",
                             "tiny-byte-lm", "--prompt", "\x1b[31mred\x07", "--max-tokens", "8",
                             "--temperature", "1.0", "--seed", "3")
        assert code == 0, err
        assert "\\x1b[31mred\\x07" in out
        assert not any(ord(c) < 32 and c not in "\n\t" for c in out)

    def test_a_closed_pipe_exits_0_without_a_message(self, served: Served) -> None:
        """`tinkex-actors run list | true`: exit 0 and nothing on stderr."""
        command = f"{sys.executable} -m tinkex_actors.cli --base-url {served.url} run list"
        proc = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {command} | true"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "TINKER_API_KEY": KEY},
        )
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
