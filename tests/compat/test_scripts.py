"""Programs written for the official SDK, run unchanged on it and on ours through the switch.

Each script in `scripts/` imports `tinker` and nothing of ours. It runs once with the
official SDK and once under `tinkex-actors exec`, against one embedded server, with the
tokenizers registered offline; both runs must print the same figures (same seeds, same
server: the same losses to the last digit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("tinker")
pytest.importorskip("transformers")

from tests.compat.runner import Run, run_script
from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.tokenizer import register_tokenizers

SCRIPTS = Path(__file__).with_name("scripts")
API_KEY = "tml-" + "0" * 40
SIDES = ("official", "ours")
Key = tuple[str, str]



@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=API_KEY, settings=ServerSettings(long_poll_timeout_s=1.0)) as srv:
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

    def test_ours_through_the_switch_prints_the_official_figures(self, runs):
        """Same rewards and losses as the official run."""
        _same_figures(runs["rl_loop.py", "official"], runs["rl_loop.py", "ours"])

    def test_ours_through_the_switch_exits_after_the_last_step(self, runs):
        """The program ends by itself, as with the official SDK."""
        assert runs["rl_loop.py", "ours"].exited
