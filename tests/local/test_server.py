"""The embedded server over real HTTP: every endpoint, fault and validation error."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tinkex_actors.local.server import LocalServer, ServerSettings

TEXT = list(b"the quick brown fox jumps over the lazy dog")
ADAM = {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-12,
        "weight_decay": 0.0, "grad_clip_norm": 0.0}


@pytest.fixture
def server() -> Iterator[LocalServer]:
    before = set(threading.enumerate())
    srv = LocalServer(settings=ServerSettings(long_poll_timeout_s=0.3, gap_timeout_s=5.0),
                      control=True)
    with srv:
        yield srv
    # Every thread the server started has ended (joined by stop()).
    leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()
              and t.name.startswith("tinkex")]
    assert not leaked, f"threads left behind: {leaked}"


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10.0, headers=server.headers) as client:
        yield client


def datum(tokens: list[int] = TEXT) -> dict[str, Any]:
    n = len(tokens) - 1
    return {
        "model_input": {"chunks": [{"type": "encoded_text", "tokens": tokens[:-1]}]},
        "loss_fn_inputs": {
            "target_tokens": {"data": tokens[1:], "dtype": "int64", "shape": [n]},
            "weights": {"data": [1.0] * n, "dtype": "float32", "shape": [n]},
        },
    }


def new_session(http: httpx.Client) -> str:
    r = http.post("/api/v1/create_session",
                  json={"tags": ["t"], "user_metadata": None, "sdk_version": "test",
                        "type": "create_session"})
    assert r.status_code == 200, r.text
    return str(r.json()["session_id"])


def result(http: httpx.Client, request_id: str, deadline_s: float = 20.0) -> Any:
    """Poll a future until it completes or fails; 408 means poll again."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        r = http.post("/api/v1/retrieve_future", json={"request_id": request_id})
        if r.status_code == 408:
            continue
        assert r.status_code == 200, r.text
        body = r.json()
        if body.get("type") == "try_again":
            continue
        return body
    raise AssertionError(f"future {request_id} did not finish within {deadline_s} s")


def new_model(http: httpx.Client, session_id: str, seq: int = 0, rank: int = 8,
              seed: int = 7) -> str:
    r = http.post("/api/v1/create_model", json={
        "session_id": session_id, "model_seq_id": seq, "base_model": "tiny-byte-lm",
        "lora_config": {"rank": rank, "seed": seed}, "type": "create_model"})
    assert r.status_code == 200, r.text
    assert result(http, r.json()["request_id"])["model_id"] == r.json()["model_id"]
    return str(r.json()["model_id"])


def fwdbwd(http: httpx.Client, model_id: str, seq_id: int, forward_only: bool = False) -> str:
    key = "forward_input" if forward_only else "forward_backward_input"
    path = "/api/v1/forward" if forward_only else "/api/v1/forward_backward"
    r = http.post(path, json={key: {"data": [datum()], "loss_fn": "cross_entropy"},
                              "model_id": model_id, "seq_id": seq_id})
    assert r.status_code == 200, r.text
    return str(r.json()["request_id"])


def optim(http: httpx.Client, model_id: str, seq_id: int) -> str:
    r = http.post("/api/v1/optim_step", json={"adam_params": ADAM, "model_id": model_id,
                                              "seq_id": seq_id})
    assert r.status_code == 200, r.text
    return str(r.json()["request_id"])


def train(http: httpx.Client, model_id: str, steps: int, first_seq: int = 1) -> list[float]:
    losses = []
    seq = first_seq
    for _ in range(steps):
        f = fwdbwd(http, model_id, seq)
        o = optim(http, model_id, seq + 1)
        seq += 2
        losses.append(result(http, f)["metrics"]["loss:sum"])
        assert "metrics" in result(http, o)
    return losses


