"""Client configuration: explicit argument, else `TINKER_*` environment, else default.

`Config` is frozen: every actor can hold the same object without locks. The
defaults are the official `tinker` SDK's (0.38) so that switching between the two
clients changes nothing on the wire. The API key is secret: it never appears in a
`repr`, a `str`, a log line or an error message, only in the masked form
`masked_api_key()` returns.

Server-driven client configuration (`POST /api/v1/client/config`) lands in
`ClientFlags` (the wire type `types.ClientConfigResponse`), which
`Config.with_server_flags` carries.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Self

from tinkex_actors.errors import ConfigurationError
from tinkex_actors.types import ClientConfigResponse

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECTION_LOST_AFTER_S",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "INITIAL_RETRY_DELAY_S",
    "MAX_RETRY_DELAY_S",
    "RETRY_JITTER",
    "ClientFlags",
    "Config",
    "PoolKind",
    "PoolLimits",
    "default_pool_limits",
    "mask_secret",
]

DEFAULT_BASE_URL: Final = "https://tinker.thinkingmachines.dev/services/tinker-prod"
DEFAULT_TIMEOUT_S: Final = 60.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 5.0
DEFAULT_MAX_RETRIES: Final = 10
DEFAULT_CONNECTION_LOST_AFTER_S: Final = 15 * 60.0
"""How long the server may fail to answer (connection errors, 5xx) before the session is
given up and every pending operation fails at once. Long enough for a restart or a deploy of
the service (several minutes), short enough that a server that is gone is found out in
minutes, once for the whole client, rather than after each operation's own retries."""
INITIAL_RETRY_DELAY_S: Final = 0.5
MAX_RETRY_DELAY_S: Final = 10.0
RETRY_JITTER: Final = 0.25
"""A backoff delay is multiplied by a factor drawn from [1 - RETRY_JITTER, 1]."""

_API_KEY_PREFIX: Final = "tml-"
_JWT_PREFIX: Final = "eyJ"
# Header names whose values are credentials: masked in every repr.
_SECRET_HEADER_WORDS: Final = ("secret", "key", "token", "authorization", "cookie")
_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})


class PoolKind(enum.StrEnum):
    """The official connection pool kinds: requests of one kind share connections.

    Separate pools keep a burst of sampling requests from starving heartbeats, and
    keep long training submits from queueing behind short polls.
    """

    SESSION = "session"
    SAMPLE = "sample"
    TRAIN = "train"
    REST_SUPPORT_REDIRECT = "rest_support_redirect"
    RETRIEVE_PROMISE = "retrieve_promise"
    RETRIEVE_FUTURES = "retrieve_futures"
    TELEMETRY = "telemetry"


@dataclasses.dataclass(frozen=True, slots=True)
class PoolLimits:
    """Connection limits of one pool kind.

    The official SDK gives every `AsyncTinker` client 1,000 connections with 20
    kept alive, and opens another client once 50 requests share one (1 for the
    training pool). We keep one client per kind with the same per-client limits.
    """

    max_connections: int = 1000
    max_keepalive_connections: int = 20
    keepalive_expiry_s: float = 5.0

    def __post_init__(self) -> None:
        _require_positive_int("PoolLimits.max_connections", self.max_connections)
        if (
            not isinstance(self.max_keepalive_connections, int)
            or self.max_keepalive_connections < 0
        ):
            raise ConfigurationError(
                f"PoolLimits.max_keepalive_connections must be an int >= 0, got "
                f"{self.max_keepalive_connections!r}; pass e.g. 20"
            )
        _require_positive_float("PoolLimits.keepalive_expiry_s", self.keepalive_expiry_s)


def default_pool_limits() -> Mapping[PoolKind, PoolLimits]:
    """The official limits for every pool kind (all kinds share the same numbers)."""
    return MappingProxyType({kind: PoolLimits() for kind in PoolKind})


