"""Property-based fuzzing of every endpoint of the embedded server, over raw HTTP.

Generated methods, paths (ids full of `..`, `%2E`, separators), headers (content types, Origin,
Host, keys, encodings) and bodies (bytes, near-protocol JSON, deep nesting, zstd garbage) go to
every route. Whatever arrives: never a 5xx, never a dropped connection, never a file changed
outside the data directory; afterwards the server answers healthz and a real client trains.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinkex_actors as tx
from tinkex_actors.local.server import LocalServer, ServerSettings

from ._attack import Raw, Victim, tree_digest

FIELDS = ["session_id", "model_id", "seq_id", "model_seq_id", "base_model", "path", "tinker_path",
          "request_id", "request_ids", "sampling_session_id", "sampling_session_seq_id", "prompt",
          "num_samples", "sampling_params", "max_tokens", "adam_params", "learning_rate",
          "forward_backward_input", "forward_input", "data", "loss_fn", "chunks", "tokens",
          "lora_config", "rank", "ttl_seconds", "events", "reason", "type", "target",
          "timeout", "prev_cursor", "optimizer", "user_metadata", "tags", "model_input",
          "loss_fn_inputs", "dtype", "shape", "model_path", "topk_prompt_logprobs"]
TRICKY = ["..", ".", "%2E%2E", "%252E%252E", "%2F", "a%2F..%2F..", "weights", "sampler_weights",
          "archive", "publish", "ttl", "x" * 300, "tiny-byte-lm", "tinker://../weights/a",
          "tinker://r/weights/..", "/etc/passwd", "s-0000", "a:b", "~", "-1", "1e999"]


def scalars(known: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(), st.integers(-2**70, 2**70),
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
        st.sampled_from(TRICKY + known))


def json_values(known: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(known),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6)),
        max_leaves=25)


def bodies(known: list[str]) -> st.SearchStrategy[bytes | None]:
    deep = st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)
    return st.one_of(
        st.none(),
        st.binary(max_size=512),
        json_values(known).map(msgspec.json.encode),
        st.dictionaries(st.sampled_from(FIELDS), json_values(known), max_size=8)
        .map(msgspec.json.encode),
        deep,
        st.binary(max_size=256).map(lambda b: zstandard.ZstdCompressor().compress(b)),
    )


def segments(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(TRICKY + known),
        st.text(max_size=12).map(lambda t: quote(t, safe="")),
    )


@st.composite
def requests(draw: st.DrawFn, routes: list[tuple[str, str]], known: list[str]) -> tuple[
        str, str, dict[str, str], bytes | None]:
    method, template = draw(st.sampled_from(routes))
    if draw(st.sampled_from([False] * 9 + [True])):
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        many = path[start:end].endswith(":path")
        parts = draw(st.lists(segments(known), min_size=1, max_size=4 if many else 1))
        path = path[:start] + "/".join(parts) + path[end + 1:]
    if draw(st.sampled_from([False] * 9 + [True])):
        path += "?" + draw(st.sampled_from(["limit=-1", "offset=x", "limit=99999999999999",
                                            "expires=1&signature=00", "a=%00"]))
    headers: dict[str, str] = {}
    # Rare choices are drawn from lists mostly of None: hypothesis favours small integers, so
    # `integers(0, n) == 0` would fire far more often than 1 in n.
    optional = {
        "Content-Type": ["application/json"] * 12 + [
            "application/x-protobuf", "text/plain", "application/x-www-form-urlencoded",
            "application/json; charset=utf-8", "", None],
        "Content-Encoding": [None] * 5 + ["zstd", "gzip", "br"],
        "Origin": [None] * 19 + ["http://evil.example"],
        "Host": [None] * 17 + ["evil.example", "127.0.0.1", "localhost:1"],
        "X-API-Key": [None] * 17 + ["", "tml-wrong-wrong-wrong", "x" * 500],
        "X-Idempotency-Key": [None] * 9 + ["k1"],
    }
    for name, choices in optional.items():
        value = draw(st.sampled_from(choices))
        if value is not None:
            headers[name] = value
    return method, path, headers, draw(bodies(known))


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, Victim, Path]]:
    """A server, a victim with checkpoints, and a directory beside the data dir to watch."""
    before = set(threading.enumerate())
    root = tmp_path_factory.mktemp("fuzz")
    outside = root / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "precious.txt").write_text("keep")
    with LocalServer(data_dir=root / "data",
                     settings=ServerSettings(long_poll_timeout_s=0.05, gap_timeout_s=1.0)) as srv:
        victim = Victim(srv)
        yield srv, victim, outside
        victim.http.close()
    leaked = [t for t in set(threading.enumerate()) - before
              if t.is_alive() and t.name.startswith("tinkex")]
    assert not leaked, f"threads left behind: {leaked}"


def fuzz(arena: tuple[LocalServer, Victim, Path], examples: int) -> None:
    server, victim, outside = arena
    before = tree_digest(outside)
    known = [victim.model_id, victim.session_id, *victim.paths,
             victim.paths[0].removeprefix("tinker://")]
    routes = server.app.router.routes()
    raw = Raw(server, server.api_key)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests(routes, known))
    def one(request: tuple[str, str, dict[str, str], bytes | None]) -> None:
        method, path, headers, body = request
        status, answer = raw.request(method, path, body, headers)
        assert status < 500, (method, path, headers, body, answer)

    try:
        one()
    finally:
        raw.close()
    assert tree_digest(outside) == before
    assert Raw(server).request("GET", "/api/v1/healthz")[0] == 200
    with tx.ServiceClient(base_url=server.url, api_key=server.api_key) as sc:
        tc = sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4)
        datum = tx.Datum(model_input=tx.ModelInput.from_ints([1, 2, 3]),
                         loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [1.0] * 3})
        assert tc.forward_backward([datum], "cross_entropy").result(60).metrics


class TestFuzzEveryEndpoint:
    def test_generated_requests_never_crash_the_server_or_escape_its_data_dir(
        self, arena: tuple[LocalServer, Victim, Path]
    ) -> None:
        """~300 generated requests: no 5xx, no drop, nothing outside touched, still trains."""
        fuzz(arena, 300)

    @pytest.mark.slow
    @pytest.mark.timeout(1200)
    def test_a_long_fuzz_run_finds_nothing_either(
        self, arena: tuple[LocalServer, Victim, Path]
    ) -> None:
        """The same properties over 5,000 generated requests."""
        fuzz(arena, 5000)

