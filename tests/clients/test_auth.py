"""`tinkex_actors.auth`: the official credential helpers, against the embedded server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tinkex_actors import auth
from tinkex_actors.errors import APIConnectionError, AuthenticationError, TinkerError
from tinkex_actors.local import LocalServer

KEY = "tml-auth-helper-tests"
STORED = "tml-stored-by-login"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credential from the machine: empty key variables and a home without a login."""
    for name in ("TINKER_API_KEY", "TINKER_BASE_URL", "TINKER_CREDENTIAL_CMD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def store_login(home: Path) -> None:
    (home / ".tinker").mkdir()
    (home / ".tinker" / "credentials.json").write_text(
        json.dumps({"default": "work", "keys": {"work": {"key": STORED}}})
    )


class TestCredentialLookup:
    def test_nothing_configured_means_no_token_and_no_credentials(self) -> None:
        """With no key, no login and no command: None and False."""
        assert auth.get_tinker_token() is None
        assert auth.tinker_has_credentials() is False

    def test_the_environment_key_wins_over_the_stored_login(
        self, monkeypatch: pytest.MonkeyPatch, clean_env: Path
    ) -> None:
        """TINKER_API_KEY is the token; without it, the key `tinker auth login` stored."""
        store_login(clean_env)
        assert auth.get_tinker_token() == STORED
        monkeypatch.setenv("TINKER_API_KEY", KEY)
        assert auth.get_tinker_token() == KEY and auth.tinker_has_credentials()

    def test_a_credential_command_counts_without_being_run(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A set TINKER_CREDENTIAL_CMD is a credential; the command never runs."""
        ran = tmp_path / "ran"
        monkeypatch.setenv("TINKER_CREDENTIAL_CMD", f"touch {ran}")
        assert auth.tinker_has_credentials() is True
        assert auth.get_tinker_token() is None and not ran.exists()

    def test_a_malformed_key_is_no_token(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A key without the tml- prefix gives None, as officially."""
        monkeypatch.setenv("TINKER_API_KEY", "not-a-key")
        assert auth.get_tinker_token() is None and auth.tinker_has_credentials() is False


class TestAccessCheck:
    def test_the_server_accepting_the_key_returns(
        self, monkeypatch: pytest.MonkeyPatch, server: LocalServer
    ) -> None:
        """The embedded server with its key: the check returns None."""
        monkeypatch.setenv("TINKER_BASE_URL", server.url)
        monkeypatch.setenv("TINKER_API_KEY", KEY)
        assert auth.raise_if_tinker_not_accessible() is None

    def test_a_refused_key_is_an_authentication_error_without_the_key(
        self, monkeypatch: pytest.MonkeyPatch, server: LocalServer
    ) -> None:
        """A key the server refuses raises AuthenticationError whose text has no key."""
        wrong = "tml-wrong-key-for-this-server"
        monkeypatch.setenv("TINKER_BASE_URL", server.url)
        monkeypatch.setenv("TINKER_API_KEY", wrong)
        with pytest.raises(AuthenticationError) as caught:
            auth.raise_if_tinker_not_accessible()
        assert wrong not in str(caught.value) and wrong not in repr(caught.value.__dict__)

    def test_no_credential_is_a_tinker_error_naming_the_fix(self) -> None:
        """Nothing configured: TinkerError naming TINKER_API_KEY, no request made."""
        with pytest.raises(TinkerError, match="TINKER_API_KEY"):
            auth.raise_if_tinker_not_accessible()

    def test_an_unreachable_server_is_a_connection_error_at_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A closed port raises APIConnectionError (not retried)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        monkeypatch.setenv("TINKER_BASE_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("TINKER_API_KEY", KEY)
        with pytest.raises(APIConnectionError):
            auth.raise_if_tinker_not_accessible()
