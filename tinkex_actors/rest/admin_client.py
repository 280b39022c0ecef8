"""`AdminClient`: the official 0.38 organisation reports (audit log, billing, storage).

Official `tinker.AdminClient` holds the calls that need an admin or billing-admin role,
with the same credentials as `RestClient`. Ours is a thin front over a `RestClient`, which
already speaks the three endpoints (`GET audit`, `GET billing/usage/events`,
`GET billing/usage/checkpoints/current`); the embedded server answers them from its own
checkpoints. Each call returns a `Future` at once (`.result()` or `await`); the `_async`
twins are deprecated officially and warn with FutureWarning here too.
"""

from __future__ import annotations

import datetime as dt
import warnings
from types import TracebackType
from typing import TYPE_CHECKING

from tinkex_actors import types
from tinkex_actors.rest.admin_calls import AuditEventType
from tinkex_actors.rest.rest_client import RestClient

if TYPE_CHECKING:
    from tinkex_actors.clients.extras import Telemetry
    from tinkex_actors.futures.future import Future

__all__ = ["AdminClient"]


def _deprecated_twin(name: str) -> None:
    warnings.warn(
        f"AdminClient.{name}_async() is deprecated, as in the official SDK; use "
        f"`await AdminClient.{name}(...)`: its Future can be awaited",
        FutureWarning,
        stacklevel=3,
    )


class AdminClient:
    """Organisation reports that need an admin role: audit log, billing usage, storage.

    `AdminClient(base_url=..., api_key=...)` (else `TINKER_BASE_URL` / `TINKER_API_KEY` /
    the stored login) opens its own connections and closes them in `close()` or on leaving
    a `with` block. `AdminClient(rest_client)` borrows an open `RestClient` instead (the
    official `_holder` slot) and leaves it open.
    """

    def __init__(
        self,
        _holder: RestClient | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if _holder is not None and (base_url, api_key) != (None, None):
            raise ValueError(
                "AdminClient takes either a RestClient or base_url/api_key, not both: "
                "the RestClient already carries its own server and credentials"
            )
        if _holder is not None and not isinstance(_holder, RestClient):
            raise TypeError(
                f"AdminClient's first argument is a {type(_holder).__name__}; pass a "
                "RestClient, or use the base_url=/api_key= keywords"
            )
        self._owns_rest = _holder is None
        self._rest = (
            _holder if _holder is not None else RestClient(api_key=api_key, base_url=base_url)
        )

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the connections this client opened (a borrowed RestClient stays open)."""
        if self._owns_rest:
            self._rest.close(timeout_s)

    def __enter__(self) -> AdminClient:
        """Use as a context manager: closes on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()

    def get_telemetry(self) -> Telemetry | None:
        """None: an AdminClient has no session to report telemetry into."""
        return None

    def get_audit_log(
        self, event_type: AuditEventType = "all", day: dt.date | None = None
    ) -> Future[types.AuditLogResponse]:
        """The organisation's audit events of one UTC day (default: all days), oldest first."""
        return self._rest.get_audit_log(event_type, day)

    async def get_audit_log_async(
        self, event_type: AuditEventType = "all", day: dt.date | None = None
    ) -> types.AuditLogResponse:
        """Deprecated (FutureWarning): `await admin.get_audit_log(...)` instead."""
        _deprecated_twin("get_audit_log")
        return await self.get_audit_log(event_type, day)

    def get_billing_usage(
        self, starting_on: dt.datetime | str, ending_before: dt.datetime | str
    ) -> Future[types.BillingUsageResponse]:
        """Hourly usage in `[starting_on, ending_before)`: whole UTC hours, at most 14 days."""
        return self._rest.get_billing_usage(starting_on, ending_before)

    async def get_billing_usage_async(
        self, starting_on: dt.datetime | str, ending_before: dt.datetime | str
    ) -> types.BillingUsageResponse:
        """Deprecated (FutureWarning): `await admin.get_billing_usage(...)` instead."""
        _deprecated_twin("get_billing_usage")
        return await self.get_billing_usage(starting_on, ending_before)

    def get_current_checkpoint_storage_usage(
        self, project_id: str | None = None
    ) -> Future[types.CurrentCheckpointStorageUsageResponse]:
        """Checkpoint count, size and projected cost now, by project (one project if given)."""
        return self._rest.get_current_checkpoint_storage_usage(project_id)

    async def get_current_checkpoint_storage_usage_async(
        self, project_id: str | None = None
    ) -> types.CurrentCheckpointStorageUsageResponse:
        """Deprecated (FutureWarning): `await admin.get_current_checkpoint_storage_usage(...)`."""
        _deprecated_twin("get_current_checkpoint_storage_usage")
        return await self.get_current_checkpoint_storage_usage(project_id)
