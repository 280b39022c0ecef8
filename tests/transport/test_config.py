"""Config: precedence, validation, masking of the API key, and the server-flags hook."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from tinkex_actors.config import (
    DEFAULT_BASE_URL,
    ClientFlags,
    Config,
    PoolKind,
    PoolLimits,
    mask_secret,
)
from tinkex_actors.errors import ConfigurationError

KEY = "tml-EnvironmentKey000000000000000001234"
OTHER_KEY = "tml-ExplicitKey0000000000000000000005678"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # An empty home: no stored credentials from the machine running the tests.
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (
        "TINKER_CREDENTIAL_CMD",
        "TINKER_API_KEY",
        "TINKER_BASE_URL",
        "TINKER_TIMEOUT_S",
        "TINKER_MAX_RETRIES",
        "TINKER_PROJECT_ID",
        "TINKER_TAGS",
        "TINKER_TELEMETRY",
        "CLOUDFLARE_ACCESS_CLIENT_ID",
        "CLOUDFLARE_ACCESS_CLIENT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


class TestPrecedence:
    def test_defaults_are_the_official_ones_when_nothing_is_set(self) -> None:
        """With no argument and no environment, the official defaults apply."""
        config = Config.resolve()
        assert config.api_key is None
        assert config.base_url == DEFAULT_BASE_URL
        assert config.timeout_s == 60.0
        assert config.connect_timeout_s == 5.0
        assert config.max_retries == 10
        assert config.limits_for(PoolKind.TRAIN) == PoolLimits(1000, 20)
        assert set(config.pool_limits) == set(PoolKind)

    def test_environment_beats_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """TINKER_* variables replace the defaults."""
        monkeypatch.setenv("TINKER_API_KEY", KEY)
        monkeypatch.setenv("TINKER_BASE_URL", "http://127.0.0.1:8000/")
        monkeypatch.setenv("TINKER_TIMEOUT_S", "12.5")
        monkeypatch.setenv("TINKER_MAX_RETRIES", "3")
        monkeypatch.setenv("TINKER_PROJECT_ID", "proj-env")
        monkeypatch.setenv("TINKER_TAGS", "a,b")
        monkeypatch.setenv("TINKER_TELEMETRY", "0")
        config = Config.resolve()
        assert config.api_key == KEY
        assert config.base_url == "http://127.0.0.1:8000"
        assert config.timeout_s == 12.5
        assert config.max_retries == 3
        assert config.project_id == "proj-env"
        assert config.tags == ("a", "b")
        assert config.telemetry_enabled is False

    def test_explicit_argument_beats_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An argument wins over the environment."""
        monkeypatch.setenv("TINKER_API_KEY", KEY)
        monkeypatch.setenv("TINKER_BASE_URL", "http://127.0.0.1:8000")
        monkeypatch.setenv("TINKER_TIMEOUT_S", "12.5")
        config = Config.resolve(
            api_key=OTHER_KEY, base_url="http://localhost:9000", timeout_s=3.0, max_retries=0
        )
        assert config.api_key == OTHER_KEY
        assert config.base_url == "http://localhost:9000"
        assert config.timeout_s == 3.0
        assert config.max_retries == 0

    def test_empty_values_count_as_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty argument or variable falls through to the next source, as officially."""
        monkeypatch.setenv("TINKER_BASE_URL", "")
        monkeypatch.setenv("TINKER_API_KEY", KEY)
        config = Config.resolve(api_key="", base_url="")
        assert config.api_key == KEY
        assert config.base_url == DEFAULT_BASE_URL

    def test_an_explicit_environ_mapping_replaces_os_environ(self) -> None:
        """resolve(environ=...) reads only the given mapping."""
        config = Config.resolve(environ={"TINKER_API_KEY": KEY})
        assert config.api_key == KEY

    def test_cloudflare_access_variables_become_default_headers(self) -> None:
        """The Cloudflare Access pair turns into headers, as in the official SDK."""
        config = Config.resolve(
            environ={
                "CLOUDFLARE_ACCESS_CLIENT_ID": "cid",
                "CLOUDFLARE_ACCESS_CLIENT_SECRET": "very-secret-value-1234",
            },
            default_headers={"X-Extra": "1"},
        )
        assert config.default_headers == {
            "CF-Access-Client-Id": "cid",
            "CF-Access-Client-Secret": "very-secret-value-1234",
            "X-Extra": "1",
        }
        assert "very-secret-value" not in repr(config)

    def test_trailing_slashes_are_stripped_from_base_url(self) -> None:
        """The base URL never ends in '/' so paths can be joined onto it."""
        assert Config(base_url="http://127.0.0.1:1/prefix//").base_url == "http://127.0.0.1:1/prefix"


class TestStoredCredentials:
    def write(self, path: Path, key: str) -> Path:
        record = {"type": "manual", "key": key, "name": "work"}
        path.write_text(json.dumps({"version": 1, "default": "work", "keys": {"work": record}}))
        return path

    def test_the_stored_default_key_is_used_when_nothing_else_is_set(
        self, tmp_path: Path
    ) -> None:
        """The key saved by `tinker auth login` is the last resort, as officially."""
        path = self.write(tmp_path / "credentials.json", KEY)
        assert Config.resolve(credentials_path=path).api_key == KEY

    def test_the_default_location_is_under_the_home_directory(self, tmp_path: Path) -> None:
        """Without a path, ~/.tinker/credentials.json is read."""
        (tmp_path / ".tinker").mkdir()
        self.write(tmp_path / ".tinker" / "credentials.json", KEY)
        assert Config.resolve().api_key == KEY

    def test_the_environment_beats_the_stored_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """TINKER_API_KEY wins over the credentials file."""
        path = self.write(tmp_path / "credentials.json", KEY)
        monkeypatch.setenv("TINKER_API_KEY", OTHER_KEY)
        assert Config.resolve(credentials_path=path).api_key == OTHER_KEY

    def test_a_credential_command_disables_the_stored_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With TINKER_CREDENTIAL_CMD set, the stored key is not used, as officially."""
        path = self.write(tmp_path / "credentials.json", KEY)
        monkeypatch.setenv("TINKER_CREDENTIAL_CMD", "print-token")
        assert Config.resolve(credentials_path=path).api_key is None

    def test_a_corrupt_file_names_the_file_and_the_fix_without_its_contents(
        self, tmp_path: Path
    ) -> None:
        """Invalid JSON raises naming the file and how to recover."""
        path = tmp_path / "credentials.json"
        path.write_text('{"keys": {"w": {"key": "' + KEY)
        with pytest.raises(ConfigurationError, match=r"not valid JSON.*tinker auth login") as info:
            Config.resolve(credentials_path=path)
        assert KEY not in str(info.value)

    def test_a_file_without_a_default_gives_no_key(self, tmp_path: Path) -> None:
        """A file with keys but no default key yields no key."""
        path = tmp_path / "credentials.json"
        path.write_text(json.dumps({"version": 1, "keys": {}}))
        assert Config.resolve(credentials_path=path).api_key is None


