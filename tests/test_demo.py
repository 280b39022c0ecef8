"""The demo: its dataset, its pieces, and full runs (supervised, resume, Ctrl-C, RL)."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tinkex_actors.demo import data as demo_data
from tinkex_actors.demo.run import (
    EXIT_INTERRUPTED,
    CheckpointLog,
    DemoOptions,
    run_demo,
    run_rl_demo,
)
from tinkex_actors.local import LocalServer, ServerSettings

# The tiny model learns fastest per second; a high rate makes 8 steps visibly useful.
FAST = ["--base-model", "tiny-byte-lm", "--learning-rate", "2e-2"]
NO_SERVICE_ENV = {
    k: v for k, v in os.environ.items() if k not in ("TINKER_API_KEY", "TINKER_BASE_URL")
}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinkex_actors.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=NO_SERVICE_ENV,
    )


def summary_pair(label: str, text: str) -> tuple[float, float]:
    match = re.search(rf"{label}\s+([0-9.]+)%? -> ([0-9.]+)", text)
    assert match, text
    return float(match.group(1)), float(match.group(2))


class TestPigLatin:
    def test_consonant_clusters_move_to_the_end(self) -> None:
        """Leading consonants move behind the word and gain "ay"; "qu" moves as one."""
        assert demo_data.pig_latin("string") == "ingstray"
        assert demo_data.pig_latin("chip") == "ipchay"
        assert demo_data.pig_latin("quiz") == "izquay"

    def test_vowel_words_gain_way(self) -> None:
        """A word that starts with a vowel keeps its letters and gains "way"."""
        assert demo_data.pig_latin("apple") == "appleway"

    def test_a_non_word_is_refused_naming_the_value(self) -> None:
        """Upper case, digits or spaces raise a ValueError that names the word."""
        with pytest.raises(ValueError, match="'Hello'"):
            demo_data.pig_latin("Hello")

    def test_the_dataset_has_a_few_hundred_distinct_pairs(self) -> None:
        """The built-in word list gives a few hundred pairs in a seeded order."""
        pairs = demo_data.example_pairs(seed=3)
        assert len(pairs) == len(set(pairs)) >= 300
        assert pairs == demo_data.example_pairs(seed=3) != demo_data.example_pairs(seed=4)


class TestDatumsAndScores:
    def test_the_loss_is_taken_on_the_completion_only(self) -> None:
        """Weights are 0 over the prompt and 1 over the pig latin and its newline."""
        datum = demo_data.supervised_datum("chip", "ipchay")
        weights = datum.loss_fn_inputs["weights"].to_numpy()
        prompt = len(demo_data.prompt_tokens("chip"))
        assert weights[: prompt - 1].sum() == 0
        assert weights.sum() == len("ipchay\n")
        assert datum.model_input.length == prompt + len("ipchay\n") - 1

    def test_char_match_is_one_only_for_the_exact_answer(self) -> None:
        """Position-wise matching; extra or missing characters count against it."""
        assert demo_data.char_match("ipchay", "ipchay") == 1.0
        assert demo_data.char_match("ipchayyy", "ipchay") == 0.75
        assert demo_data.char_match("", "ipchay") == 0.0

    def test_decoding_stops_at_the_first_newline(self) -> None:
        """Sampled bytes decode to the text before the newline; special tokens drop."""
        assert demo_data.decode_completion([*b"ipchay\nmore", 257]) == "ipchay"


class TestCheckpointLog:
    def test_entries_are_appended_and_the_last_one_wins(self, tmp_path: Path) -> None:
        """Each record is one JSON line; `last()` is the newest."""
        log = CheckpointLog(tmp_path / "out")
        assert log.last() is None
        log.record({"path": "tinker://r/weights/a", "step": 4})
        log.record({"path": "tinker://r/weights/b", "step": 8})
        assert [e["step"] for e in log.entries()] == [4, 8]
        assert log.last() == {"path": "tinker://r/weights/b", "step": 8}

    def test_a_torn_last_line_is_skipped(self, tmp_path: Path) -> None:
        """A line cut short by a crash hides neither the entries before nor after it."""
        log = CheckpointLog(tmp_path)
        log.record({"path": "tinker://r/weights/a", "step": 4})
        with log.path.open("a") as f:
            f.write('{"path": "tinker://r/wei')
        assert log.last() == {"path": "tinker://r/weights/a", "step": 4}
        log.record({"path": "tinker://r/weights/c", "step": 12})
        assert [e["step"] for e in log.entries()] == [4, 12]


class TestOptions:
    def test_a_bad_option_names_the_flag_and_the_value(self) -> None:
        """steps=0 is refused with the field, the value and the flag to fix it."""
        with pytest.raises(ValueError, match=r"steps=0 .*--steps"):
            DemoOptions(steps=0)
        with pytest.raises(ValueError, match=r"learning_rate=-1"):
            DemoOptions(learning_rate=-1.0)

    def test_defaults_depend_on_the_mode_and_the_service(self) -> None:
        """Embedded: small-byte-lm (RL: tiny-byte-lm); on a service: None (asked of the server)."""
        assert DemoOptions().resolved({}).base_model == "small-byte-lm"
        assert DemoOptions(rl=True).resolved({}).base_model == "tiny-byte-lm"
        assert DemoOptions().resolved({"TINKER_API_KEY": "tml-abc"}).base_model is None
        assert DemoOptions(steps=7).resolved({}).steps == 7


class TestSupervisedRun:
    def test_training_lowers_the_loss_improves_completions_and_resumes(
        self, tmp_path: Path
    ) -> None:
        """8 steps: exit 0, loss and match improve, checkpoints recorded; --resume continues."""
        out = str(tmp_path / "demo")
        first = run_cli("demo", "--steps", "8", "--checkpoint-every", "4", "--output-dir", out,
                        *FAST)
        assert first.returncode == 0, first.stdout + first.stderr
        loss_before, loss_after = summary_pair("loss/token", first.stdout)
        match_before, match_after = summary_pair("match", first.stdout)
        assert loss_after < loss_before / 2
        assert match_after > match_before
        assert first.stdout.count("before training:") == first.stdout.count("after training:") == 1
        entries = CheckpointLog(Path(out)).entries()
        assert [e["step"] for e in entries] == [4, 8]
        assert all(e["path"].startswith("tinker://") for e in entries)

        second = run_cli("demo", "--steps", "12", "--checkpoint-every", "4", "--output-dir",
                         out, "--resume", *FAST)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"resumed {entries[-1]['path']} at step 8" in second.stdout
        assert re.search(r"steps\s+8 -> 12", second.stdout), second.stdout
        assert [e["step"] for e in CheckpointLog(Path(out)).entries()] == [4, 8, 12]

        done = run_demo(DemoOptions(steps=12, output_dir=Path(out), resume=True), io.StringIO())
        assert done == 0

    def test_ctrl_c_saves_a_checkpoint_and_exits_130(self, tmp_path: Path) -> None:
        """SIGINT mid-training: submitting stops, a checkpoint is saved and recorded."""
        out = tmp_path / "demo"
        proc = subprocess.Popen(
            [sys.executable, "-m", "tinkex_actors.cli", "demo", "--steps", "100000",
             "--checkpoint-every", "100000", "--output-dir", str(out), *FAST],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=NO_SERVICE_ENV,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        seen: list[str] = []
        try:
            while True:
                line = lines.get(timeout=60)
                assert line is not None, "".join(seen)
                seen.append(line)
                if re.match(r"training +\d+/100000", line):
                    break
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        reader.join(10)
        while (line := lines.get_nowait() if not lines.empty() else None) is not None:
            seen.append(line)
        text = "".join(seen)
        assert proc.returncode == EXIT_INTERRUPTED, text
        match = re.search(r"interrupted at step (\d+): saved (tinker://\S+)", text)
        assert match, text
        last = CheckpointLog(out).last()
        assert last is not None
        assert last["path"] == match.group(2) and last["step"] == int(match.group(1)) >= 1


class _Watcher(io.StringIO):
    """A stdout that calls `on_text(text_so_far)` after every write."""

    def __init__(self, on_text: Callable[[str], None]) -> None:
        super().__init__()
        self.on_text = on_text

    def write(self, text: str) -> int:
        written = super().write(text)
        self.on_text(self.getvalue())
        return written


class TestJsonReport:
    def test_json_puts_one_document_on_stdout_and_the_commentary_on_stderr(
        self, tmp_path: Path
    ) -> None:
        """`demo --json`: stdout parses as the run's figures; the progress goes to stderr."""
        proc = run_cli("--json", "demo", "--steps", "3", "--output-dir", str(tmp_path), *FAST)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["mode"] == "supervised" and report["exit_code"] == 0
        assert (report["first_step"], report["last_step"]) == (0, 3)
        assert report["final_loss"] < report["first_loss"]
        assert report["checkpoints"] == [CheckpointLog(tmp_path).entries()[-1]["path"]]
        assert report["model_id"] in report["checkpoints"][0]
        assert len(report["losses"]) == 3 and report["losses"][-1] == report["final_loss"]
        assert "training 3/3" in proc.stderr


