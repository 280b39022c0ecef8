"""The embedded models under `org/model` names, and their Hugging Face-format tokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tinkex_actors import types
from tinkex_actors.futures.future import Future
from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.local.specs import base_weights
from tinkex_actors.service.service_client import ServiceClient
from tinkex_actors.tokenizer import get_tokenizer, register_tokenizers
from tinkex_actors.types.base_models import BASE_MODELS, RECOMMENDED_RENDERER
from tinkex_actors.types.byte_tokenizer import HF_TOKENIZER_DIR, ByteTokenizer

WAIT_S = 60.0
ORG_NAMES = [n for n in BASE_MODELS if "/" in n]
TEXTS = ["hello", "héllo → wörld 🙂", "User: hi\n\nAssistant: ok<eos>", "<bos><eos>x<", " a\t\n"]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    settings = ServerSettings(long_poll_timeout_s=1.0)
    with LocalServer(api_key="tml-compat-names", settings=settings) as srv:
        yield srv


def _datum() -> types.Datum:
    tokens = ByteTokenizer().encode("User: 2+2\n\nAssistant: 4")
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": [1.0] * (len(tokens) - 1)},
    )


def _value(value: Any) -> Any:
    """A method's value, whether it returns it (official) or a Future of it (ours today)."""
    return value.result(WAIT_S) if isinstance(value, Future) else value


class TestOrgModelNames:
    def test_every_model_has_an_org_model_twin_with_the_same_weights(self):
        """`tinkex/<model>` exists for each model, same sizes, same frozen weights."""
        assert [f"tinkex/{n}" for n in BASE_MODELS if "/" not in n] == ORG_NAMES
        for name in ORG_NAMES:
            alias, short = BASE_MODELS[name], BASE_MODELS[name.split("/", 1)[1]]
            assert (alias.embed_dim, alias.max_seq_len) == (short.embed_dim, short.max_seq_len)
            assert base_weights(alias, "float32").emb is base_weights(short, "float32").emb
        assert RECOMMENDED_RENDERER == "role_colon"

    def test_the_server_lists_and_trains_the_org_names(self, server: LocalServer):
        """Capabilities list both names; a LoRA on either name gives the same first loss."""
        with ServiceClient(base_url=server.url, api_key="tml-compat-names") as sc:
            caps = _value(sc.get_server_capabilities())
            listed = {m.model_name for m in caps.supported_models}
            assert set(ORG_NAMES) <= listed
            losses = {}
            for name in ("tiny-byte-lm", "tinkex/tiny-byte-lm"):
                trainer = sc.create_lora_training_client(name, rank=4, seed=7)
                fb = trainer.forward_backward([_datum()], "cross_entropy").result(WAIT_S)
                losses[name] = fb.metrics["loss:sum"]
                info = _value(trainer.get_info())
                assert info.model_data.model_name == name
            assert losses["tiny-byte-lm"] == losses["tinkex/tiny-byte-lm"]

    def test_our_clients_tokenizer_for_an_org_name_is_the_byte_tokenizer(self):
        """get_tokenizer needs no download for the org names."""
        assert isinstance(get_tokenizer("tinkex/small-byte-lm"), ByteTokenizer)


class TestHuggingFaceTokenizer:
    def test_the_shipped_file_is_what_the_tokenizers_library_builds(self):
        """tokenizer.json in the package equals a fresh build (regenerate it if this fails)."""
        pytest.importorskip("tokenizers")
        from tinkex_actors.types.byte_tokenizer import build_hf_tokenizer_json

        shipped = (HF_TOKENIZER_DIR / "tokenizer.json").read_text(encoding="utf-8")
        assert json.loads(shipped) == json.loads(build_hf_tokenizer_json())

    def test_it_encodes_and_decodes_as_the_byte_tokenizer(self):
        """Same ids with and without special tokens, `<bos>`/`<eos>` text included; same text."""
        tokenizers = pytest.importorskip("tokenizers")
        hf = tokenizers.Tokenizer.from_file(str(HF_TOKENIZER_DIR / "tokenizer.json"))
        ours = ByteTokenizer()
        for text in TEXTS:
            for special in (True, False):
                ids = hf.encode(text, add_special_tokens=special).ids
                assert ids == ours.encode(text, add_special_tokens=special), (text, special)
            ids = ours.encode(text)
            assert hf.decode(ids, skip_special_tokens=False) == ours.decode(ids)
            assert hf.decode(ids, skip_special_tokens=True) == ours.decode(ids, True)

    def test_auto_tokenizer_finds_each_org_name_offline_after_one_call(self, tmp_path):
        """register_tokenizers(); then AutoTokenizer.from_pretrained(name) with the hub off."""
        pytest.importorskip("transformers")
        first = register_tokenizers(tmp_path)
        assert sorted(first) == sorted(ORG_NAMES)
        stamps = {p: os.stat(p / "tokenizer.json").st_mtime_ns for p in first.values()}
        assert register_tokenizers(tmp_path) == first
        assert stamps == {p: os.stat(p / "tokenizer.json").st_mtime_ns for p in first.values()}
        code = (
            "import json, sys\n"
            "from transformers import AutoTokenizer\n"
            "out = {}\n"
            "for name in sys.argv[1:]:\n"
            "    t = AutoTokenizer.from_pretrained(name)\n"
            "    out[name] = [t.encode('hi'), t.encode('<bos>', add_special_tokens=False),\n"
            "                 t.eos_token_id, t.decode([256, 104, 105, 257]), t.model_max_length]\n"
            "print(json.dumps(out))\n"
        )
        env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", code, *ORG_NAMES],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        for name in ORG_NAMES:
            assert got[name] == [
                [256, 104, 105], [256], 257, "<bos>hi<eos>", BASE_MODELS[name].max_seq_len
            ]

    def test_the_snapshot_holds_the_shipped_tokenizer_and_a_config_per_model(self, tmp_path):
        """Each snapshot carries the shipped tokenizer.json and its model's length limit."""
        for name, directory in register_tokenizers(tmp_path).items():
            assert (directory / "tokenizer.json").read_bytes() == (
                HF_TOKENIZER_DIR / "tokenizer.json"
            ).read_bytes()
            config = json.loads((directory / "tokenizer_config.json").read_text())
            assert (config["bos_token"], config["eos_token"]) == ("<bos>", "<eos>")
            assert config["model_max_length"] == BASE_MODELS[name].max_seq_len
            assert (directory.parent.parent / "refs" / "main").read_text() == directory.name