class TestValidation:
    @pytest.mark.parametrize("key", ["sk-abcdefghijklmnop", "TML-abcdefghijkl", "abc"])
    def test_a_key_without_the_tml_prefix_is_refused(self, key: str) -> None:
        """A key that does not start with 'tml-' names the field and the fix."""
        with pytest.raises(ConfigurationError, match=r"api_key .*'tml-'.*Tinker console") as info:
            Config(api_key=key)
        assert key not in str(info.value) or len(key) < 12

    def test_a_key_with_a_trailing_newline_is_refused_without_showing_it(self) -> None:
        """Whitespace in the key is an error, and the message shows only the masked key."""
        key = "tml-abcdefghijklmnopqrstuv\n"
        with pytest.raises(ConfigurationError, match="trailing newline") as info:
            Config(api_key=key)
        assert "abcdefghijklmnop" not in str(info.value)

    def test_a_jwt_is_accepted_as_a_credential(self) -> None:
        """Keys starting with 'eyJ' (JWTs) are accepted, as officially."""
        assert Config(api_key="eyJhbGciOi.payload.signature").api_key is not None

    @pytest.mark.parametrize(
        "url", ["ftp://host", "127.0.0.1:8000", "http://", "http://h/?q=1", "http://h:99999"]
    )
    def test_a_malformed_base_url_is_refused(self, url: str) -> None:
        """A URL that is not http(s) with a host raises naming base_url."""
        with pytest.raises(ConfigurationError, match="base_url"):
            Config(base_url=url)

    def test_credentials_inside_the_base_url_are_refused(self) -> None:
        """user:password@ in the URL is refused without echoing it."""
        with pytest.raises(ConfigurationError, match="credentials") as info:
            Config(base_url="http://user:hunter2@host")
        assert "hunter2" not in str(info.value)

    @pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True])
    def test_timeout_must_be_a_positive_finite_number(self, value: float) -> None:
        """timeout_s <= 0, NaN, infinity or a bool raises naming timeout_s."""
        with pytest.raises(ConfigurationError, match="timeout_s"):
            Config(timeout_s=value)

    def test_max_retries_must_be_a_non_negative_int(self) -> None:
        """A negative max_retries names the field and how to disable retries."""
        with pytest.raises(ConfigurationError, match=r"max_retries.*pass 0"):
            Config(max_retries=-1)

    def test_a_non_numeric_environment_timeout_names_the_variable(self) -> None:
        """TINKER_TIMEOUT_S=abc names the variable and an example value."""
        with pytest.raises(ConfigurationError, match="TINKER_TIMEOUT_S='abc'"):
            Config.resolve(environ={"TINKER_TIMEOUT_S": "abc"})

    def test_an_unknown_pool_kind_is_refused(self) -> None:
        """pool_limits keys must be pool kinds; the message lists them."""
        with pytest.raises(ConfigurationError, match=r"unknown pool kind 'bulk'.*session"):
            Config(pool_limits={"bulk": PoolLimits()})  # type: ignore[dict-item]

    def test_pool_limits_must_be_positive(self) -> None:
        """PoolLimits(max_connections=0) raises naming the field."""
        with pytest.raises(ConfigurationError, match=r"PoolLimits.max_connections"):
            PoolLimits(max_connections=0)

    def test_given_pool_limits_override_only_their_kind(self) -> None:
        """Overriding one kind keeps the official limits for the others."""
        config = Config(pool_limits={PoolKind.SAMPLE: PoolLimits(5, 5)})
        assert config.limits_for(PoolKind.SAMPLE) == PoolLimits(5, 5)
        assert config.limits_for(PoolKind.SESSION) == PoolLimits()

    def test_require_api_key_explains_both_ways_to_set_it(self) -> None:
        """A missing key names the argument and the environment variable."""
        with pytest.raises(ConfigurationError, match=r"api_key.*TINKER_API_KEY"):
            Config().require_api_key()


