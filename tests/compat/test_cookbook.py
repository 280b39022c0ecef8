"""tinker-cookbook 0.5.8's own recipes, unchanged, against the embedded server (`--run-slow`).

The cookbook pulls torch and datasets (GBs), so this profile runs only with `--run-slow` and
an interpreter that has it: this one (`pip install -e '.[cookbook]'`) or the one named by
TINKEX_COOKBOOK_PYTHON (e.g. a venv made with --system-site-packages). Each recipe runs a
few steps with the official SDK and with ours through `tinkex-actors exec`; the tokenizer
comes from `register_tokenizers()` with the hub switched off.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.runner import run_script
from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.tokenizer import register_tokenizers

pytestmark = pytest.mark.slow

DRIVERS = Path(__file__).with_name("cookbook")
MODEL = "tinkex/tiny-byte-lm"
DONE = re.compile(r"Training completed successfully")
STEPS = 3


def _cookbook_python() -> str:
    configured = os.environ.get("TINKEX_COOKBOOK_PYTHON")
    if configured:
        return configured
    if importlib.util.find_spec("tinker_cookbook") is None:
        pytest.skip(
            "tinker-cookbook is not installed: pip install -e '.[cookbook]' (pulls torch), "
            "or set TINKEX_COOKBOOK_PYTHON to an interpreter that has it"
        )
    return sys.executable


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    cache = tmp_path_factory.mktemp("hf-hub")
    register_tokenizers(cache)
    with LocalServer(settings=ServerSettings(long_poll_timeout_s=1.0)) as server:
        yield {
            **os.environ,
            "TINKER_BASE_URL": server.url,
            "TINKER_API_KEY": server.api_key,
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_OFFLINE": "1",
            "WANDB_MODE": "disabled",
        }


def _recipe(name: str, log_path: Path) -> tuple[str, list[str]]:
    if name == "sl":
        return str(DRIVERS / "sl_conversations.py"), [str(log_path), MODEL]
    return "-m tinker_cookbook.recipes.math_rl.train", [
        f"model_name={MODEL}", "renderer_name=role_colon", "groups_per_batch=4",
        "group_size=4", f"max_steps={STEPS}", "eval_every=0", "save_every=2",
        "learning_rate=1e-3", "behavior_if_log_dir_exists=delete", f"log_path={log_path}",
    ]


def _run(name: str, ours: bool, env: dict[str, str], tmp_path: Path) -> list[dict[str, object]]:
    """Run one recipe; return its metrics lines (one per step)."""
    script, args = _recipe(name, tmp_path / "run")
    run = run_script(
        script, ours, env, args, python=_cookbook_python(), done=DONE, deadline_s=600.0
    )
    assert any(DONE.search(line) for line in [*run.lines, *run.stderr.splitlines()]), (
        run.stderr[-4000:]
    )
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in metrics]


class TestCookbookRecipes:
    @pytest.mark.parametrize("recipe", ["sl", "math_rl"])
    def test_the_official_sdk_runs_the_recipe_offline(self, recipe, env, tmp_path):
        """A few steps complete with the official SDK against the embedded server."""
        steps = _run(recipe, False, env, tmp_path)
        assert len(steps) >= STEPS

    @pytest.mark.parametrize("recipe", ["sl", "math_rl"])
    def test_ours_runs_the_recipe_through_the_switch(self, recipe, env, tmp_path):
        """The same steps complete with our client as `tinker`."""
        steps = _run(recipe, True, env, tmp_path)
        assert len(steps) >= STEPS
