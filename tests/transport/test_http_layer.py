"""Which HTTP layer runs under the Transport, and how its errors are read."""

from __future__ import annotations

import httpx
import pytest

from tinkex_actors import _http_wire
from tinkex_actors import transport as transport_module
from tinkex_actors.errors import ConfigurationError


class TestDefaultLayer:
    def test_aiohttp_is_the_default_and_httpx_the_fallback(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Unset means aiohttp; TINKER_HTTP_TRANSPORT=httpx picks httpx's own transport."""
        monkeypatch.delenv("TINKER_HTTP_TRANSPORT", raising=False)
        assert transport_module.default_transport_factory() is transport_module.aiohttp_transport
        monkeypatch.setenv("TINKER_HTTP_TRANSPORT", "httpx")
        assert transport_module.default_transport_factory() is None

    def test_an_unknown_layer_name_is_refused_naming_the_choices(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A typo in TINKER_HTTP_TRANSPORT is a clear error."""
        monkeypatch.setenv("TINKER_HTTP_TRANSPORT", "curl")
        with pytest.raises(ConfigurationError, match="'aiohttp' or 'httpx'"):
            transport_module.default_transport_factory()


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