class ClientFlags(ClientConfigResponse, frozen=True):
    """Server-driven client configuration: the flags of `POST /api/v1/client/config`.

    The flags, their official defaults and their checks are the wire type's
    (`types.ClientConfigResponse`): used until (or unless) a server answers, unknown
    flags in an answer ignored. Here a malformed answer raises ConfigurationError.
    """

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Flags from a decoded `client/config` answer; unknown keys are ignored.

        A known flag of the wrong type (or a size below 1) raises ConfigurationError
        naming the flag.
        """
        try:
            return super().from_mapping(values)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None


def mask_secret(value: str | None) -> str:
    """A secret shown safely: its prefix (`tml-`, `eyJ`) and last 4 characters.

    Short values are masked entirely: showing 4 of 12 characters would give a third
    of the secret away.
    """
    if value is None:
        return "None"
    if len(value) < 16:
        return "…" if value else "''"
    prefix = next((p for p in (_API_KEY_PREFIX, _JWT_PREFIX) if value.startswith(p)), "")
    return f"{prefix}…{value[-4:]}"


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Config:
    """Everything a client needs to reach a Tinker service; immutable.

    Build it with `Config.resolve(...)`, which applies the precedence explicit
    argument > `TINKER_*` environment > default. The constructor itself takes
    every field literally (no environment lookup) and validates it.
    """

    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    default_headers: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    project_id: str | None = None
    tags: tuple[str, ...] = ()
    telemetry_enabled: bool = True
    follow_redirects: bool = True
    pool_limits: Mapping[PoolKind, PoolLimits] = dataclasses.field(
        default_factory=default_pool_limits
    )
    server_flags: ClientFlags = dataclasses.field(default_factory=ClientFlags)
    connection_lost_after_s: float = DEFAULT_CONNECTION_LOST_AFTER_S

    def __post_init__(self) -> None:
        if self.api_key is not None:
            _validate_api_key(self.api_key)
        object.__setattr__(self, "base_url", _normalize_base_url(self.base_url))
        _require_positive_float("timeout_s", self.timeout_s)
        _require_positive_float("connection_lost_after_s", self.connection_lost_after_s)
        _require_positive_float("connect_timeout_s", self.connect_timeout_s)
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise ConfigurationError(
                f"max_retries must be an int >= 0, got {self.max_retries!r}; "
                f"pass 0 to disable retries or leave it unset for {DEFAULT_MAX_RETRIES}"
            )
        headers: dict[str, str] = {}
        for name, value in dict(self.default_headers).items():
            if not isinstance(name, str) or not isinstance(value, str):
                shown = "<masked>" if _is_secret_header(str(name)) else repr(value)
                raise ConfigurationError(
                    f"default_headers must map str to str, got {name!r}: {shown}; "
                    "convert header values to strings"
                )
            headers[name] = value
        object.__setattr__(self, "default_headers", MappingProxyType(headers))
        limits = dict(default_pool_limits())
        for kind, given in dict(self.pool_limits).items():
            try:
                parsed_kind = PoolKind(kind)
            except ValueError:
                known = ", ".join(k.value for k in PoolKind)
                raise ConfigurationError(
                    f"pool_limits has unknown pool kind {kind!r}; use one of {known}"
                ) from None
            if not isinstance(given, PoolLimits):
                raise ConfigurationError(
                    f"pool_limits[{parsed_kind.value!r}] must be a PoolLimits, got {given!r}"
                )
            limits[parsed_kind] = given
        object.__setattr__(self, "pool_limits", MappingProxyType(limits))
        object.__setattr__(self, "tags", tuple(self.tags))

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        project_id: str | None = None,
        tags: tuple[str, ...] | list[str] | None = None,
        telemetry_enabled: bool | None = None,
        pool_limits: Mapping[PoolKind, PoolLimits] | None = None,
        environ: Mapping[str, str] | None = None,
        credentials_path: str | os.PathLike[str] | None = None,
        connection_lost_after_s: float | None = None,
    ) -> Config:
        """A Config from explicit arguments, else the `TINKER_*` environment, else defaults.

        Empty strings count as unset, as in the official SDK. `environ` replaces
        `os.environ` (tests pass a plain dict). Read: TINKER_API_KEY,
        TINKER_BASE_URL, TINKER_TIMEOUT_S, TINKER_MAX_RETRIES, TINKER_PROJECT_ID,
        TINKER_TAGS (comma separated), TINKER_TELEMETRY, TINKER_CONNECTION_LOST_AFTER_S,
        and the Cloudflare Access
        pair CLOUDFLARE_ACCESS_CLIENT_ID / CLOUDFLARE_ACCESS_CLIENT_SECRET that the
        official SDK turns into default headers.

        With no key in the argument or environment, the default key stored by
        `tinker auth login` is used (`credentials_path`, default
        ~/.tinker/credentials.json), unless TINKER_CREDENTIAL_CMD is set, as
        officially (running that command is not supported here).
        """
        env = os.environ if environ is None else environ
        resolved_key = api_key or env.get("TINKER_API_KEY") or None
        if resolved_key is None and not env.get("TINKER_CREDENTIAL_CMD"):
            resolved_key = _stored_api_key(
                Path(credentials_path)
                if credentials_path is not None
                else Path("~/.tinker/credentials.json").expanduser()
            )

        def pick(explicit: str | None, name: str) -> str | None:
            return explicit or env.get(name) or None

        headers: dict[str, str] = {}
        if client_id := env.get("CLOUDFLARE_ACCESS_CLIENT_ID"):
            headers["CF-Access-Client-Id"] = client_id
        if client_secret := env.get("CLOUDFLARE_ACCESS_CLIENT_SECRET"):
            headers["CF-Access-Client-Secret"] = client_secret
        headers.update(default_headers or {})

        if tags is None and (raw_tags := env.get("TINKER_TAGS")) is not None:
            tags = [tag for tag in raw_tags.split(",") if tag]

        return cls(
            api_key=resolved_key,
            base_url=pick(base_url, "TINKER_BASE_URL") or DEFAULT_BASE_URL,
            timeout_s=(
                timeout_s
                if timeout_s is not None
                else _env_float(env, "TINKER_TIMEOUT_S", DEFAULT_TIMEOUT_S)
            ),
            connect_timeout_s=(
                connect_timeout_s if connect_timeout_s is not None else DEFAULT_CONNECT_TIMEOUT_S
            ),
            max_retries=(
                max_retries
                if max_retries is not None
                else _env_int(env, "TINKER_MAX_RETRIES", DEFAULT_MAX_RETRIES)
            ),
            default_headers=headers,
            project_id=pick(project_id, "TINKER_PROJECT_ID"),
            tags=tuple(tags or ()),
            telemetry_enabled=(
                telemetry_enabled
                if telemetry_enabled is not None
                else _env_bool(env, "TINKER_TELEMETRY", True)
            ),
            pool_limits=pool_limits if pool_limits is not None else default_pool_limits(),
            connection_lost_after_s=(
                connection_lost_after_s
                if connection_lost_after_s is not None
                else _env_float(
                    env, "TINKER_CONNECTION_LOST_AFTER_S", DEFAULT_CONNECTION_LOST_AFTER_S
                )
            ),
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Read-only mapping proxies do not pickle; plain dicts rebuild the same Config.
        values = [getattr(self, field.name) for field in dataclasses.fields(self)]
        return (
            type(self),
            tuple(dict(v) if isinstance(v, MappingProxyType) else v for v in values),
        )

    def with_server_flags(self, flags: ClientFlags) -> Config:
        """A copy of this config carrying the server's client-configuration flags."""
        return dataclasses.replace(self, server_flags=flags)

    def masked_api_key(self) -> str:
        """The API key as it may be shown: `tml-…` and its last 4 characters."""
        return mask_secret(self.api_key)

    def require_api_key(self) -> str:
        """The API key, or ConfigurationError explaining how to provide one."""
        if self.api_key is None:
            raise ConfigurationError(
                "api_key is not set; pass api_key='tml-...' or set the TINKER_API_KEY "
                "environment variable"
            )
        return self.api_key

    def limits_for(self, kind: PoolKind) -> PoolLimits:
        """The connection limits of one pool kind."""
        return self.pool_limits[kind]

    def __repr__(self) -> str:
        headers = {
            name: (mask_secret(value) if _is_secret_header(name) else value)
            for name, value in self.default_headers.items()
        }
        return (
            f"Config(api_key={self.masked_api_key()!r}, base_url={self.base_url!r}, "
            f"timeout_s={self.timeout_s!r}, connect_timeout_s={self.connect_timeout_s!r}, "
            f"max_retries={self.max_retries!r}, default_headers={headers!r}, "
            f"project_id={self.project_id!r}, tags={self.tags!r}, "
            f"telemetry_enabled={self.telemetry_enabled!r})"
        )

    __str__ = __repr__


