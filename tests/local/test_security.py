"""The embedded server under attack: each hole of issue 16 tried over raw HTTP, and refused.

Every attack is sent as an outsider would (raw `http.client` / socket, no client library
normalising it), and afterwards the victim's checkpoints, files and training are checked intact.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import zstandard

import tinkex_actors as tx
from tinkex_actors.errors import APIStatusError, AuthenticationError, error_for_status
from tinkex_actors.local.names import check_component
from tinkex_actors.local.server import LocalServer, ServerSettings
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.transport.transport import Config, Transport

from ._attack import Raw, Victim, tree_digest

tinker = pytest.importorskip("tinker")


# One server and one victim per class: every attack in a class is refused, so they share them
# (an attack that got through would show in the checks of the next tests too).


@pytest.fixture(scope="class")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data dir, a sibling directory outside it holding a file an attacker wants gone)."""
    root = tmp_path_factory.mktemp("attack")
    data, outside = root / "data", root / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "precious.txt").write_text("do not delete")
    return data, outside


@pytest.fixture(scope="class")
def server(layout: tuple[Path, Path]) -> Iterator[LocalServer]:
    before = set(threading.enumerate())
    with LocalServer(data_dir=layout[0],
                     settings=ServerSettings(long_poll_timeout_s=0.5)) as srv:
        yield srv
    leaked = [t for t in set(threading.enumerate()) - before
              if t.is_alive() and t.name.startswith("tinkex")]
    assert not leaked, f"threads left behind: {leaked}"


@pytest.fixture(scope="class")
def victim(server: LocalServer) -> Iterator[Victim]:
    v = Victim(server)
    yield v
    v.http.close()


@pytest.fixture
def attacker(server: LocalServer) -> Iterator[Raw]:
    """Another local process: it can reach the port but does not know the key."""
    raw = Raw(server)
    yield raw
    raw.close()


def assert_untouched(victim: Victim, layout: tuple[Path, Path], before: dict[str, str]) -> None:
    """The victim's checkpoints and files are as they were, and its training goes on."""
    assert victim.checkpoint_ids() == {"weights/a", "weights/b", "sampler_weights/s"}
    assert tree_digest(layout[1]) == before
    assert (layout[1] / "victim" / "precious.txt").read_text() == "do not delete"
    victim.step()


class TestAuthentication:
    def test_every_endpoint_needs_the_key(self, server: LocalServer, attacker: Raw) -> None:
        """Without a key, or with a wrong one, the service's endpoints answer 401."""
        for method, path in (("POST", "/api/v1/create_session"),
                             ("POST", "/api/v1/retrieve_future"),
                             ("GET", "/api/v1/training_runs"),
                             ("GET", "/api/v1/sessions"),
                             ("DELETE", "/api/v1/training_runs/r/checkpoints/weights/a"),
                             ("GET", "/_files/r/weights/a/archive.tar.gz")):
            for headers in ({}, {"X-API-Key": "tml-guessedguessedguessed"}):
                status, body = attacker.request(method, path, b"{}" if method == "POST" else None,
                                                {"Content-Type": "application/json", **headers})
                assert status == 401, (method, path, body)
                assert "X-API-Key" in json.loads(body)["detail"]

    def test_healthz_answers_without_a_key_and_reveals_nothing(self, attacker: Raw) -> None:
        """A liveness probe needs no key."""
        assert attacker.request("GET", "/api/v1/healthz") == (200, b'{"status":"ok"}')

    def test_the_401_never_echoes_the_key_sent(self, attacker: Raw) -> None:
        """A guessed key does not come back in the refusal."""
        status, body = attacker.request("GET", "/api/v1/sessions", None,
                                        {"X-API-Key": "tml-guess-1234567890abcdef"})
        assert status == 401 and b"guess" not in body

    def test_the_official_sdk_trains_with_the_key_and_is_refused_without(
        self, server: LocalServer
    ) -> None:
        """tinker.ServiceClient works with server.api_key; a wrong key is AuthenticationError."""
        t = tinker.types
        with tinker.ServiceClient(base_url=server.url, api_key=server.api_key) as sc:
            tc = sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4).result()
            datum = t.Datum(model_input=t.ModelInput.from_ints([1, 2, 3]),
                            loss_fn_inputs={"target_tokens": [2, 3, 4],
                                            "weights": [1.0, 1.0, 1.0]})
            assert tc.forward_backward([datum], "cross_entropy").result().metrics
            assert tc.save_state("sdk").result().path.endswith("/weights/sdk")
        with pytest.raises(tinker.AuthenticationError), tinker.ServiceClient(
            base_url=server.url, api_key="tml-" + "9" * 40
        ) as sc:
            sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4).result()

    def test_our_client_trains_with_the_key_and_is_refused_without(
        self, server: LocalServer
    ) -> None:
        """ServiceClient(api_key=server.api_key) trains; no key or a wrong one is a 401."""
        with tx.ServiceClient(base_url=server.url, api_key=server.api_key) as sc:
            tc = sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4)
            datum = tx.Datum(model_input=tx.ModelInput.from_ints([1, 2, 3]),
                             loss_fn_inputs={"target_tokens": [2, 3, 4],
                                             "weights": [1.0, 1.0, 1.0]})
            assert tc.forward_backward([datum], "cross_entropy").result(60).metrics
        for key in (None, "tml-" + "8" * 40):
            with pytest.raises(AuthenticationError) as info:
                tx.ServiceClient(base_url=server.url, api_key=key).close()
            assert info.value.status_code == 401

    def test_a_key_clients_cannot_send_is_refused_at_start(self) -> None:
        """LocalServer(api_key=...) wants the service's 'tml-' form."""
        with pytest.raises(ValueError, match="tml-"):
            LocalServer(api_key="hunter2")


