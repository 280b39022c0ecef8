"""`tinkex-actors serve` as users start it: a key, control endpoints only on request."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import tinkex_actors as tx
from tinkex_actors.errors import AuthenticationError

tinker = pytest.importorskip("tinker")

KEY = "tml-serve-command-test-key-0001"


@contextmanager
def serving(tmp_path: Path, *args: str, env_key: str | None = None) -> Iterator[tuple[str, str]]:
    """Run `serve` on a free port; yields (url, what it printed); stops it after."""
    env = {k: v for k, v in os.environ.items() if k != "TINKER_API_KEY"}
    if env_key is not None:
        env["TINKER_API_KEY"] = env_key
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinkex_actors.cli", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "data"), "--log-level", "warning", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        printed = ""
        deadline = time.monotonic() + 60
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while "TINKER_API_KEY=" not in printed:
                left = deadline - time.monotonic()
                assert left > 0 and sel.select(left), f"serve printed only {printed!r}"
                chunk = os.read(proc.stdout.fileno(), 4096)  # unbuffered: select stays true
                assert chunk, f"serve exited with {proc.wait(10)} after printing {printed!r}"
                printed += chunk.decode()
        match = re.search(r"TINKER_BASE_URL=(http://\S+)", printed)
        assert match, printed
        yield match.group(1), printed
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


class TestServeCommand:
    def test_a_supplied_key_is_required_and_never_printed(self, tmp_path: Path) -> None:
        """--api-key: the official SDK trains with it, is refused without; stdout omits it."""
        with serving(tmp_path, "--api-key", KEY) as (url, printed):
            assert KEY not in printed and "the key you gave" in printed
            with tinker.ServiceClient(base_url=url, api_key=KEY) as sc:
                tc = sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4).result()
                datum = tinker.types.Datum(
                    model_input=tinker.types.ModelInput.from_ints([1, 2, 3]),
                    loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [1.0] * 3})
                assert tc.forward_backward([datum], "cross_entropy").result().metrics
            with pytest.raises(tinker.AuthenticationError), tinker.ServiceClient(
                base_url=url, api_key="tml-" + "7" * 40
            ) as sc:
                sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4).result()
            assert httpx.get(f"{url}/_control/stats", headers={"X-API-Key": KEY}).status_code \
                == 404

    def test_the_key_comes_from_the_environment_when_not_given(self, tmp_path: Path) -> None:
        """TINKER_API_KEY is the server's key (not echoed); --control serves /_control."""
        with serving(tmp_path, "--control", env_key=KEY) as (url, printed):
            assert KEY not in printed
            assert httpx.get(f"{url}/_control/stats", headers={"X-API-Key": KEY}).status_code \
                == 200
            assert httpx.get(f"{url}/_control/stats").status_code == 401

    def test_without_a_key_a_random_one_is_made_and_printed(self, tmp_path: Path) -> None:
        """No key anywhere: serve prints a fresh tml- key, our client connects with it."""
        with serving(tmp_path) as (url, printed):
            match = re.search(r"TINKER_API_KEY=(tml-\S+)", printed)
            assert match, printed
            with tx.ServiceClient(base_url=url, api_key=match.group(1)) as sc:
                assert sc.session_id
            with pytest.raises(AuthenticationError):
                tx.ServiceClient(base_url=url, api_key=KEY).close()