class TestResumeEdges:
    def test_resuming_a_finished_run_says_how_to_go_further(self, tmp_path: Path) -> None:
        """When the last checkpoint already reached --steps, nothing trains and the code is 0."""
        CheckpointLog(tmp_path).record(
            {"path": "tinker://r/weights/demo-step-00012", "step": 12, "base_model": "m", "rank": 4}
        )
        stream = io.StringIO()
        assert run_demo(DemoOptions(steps=12, output_dir=tmp_path, resume=True), stream) == 0
        assert "already at step 12 of 12" in stream.getvalue()
        assert "--steps N with N > 12" in stream.getvalue()


class TestQueueState:
    def test_a_paused_queue_shows_on_the_progress_line(self, tmp_path: Path) -> None:
        """While the server pauses training, the line says so; training then finishes."""
        paused = threading.Event()
        shown = threading.Event()
        codes: list[int] = []
        # A short long-poll hold, so that the pause is reported within a second.
        with LocalServer(settings=ServerSettings(long_poll_timeout_s=0.5),
                         api_key="tml-demo-tests-0000") as server:

            def on_text(text: str) -> None:
                if "training 1/5" in text and not paused.is_set():
                    paused.set()
                    server.faults.pause("training", "paused_capacity", "maintenance")
                if "queue paused_capacity (maintenance)" in text:
                    shown.set()

            stream = _Watcher(on_text)
            options = DemoOptions(
                steps=5, base_model="tiny-byte-lm", output_dir=tmp_path,
                base_url=server.url, api_key="tml-demo-tests-0000",
            )
            worker = threading.Thread(target=lambda: codes.append(run_demo(options, stream)))
            worker.start()
            try:
                assert shown.wait(60), stream.getvalue()
            finally:
                server.faults.resume("training")
                worker.join(60)
        assert not worker.is_alive()
        assert codes == [0], stream.getvalue()
        assert "training 5/5" in stream.getvalue()


class TestRlRun:
    def test_the_mean_reward_rises_with_importance_sampling(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After the warm-up, 8 RL steps of 32 prompts x 8 samples: the reward rises."""
        monkeypatch.delenv("TINKER_API_KEY", raising=False)
        monkeypatch.delenv("TINKER_BASE_URL", raising=False)
        stream = io.StringIO()
        options = DemoOptions(rl=True, steps=8, output_dir=tmp_path)
        report: dict[str, object] = {}
        code = run_rl_demo(options, stdout=stream, report=report)
        text = stream.getvalue()
        rewards = [float(r) for r in re.findall(r"mean reward ([0-9.]+)", text)]
        assert len(rewards) == 8, text
        assert "32 prompts x 8 samples" in text and "warm-up: 10 supervised steps" in text
        assert code == 0, text
        assert max(rewards[4:]) > rewards[0]
        assert report["mode"] == "rl"
        assert [round(r, 3) for r in report["mean_rewards"]] == rewards  # type: ignore[attr-defined]