class TestControlEndpoints:
    def test_they_do_not_exist_by_default(
        self, server: LocalServer, victim: Victim, layout: tuple[Path, Path]
    ) -> None:
        """Even with the key, /_control/* is 404 unless control=True; the victim trains on."""
        before = tree_digest(layout[1])
        for method, path, body in (
            ("POST", "/_control/faults", {"action": "add", "fault": {
                "path": "/api/v1/forward_backward", "kind": "fail_future", "error": "pwned"}}),
            ("POST", "/_control/expire_session", {"session_id": victim.session_id}),
            ("POST", "/_control/make_futures", {"count": 100000}),
            ("GET", "/_control/stats", None),
        ):
            status, _ = victim.http.json(method, path, body)
            assert status == 404, path
        assert_untouched(victim, layout, before)
        assert len(server.service.store) < 100

    def test_with_control_on_they_still_need_the_key(self, tmp_path: Path) -> None:
        """control=True serves them to the key holder only; a cross-site text/plain post fails."""
        with LocalServer(data_dir=tmp_path, control=True) as srv:
            outsider, insider = Raw(srv), Raw(srv, srv.api_key)
            fault = {"action": "add", "fault": {"path": "*", "kind": "status", "status": 500}}
            assert outsider.json("POST", "/_control/faults", fault)[0] == 401
            status, _ = insider.request("POST", "/_control/faults", json.dumps(fault).encode(),
                                        {"Content-Type": "text/plain"})
            assert status == 415
            assert insider.json("GET", "/_control/stats", None)[0] == 200
            assert insider.request("GET", "/api/v1/healthz")[0] == 200
            outsider.close()
            insider.close()


