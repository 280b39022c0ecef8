"""`AdminClient` (official 0.38 organisation reports) against the embedded server."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

import tinkex_actors
from tests.rest.conftest import WAIT_S, Seeder
from tinkex_actors import AdminClient, types
from tinkex_actors.errors import AuthenticationError, BadRequestError
from tinkex_actors.lib.public_interfaces import admin_client
from tinkex_actors.local import LocalServer
from tinkex_actors.rest.rest_client import RestClient


def hour(offset_h: int = 0) -> dt.datetime:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return now + dt.timedelta(hours=offset_h)


@pytest.fixture
def admin(server: LocalServer) -> Iterator[AdminClient]:
    """An AdminClient on its own connections; fails the test if it leaves a thread behind."""
    before = set(threading.enumerate())
    with AdminClient(base_url=server.url, api_key=server.api_key) as client:
        yield client
    leaked = [
        t
        for t in set(threading.enumerate()) - before
        if t.is_alive() and t.name.startswith(("tinkex-rest", "tinkex-transport"))
    ]
    assert not leaked, f"threads left behind: {leaked}"


def status_of(server: LocalServer, route: str, key: str | None) -> int:
    """The HTTP status of a raw GET on `/api/v1/<route>` (with `key` as X-API-Key if given)."""
    request = urllib.request.Request(f"{server.url}/api/v1/{route}")
    if key is not None:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


class TestAdminReports:
    def test_the_reports_count_a_new_checkpoint(self, admin: AdminClient, seed: Seeder) -> None:
        """A saved checkpoint shows in the audit log, this hour's billing and storage usage."""
        before = admin.get_current_checkpoint_storage_usage().result(WAIT_S)
        _, [path] = seed.run(1)
        audit = admin.get_audit_log("checkpoints").result(WAIT_S)
        assert path in [e.tinker_path for e in audit.entries]
        usage = admin.get_billing_usage(hour(0), hour(1).isoformat()).result(WAIT_S)
        assert (
            sum(
                d.event_info.count
                for d in usage.data
                if isinstance(d.event_info, types.CheckpointBillingEvent)
            )
            >= 1
        )
        after = admin.get_current_checkpoint_storage_usage().result(WAIT_S)
        assert (
            sum(u.checkpoint_count for u in after.data)
            == sum(u.checkpoint_count for u in before.data) + 1
        )

    def test_futures_await_and_the_async_twins_warn_as_deprecated(
        self, admin: AdminClient, seed: Seeder
    ) -> None:
        """`await admin.get_audit_log()` works; get_audit_log_async warns FutureWarning."""
        _, [path] = seed.run(1)

        async def run() -> tuple[types.AuditLogResponse, types.AuditLogResponse]:
            awaited = await admin.get_audit_log()
            with pytest.warns(FutureWarning, match="get_audit_log"):
                twin = await admin.get_audit_log_async()
            return awaited, twin

        awaited, twin = asyncio.run(run())
        assert path in [e.tinker_path for e in awaited.entries]
        assert path in [e.tinker_path for e in twin.entries]

    def test_the_server_refuses_a_bad_window_with_a_400(self, admin: AdminClient) -> None:
        """A window longer than 14 days is a BadRequestError from the server."""
        with pytest.raises(BadRequestError, match="14 days"):
            admin.get_billing_usage(hour(-24 * 15), hour(0)).result(WAIT_S)

    def test_a_wrong_key_is_an_authentication_error(self, server: LocalServer) -> None:
        """An AdminClient with a key the server does not know gets AuthenticationError."""
        with (
            AdminClient(base_url=server.url, api_key="tml-not-this-servers-key") as admin,
            pytest.raises(AuthenticationError),
        ):
            admin.get_audit_log().result(WAIT_S)


class TestAdminClientShape:
    def test_a_borrowed_rest_client_stays_open(self, server: LocalServer) -> None:
        """AdminClient(rest) uses the RestClient's connections and leaves it open on close."""
        with RestClient(base_url=server.url, api_key=server.api_key) as rest:
            AdminClient(rest).close()
            assert isinstance(rest.get_audit_log().result(WAIT_S), types.AuditLogResponse)
            with pytest.raises(ValueError, match="not both"):
                AdminClient(rest, base_url=server.url)

    def test_the_official_import_paths_give_the_class(self) -> None:
        """tinker.AdminClient and public_interfaces.admin_client.AdminClient are ours."""
        assert admin_client.AdminClient is AdminClient is tinkex_actors.AdminClient
        with RestClient(base_url="http://127.0.0.1:9", api_key="tml-x") as rest:
            assert AdminClient(rest).get_telemetry() is None


class TestAdminEndpointsOnTheWire:
    @pytest.mark.parametrize(
        "route",
        ["audit", "billing/usage/events", "billing/usage/checkpoints/current"],
    )
    def test_every_admin_endpoint_needs_the_servers_key(
        self, server: LocalServer, route: str
    ) -> None:
        """No key or a wrong key is a 401 on each admin route; nothing leaks past it."""
        assert status_of(server, route, None) == 401
        assert status_of(server, route, "tml-wrong") == 401

    @pytest.mark.parametrize(
        "route",
        [
            "audit?event_type=everything",
            "audit?day=yesterday",
            "billing/usage/events",
            "billing/usage/events?starting_on=x&ending_before=y",
        ],
    )
    def test_bad_queries_are_400_never_500(self, server: LocalServer, route: str) -> None:
        """Malformed admin queries with the right key get a 4xx, not a server error."""
        assert 400 <= status_of(server, route, server.api_key) < 500
