"""Which HTTP layer runs under the Transport, and how its errors are read."""

from __future__ import annotations

import socket
from collections.abc import Callable

import aiohttp
import httpx
import pytest

from tinkex_actors.config import Config
from tinkex_actors.errors import APIConnectionError, ConfigurationError
from tinkex_actors.transport import wires as _http_wire
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport

WAIT_S = 5.0


class TestDefaultLayer:
    def test_aiohttp_is_the_default_and_httpx_the_fallback(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Unset means aiohttp; TINKER_HTTP_TRANSPORT=httpx picks httpx's own transport."""
        monkeypatch.delenv("TINKER_HTTP_TRANSPORT", raising=False)
        assert _http_wire.default_transport_factory() is _http_wire.aiohttp_transport
        monkeypatch.setenv("TINKER_HTTP_TRANSPORT", "httpx")
        assert _http_wire.default_transport_factory() is None

    def test_an_unknown_layer_name_is_refused_naming_the_choices(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A typo in TINKER_HTTP_TRANSPORT is a clear error."""
        monkeypatch.setenv("TINKER_HTTP_TRANSPORT", "curl")
        with pytest.raises(ConfigurationError, match="'aiohttp' or 'httpx'"):
            _http_wire.default_transport_factory()


class TestErrorNames:
    def test_a_connection_error_reported_as_connect_timeout_is_not_a_timeout(self) -> None:
        """httpx-aiohttp names refused/dropped connections ConnectTimeout: we read the cause."""

        class ServerDisconnectedError(Exception):
            pass

        misnamed = httpx.ConnectTimeout("closed")
        misnamed.__cause__ = ServerDisconnectedError()
        error = _http_wire.wire_error_from_httpx(misnamed)
        assert not isinstance(error, _http_wire.WireTimeoutError)
        assert isinstance(error, _http_wire.WireConnectError)
        assert error.reason == "ServerDisconnectedError"
        assert error.__cause__ is misnamed
        real = httpx.ConnectTimeout("slow")
        real.__cause__ = TimeoutError()
        error = _http_wire.wire_error_from_httpx(real)
        assert isinstance(error, _http_wire.WireTimeoutError)
        assert error.reason == "ConnectTimeout"


class TestWireErrors:
    @pytest.mark.parametrize("layer", ["aiohttp", "httpx"])
    def test_a_refused_connection_comes_up_as_a_wire_error_on_either_layer(
        self, layer: str, make_transport: Callable[..., Transport], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Users get the same APIConnectionError naming ConnectError from both layers; under it
        is a WireConnectError, with the library's own exception only as that error's cause."""
        monkeypatch.setenv("TINKER_HTTP_TRANSPORT", layer)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = Config(api_key="tml-key", base_url=f"http://127.0.0.1:{port}")
        future = make_transport(config).submit(HttpRequest("GET", "sessions", max_retries=0))
        with pytest.raises(
            APIConnectionError, match=r"Connection error \(ConnectError\)"
        ) as caught:
            future.result(WAIT_S)
        below = caught.value.__cause__
        assert isinstance(below, _http_wire.WireConnectError)
        assert isinstance(below.__cause__, (httpx.ConnectError, aiohttp.ClientError, OSError))
