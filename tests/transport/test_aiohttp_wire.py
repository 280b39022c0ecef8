"""The default aiohttp layer: bodies decoded as httpx would, the same answers either way."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import httpx
import pytest
import zstandard

from tests.transport._server import Reply, ScriptedServer
from tinkex_actors.config import Config
from tinkex_actors.errors import APIConnectionError
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport
from tinkex_actors.transport.wires import ACCEPT_ENCODING, decode_body

WAIT_S = 5.0
PAYLOAD = json.dumps({"sequences": [{"tokens": list(range(300))}]}).encode()


def encodings() -> dict[str, bytes]:
    """The payload under each encoding a server may choose."""
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return {
        "gzip": gzip.compress(PAYLOAD),
        "deflate": zlib.compress(PAYLOAD),
        "raw-deflate": raw_deflate.compress(PAYLOAD) + raw_deflate.flush(),
        "zstd": zstandard.ZstdCompressor().compress(PAYLOAD),
    }


class TestDecodeBody:
    @pytest.mark.parametrize("name", ["gzip", "deflate", "raw-deflate", "zstd"])
    def test_each_encoding_comes_back_to_the_original_bytes(self, name: str) -> None:
        """gzip, deflate (zlib or raw) and zstd bodies decode to the payload."""
        header = "deflate" if name == "raw-deflate" else name
        assert decode_body(header, encodings()[name]) == PAYLOAD

    def test_stacked_encodings_are_undone_last_first(self) -> None:
        """'gzip, zstd' means zstd was applied last, so it is undone first."""
        body = zstandard.ZstdCompressor().compress(gzip.compress(PAYLOAD))
        assert decode_body("gzip, zstd", body) == PAYLOAD
        assert decode_body("identity", PAYLOAD) == PAYLOAD

    def test_an_unknown_encoding_is_refused_by_name(self) -> None:
        """A coding we cannot undo raises naming it rather than returning garbage."""
        with pytest.raises(ValueError, match="'compress'"):
            decode_body("compress", PAYLOAD)

    def test_we_advertise_what_httpx_advertises(self) -> None:
        """Accept-Encoding equals httpx's own default with the same packages installed."""
        assert httpx.Client().headers["accept-encoding"] == ACCEPT_ENCODING


class TestOverTheWire:
    @pytest.mark.parametrize("name", ["gzip", "deflate", "zstd"])
    def test_a_compressed_answer_reaches_the_caller_decoded(
        self, name: str, server: ScriptedServer, make_transport: Callable[..., Transport]
    ) -> None:
        """The transport returns the decoded body whatever encoding the server used."""
        server.script(Reply(200, encodings()[name], {"Content-Encoding": name}))
        answer = make_transport().submit(HttpRequest("GET", "sessions")).result(WAIT_S)
        assert answer.content == PAYLOAD
        assert server.wait_for(1)[0].headers["accept-encoding"] == ACCEPT_ENCODING

    def test_a_corrupt_compressed_body_is_a_clear_error(
        self, server: ScriptedServer, make_transport: Callable[..., Transport]
    ) -> None:
        """A body that does not decode is a (retried) connection error naming the cause."""
        server.script(Reply(200, b"not gzip at all", {"Content-Encoding": "gzip"}))
        future = make_transport().submit(HttpRequest("GET", "sessions", max_retries=0))
        with pytest.raises(APIConnectionError, match="DecodingError"):
            future.result(WAIT_S)

    def test_both_http_layers_give_the_same_answer(
        self,
        server: ScriptedServer,
        make_transport: Callable[..., Transport],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """aiohttp direct and httpx's own transport return equal status, headers and body."""
        answers = []
        for layer in ("aiohttp", "httpx"):
            monkeypatch.setenv("TINKER_HTTP_TRANSPORT", layer)
            server.script(Reply(201, PAYLOAD, {"X-Extra": "one", "Content-Type": "text/x"}))
            answer = make_transport().submit(HttpRequest("GET", "sessions")).result(WAIT_S)
            answers.append((answer.status, answer.headers["x-extra"], answer.content))
        assert answers[0] == answers[1] == (201, "one", PAYLOAD)

    def test_the_environment_proxy_carries_requests_for_hosts_it_covers(
        self,
        server: ScriptedServer,
        make_transport: Callable[..., Transport],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """HTTP_PROXY is honoured (as httpx does): the request reaches the proxy in
        absolute form, for a host that NO_PROXY does not exempt."""
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.delenv("no_proxy", raising=False)
        server.script(Reply(200, PAYLOAD))
        config = Config(api_key="tml-proxy-test", base_url="http://tinker.invalid:9")
        answer = make_transport(config).submit(HttpRequest("GET", "sessions")).result(WAIT_S)
        assert answer.content == PAYLOAD
        assert server.wait_for(1)[0].path == "http://tinker.invalid:9/api/v1/sessions"


class TestUniqueKeys:
    def test_keys_never_repeat_within_a_process_or_in_a_forked_child(self) -> None:
        """100,000 keys are distinct, and a forked child's next key is not the parent's."""
        import os
        import select

        from tinkex_actors.transport.messages import unique_key

        keys = {unique_key("k") for _ in range(100_000)}
        assert len(keys) == 100_000
        parent_next = unique_key("k")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one key down the pipe, then out without any clean-up
            os.write(write_end, unique_key("k").encode())
            os._exit(0)
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], WAIT_S)
            assert ready, "the forked child sent no key"
            child_key = os.read(read_end, 200).decode()
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)
        assert child_key.split("-")[1] != parent_next.split("-")[1]
        assert child_key not in keys
