"""The official `tinker.auth` helpers: is a credential configured, and is the service usable.

The API key is looked up as `Config.resolve` does (the `TINKER_API_KEY` environment, else the
default key `tinker auth login` stored); `TINKER_CREDENTIAL_CMD` counts as a credential but is
never run here. No helper logs or puts a key in an exception.
"""

from __future__ import annotations

import os

from tinkex_actors.config import Config
from tinkex_actors.errors import TinkerError
from tinkex_actors.transport.blocking_call import call
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport

__all__ = ["get_tinker_token", "raise_if_tinker_not_accessible", "tinker_has_credentials"]

CHECK_MARGIN_S = 5.0
"""Beyond the request timeout, how long `raise_if_tinker_not_accessible` waits for the answer."""


def get_tinker_token() -> str | None:
    """The configured static key (`TINKER_API_KEY`, else the stored default), or None.

    A local lookup: `TINKER_CREDENTIAL_CMD` is not run. A malformed key gives None.
    """
    key = os.environ.get("TINKER_API_KEY") or None
    environ = {"TINKER_API_KEY": key} if key else {}
    try:
        return Config.resolve(environ=environ).api_key
    except (OSError, TinkerError, ValueError):
        return None


def tinker_has_credentials() -> bool:
    """Whether a credential is configured (a set `TINKER_CREDENTIAL_CMD` counts, unrun)."""
    return bool(os.environ.get("TINKER_CREDENTIAL_CMD")) or get_tinker_token() is not None


def raise_if_tinker_not_accessible() -> None:
    """Ask the configured server for its capabilities once; raise unless it answers.

    Raises TinkerError when no key is configured, AuthenticationError when the key is
    refused, BillingError on a 402, APIConnectionError when the server cannot be reached.
    The request is not retried, so a failure surfaces at once rather than as a wait.
    """
    try:
        config = Config.resolve(max_retries=0)
    except TinkerError:
        raise
    except (OSError, ValueError) as exc:
        raise TinkerError(str(exc)) from exc
    if config.api_key is None:
        raise TinkerError(
            "no Tinker credential: set TINKER_API_KEY, pass api_key, or log in with "
            "`tinker auth login` (TINKER_CREDENTIAL_CMD is not run by this client)"
        )
    with Transport(config) as transport:
        transport.start()
        call(
            transport,
            HttpRequest("GET", "get_server_capabilities", max_retries=0),
            config.timeout_s + CHECK_MARGIN_S,
        )
