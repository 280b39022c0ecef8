"""RestClient's newer official 0.38 calls against the embedded server's endpoints for them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.clients._recorder import recording
from tests.rest.conftest import WAIT_S, RecordingSleep, Seeder
from tinkex_actors import types
from tinkex_actors.config import Config
from tinkex_actors.errors import BadRequestError, ConflictError, NotFoundError
from tinkex_actors.local import LocalServer
from tinkex_actors.rest.admin_calls import TRACE_POLL_INTERVAL_S
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.transport import Transport


def open_session(server: LocalServer, **fields: Any) -> str:
    """A session made over HTTP with extra create_session fields (display_name, project_id)."""
    body = {"tags": [], "user_metadata": {}, "sdk_version": "t", "type": "create_session"}
    body.update(fields)
    return str(raw(server, "POST", "create_session", body).json()["session_id"])


def raw(server: LocalServer, method: str, route: str, body: Any = None, **params: Any) -> Any:
    """One request as any HTTP client would send it (no client-side checks)."""
    with Transport(Config(base_url=server.url, api_key=server.api_key, max_retries=0)) as transport:
        request = (
            HttpRequest.json(method, route, body, params=params or None)
            if body is not None
            else HttpRequest(method, route, params=params or None)
        )
        return transport.submit(request).result(WAIT_S)


def checkpoints_in(usage: types.BillingUsageResponse) -> int:
    """The checkpoint operations a billing report counts."""
    return sum(
        d.event_info.count
        for d in usage.data
        if isinstance(d.event_info, types.CheckpointBillingEvent)
    )


def hour(offset_h: int = 0) -> dt.datetime:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return now + dt.timedelta(hours=offset_h)


class TestStandaloneRestClient:
    def test_a_rest_client_needs_no_session(self, server: LocalServer, seed: Seeder) -> None:
        """RestClient(base_url=, api_key=) reads runs without any ServiceClient or session."""
        run_id, _ = seed.run(1)
        sessions_before = len(server.service.sessions)
        with RestClient(base_url=server.url, api_key=server.api_key) as rest:
            assert rest.get_training_run(run_id).result(WAIT_S).training_run_id == run_id
            assert rest.get_telemetry() is None
        assert len(server.service.sessions) == sessions_before


class TestCopyWeights:
    def test_a_copy_lands_in_the_project_with_the_same_weights(
        self, server: LocalServer, rest: RestClient, seed: Seeder
    ) -> None:
        """The copy is a new run of the project; its checkpoint keeps kind, name and base."""
        _, [path] = seed.run(1)
        copied = rest.copy_weights(path, "proj-a", ttl_seconds=3600).result(WAIT_S)
        assert copied != path and copied.endswith("/weights/step-0000")
        info = rest.get_weights_info_by_tinker_path(copied).result(WAIT_S)
        assert info.base_model == "tiny-byte-lm" and info.lora_rank == 4
        usage = rest.get_current_checkpoint_storage_usage("proj-a").result(WAIT_S)
        assert [(u.project_id, u.checkpoint_count) for u in usage.data] == [("proj-a", 1)]
        assert usage.data[0].size_bytes > 0

    def test_the_access_token_travels_in_a_header_not_the_body(
        self, server: LocalServer, rest: RestClient, seed: Seeder
    ) -> None:
        """weights_access_token is sent as X-Tinker-Weights-Access-Token only."""
        _, [path] = seed.run(1)
        with recording(server) as seen:
            rest.copy_weights(path, "proj-b", weights_access_token="tok-9").result(WAIT_S)
        [sent] = seen.to("copy_weights")
        assert sent.headers["x-tinker-weights-access-token"] == "tok-9"
        assert sent.body == {"source_path": path, "destination_project_id": "proj-b"}

    def test_bad_copies_are_refused_with_the_field_named(
        self, server: LocalServer, rest: RestClient, seed: Seeder, monkeypatch: Any
    ) -> None:
        """No destination, a short TTL, a missing source, a used slot: clear errors."""
        _, [path] = seed.run(1)
        monkeypatch.delenv("TINKER_PROJECT_ID", raising=False)
        with pytest.raises(ValueError, match="TINKER_PROJECT_ID"):
            rest.copy_weights(path)
        with pytest.raises(BadRequestError, match="ttl_seconds"):
            rest.copy_weights(path, "proj", ttl_seconds=60).result(WAIT_S)
        with pytest.raises(NotFoundError):
            rest.copy_weights(path.replace("step-0000", "nope"), "proj").result(WAIT_S)
        with pytest.raises(BadRequestError, match="destination_project_id"):
            raw(server, "POST", "copy_weights", {"source_path": path})
        session_id = open_session(server)
        slot = {"source_path": path, "session_id": session_id, "model_seq_id": 0}
        raw(server, "POST", "copy_weights", slot)
        with pytest.raises(ConflictError, match="next model_seq_id"):
            raw(server, "POST", "copy_weights", slot)

    def test_the_async_twin_gives_the_path(self, rest: RestClient, seed: Seeder) -> None:
        """`await copy_weights_async(...)` is the copy's tinker path."""
        _, [path] = seed.run(1)
        copied = asyncio.run(rest.copy_weights_async(path, "proj-c"))
        assert copied.startswith("tinker://copy-")


