"""The headers we send equal the official SDK's, request for request, on the same server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.transport._server import ScriptedServer
from tests.transport.conftest import SECRET_KEY
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport

WAIT_S = 5.0
# Values that differ by design: who we are, per-call random keys, connection details.
OWN_VALUES = {
    "user-agent",
    "x-stainless-package-version",
    "x-idempotency-key",
    "host",
    "content-length",
}


def official_requests(url: str) -> None:
    httpx = pytest.importorskip("httpx")
    client_module = pytest.importorskip("tinker._client")
    config_module = pytest.importorskip("tinker.types.client_config_response")

    async def run() -> None:
        client = client_module.AsyncTinker(
            api_key=SECRET_KEY,
            base_url=url,
            # The Rust transport is not part of the comparison: plain httpx underneath.
            _client_config=config_module.ClientConfigResponse(use_pyqwest_transport=False),
        )
        try:
            await client.post("/api/v1/create_model", body={"a": 1}, cast_to=httpx.Response)
            await client.get("/api/v1/sessions", cast_to=httpx.Response)
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(run(), WAIT_S))


class TestSameHeadersAsTheOfficialSdk:
    def test_post_and_get_carry_the_same_header_names_and_values(
        self, server: ScriptedServer, make_transport: Callable[..., Transport]
    ) -> None:
        """Header names match exactly; values match except our identity and random keys."""
        official_requests(server.url)
        transport = make_transport()
        transport.submit(HttpRequest.json("POST", "create_model", {"a": 1})).result(WAIT_S)
        transport.submit(HttpRequest("GET", "sessions")).result(WAIT_S)
        theirs_post, theirs_get, ours_post, ours_get = server.wait_for(4)
        for theirs, ours in ((theirs_post, ours_post), (theirs_get, ours_get)):
            assert set(ours.headers) == set(theirs.headers), ours.method
            for name, value in theirs.headers.items():
                if name not in OWN_VALUES:
                    assert ours.headers[name] == value, name
            assert ours.body == theirs.body
        assert ours_post.headers["x-idempotency-key"] != ours_get.headers.get("x-idempotency-key")