class TestServiceBasics:
    def test_health_and_capabilities_answer_like_the_service(self, http: httpx.Client) -> None:
        """healthz says ok and get_server_capabilities lists the byte models."""
        assert http.get("/api/v1/healthz").json() == {"status": "ok"}
        names = [m["model_name"] for m in
                 http.get("/api/v1/get_server_capabilities").json()["supported_models"]]
        assert "tiny-byte-lm" in names and len(names) >= 3

    def test_client_config_answers_flags_and_merges_server_settings(
        self, server: LocalServer, http: httpx.Client
    ) -> None:
        """client/config answers the flags, including ones a test sets."""
        server.settings.client_config["fwdbwd_max_chunk_len"] = 7
        flags = http.post("/api/v1/client/config", json={"sdk_version": "x"}).json()
        assert flags["pjwt_auth_enabled"] is False
        assert flags["fwdbwd_max_chunk_len"] == 7

    def test_unknown_endpoint_is_404_and_wrong_method_is_405(self, http: httpx.Client) -> None:
        """Routing errors use the service's error shape."""
        r = http.get("/api/v1/nope")
        assert r.status_code == 404 and "detail" in r.json()
        assert http.get("/api/v1/create_session").status_code == 405

    def test_bad_json_is_a_400_naming_the_problem(self, http: httpx.Client) -> None:
        """A body that is not JSON gets a 400, not a crash."""
        r = http.post("/api/v1/create_session", content=b"{not json",
                      headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert "JSON" in r.json()["detail"]


class TestSessions:
    def test_heartbeat_keeps_a_session_and_unknown_sessions_are_404(
        self, http: httpx.Client
    ) -> None:
        """A live session answers heartbeats; an unknown one is 404."""
        sid = new_session(http)
        assert http.post("/api/v1/session_heartbeat", json={"session_id": sid}).json() == {
            "type": "session_heartbeat"}
        r = http.post("/api/v1/session_heartbeat", json={"session_id": "s-missing"})
        assert r.status_code == 404

    def test_an_expired_session_unloads_its_models(
        self, server: LocalServer, http: httpx.Client
    ) -> None:
        """Expiring a session: its heartbeat answers 410 (gone) and its models 404."""
        sid = new_session(http)
        mid = new_model(http, sid)
        r = http.post("/_control/expire_session", json={"session_id": sid})
        assert r.status_code == 200
        assert http.post("/api/v1/session_heartbeat", json={"session_id": sid}).status_code == 410
        r = http.post("/api/v1/get_info", json={"model_id": mid})
        assert r.status_code == 404

    def test_a_finished_session_rejects_further_work_and_keeps_its_first_reason(
        self, server: LocalServer, http: httpx.Client
    ) -> None:
        """sessions/{id}/finish is first-wins; heartbeats then answer 410."""
        sid = new_session(http)
        url = f"/api/v1/sessions/{sid}/finish"
        assert http.post(url, json={"reason": {"type": "success"}, "detail": None}).is_success
        assert http.post(url, json={"reason": {"type": "errored"}}).is_success
        late = http.post("/api/v1/session_heartbeat", json={"session_id": sid})
        assert late.status_code == 410 and "(success)" in late.json()["detail"]
        bad = http.post(url, json={"reason": {"type": "done"}})
        assert bad.status_code == 400 and "reason.type" in bad.json()["detail"]

    def test_silent_sessions_expire_after_the_timeout(self, server: LocalServer,
                                                      http: httpx.Client) -> None:
        """A session silent past session_timeout_s is expired by housekeeping."""
        sid = new_session(http)
        later = time.monotonic() + server.settings.session_timeout_s + 1.0
        assert server.service.expire_silent_sessions(now=later) == 1
        assert sid not in server.service.sessions and sid in server.service.ended


class TestModels:
    def test_create_model_validates_base_model_and_rank(self, http: httpx.Client) -> None:
        """Unknown base models and out-of-range ranks are 400s naming the fix."""
        sid = new_session(http)
        r = http.post("/api/v1/create_model", json={
            "session_id": sid, "model_seq_id": 0, "base_model": "gpt-9"})
        assert r.status_code == 400 and "tiny-byte-lm" in r.json()["detail"]
        r = http.post("/api/v1/create_model", json={
            "session_id": sid, "model_seq_id": 1, "base_model": "tiny-byte-lm",
            "lora_config": {"rank": 100000}})
        assert r.status_code == 400 and "rank" in r.json()["detail"]
        r = http.post("/api/v1/create_model", json={
            "session_id": sid, "model_seq_id": "zero", "base_model": "tiny-byte-lm"})
        assert r.status_code == 400 and "model_seq_id" in r.json()["detail"]

    def test_a_model_seq_id_cannot_be_used_twice(self, http: httpx.Client) -> None:
        """A second create_model with the same model_seq_id is a 409."""
        sid = new_session(http)
        new_model(http, sid, seq=0)
        r = http.post("/api/v1/create_model", json={
            "session_id": sid, "model_seq_id": 0, "base_model": "tiny-byte-lm"})
        assert r.status_code == 409

    def test_get_info_reports_the_model(self, http: httpx.Client) -> None:
        """get_info names the base model and the LoRA rank."""
        mid = new_model(http, new_session(http), rank=4)
        info = http.post("/api/v1/get_info", json={"model_id": mid}).json()
        assert info["model_id"] == mid and info["lora_rank"] == 4
        assert info["model_data"]["model_name"] == "tiny-byte-lm"

    def test_unload_model_answers_a_future_and_the_model_is_gone(self, http: httpx.Client) -> None:
        """unload_model completes and later requests for the model are 404."""
        mid = new_model(http, new_session(http))
        r = http.post("/api/v1/unload_model", json={"model_id": mid})
        assert result(http, r.json()["request_id"])["model_id"] == mid
        assert http.post("/api/v1/get_info", json={"model_id": mid}).status_code == 404


class TestTraining:
    def test_loss_falls_with_forward_backward_and_optim_step(self, http: httpx.Client) -> None:
        """Training is real: the loss of a fixed text falls by half within 10 steps."""
        mid = new_model(http, new_session(http))
        losses = train(http, mid, 10)
        assert losses[-1] < losses[0] / 2

    def test_forward_outputs_logprobs_per_datum_and_changes_nothing(
        self, http: httpx.Client
    ) -> None:
        """forward returns per-token logprobs and leaves the weights as they were."""
        mid = new_model(http, new_session(http))
        a = result(http, fwdbwd(http, mid, 1, forward_only=True))
        b = result(http, fwdbwd(http, mid, 2, forward_only=True))
        assert a["metrics"] == b["metrics"]
        out = a["loss_fn_outputs"][0]
        assert len(out["logprobs"]["data"]) == len(TEXT) - 1
        assert all(v <= 0 for v in out["logprobs"]["data"])

    def test_requests_run_in_seq_id_order_whatever_order_they_arrive_in(
        self, http: httpx.Client
    ) -> None:
        """An optim_step sent before its forward_backward still runs after it."""
        sid = new_session(http)
        a, b = new_model(http, sid, 0, seed=1), new_model(http, sid, 1, seed=1)
        in_order = [fwdbwd(http, a, 1), optim(http, a, 2), fwdbwd(http, a, 3)]
        late_optim = optim(http, b, 2)
        out_of_order = [fwdbwd(http, b, 3), fwdbwd(http, b, 1)]
        expected = [result(http, r)["metrics"]["loss:sum"] for r in (in_order[0], in_order[2])]
        got = [result(http, r)["metrics"]["loss:sum"] for r in (out_of_order[1],
                                                                 out_of_order[0])]
        assert "metrics" in result(http, late_optim)
        assert got == pytest.approx(expected, rel=1e-6)
        assert got[1] < got[0]

    def test_a_resubmitted_seq_id_returns_the_original_future(self, http: httpx.Client) -> None:
        """Sending the same step twice never applies it twice."""
        mid = new_model(http, new_session(http))
        first = fwdbwd(http, mid, 1)
        again = fwdbwd(http, mid, 1)
        assert again == first

    def test_a_retry_with_the_same_idempotency_key_is_applied_once(
        self, http: httpx.Client
    ) -> None:
        """A POST repeated with its x-idempotency-key gets the first answer back."""
        mid = new_model(http, new_session(http))
        body = {"adam_params": ADAM, "model_id": mid}
        h = {"x-idempotency-key": "k-1"}
        r1 = http.post("/api/v1/optim_step", json=body, headers=h)
        r2 = http.post("/api/v1/optim_step", json=body, headers=h)
        assert r1.json() == r2.json()
        r3 = http.post("/api/v1/optim_step", json=body, headers={"x-idempotency-key": "k-2"})
        assert r3.json()["request_id"] != r1.json()["request_id"]

    def test_token_ids_outside_the_vocabulary_fail_as_user_errors(
        self, http: httpx.Client
    ) -> None:
        """A token id past the vocabulary fails the future with category user."""
        mid = new_model(http, new_session(http))
        bad = datum([1, 2, 3, 999_999])
        r = http.post("/api/v1/forward_backward", json={
            "forward_backward_input": {"data": [bad], "loss_fn": "cross_entropy"},
            "model_id": mid, "seq_id": 1})
        assert r.status_code == 400
        assert "vocabulary" in r.json()["detail"] and "data[0]" in r.json()["detail"]
        # The model is not poisoned: the next step trains normally.
        assert np.isfinite(result(http, fwdbwd(http, mid, 2))["metrics"]["loss:sum"])

    def test_unknown_loss_function_is_refused(self, http: httpx.Client) -> None:
        """An unknown loss_fn never reaches the model."""
        mid = new_model(http, new_session(http))
        r = http.post("/api/v1/forward_backward", json={
            "forward_backward_input": {"data": [datum()], "loss_fn": "hinge"},
            "model_id": mid, "seq_id": 1})
        assert r.status_code == 400 and "loss_fn" in r.json()["detail"]


class TestFutures:
    def test_a_pending_future_answers_408_when_the_long_poll_expires(
        self, http: httpx.Client
    ) -> None:
        """A request waiting on a missing predecessor stays pending: the poll gets 408."""
        mid = new_model(http, new_session(http))
        waiting = fwdbwd(http, mid, 5)
        r = http.post("/api/v1/retrieve_future", json={"request_id": waiting})
        assert r.status_code == 408
        assert r.json()["queue_state"] == "active"

    def test_a_paused_queue_answers_try_again_with_state_and_reason(
        self, server: LocalServer, http: httpx.Client
    ) -> None:
        """While training is paused, polls say try_again with the queue state and reason."""
        mid = new_model(http, new_session(http))
        server.faults.pause("training", "paused_rate_limit", "too many trainers")
        rid = fwdbwd(http, mid, 1)
        body = http.post("/api/v1/retrieve_future", json={"request_id": rid}).json()
        assert body == {"type": "try_again", "request_id": rid,
                        "queue_state": "paused_rate_limit",
                        "queue_state_reason": "too many trainers"}
        server.faults.resume("training")
        assert "metrics" in result(http, rid)

    def test_failed_futures_carry_their_category(self, server: LocalServer,
                                                 http: httpx.Client) -> None:
        """A scripted failure answers {error, category}."""
        mid = new_model(http, new_session(http))
        server.faults.fail_future("/api/v1/optim_step", error="boom", category="server")
        body = result(http, optim(http, mid, 1))
        assert body == {"error": "boom", "category": "server"}

    def test_an_unknown_request_id_is_404(self, http: httpx.Client) -> None:
        """Polling a request_id that never existed is a 404."""
        assert http.post("/api/v1/retrieve_future",
                         json={"request_id": "nope"}).status_code == 404

    def test_retrieve_futures_reports_completions_with_a_cursor(self, http: httpx.Client) -> None:
        """The batched poll lists finished sampling requests and trims them by cursor."""
        sid = new_session(http)
        r = http.post("/api/v1/create_sampling_session", json={
            "session_id": sid, "sampling_session_seq_id": 0, "base_model": "tiny-byte-lm"})
        ssid = r.json()["sampling_session_id"]
        a = http.post("/api/v1/asample", json={
            "sampling_session_id": ssid, "seq_id": 1, "num_samples": 1,
            "prompt": {"chunks": [{"type": "encoded_text", "tokens": [1, 2]}]},
            "sampling_params": {"max_tokens": 3, "seed": 1}}).json()
        target = {"type": "sampling_session", "sampling_session_id": ssid}
        got = http.post("/api/v1/retrieve_futures",
                        json={"target": target, "prev_cursor": None}).json()
        assert [c["request_id"] for c in got["completions"]] == [a["request_id"]]
        assert got["completions"][0]["state"] == "finished"
        again = http.post("/api/v1/retrieve_futures", json={
            "target": target, "prev_cursor": got["cursor"], "timeout": 0}).json()
        assert again["completions"] == []


class TestFaults:
    def test_status_faults_apply_a_counted_number_of_times(
        self, server: LocalServer, http: httpx.Client
    ) -> None:
        """Two scripted 503s, then the real answer; Retry-After is sent when asked."""
        server.faults.inject_status("/api/v1/healthz", 503, times=2)
        server.faults.inject_status("/api/v1/healthz", 429, retry_after_s=1.5)
        assert [http.get("/api/v1/healthz").status_code for _ in range(2)] == [503, 503]
        r = http.get("/api/v1/healthz")
        assert r.status_code == 429 and r.headers["retry-after"] == "1.5"
        assert http.get("/api/v1/healthz").status_code == 200

    def test_a_dropped_connection_is_a_transport_error(
        self, server: LocalServer, http: httpx.Client
    ) -> None:
        """A drop fault closes the connection mid-answer."""
        server.faults.drop("/api/v1/healthz")
        with pytest.raises(httpx.TransportError):
            http.get("/api/v1/healthz")
        assert http.get("/api/v1/healthz").status_code == 200

    def test_the_control_endpoint_drives_the_same_plan(self, http: httpx.Client) -> None:
        """POST /_control/faults adds faults and rejects bad commands."""
        r = http.post("/_control/faults", json={"action": "add", "fault": {
            "path": "/api/v1/healthz", "kind": "status", "status": 410}})
        assert r.status_code == 200
        assert http.get("/api/v1/healthz").status_code == 410
        r = http.post("/_control/faults", json={"action": "explode"})
        assert r.status_code == 400 and "action" in r.json()["detail"]


class TestCheckpoints:
    def test_save_list_info_publish_ttl_archive_delete(self, http: httpx.Client) -> None:
        """The whole life of a checkpoint through the REST endpoints."""
        mid = new_model(http, new_session(http), rank=4)
        train(http, mid, 1)
        r = http.post("/api/v1/save_weights", json={"model_id": mid, "path": "c1", "seq_id": 3})
        path = result(http, r.json()["request_id"])["path"]
        assert path == f"tinker://{mid}/weights/c1"
        info = http.post("/api/v1/weights_info", json={"tinker_path": path}).json()
        assert info["base_model"] == "tiny-byte-lm" and info["lora_rank"] == 4
        listed = http.get(f"/api/v1/training_runs/{mid}/checkpoints").json()["checkpoints"]
        assert [c["tinker_path"] for c in listed] == [path]
        base = f"/api/v1/training_runs/{mid}/checkpoints/weights/c1"
        assert http.post(base + "/publish").status_code == 204
        assert http.get("/api/v1/checkpoints").json()["checkpoints"][0]["public"] is True
        assert http.delete(base + "/publish").status_code == 204
        ttl = http.put(base + "/ttl", json={"ttl_seconds": 3600}).json()
        assert ttl["expires_at"] is not None
        redirect = http.get(base + "/archive")
        assert redirect.status_code == 302
        archive = http.get(redirect.headers["location"])
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            assert {"arrays.npz", "meta.json"} <= set(tar.getnames())
        assert http.delete(base).status_code == 204
        assert http.delete(base).status_code == 404
        r = http.post("/api/v1/weights_info", json={"tinker_path": path})
        assert r.status_code == 404

    def test_loading_a_missing_checkpoint_is_a_404(self, http: httpx.Client) -> None:
        """load_weights of a path that does not exist is refused at once."""
        mid = new_model(http, new_session(http))
        r = http.post("/api/v1/load_weights", json={
            "model_id": mid, "path": f"tinker://{mid}/weights/nope", "optimizer": True})
        assert r.status_code == 404
        r = http.post("/api/v1/load_weights", json={
            "model_id": mid, "path": "s3://elsewhere", "optimizer": True})
        assert r.status_code == 400 and "tinker://" in r.json()["detail"]

    def test_an_expired_checkpoint_is_gone(self, server: LocalServer,
                                           http: httpx.Client) -> None:
        """A checkpoint past its TTL is no longer listed or loadable."""
        mid = new_model(http, new_session(http))
        r = http.post("/api/v1/save_weights", json={"model_id": mid, "path": "old",
                                                    "seq_id": 1, "ttl_seconds": 60})
        path = result(http, r.json()["request_id"])["path"]
        server.service.storage.update(mid, "weights/old", expires_s=time.time() - 1)
        assert http.get(f"/api/v1/training_runs/{mid}/checkpoints").json()["checkpoints"] == []
        assert http.post("/api/v1/weights_info", json={"tinker_path": path}).status_code == 404

    def test_resuming_with_optimizer_continues_bit_for_bit(self, http: httpx.Client) -> None:
        """10 steps straight equal 5 steps, save, restore with optimizer, 5 more steps."""
        sid = new_session(http)
        straight = new_model(http, sid, 0, seed=3)
        losses_straight = train(http, straight, 10)
        first = new_model(http, sid, 1, seed=3)
        losses_a = train(http, first, 5)
        r = http.post("/api/v1/save_weights", json={"model_id": first, "path": "half",
                                                    "seq_id": 11})
        path = result(http, r.json()["request_id"])["path"]
        r = http.post("/api/v1/load_weights", json={
            "session_id": sid, "model_seq_id": 2, "path": path, "optimizer": True})
        assert r.status_code == 200, r.text
        resumed = r.json()["model_id"]
        result(http, r.json()["request_id"])
        losses_b = train(http, resumed, 5)
        assert losses_a + losses_b == losses_straight

    def test_state_survives_a_server_restart(self, tmp_path: Path) -> None:
        """A checkpoint saved before a restart loads after it, from the same data_dir."""
        with LocalServer(data_dir=tmp_path) as first, httpx.Client(base_url=first.url,
                                                                  headers=first.headers) as h:
            mid = new_model(h, new_session(h))
            r = h.post("/api/v1/save_weights", json={"model_id": mid, "path": "keep",
                                                     "seq_id": 1})
            path = result(h, r.json()["request_id"])["path"]
        with LocalServer(data_dir=tmp_path) as second, httpx.Client(
            base_url=second.url, headers=second.headers
        ) as h:
            runs = h.get("/api/v1/training_runs").json()["training_runs"]
            assert [run["training_run_id"] for run in runs] == [mid]
            sid = new_session(h)
            r = h.post("/api/v1/load_weights", json={
                "session_id": sid, "model_seq_id": 0, "path": path, "optimizer": True})
            assert "path" in result(h, r.json()["request_id"])
        assert tmp_path.exists()


class TestSampling:
    def _sampler(self, http: httpx.Client) -> str:
        sid = new_session(http)
        r = http.post("/api/v1/create_sampling_session", json={
            "session_id": sid, "sampling_session_seq_id": 0, "base_model": "tiny-byte-lm"})
        assert r.status_code == 200, r.text
        return str(r.json()["sampling_session_id"])

    def _sample(self, http: httpx.Client, ssid: str, seq: int, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sampling_session_id": ssid, "seq_id": seq, "num_samples": 2,
            "prompt": {"chunks": [{"type": "encoded_text", "tokens": list(b"abc")}]},
            "sampling_params": {"max_tokens": 6, "seed": 5}, "type": "sample"}
        body.update(extra)
        r = http.post("/api/v1/asample", json=body)
        assert r.status_code == 200, r.text
        promise = r.json()
        assert len(promise["sample_sequence_ids"]) == body["num_samples"]
        out: dict[str, Any] = result(http, promise["request_id"])
        return out

    def test_same_seed_same_tokens_and_num_samples_sequences(self, http: httpx.Client) -> None:
        """A seeded request is reproducible and returns num_samples sequences."""
        ssid = self._sampler(http)
        a, b = self._sample(http, ssid, 1), self._sample(http, ssid, 2)
        assert len(a["sequences"]) == 2
        assert [s["tokens"] for s in a["sequences"]] == [s["tokens"] for s in b["sequences"]]
        for seq in a["sequences"]:
            assert seq["stop_reason"] in ("length", "stop")
            assert len(seq["tokens"]) == 6 if seq["stop_reason"] == "length" else 1 <= len(
                seq["tokens"]) <= 6

    def test_prompt_logprobs_start_with_null(self, http: httpx.Client) -> None:
        """prompt_logprobs has one entry per prompt token, the first one null."""
        ssid = self._sampler(http)
        out = self._sample(http, ssid, 1, prompt_logprobs=True, num_samples=1)
        lp = out["prompt_logprobs"]
        assert len(lp) == 3 and lp[0] is None and all(v < 0 for v in lp[1:])

    def test_sampling_an_unknown_session_is_404(self, http: httpx.Client) -> None:
        """asample names a sampling session that must exist."""
        r = http.post("/api/v1/asample", json={
            "sampling_session_id": "s-x:sample:0", "seq_id": 1,
            "prompt": {"chunks": [{"type": "encoded_text", "tokens": [1]}]},
            "sampling_params": {"max_tokens": 1}})
        assert r.status_code == 404

    def test_bad_sampling_params_fail_as_user_errors(self, http: httpx.Client) -> None:
        """A negative temperature is refused with the field named."""
        ssid = self._sampler(http)
        r = http.post("/api/v1/asample", json={
            "sampling_session_id": ssid, "seq_id": 1,
            "prompt": {"chunks": [{"type": "encoded_text", "tokens": [1]}]},
            "sampling_params": {"max_tokens": 1, "temperature": -1.0}})
        if r.status_code == 200:
            body = result(http, r.json()["request_id"])
            assert body["category"] == "user" and "temperature" in body["error"]
        else:
            assert r.status_code == 400 and "temperature" in r.json()["detail"]

    def test_sessions_and_samplers_are_listed(self, http: httpx.Client) -> None:
        """GET sessions, sessions/{id} and samplers/{id} describe what exists."""
        ssid = self._sampler(http)
        session_id = ssid.split(":")[0]
        assert session_id in http.get("/api/v1/sessions").json()["sessions"]
        assert http.get(f"/api/v1/sessions/{session_id}").json()["sampler_ids"] == [ssid]
        assert http.get(f"/api/v1/samplers/{ssid}").json()["base_model"] == "tiny-byte-lm"

    def test_telemetry_is_accepted_up_to_100_events(self, server: LocalServer,
                                                    http: httpx.Client) -> None:
        """telemetry accepts a batch and refuses more than 100 events."""
        ok = http.post("/api/v1/telemetry", json={"events": [{"event": "x"}]})
        assert ok.json() == {"status": "accepted"}
        too_many = http.post("/api/v1/telemetry", json={"events": [{}] * 101})
        assert too_many.status_code == 400
        assert server.service.telemetry_events == [{"event": "x"}]


class TestControl:
    def test_stats_count_open_polls_and_made_futures_resolve_on_time(
        self, http: httpx.Client
    ) -> None:
        """make_futures creates futures that complete later; stats counts them."""
        ids = http.post("/_control/make_futures", json={
            "count": 3, "resolve_after_s": 0.05, "result": {"metrics": {"x": 1.0}}}).json()
        assert len(ids["request_ids"]) == 3
        assert http.get("/_control/stats").json()["pending_futures"] >= 0
        for rid in ids["request_ids"]:
            assert result(http, rid) == {"metrics": {"x": 1.0}}
        assert http.get("/_control/stats").json()["waiting_polls"] == 0
        bad = http.post("/_control/make_futures", json={"count": 0})
        assert bad.status_code == 400 and "count" in bad.json()["detail"]


class TestExternalWeights:
    def test_external_weights_are_saved_and_downloadable_by_url(self, http: httpx.Client) -> None:
        """save_weights_external gives a path whose external_weights_urls serve the files."""
        mid = new_model(http, new_session(http))
        r = http.post("/api/v1/save_weights_external", json={"model_id": mid, "path": "hf",
                                                              "seq_id": 1})
        path = result(http, r.json()["request_id"])["path"]
        assert path == f"tinker://{mid}/external_weights/hf"
        urls = http.get(f"/api/v1/training_runs/{mid}/checkpoints/external_weights/hf"
                        "/external_weights_urls").json()
        assert set(urls["urls"]) == {"arrays.npz", "meta.json"} and urls["expires"]
        arrays = http.get(urls["urls"]["arrays.npz"])
        assert arrays.status_code == 200
        with np.load(io.BytesIO(arrays.content)) as npz:
            assert any(k.endswith("/B") for k in npz.files)

    def test_whoami_names_the_local_user(self, http: httpx.Client) -> None:
        """whoami answers user and org URNs."""
        me = http.get("/api/v1/whoami").json()
        assert me["user_urn"].startswith("urn:") and me["org_urn"].startswith("urn:")


class TestHeartbeatRecord:
    def test_heartbeat_arrivals_are_recorded_for_jitter_checks(self, http: httpx.Client) -> None:
        """/_control/heartbeats lists one time per heartbeat, in order."""
        sid = new_session(http)
        for _ in range(3):
            http.post("/api/v1/session_heartbeat", json={"session_id": sid})
        times = http.get(f"/_control/heartbeats/{sid}").json()["times"]
        assert len(times) == 3 and times == sorted(times)
        assert http.get("/_control/heartbeats/s-nope").status_code == 404
        http.post(f"/api/v1/sessions/{sid}/finish", json={"reason": {"type": "success"}})
        assert http.get(f"/_control/heartbeats/{sid}").json()["times"] == times


class TestFaultRates:
    def test_every_applies_a_fault_to_one_request_in_n(
        self, server: LocalServer, http: httpx.Client
    ) -> None:
        """every=3 answers the 3rd and 6th requests with the fault, the others normally."""
        server.faults.inject_status("/api/v1/healthz", 503, times=2, every=3)
        codes = [http.get("/api/v1/healthz").status_code for _ in range(7)]
        assert codes == [200, 200, 503, 200, 200, 503, 200]