class TestBrowserRequests:
    def test_a_request_with_an_origin_header_is_refused_even_with_the_key(
        self, victim: Victim
    ) -> None:
        """A web page's request (Origin set by the browser) gets 403."""
        status, body = victim.http.request(
            "POST", "/api/v1/create_session", b"{}",
            {"Content-Type": "application/json", "Origin": "http://evil.example"})
        assert status == 403 and b"Origin" in body

    def test_a_host_other_than_the_bound_address_is_refused(
        self, server: LocalServer, victim: Victim
    ) -> None:
        """DNS rebinding: Host evil.example:<port> gets 403; so does a request with no Host."""
        port = victim.http.port
        status, _ = victim.http.request("GET", "/api/v1/sessions", None,
                                        {"Host": f"evil.example:{port}"})
        assert status == 403
        with socket.create_connection((victim.http.host, port), timeout=10) as s:
            s.sendall(f"GET /api/v1/sessions HTTP/1.0\r\nX-API-Key: {server.api_key}\r\n\r\n"
                      .encode())
            assert s.recv(64).startswith(b"HTTP/1.1 403")
        assert victim.http.request("GET", "/api/v1/sessions", None,
                                   {"Host": f"localhost:{port}"})[0] == 200

    @pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded",
                                      "multipart/form-data; boundary=x", None])
    def test_a_body_that_is_not_json_or_protobuf_is_refused(
        self, victim: Victim, kind: str | None
    ) -> None:
        """What a page can post cross-site without a preflight (or no type at all) gets 415."""
        headers = {"Content-Type": kind} if kind else {}
        status, _ = victim.http.request("POST", "/api/v1/create_session", b'{"tags":[]}', headers)
        assert status == 415


class TestPathTraversal:
    @pytest.mark.parametrize("method,path", [
        ("DELETE", "/api/v1/training_runs/{run}/checkpoints/weights/."),
        ("DELETE", "/api/v1/training_runs/{run}/checkpoints/sampler_weights/%2E%2E"),
        ("DELETE", "/api/v1/training_runs/{run}/checkpoints/weights/.."),
        ("DELETE", "/api/v1/training_runs/%2E%2E/checkpoints/weights/victim"),
        ("DELETE", "/api/v1/training_runs/%2E%2E%2F%2E%2E%2Foutside/checkpoints/weights/victim"),
        ("DELETE",
         "/api/v1/training_runs/{run}/checkpoints/weights/a%2F..%2F..%2F..%2F..%2Foutside"),
        ("POST", "/api/v1/training_runs/{run}/checkpoints/weights/./publish"),
        ("PUT", "/api/v1/training_runs/{run}/checkpoints/weights/%2E%2E/ttl"),
        ("GET", "/api/v1/training_runs/%2E%2E"),
        ("GET", "/api/v1/training_runs/%2E%2E/checkpoints"),
        ("GET", "/_files/%252E%252E/weights/a/meta.json"),
        ("GET", "/_files/{run}/weights/%2E%2E/run.json"),
        ("GET", "/_files/{run}/weights/a/..%2F..%2Frun.json"),
    ])
    def test_names_escaping_the_data_dir_are_refused(
        self, victim: Victim, layout: tuple[Path, Path], method: str, path: str
    ) -> None:
        """`.`, `..` and encoded separators in any id answer 4xx and delete nothing."""
        before = tree_digest(layout[1])
        body = b'{"ttl_seconds": 5}' if method == "PUT" else (b"{}" if method == "POST" else None)
        status, answer = victim.http.request(method, path.format(run=victim.model_id), body,
                                             {"Content-Type": "application/json"})
        assert 400 <= status < 500, answer
        assert_untouched(victim, layout, before)

    @pytest.mark.parametrize("endpoint,field,value", [
        ("load_weights", "path", "tinker://../weights/a"),
        ("load_weights", "path", "tinker://{run}/weights/.."),
        ("save_weights", "path", "../../outside/victim"),
        ("save_weights", "path", ".."),
        ("save_weights_for_sampler", "path", "."),
        ("save_weights_external", "path", "a/../../b"),
        ("weights_info", "tinker_path", "tinker://..%2F../weights/a"),
    ])
    def test_paths_in_bodies_are_refused_before_queueing(
        self, victim: Victim, layout: tuple[Path, Path], endpoint: str, field: str, value: str
    ) -> None:
        """A tinker path or checkpoint name with `..` is a 400 at once, not a failed future."""
        before = tree_digest(layout[1])
        payload = {"model_id": victim.model_id, field: value.format(run=victim.model_id)}
        if endpoint != "weights_info":  # the others are queued in seq_id order
            payload["seq_id"] = victim.next_seq()
        status, answer = victim.http.json("POST", f"/api/v1/{endpoint}", payload)
        assert status == 400, answer
        assert_untouched(victim, layout, before)

    def test_a_symlink_planted_in_the_data_dir_is_not_followed(
        self, server: LocalServer, victim: Victim, layout: tuple[Path, Path]
    ) -> None:
        """A checkpoint folder that links outside is neither read, listed, nor deleted."""
        run_dir = layout[0] / "runs" / quote(victim.model_id, safe="")
        (run_dir / "weights" / "evil").symlink_to(layout[1] / "victim")
        (run_dir / "weights" / "bad name").mkdir()  # not a name the server makes
        (layout[1] / "victim" / "meta.json").write_text("{}")
        before = tree_digest(layout[1])
        try:
            base = f"/api/v1/training_runs/{victim.model_id}/checkpoints/weights/evil"
            for method in ("DELETE", "GET"):
                status, _ = victim.http.request(method, base)
                assert status == 400
            status, _ = victim.http.request(
                "GET", f"/_files/{victim.model_id}/weights/evil/meta.json")
            assert status == 400
            assert victim.checkpoint_ids() == {"weights/a", "weights/b", "sampler_weights/s"}
        finally:
            (run_dir / "weights" / "evil").unlink()
            (run_dir / "weights" / "bad name").rmdir()
        assert_untouched(victim, layout, before)