class TestPickling:
    def test_a_config_survives_pickling(self) -> None:
        """A Config crosses process boundaries unchanged (clients may be pickled)."""
        config = Config(
            api_key=KEY,
            default_headers={"X-Team": "a"},
            pool_limits={PoolKind.SAMPLE: PoolLimits(5, 5)},
            server_flags=ClientFlags(proto_compress_fwdbwd=True),
        )
        assert pickle.loads(pickle.dumps(config)) == config


class TestSecretMasking:
    def test_repr_and_str_show_only_the_masked_key(self) -> None:
        """repr/str contain 'tml-…' and the last 4 characters, never the key."""
        config = Config(api_key=OTHER_KEY)
        for text in (repr(config), str(config), f"{config}"):
            assert OTHER_KEY not in text
            assert "tml-…5678" in text

    def test_short_secrets_are_masked_entirely(self) -> None:
        """A secret too short to show 4 characters safely shows nothing of it."""
        assert mask_secret("abcdefgh") == "…"
        assert mask_secret(None) == "None"

    def test_secret_headers_are_masked_in_repr(self) -> None:
        """A default header whose name looks secret is masked in repr."""
        config = Config(default_headers={"X-Auth-Token": "token-value-000000-9999"})
        assert "token-value" not in repr(config)


class TestClientFlags:
    def test_defaults_match_the_official_client_config(self) -> None:
        """The flags default to the official ClientConfigResponse values."""
        flags = ClientFlags()
        assert flags.fwdbwd_max_chunk_len == 1024
        assert flags.sample_max_concurrent_requests == 2000
        assert flags.proto_compress_fwdbwd is False

    def test_defaults_equal_the_official_sdk_field_by_field(self) -> None:
        """Every official flag exists here with the same default."""
        official = pytest.importorskip("tinker.types.client_config_response")
        defaults = official.ClientConfigResponse()
        ours = ClientFlags()
        for name in type(defaults).model_fields:
            assert getattr(ours, name) == getattr(defaults, name), name

    def test_unknown_flags_are_ignored(self) -> None:
        """A newer server's extra flags do not break the client."""
        flags = ClientFlags.from_mapping({"parallel_fwdbwd_chunks": False, "new_flag": 1})
        assert flags.parallel_fwdbwd_chunks is False

    def test_a_flag_of_the_wrong_type_is_refused(self) -> None:
        """An int where a bool belongs raises naming the flag."""
        with pytest.raises(ConfigurationError, match="'proto_compress_fwdbwd' must be a bool"):
            ClientFlags.from_mapping({"proto_compress_fwdbwd": 1})

    def test_with_server_flags_returns_a_new_config(self) -> None:
        """Applying flags leaves the original config untouched."""
        config = Config()
        flags = ClientFlags(proto_compress_fwdbwd=True)
        updated = config.with_server_flags(flags)
        assert updated.server_flags is flags
        assert config.server_flags == ClientFlags()
