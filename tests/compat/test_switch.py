"""The switch: code written for `import tinker` runs on tinkex-actors, only when asked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tinker")

TIMEOUT_S = 60

# Every `tinker` import path and name tinker-cookbook uses (scan of its sources for
# `from tinker... import`, `import tinker...` and `tinker.X.Y` references).
COOKBOOK_IMPORTS = """
import tinker
import tinker.types
from tinker import types, TensorData, ModelInput, AdamParams, SamplingClient
from tinker.types import LossFnType, SamplingParams, ModelInput as TypesModelInput
from tinker.types import AuditLogEntry, AuditLogResponse
from tinker.types.tensor_data import TensorData as PathTensorData
from tinker.types.image_chunk import ImageChunk as PathImageChunk
from tinker.lib.public_interfaces import APIFuture
from tinker.lib.public_interfaces.rest_client import RestClient as PathRestClient
"""
COOKBOOK_NAMES = [
    "ModelInput", "SamplingClient", "Datum", "ServiceClient", "TrainingClient",
    "SamplingParams", "TensorData", "ModelInputChunk", "EncodedTextChunk", "AdamParams",
    "TinkerError", "StopReason", "OptimStepResponse", "ForwardBackwardOutput",
    "BadRequestError", "SampledSequence", "RateLimitError", "AuthenticationError",
    "APITimeoutError", "APIFuture", "APIError", "APIConnectionError",
    "ParsedCheckpointTinkerPath", "RestClient", "SampleResponse",
]
COOKBOOK_TYPES = [
    "EncodedTextChunk", "ImageChunk", "ModelInputChunk", "SamplingParams", "SampledSequence",
    "SampleResponse", "ImageAssetPointerChunk", "DmelChunk", "AdamParams", "Datum",
    "ModelInput", "LossFnType",
]


def _python(code: str, *, launcher: bool, extra: list[str] | None = None):
    """Run `code` in a fresh interpreter, through `tinkex-actors exec` or directly."""
    argv = [sys.executable, "-c", textwrap.dedent(code), *(extra or [])]
    if launcher:
        argv = [sys.executable, "-m", "tinkex_actors.cli", "exec", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


class TestLauncher:
    def test_every_cookbook_import_resolves_to_our_objects(self):
        """Under `exec`, each cookbook import path and name is the tinkex_actors object."""
        code = COOKBOOK_IMPORTS + f"""
import json, tinkex_actors as tx
top = {COOKBOOK_NAMES!r}
typ = {COOKBOOK_TYPES!r}
print(json.dumps({{
    "tinker_is_ours": tinker is tx and types is tx.types,
    "top_missing": [n for n in top if getattr(tinker, n, None) is not getattr(tx, n, 0)],
    "types_missing": [
        n for n in typ if getattr(tinker.types, n, None) is not getattr(tx.types, n, 0)
    ],
    "paths": [PathTensorData is tx.TensorData, PathImageChunk is tx.types.ImageChunk,
              PathRestClient is tx.RestClient, APIFuture is tx.Future],
    "spec": tinker.__spec__.name,
}}))
"""
        got = _json(_python(code, launcher=True))
        assert got == {
            "tinker_is_ours": True,
            "top_missing": [],
            "types_missing": [],
            "paths": [True, True, True, True],
            "spec": "tinkex_actors",
        }

    def test_python_processes_the_command_starts_inherit_the_switch(self):
        """A grandchild Python process also gets our `tinker` (recipes spawn workers)."""
        code = """
        import subprocess, sys
        out = subprocess.run([sys.executable, "-c", "import tinker; print(tinker.__name__)"],
                             capture_output=True, text=True, timeout=30, check=True)
        print('{"grandchild": "%s"}' % out.stdout.strip())
        """
        assert _json(_python(code, launcher=True)) == {"grandchild": "tinkex_actors"}

    def test_a_name_we_lack_fails_with_a_message_naming_the_switch(self):
        """`import tinker.X` for a module we do not have says tinkex-actors serves `tinker`."""
        proc = _python("import tinker.proto", launcher=True)
        assert proc.returncode == 1
        assert "No module named 'tinker.proto'" in proc.stderr
        assert "served by tinkex-actors" in proc.stderr

    def test_the_exit_status_is_the_commands(self):
        """The launcher returns the command's status; a missing command is 127."""
        assert _python("raise SystemExit(3)", launcher=True).returncode == 3
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "exec", "--", "no-such-command-xyz"],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )
        assert proc.returncode == 127 and "no-such-command-xyz" in proc.stderr

    def test_no_command_is_a_usage_error(self):
        """`exec` with nothing after `--` names the fix."""
        proc = subprocess.run(
            [sys.executable, "-m", "tinkex_actors.cli", "exec", "--"],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )
        assert proc.returncode != 0 and "no command to run" in proc.stderr


class TestInProcessHook:
    def test_without_the_switch_tinker_is_the_official_sdk(self):
        """Importing tinkex_actors (and its compat module) never shadows an installed tinker."""
        code = """
        import json, tinkex_actors, tinkex_actors.compat, tinker
        print(json.dumps({"name": tinker.__name__, "ours": tinker is tinkex_actors}))
        """
        assert _json(_python(code, launcher=False)) == {"name": "tinker", "ours": False}

    def test_install_then_uninstall_switches_and_restores(self):
        """install() serves `tinker` from us; uninstall() gives the official SDK back."""
        code = """
        import json, sys, tinkex_actors, tinkex_actors.compat as compat
        compat.install(); compat.install()
        import tinker, tinker.types.tensor_data as td
        first = (tinker is tinkex_actors, td.TensorData is tinkex_actors.TensorData)
        compat.uninstall()
        import tinker
        print(json.dumps({"first": first, "after": tinker.__name__,
                          "installed": compat.installed()}))
        """
        got = _json(_python(code, launcher=False))
        assert got == {"first": [True, True], "after": "tinker", "installed": False}

    def test_install_after_the_official_sdk_was_imported_refuses(self):
        """install() once the real tinker is loaded raises instead of mixing two SDKs."""
        code = """
        import tinker, tinkex_actors.compat as compat
        try:
            compat.install()
        except RuntimeError as exc:
            print(exc)
        """
        proc = _python(code, launcher=False)
        assert proc.returncode == 0 and "already imported" in proc.stdout