class TestOneValidator:
    BAD = ["..", ".", "a/b", "a\\b", "../x", "x/..", "a..b", "", " a", "a b", "a\x00b",
           "%2e%2e", "a?b", "a#b"]

    @pytest.mark.parametrize("bad", BAD)
    def test_the_server_and_the_client_refuse_the_same_ids(
        self, server: LocalServer, bad: str
    ) -> None:
        """The server's validator and the RestClient refuse each bad id; nothing is sent."""
        with pytest.raises(ValueError):
            check_component("training_run_id", bad)
        sent = sum(server.app.path_counts.values())
        with Transport(Config(base_url=server.url, api_key=server.api_key)) as transport:
            rest = RestClient(transport)
            try:
                for call in (lambda: rest.get_training_run(bad),
                             lambda: rest.list_checkpoints(bad),
                             lambda: rest.delete_checkpoint(bad, "weights/a"),
                             lambda: rest.delete_checkpoint("run", f"weights/{bad}"),
                             lambda: rest.delete_checkpoint_from_tinker_path(
                                 f"tinker://{bad}/weights/a"),
                             lambda: rest.get_session(bad),
                             lambda: rest.get_sampler(bad)):
                    with pytest.raises(ValueError):
                        call()
            finally:
                rest.close()
        assert sum(server.app.path_counts.values()) == sent

    def test_ids_the_server_makes_pass_the_validator(self, victim: Victim) -> None:
        """Model ids and checkpoint names of real runs are valid components."""
        assert check_component("run", victim.model_id) == victim.model_id
        assert check_component("name", "step-0001.final_v2") == "step-0001.final_v2"