class TestAdminReports:
    def test_the_audit_log_lists_saves_copies_and_project_moves(
        self, server: LocalServer, rest: RestClient, seed: Seeder
    ) -> None:
        """Checkpoint events and project events, filtered by kind and day, oldest first."""
        _, [path] = seed.run(1)
        copied = rest.copy_weights(path, "proj-audit").result(WAIT_S)
        session_id = open_session(server)
        rest.assign_session_project(session_id, "proj-audit").result(WAIT_S)
        everything = rest.get_audit_log().result(WAIT_S).entries
        events = {(e.event, e.tinker_path) for e in everything}
        assert ("checkpoint_create", path) in events and ("checkpoint_copy", copied) in events
        assert [e.timestamp for e in everything] == sorted(e.timestamp for e in everything)
        projects = rest.get_audit_log("projects").result(WAIT_S).entries
        assert {e.event for e in projects} == {"session_project_set"}
        assert projects[-1].event_details["session_id"] == session_id
        yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        assert rest.get_audit_log(day=yesterday).result(WAIT_S).entries == []
        with pytest.raises(ValueError, match="event_type"):
            rest.get_audit_log("everything")  # type: ignore[arg-type]
        with pytest.raises(BadRequestError, match="event_type"):
            raw(server, "GET", "audit", event_type="everything")

    def test_billing_usage_counts_checkpoints_per_hour(
        self, server: LocalServer, rest: RestClient, seed: Seeder
    ) -> None:
        """Checkpoints saved this hour show up as one checkpoint bucket; bad windows are 400."""
        before = rest.get_billing_usage(hour(0), hour(1)).result(WAIT_S)
        seed.run(2)
        after = rest.get_billing_usage(hour(0), hour(1).isoformat()).result(WAIT_S)
        assert checkpoints_in(after) == checkpoints_in(before) + 2
        assert all(d.bucket_start == hour(0) for d in after.data)
        with pytest.raises(BadRequestError, match="hour boundary"):
            rest.get_billing_usage(hour(0) + dt.timedelta(minutes=5), hour(1)).result(WAIT_S)
        with pytest.raises(BadRequestError, match="14 days"):
            rest.get_billing_usage(hour(-24 * 15), hour(0)).result(WAIT_S)
        with pytest.raises(BadRequestError, match="future"):
            rest.get_billing_usage(hour(2), hour(3)).result(WAIT_S)
        with pytest.raises(ValueError, match="ISO 8601"):
            rest.get_billing_usage("yesterday", hour(0))

    def test_storage_usage_groups_by_project(
        self, server: LocalServer, rest: RestClient, seed: Seeder
    ) -> None:
        """Every project's checkpoint count and bytes; one project when asked."""
        _, paths = seed.run(2)
        for p in paths:
            rest.copy_weights(p, "proj-usage").result(WAIT_S)
        everything = rest.get_current_checkpoint_storage_usage().result(WAIT_S).data
        assert "proj-usage" in {u.project_id for u in everything}
        [one] = asyncio.run(rest.get_current_checkpoint_storage_usage_async("proj-usage")).data
        assert one.checkpoint_count == 2 and one.size_gigabytes == one.size_bytes / 1e9


