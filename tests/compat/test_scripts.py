"""Programs written for the official SDK, run unchanged on it and on ours through the switch.

Each script in `scripts/` imports `tinker` and nothing of ours. It runs once with the
official SDK and once under `tinkex-actors exec`, against one embedded server, with the
tokenizers registered offline; both runs must print the same figures (same seeds, same
server: the same losses to the last digit).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("tinker")
pytest.importorskip("transformers")

from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.tokenizer import register_tokenizers

SCRIPTS = Path(__file__).with_name("scripts")
RESULT_DEADLINE_S = 120.0  # the program's last line (or its traceback) comes by then
EXIT_GRACE_S = 5.0  # then it must have exited
API_KEY = "tml-" + "0" * 40
SIDES = ("official", "ours")
Key = tuple[str, str]
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")

NOT_EXITING = (
    "our client keeps the process alive after the program's last line when nothing closes "
    "the ServiceClient (issue 15's 'process never exiting'; client lifecycle, not this branch)"
)
SAMPLER_FUTURE = (
    "save_weights_and_get_sampling_client() returns a plain Future, not a future usable as "
    "the sampler, and awaited sample_async gives a Future (issue 15 methods work)"
)


@dataclass
class Run:
    """What one run of a script printed, and whether it ended by itself."""

    result: dict[str, object] | None
    exited: bool
    stderr: str
    lines: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(settings=ServerSettings(long_poll_timeout_s=1.0)) as srv:
        yield srv


@pytest.fixture(scope="module")
def runs(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> dict[Key, Run]:
    """Every (script, side) run once, all four at the same time (they share one server)."""
    cache = tmp_path_factory.mktemp("hf-hub")
    register_tokenizers(cache)
    env = {
        **os.environ,
        "TINKER_BASE_URL": server.url,
        "TINKER_API_KEY": API_KEY,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
    }
    keys = [(script, side) for script in ("sl_loop.py", "rl_loop.py") for side in SIDES]
    with ThreadPoolExecutor(len(keys)) as pool:
        futures = {k: pool.submit(run_script, SCRIPTS / k[0], k[1] == "ours", env) for k in keys}
        return {k: f.result() for k, f in futures.items()}


def run_script(script: Path, ours: bool, env: dict[str, str]) -> Run:
    """Run `script`; wait for its JSON line or its traceback, then a short grace to exit."""
    argv = [sys.executable, str(script)]
    if ours:
        argv = [sys.executable, "-m", "tinkex_actors.cli", "exec", "--", *argv]
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
            if line.startswith("{"):
                finished.set()
        finished.set()

    def read_stderr() -> None:
        assert proc.stderr is not None
        in_traceback = False
        for line in proc.stderr:
            err.append(line)
            in_traceback = in_traceback or line.startswith("Traceback (most recent call last)")
            if in_traceback and _ERROR_LINE.match(line):
                finished.set()  # the program's main code died; it may still not exit

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()
    finished.wait(RESULT_DEADLINE_S)
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


def _same_figures(official: Run, ours: Run) -> None:
    assert official.result is not None, official.stderr[-3000:]
    assert ours.result is not None, ours.stderr[-3000:]
    assert official.result.pop("tinker_module") == "tinker"
    assert ours.result.pop("tinker_module") == "tinkex_actors"
    assert ours.result == official.result


class TestSupervisedLoopShape:
    def test_the_official_sdk_runs_it_against_the_embedded_server(self, runs):
        """Pipelined steps lower the loss; resuming with optimizer continues exactly."""
        run = runs["sl_loop.py", "official"]
        assert run.exited and run.result is not None, run.stderr[-3000:]
        losses = run.result["losses"]
        assert losses[-1] < losses[0] / 2
        assert run.result["continued"] == run.result["from_resume"]
        assert run.result["state_kind"] == "weights"

    def test_ours_through_the_switch_prints_the_official_figures(self, runs):
        """Same losses, continuation and resume as the official run, to the last digit."""
        _same_figures(runs["sl_loop.py", "official"], runs["sl_loop.py", "ours"])

    @pytest.mark.xfail(strict=True, reason=NOT_EXITING)
    def test_ours_through_the_switch_exits_after_the_last_step(self, runs):
        """The program ends by itself, as with the official SDK."""
        assert runs["sl_loop.py", "ours"].exited


class TestRLLoopShape:
    def test_the_official_sdk_runs_it_against_the_embedded_server(self, runs):
        """Sampler from save_weights_and_get_sampling_client, sample fan-out, IS step."""
        run = runs["rl_loop.py", "official"]
        assert run.exited and run.result is not None, run.stderr[-3000:]
        stats = run.result["stats"]
        assert len(stats) == 3 and all(s["loss"] == s["loss"] for s in stats)

    @pytest.mark.xfail(strict=True, reason=SAMPLER_FUTURE)
    def test_ours_through_the_switch_prints_the_official_figures(self, runs):
        """Same rewards and losses as the official run."""
        _same_figures(runs["rl_loop.py", "official"], runs["rl_loop.py", "ours"])

    @pytest.mark.xfail(strict=True, reason=NOT_EXITING)
    def test_ours_through_the_switch_exits_after_the_last_step(self, runs):
        """The program ends by itself, as with the official SDK."""
        assert runs["rl_loop.py", "ours"].exited