def _stored_api_key(path: Path) -> str | None:
    """The default key of an official credentials file, or None when there is none."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the credentials file {str(path)!r} ({exc.strerror}); fix its "
            "permissions, or pass api_key / set TINKER_API_KEY"
        ) from None
    try:
        stored = json.loads(raw)
    except ValueError:
        raise ConfigurationError(
            f"the credentials file {str(path)!r} is not valid JSON; log in again with "
            "`tinker auth login`, or pass api_key / set TINKER_API_KEY"
        ) from None
    if not isinstance(stored, dict):
        return None
    keys = stored.get("keys")
    default = stored.get("default")
    record = keys.get(default) if isinstance(keys, dict) and isinstance(default, str) else None
    key = record.get("key") if isinstance(record, dict) else None
    return key if isinstance(key, str) and key else None


def _validate_api_key(api_key: object) -> None:
    if not isinstance(api_key, str):
        raise ConfigurationError(
            f"api_key must be a str, got {type(api_key).__name__}; pass the key as text"
        )
    if not api_key.startswith((_API_KEY_PREFIX, _JWT_PREFIX)):
        raise ConfigurationError(
            f"api_key {mask_secret(api_key)!r} does not start with {_API_KEY_PREFIX!r}; "
            "copy the whole key from the Tinker console (keys look like 'tml-...')"
        )
    if len(api_key) <= len(_API_KEY_PREFIX) or any(c.isspace() for c in api_key):
        raise ConfigurationError(
            f"api_key {mask_secret(api_key)!r} is malformed (empty after the prefix or "
            "contains whitespace); check for a trailing newline when reading it from a file"
        )


def _normalize_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigurationError(
            f"base_url must be a non-empty str, got {base_url!r}; "
            f"pass e.g. {DEFAULT_BASE_URL!r} or set TINKER_BASE_URL"
        )
    stripped = base_url.strip().rstrip("/")
    parsed = urllib.parse.urlsplit(stripped)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(
            f"base_url {base_url!r} is not an http(s) URL with a host; "
            "pass e.g. 'http://127.0.0.1:8000' or set TINKER_BASE_URL"
        )
    if parsed.query or parsed.fragment:
        raise ConfigurationError(
            f"base_url {base_url!r} has a query or fragment; pass only scheme, host, "
            "port and path prefix"
        )
    if parsed.username or parsed.password:
        raise ConfigurationError(
            "base_url carries credentials (user:password@); remove them and pass the "
            "key as api_key"
        )
    try:
        _ = parsed.port
    except ValueError:
        raise ConfigurationError(
            f"base_url {base_url!r} has an invalid port; use a number between 1 and 65535"
        ) from None
    return stripped


def _require_positive_float(field: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{field} must be a finite number > 0, got {value!r}")


def _require_positive_int(field: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{field} must be an int > 0, got {value!r}")


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(
            f"environment variable {name}={raw!r} is not a number; set it to seconds, e.g. 60"
        ) from None


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(
            f"environment variable {name}={raw!r} is not an integer; set it to e.g. {default}"
        ) from None


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE_WORDS:
        return True
    if lowered in _FALSE_WORDS:
        return False
    raise ConfigurationError(
        f"environment variable {name}={raw!r} is not a boolean; set it to 1 or 0"
    )
