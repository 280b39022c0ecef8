"""Transport against a real HTTP server on 127.0.0.1: headers, retries, failures, lifecycle."""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import structlog

from tests.transport._server import Drop, Hang, Reply, ScriptedServer, json_reply
from tests.transport.conftest import SECRET_KEY, RecordingSleep
from tinkex_actors import errors
from tinkex_actors.config import Config, PoolKind, PoolLimits
from tinkex_actors.transport.messages import Headers, HttpRequest, HttpResponse
from tinkex_actors.transport.transport import BARE_400_RETRIES, Transport

WAIT_S = 5.0
ROOT = Path(__file__).resolve().parent.parent.parent
MakeTransport = Callable[..., Transport]


def post(path: str = "create_model", **options: object) -> HttpRequest:
    return HttpRequest.json("POST", path, {"base_model": "tiny"}, **options)  # type: ignore[arg-type]


def send(transport: Transport, request: HttpRequest) -> HttpResponse:
    return transport.submit(request).result(WAIT_S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestOfficialHeaders:
    def test_every_request_carries_the_key_and_the_stainless_family(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """x-api-key, x-stainless-*, User-Agent and Accept are on every request."""
        send(make_transport(), post())
        headers = server.wait_for(1)[0].headers
        assert headers["x-api-key"] == SECRET_KEY
        assert headers["user-agent"].startswith("TinkexActors/Python ")
        assert headers["accept"] == "application/json"
        assert headers["content-type"] == "application/json"
        assert headers["x-stainless-retry-count"] == "0"
        assert headers["x-stainless-read-timeout"] == "60"
        for name in ("package-version", "os", "arch", "runtime", "runtime-version"):
            assert headers[f"x-stainless-{name}"]

    def test_the_path_is_joined_under_api_v1_with_query_params(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A relative route lands under /api/v1/ and params become the query string."""
        send(make_transport(), HttpRequest("GET", "training_runs", params={"limit": 5}))
        received = server.wait_for(1)[0]
        assert (received.method, received.path) == ("GET", "/api/v1/training_runs?limit=5")

    def test_a_post_gets_an_idempotency_key_and_a_get_does_not(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Non-GET calls carry x-idempotency-key; GETs do not, as officially."""
        transport = make_transport()
        send(transport, post())
        send(transport, HttpRequest("GET", "sessions"))
        first, second = server.wait_for(2)
        assert first.headers["x-idempotency-key"]
        assert "x-idempotency-key" not in second.headers

    def test_a_post_marked_idempotent_sends_no_key(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """idempotent=True leaves x-idempotency-key out of a POST."""
        send(make_transport(), post(idempotent=True))
        assert "x-idempotency-key" not in server.wait_for(1)[0].headers

    def test_each_call_gets_a_new_idempotency_key(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Two calls never share a key."""
        transport = make_transport()
        send(transport, post())
        send(transport, post())
        first, second = server.wait_for(2)
        assert first.headers["x-idempotency-key"] != second.headers["x-idempotency-key"]

    def test_protobuf_bodies_keep_their_content_type_and_encoding(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Binary bodies go out byte for byte with their own headers."""
        body = bytes(range(256))
        request = HttpRequest(
            "POST",
            "forward_backward",
            body,
            "application/x-protobuf",
            content_encoding="zstd",
            headers={"x-tinker-request-type": "ForwardBackward"},
            pool=PoolKind.TRAIN,
            timeout_s=45,
        )
        send(make_transport(), request)
        received = server.wait_for(1)[0]
        assert received.body == body
        assert received.headers["content-type"] == "application/x-protobuf"
        assert received.headers["content-encoding"] == "zstd"
        assert received.headers["x-tinker-request-type"] == "ForwardBackward"
        assert received.headers["x-stainless-read-timeout"] == "45"

    def test_default_headers_from_config_are_sent(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Config.default_headers reach the server."""
        config = Config(api_key=SECRET_KEY, base_url=server.url, default_headers={"X-Team": "a"})
        send(make_transport(config), post())
        assert server.wait_for(1)[0].headers["x-team"] == "a"

    def test_the_response_exposes_status_headers_and_json(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """HttpResponse has the status, case-insensitive headers and the decoded body."""
        server.script(json_reply(200, {"model_id": "m-1"}, **{"X-Request-Id": "r-7"}))
        response = send(make_transport(), post())
        assert response.status == 200
        assert response.headers["x-request-id"] == "r-7"
        assert response.headers["X-REQUEST-ID"] == "r-7"
        assert response.json() == {"model_id": "m-1"}
        assert response.retries_taken == 0


class TestHttpRetries:
    @pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
    def test_retryable_statuses_are_retried_until_success(
        self,
        status: int,
        server: ScriptedServer,
        make_transport: MakeTransport,
        sleeper: RecordingSleep,
    ) -> None:
        """408, 409, 429 and 5xx are retried; the call then succeeds."""
        server.script(Reply(status), Reply(status))
        response = send(make_transport(), post())
        assert response.status == 200
        assert response.retries_taken == 2
        assert len(server.wait_for(3)) == 3
        assert sleeper.delays == [0.5, 1.0]

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, errors.BadRequestError),
            (401, errors.AuthenticationError),
            (404, errors.NotFoundError),
            (422, errors.UnprocessableEntityError),
        ],
    )
    def test_user_errors_fail_at_once_with_their_type(
        self, status: int, cls: type, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Other 4xx are not retried and raise the typed error."""
        server.script(json_reply(status, {"detail": "bad field"}))
        with pytest.raises(cls, match=f"Error code: {status}") as info:
            send(make_transport(), post())
        assert info.value.body == {"detail": "bad field"}
        assert len(server.received) == 1

    def test_the_idempotency_key_is_reused_on_every_retry(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """All attempts of one call share its key; the retry count goes up."""
        server.script(Reply(503), Drop(), Reply(429))
        send(make_transport(), post())
        attempts = server.wait_for(4)
        assert len({a.headers["x-idempotency-key"] for a in attempts}) == 1
        assert [a.headers["x-stainless-retry-count"] for a in attempts] == ["0", "1", "2", "3"]

    def test_x_should_retry_false_stops_a_retryable_status(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A 503 with x-should-retry: false fails at once."""
        server.script(Reply(503, b"{}", {"x-should-retry": "false"}))
        with pytest.raises(errors.InternalServerError):
            send(make_transport(), post())
        assert len(server.received) == 1

    def test_x_should_retry_true_retries_a_user_error(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A 400 with x-should-retry: true is retried."""
        server.script(Reply(400, b"{}", {"x-should-retry": "true"}))
        assert send(make_transport(), post()).retries_taken == 1

    def test_retry_after_seconds_is_obeyed(
        self, server: ScriptedServer, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """Retry-After: 2 makes the transport wait 2 s."""
        server.script(Reply(429, b"{}", {"Retry-After": "2"}))
        send(make_transport(), post())
        assert sleeper.delays == [2.0]

    def test_retry_after_ms_is_obeyed(
        self, server: ScriptedServer, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """retry-after-ms: 250 makes the transport wait 0.25 s."""
        server.script(Reply(503, b"{}", {"retry-after-ms": "250"}))
        send(make_transport(), post())
        assert sleeper.delays == [0.25]

    def test_retry_after_as_a_date_is_obeyed(
        self, server: ScriptedServer, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """Retry-After as an HTTP date waits until that date on the injected clock."""
        now = 1_800_000_000.0
        date = email.utils.formatdate(now + 5, usegmt=True)
        server.script(Reply(429, b"{}", {"Retry-After": date}))
        send(make_transport(now=lambda: now), post())
        assert sleeper.delays == [pytest.approx(5.0)]

    def test_a_too_long_retry_after_falls_back_to_backoff(
        self, server: ScriptedServer, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """Retry-After above 60 s is replaced by our backoff."""
        server.script(Reply(429, b"{}", {"Retry-After": "3600"}))
        send(make_transport(), post())
        assert sleeper.delays == [0.5]

    def test_the_last_error_is_raised_once_retries_run_out(
        self, server: ScriptedServer, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """With max_retries=2, three 503s raise InternalServerError."""
        server.script(Reply(503), Reply(503), Reply(503, b'{"detail": "down"}'))
        with pytest.raises(errors.InternalServerError, match="down"):
            send(make_transport(), post(max_retries=2))
        assert len(server.received) == 3
        assert len(sleeper.delays) == 2

    def test_the_default_is_ten_retries_with_capped_backoff(
        self, server: ScriptedServer, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """The official default: 11 attempts, delays 0.5 doubling to the 10 s cap."""
        server.script(*[Reply(500)] * 11)
        with pytest.raises(errors.InternalServerError):
            send(make_transport(), post())
        assert len(server.received) == 11
        assert sleeper.delays == [0.5, 1, 2, 4, 8, 10, 10, 10, 10, 10]

    def test_max_retries_zero_sends_once(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """max_retries=0 disables retries."""
        server.script(Reply(503))
        with pytest.raises(errors.InternalServerError):
            send(make_transport(), post(max_retries=0))
        assert len(server.received) == 1

    def test_410_fails_with_promise_expired(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A 410 is not retried at the HTTP level: the caller must resubmit."""
        server.script(Reply(410))
        with pytest.raises(errors.PromiseExpiredError, match="resubmit"):
            send(make_transport(), post("retrieve_future"))


class TestBare400:
    def test_a_bodiless_400_is_a_connection_error_on_fresh_connections(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A bare 400 (a proxy refusing) raises a retryable APIConnectionError and reconnects."""
        server.script(Reply(400, b""))
        transport = make_transport()
        with pytest.raises(errors.APIConnectionError, match="Bare HTTP 400") as info:
            send(transport, post())
        assert errors.is_retryable(info.value)
        send(transport, post())
        first, second = server.wait_for(2)
        assert first.client_port != second.client_port

    def test_a_400_with_a_body_is_a_bad_request(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A 400 that explains itself is the user's error, not a connection problem."""
        server.script(json_reply(400, {"detail": "rank must be > 0"}))
        with pytest.raises(errors.BadRequestError, match="rank must be"):
            send(make_transport(), post())

    def test_bare_400s_become_bad_requests_once_the_budget_is_spent(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """After 16 bare 400s without a success in between, the 17th is a BadRequestError."""
        transport = make_transport()
        server.script(*[Reply(400, b"")] * (BARE_400_RETRIES + 1))
        for _ in range(BARE_400_RETRIES):
            with pytest.raises(errors.APIConnectionError):
                send(transport, post())
        with pytest.raises(errors.BadRequestError):
            send(transport, post())


class TestConnectionFailures:
    def test_connection_refused_raises_a_connection_error_after_retries(
        self, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """Nothing listening: retried, then APIConnectionError naming the fix."""
        config = Config(api_key=SECRET_KEY, base_url=f"http://127.0.0.1:{free_port()}")
        transport = make_transport(config)
        with pytest.raises(errors.APIConnectionError, match="check base_url") as info:
            send(transport, post(max_retries=3))
        assert not isinstance(info.value, errors.APITimeoutError)
        assert sleeper.delays == [0.5, 1.0, 2.0]

    def test_a_dropped_connection_is_retried(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """The server closing without an answer is retried on a new connection."""
        server.script(Drop(), Drop())
        assert send(make_transport(), post()).retries_taken == 2

    def test_a_timeout_raises_api_timeout_error(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """No answer within timeout_s raises APITimeoutError."""
        server.script(Hang())
        with pytest.raises(errors.APITimeoutError, match="timed out"):
            send(make_transport(), post(timeout_s=0.2, max_retries=0))

    def test_a_timeout_is_retried(
        self, server: ScriptedServer, make_transport: MakeTransport, sleeper: RecordingSleep
    ) -> None:
        """A timed-out attempt is retried, and the retry can succeed."""
        server.script(Hang())
        response = send(make_transport(), post(timeout_s=0.2))
        assert response.retries_taken == 1
        assert sleeper.delays == [0.5]


class TestLogging:
    def test_every_retry_is_logged_with_stable_fields(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Each retry emits http_retry with method, path, pool, attempt and delay."""
        server.script(Reply(503), Drop())
        with structlog.testing.capture_logs() as logs:
            send(make_transport(), post())
        retries = [entry for entry in logs if entry["event"] == "http_retry"]
        assert [(r["attempt"], r["status"]) for r in retries] == [(1, 503), (2, None)]
        assert retries[0]["error"] is None
        # The name of the dropped-connection error depends on the HTTP layer underneath.
        assert retries[1]["error"] in ("RemoteProtocolError", "ServerDisconnectedError")
        assert retries[0]["path"] == "/api/v1/create_model"
        assert retries[0]["pool"] == "session"
        assert retries[0]["delay_s"] == 0.5

    def test_a_deprecation_note_is_logged_once_at_its_level(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """x-deprecation-note is logged (error level when asked), once per distinct note."""
        note = {"x-deprecation-note": "upgrade soon", "x-deprecation-level": "error"}
        server.script(Reply(200, b"{}", note), Reply(200, b"{}", note))
        transport = make_transport()
        with structlog.testing.capture_logs() as logs:
            send(transport, post())
            send(transport, post())
        notes = [e for e in logs if e["event"] == "server_deprecation_note"]
        assert [(e["note"], e["log_level"]) for e in notes] == [("upgrade soon", "error")]

    def test_no_log_entry_holds_the_key_or_the_body(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Neither the API key nor the request body appears in any log entry."""
        body = b'{"prompt": "private user text"}'
        server.script(Reply(503), Reply(429), Reply(400))
        with structlog.testing.capture_logs() as logs, pytest.raises(errors.BadRequestError):
            send(make_transport(), HttpRequest("POST", "sample", body))
        assert logs
        dumped = repr(logs)
        assert SECRET_KEY not in dumped
        assert "private user text" not in dumped

    def test_reprs_hold_no_secret(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Transport and Config reprs never show the key."""
        transport = make_transport()
        assert SECRET_KEY not in repr(transport)
        assert SECRET_KEY not in repr(transport.config)
        server.script(Reply(401))
        with pytest.raises(errors.AuthenticationError) as info:
            send(transport, post())
        assert SECRET_KEY not in repr(info.value)
        assert SECRET_KEY not in str(info.value)


class TestLifecycle:
    def test_close_leaves_no_thread_behind(self, server: ScriptedServer) -> None:
        """After close() the loop thread is gone and the call is idempotent."""
        before = set(threading.enumerate())
        transport = Transport(Config(api_key=SECRET_KEY, base_url=server.url))
        send(transport, post())
        transport.close(timeout_s=WAIT_S)
        transport.close(timeout_s=WAIT_S)
        # The test server's handler thread ends once it has read the closed connection.
        for thread in set(threading.enumerate()) - before:
            thread.join(WAIT_S)
        assert set(threading.enumerate()) <= before

    def test_the_loop_thread_is_not_a_daemon(self, make_transport: MakeTransport) -> None:
        """The I/O thread is joined, not abandoned, at exit."""
        make_transport()
        threads = [t for t in threading.enumerate() if t.name == "tinkex-transport"]
        assert threads
        assert not any(t.daemon for t in threads)

    def test_submit_after_close_fails_the_future(self, make_transport: MakeTransport) -> None:
        """A closed transport returns a failed future instead of blocking."""
        transport = make_transport()
        transport.close()
        with pytest.raises(errors.TransportClosedError, match="create a new one"):
            transport.submit(post()).result(WAIT_S)

    def test_close_fails_requests_in_flight(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A request still waiting on the server fails with TransportClosedError."""
        server.script(Hang())
        transport = make_transport()
        future = transport.submit(post())
        assert server.hanging.wait(WAIT_S)
        transport.close(timeout_s=WAIT_S)
        with pytest.raises(errors.TransportClosedError, match="resubmit"):
            future.result(WAIT_S)

    def test_cancelling_the_future_cancels_the_request(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """future.cancel() ends the request; the transport keeps working."""
        server.script(Hang())
        transport = make_transport()
        future = transport.submit(post())
        assert server.hanging.wait(WAIT_S)
        assert future.cancel()
        server.released.set()
        assert send(transport, post()).status == 200

    def test_submit_returns_before_the_answer(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """submit() does not wait for I/O: the future is pending while the server hangs."""
        server.script(Hang())
        future = make_transport().submit(post())
        assert server.hanging.wait(WAIT_S)
        assert not future.done()
        server.released.set()
        assert future.result(WAIT_S).status == 200

    def test_many_requests_in_flight_complete(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """Fifty concurrent submits all complete."""
        transport = make_transport()
        futures = [transport.submit(post()) for _ in range(50)]
        done, _ = concurrent.futures.wait(futures, WAIT_S)
        assert len(done) == 50
        assert all(f.result().status == 200 for f in futures)

    def test_the_async_variant_works_from_another_event_loop(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """await transport.request(...) works from a coroutine on a foreign loop."""
        transport = make_transport()

        async def call() -> int:
            response = await asyncio.wait_for(transport.request(post()), WAIT_S)
            return response.status

        assert asyncio.run(call()) == 200

    def test_the_async_variant_runs_inline_on_the_transport_loop(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A coroutine on the transport's own loop awaits the request directly."""
        transport = make_transport()
        loop = transport._runner.loop
        assert loop is not None

        async def call() -> int:
            return (await transport.request(post())).status

        assert asyncio.run_coroutine_threadsafe(call(), loop).result(WAIT_S) == 200

    def test_the_context_manager_closes(self, server: ScriptedServer) -> None:
        """Leaving the with-block closes the transport."""
        with Transport(Config(api_key=SECRET_KEY, base_url=server.url)) as transport:
            send(transport, post())
        assert not transport.is_running
        assert not any(t.name == "tinkex-transport" and t.is_alive() for t in threading.enumerate())

    def test_a_forgotten_close_does_not_hang_interpreter_exit(self) -> None:
        """A process that never closes its Transport still exits (the loop stops itself)."""
        code = (
            "from tinkex_actors.config import Config\n"
            "from tinkex_actors.transport.transport import Transport\n"
            "Transport(Config(base_url='http://127.0.0.1:9'))\n"
            "print('left without close')\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT
        )
        assert proc.returncode == 0, proc.stderr
        assert "left without close" in proc.stdout

    def test_a_remote_url_without_a_key_is_refused(self) -> None:
        """Talking to a non-loopback service without a key fails before any thread starts."""
        with pytest.raises(errors.ConfigurationError, match="TINKER_API_KEY"):
            Transport(Config(base_url="https://example.invalid"), start=False)

    def test_a_loopback_url_without_a_key_sends_no_key_header(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """The embedded server needs no key; none is sent."""
        send(make_transport(Config(base_url=server.url)), post())
        assert "x-api-key" not in server.wait_for(1)[0].headers


class TestPools:
    def test_each_pool_kind_applies_its_own_connection_limit(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """A full sampling pool holds its next request back; other pools still flow."""
        config = Config(
            api_key=SECRET_KEY,
            base_url=server.url,
            pool_limits={PoolKind.SAMPLE: PoolLimits(max_connections=1)},
        )
        transport = make_transport(config)
        server.script(Hang())
        first = transport.submit(post("asample", pool=PoolKind.SAMPLE))
        assert server.hanging.wait(WAIT_S)
        second = transport.submit(post("asample", pool=PoolKind.SAMPLE))
        other = transport.submit(post("session_heartbeat", pool=PoolKind.SESSION))
        assert other.result(WAIT_S).status == 200
        assert [r.path for r in server.received] == ["/api/v1/asample", "/api/v1/session_heartbeat"]
        assert not second.done()
        server.released.set()
        assert first.result(WAIT_S).status == 200
        assert second.result(WAIT_S).status == 200


class TestTransportFactory:
    def test_the_factory_builds_one_transport_per_pool_kind(
        self, server: ScriptedServer, make_transport: MakeTransport
    ) -> None:
        """transport_factory is called once per pool kind used, with its limits."""
        calls: list[tuple[PoolKind, PoolLimits]] = []

        def factory(kind: PoolKind, limits: PoolLimits) -> httpx.AsyncBaseTransport:
            calls.append((kind, limits))
            return httpx.AsyncHTTPTransport()

        transport = make_transport(transport_factory=factory)
        send(transport, post(pool=PoolKind.SAMPLE))
        send(transport, post(pool=PoolKind.SAMPLE))
        send(transport, post(pool=PoolKind.TELEMETRY))
        assert calls == [(PoolKind.SAMPLE, PoolLimits()), (PoolKind.TELEMETRY, PoolLimits())]


class TestHttpRequestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"method": "FETCH", "path": "x"}, "HttpRequest.method 'FETCH'"),
            ({"method": "POST", "path": "http://evil/x"}, "is a URL"),
            ({"method": "POST", "path": "/admin"}, "not under /api/v1/"),
            ({"method": "POST", "path": ""}, "non-empty"),
            ({"method": "POST", "path": "x", "body": "text"}, "body must be bytes"),
            ({"method": "POST", "path": "x", "timeout_s": 0}, "timeout_s must be > 0"),
            ({"method": "POST", "path": "x", "max_retries": -1}, "max_retries"),
            ({"method": "POST", "path": "x", "pool": "bulk"}, "pool 'bulk'"),
        ],
    )
    def test_bad_requests_are_refused_naming_the_field(
        self, kwargs: dict[str, object], match: str
    ) -> None:
        """Each malformed field raises ConfigurationError that names it."""
        with pytest.raises(errors.ConfigurationError, match=match):
            HttpRequest(**kwargs)  # type: ignore[arg-type]

    def test_paths_under_api_v1_are_kept_and_relative_ones_prefixed(self) -> None:
        """'x' and '/api/v1/x' are the same route; methods are upper-cased."""
        assert HttpRequest("post", "x").path == "/api/v1/x"
        assert HttpRequest("POST", "/api/v1/x").path == "/api/v1/x"
        assert HttpRequest("post", "x").method == "POST"

    def test_a_post_may_be_marked_idempotent(self) -> None:
        """idempotent=True drops the idempotency key from a POST."""
        assert not HttpRequest("POST", "x").is_idempotent
        assert HttpRequest("POST", "x", idempotent=True).is_idempotent
        assert HttpRequest("GET", "x").is_idempotent


class TestHeadersMapping:
    def test_lookup_is_case_insensitive_and_repeats_are_joined(self) -> None:
        """Headers behave like HTTP headers."""
        headers = Headers([("Set-Thing", "a"), ("set-thing", "b"), ("X-One", "1")])
        assert headers["SET-THING"] == "a, b"
        assert "x-one" in headers
        assert len(headers) == 2
        assert dict(headers) == {"Set-Thing": "a, b", "X-One": "1"}