class TestSessions:
    def test_search_finds_by_name_metadata_status_and_pages_with_a_cursor(
        self, server: LocalServer, rest: RestClient
    ) -> None:
        """display_name words, user_metadata pairs and statuses filter; cursors page."""
        tag = f"sweep-{len(server.service.sessions)}"
        ids = [
            open_session(server, display_name=f"{tag} run {i}", user_metadata={"i": str(i)})
            for i in range(3)
        ]
        raw(server, "POST", f"sessions/{ids[0]}/finish", {"reason": {"type": "success"}})
        found = rest.search_sessions(types.SessionSearchRequest(display_name=tag)).result(WAIT_S)
        assert [s.session_id for s in found.sessions] == ids[::-1]
        assert found.sessions[0].display_name == f"{tag} run 2"
        by_meta = types.SessionSearchRequest(display_name=tag, user_metadata={"i": "1"})
        assert [s.session_id for s in rest.search_sessions(by_meta).result(WAIT_S).sessions] == [
            ids[1]
        ]
        finished = types.SessionSearchRequest(
            display_name=tag, statuses=[types.ClientFinishedSessionStatusQuery(reasons=["success"])]
        )
        assert [s.session_id for s in rest.search_sessions(finished).result(WAIT_S).sessions] == [
            ids[0]
        ]
        pages: list[str] = []
        request = types.SessionSearchRequest(display_name=tag, limit=2)
        while True:
            page = rest.search_sessions(request).result(WAIT_S)
            pages.extend(s.session_id for s in page.sessions)
            if page.next_cursor is None:
                break
            request = types.SessionSearchRequest(
                display_name=tag, limit=2, cursor=page.next_cursor
            )
        assert pages == ids[::-1]
        with pytest.raises(BadRequestError, match="limit"):
            raw(server, "POST", "sessions/search", {"limit": 0})

    def test_assign_session_project_moves_a_session(
        self, server: LocalServer, rest: RestClient
    ) -> None:
        """After the move a search by project finds it; bad input is refused."""
        session_id = open_session(server, project_id="proj-old")
        asyncio.run(rest.assign_session_project_async(session_id, "proj-new"))
        moved = types.SessionSearchRequest(session_id=session_id, project_ids=["proj-new"])
        [summary] = rest.search_sessions(moved).result(WAIT_S).sessions
        assert summary.project_id == "proj-new"
        with pytest.raises(NotFoundError):
            rest.assign_session_project("s-unknown", "proj").result(WAIT_S)
        with pytest.raises(BadRequestError, match="project_id"):
            raw(server, "PUT", f"sessions/{session_id}/project", {"project": "x"})
        with pytest.raises(ValueError, match="project_id"):
            rest.assign_session_project(session_id, "a/b")

    def test_a_session_trace_is_built_then_downloaded(
        self, server: LocalServer, make_client: Callable[..., RestClient]
    ) -> None:
        """The first ask is pending (one wait of the poll interval), then a URL to the trace."""
        sleep = RecordingSleep()
        rest = make_client(sleep=sleep)
        session_id = open_session(server)
        url = rest.export_session_trace(session_id).result(WAIT_S)
        assert sleep.delays == [TRACE_POLL_INTERVAL_S]
        with urllib.request.urlopen(url, timeout=WAIT_S) as answer:
            trace = json.loads(answer.read())
        assert trace["traceEvents"][0]["args"] == {"session_id": session_id}
        again = asyncio.run(rest.export_session_trace_async(session_id))
        # The same trace; its signed query may carry a later expiry (signed a second later).
        assert again.split("?")[0] == url.split("?")[0]
        with pytest.raises(NotFoundError):
            rest.export_session_trace("s-unknown").result(WAIT_S)