class TestLimits:
    def test_a_huge_declared_body_is_refused_before_it_is_read(
        self, server: LocalServer, victim: Victim
    ) -> None:
        """Content-Length 200 MB: 413 after only 64 KiB were sent; the server still serves."""
        with socket.create_connection((victim.http.host, victim.http.port), timeout=10) as s:
            s.sendall(f"POST /api/v1/create_session HTTP/1.1\r\nHost: 127.0.0.1:"
                      f"{victim.http.port}\r\nX-API-Key: {server.api_key}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
                      .encode() + b"[" * 65536)
            assert s.recv(64).startswith(b"HTTP/1.1 413")
        victim.step()

    def test_a_streamed_body_past_the_limit_is_cut_off_with_413(
        self, server: LocalServer, victim: Victim
    ) -> None:
        """Chunked, no length: the server stops reading at the limit and answers 413."""
        limit = server.settings.max_body_bytes
        chunk = b"1" * (1 << 20)
        answer = b""
        with socket.create_connection((victim.http.host, victim.http.port), timeout=10) as s:
            s.sendall(f"POST /api/v1/create_session HTTP/1.1\r\nHost: 127.0.0.1:"
                      f"{victim.http.port}\r\nX-API-Key: {server.api_key}\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      .encode())
            try:
                for _ in range(limit // len(chunk) + 4):
                    s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except OSError:
                pass  # the server closed its side after answering, as it should
            answer = s.recv(64)
        assert answer.startswith(b"HTTP/1.1 413")
        victim.step()

    def test_deep_json_is_a_400_not_a_crash(self, victim: Victim) -> None:
        """JSON nested 100,000 (or 65) deep: 400 naming the depth; the server answers on."""
        for depth in (100_000, 65):
            for path in ("/api/v1/create_session", "/api/v1/forward_backward"):
                body = b"[" * depth + b"]" * depth
                status, answer = victim.http.request("POST", path, body,
                                                     {"Content-Type": "application/json"})
                assert status == 400 and b"nests deeper" in answer, answer
        victim.step()

    def test_a_zstd_bomb_is_refused(self, server: LocalServer, victim: Victim) -> None:
        """A small zstd body inflating past the limit is a 400; nothing that large is made."""
        bomb = zstandard.ZstdCompressor().compress(b"\0" * (server.settings.max_body_bytes + 1))
        status, _ = victim.http.request("POST", "/api/v1/forward_backward", bomb, {
            "Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"})
        assert status == 400
        victim.step()

    def test_batch_and_sampling_sizes_are_bounded(self, victim: Victim) -> None:
        """Too many datums, samples or tokens: a 400 naming the field, never queued."""
        datum = {"model_input": {"chunks": [{"type": "encoded_text", "tokens": [1, 2]}]},
                 "loss_fn_inputs": {}}
        status, body = victim.http.json("POST", "/api/v1/forward", {
            "model_id": victim.model_id, "seq_id": victim.next_seq(),
            "forward_input": {"loss_fn": "cross_entropy", "data": [datum] * 1025}})
        assert status == 400 and "1024" in body["detail"]
        prompt = {"chunks": [{"type": "encoded_text", "tokens": [1, 2, 3]}]}
        for params, num, word in (({"max_tokens": 10**9}, 1, "max_tokens"),
                                  ({"max_tokens": 4}, 5000, "num_samples")):
            status, body = victim.http.json("POST", "/api/v1/asample", {
                "base_model": "tiny-byte-lm", "prompt": prompt, "num_samples": num,
                "sampling_params": params})
            assert status == 400 and word in body["detail"], body
        long_prompt = {"chunks": [{"type": "encoded_text", "tokens": [1] * 100_000}]}
        status, body = victim.http.json("POST", "/api/v1/asample", {
            "base_model": "tiny-byte-lm", "prompt": long_prompt, "num_samples": 1,
            "sampling_params": {"max_tokens": 1}})
        assert status == 400 and "prompt" in body["detail"], body
        victim.step()


class TestRefusedRequestsKeepTheQueueMoving:
    """Issue 14 item 3: a request refused before queueing still uses up its seq_id."""

    @pytest.fixture(scope="class")
    def patient(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
        # A gap timeout far beyond the futures' deadline: a regression fails `result`, it does
        # not just run slower.
        with LocalServer(data_dir=tmp_path_factory.mktemp("patient"), settings=ServerSettings(
                long_poll_timeout_s=0.5, gap_timeout_s=600.0)) as srv:
            yield srv

    @pytest.mark.parametrize("refused", ["oov_token", "learning_rate_inf", "missing_state",
                                         "bad_checkpoint_name"])
    def test_the_next_good_step_runs_at_once(self, patient: LocalServer, refused: str) -> None:
        """After a 400 for seq_id n, seq_id n+1 completes within the futures' deadline."""
        victim = Victim(patient)
        seq = victim.next_seq()
        bad: dict[str, tuple[str, dict[str, object]]] = {
            "oov_token": ("forward_backward", {"forward_backward_input": {
                "loss_fn": "cross_entropy", "data": [{"model_input": {"chunks": [
                    {"type": "encoded_text", "tokens": [10**6]}]}, "loss_fn_inputs": {}}]}}),
            # What a JSON encoder makes of learning_rate=inf (msgspec and the SDK send null).
            "learning_rate_inf": ("optim_step", {"adam_params": {"learning_rate": None}}),
            "missing_state": ("load_weights", {
                "path": f"tinker://{victim.model_id}/weights/never-saved"}),
            "bad_checkpoint_name": ("save_weights", {"path": "../x"}),
        }
        endpoint, fields = bad[refused]
        payload: dict[str, object] = {"model_id": victim.model_id, "seq_id": seq, **fields}
        status, _ = victim.http.json("POST", f"/api/v1/{endpoint}", payload)
        assert status in (400, 404)
        victim.step()  # each future waits at most 30 s; the gap would hold it 600 s
        victim.http.close()

    def test_our_client_goes_on_after_a_refused_step(self, patient: LocalServer) -> None:
        """TrainingClient: an out-of-vocabulary step fails, the next one completes in time."""
        with tx.ServiceClient(base_url=patient.url, api_key=patient.api_key) as sc:
            tc = sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4)
            bad = tx.Datum(model_input=tx.ModelInput.from_ints([10**6]),
                           loss_fn_inputs={"target_tokens": [1], "weights": [1.0]})
            good = tx.Datum(model_input=tx.ModelInput.from_ints([1, 2]),
                            loss_fn_inputs={"target_tokens": [2, 3], "weights": [1.0, 1.0]})
            with pytest.raises(Exception, match="vocabulary"):
                tc.forward_backward([bad], "cross_entropy").result(60)
            assert tc.forward_backward([good], "cross_entropy").result(60).metrics


class TestSessionChurn:
    def test_silent_sessions_free_their_models_workers_and_futures(
        self, server: LocalServer
    ) -> None:
        """Past the timeout (an injected clock reading), nothing of a vanished client is kept."""
        victims = [Victim(server) for _ in range(3)]
        workers = [server.service.models[v.model_id].worker for v in victims]
        assert len(server.service.store) > 0
        later = time.monotonic() + server.settings.session_timeout_s + 1.0
        assert server.service.expire_silent_sessions(now=later) == 3
        for worker in workers:
            worker.stop(timeout_s=10.0)  # joins: the expiry already told it to end
        server.service.expire_silent_sessions(now=later)
        assert server.service.sessions == {} and server.service.models == {}
        assert server.service.workers == [] and server.service.samplers == {}
        assert len(server.service.store) == 0
        status, body = victims[0].http.json("POST", "/api/v1/session_heartbeat",
                                            {"session_id": victims[0].session_id})
        assert status == 410 and "expired after" in body["detail"]
        for v in victims:
            v.http.close()

    def test_the_record_of_ended_sessions_is_bounded(self, server: LocalServer) -> None:
        """Only the last `ended_sessions_kept` ended ids are remembered."""
        server.settings.ended_sessions_kept = 2
        raw = Raw(server, server.api_key)
        ids = [raw.json("POST", "/api/v1/create_session", {})[1]["session_id"] for _ in range(4)]
        for sid in ids:
            server.expire_session(sid)
        assert list(server.service.ended) == ids[-2:]
        raw.close()


class TestSecretsInErrors:
    KEY = "tml-EchoedBack0000000000000000000000SECRET"

    def test_no_field_of_a_status_error_keeps_an_echoed_key(self) -> None:
        """Body (nested), headers and URL are scrubbed, and so is the pickle."""
        body = json.dumps({"detail": f"bad key {self.KEY}", "echo": {"keys": [self.KEY]}})
        error = error_for_status(401, body, {"X-API-Key": self.KEY, "x-request-id": "r1"},
                                 method="GET", url=f"http://h/x?api_key={self.KEY}")
        assert isinstance(error, APIStatusError)
        for blob in (repr(error.body), repr(error.headers), error.url, str(error),
                     repr(pickle.dumps(error)), repr(vars(pickle.loads(pickle.dumps(error))))):
            assert "SECRET" not in blob and self.KEY not in blob
        assert error.headers["x-request-id"] == "r1"


def test_the_key_is_not_in_the_server_repr(server: LocalServer) -> None:
    """repr(LocalServer) and repr(guard) never show the key."""
    assert server.api_key not in repr(server) and server.api_key not in repr(server.app.guard)
    assert os.environ.get("TINKER_API_KEY") != server.api_key
