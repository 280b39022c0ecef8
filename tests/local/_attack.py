"""Raw HTTP for attack tests: requests sent byte for byte as written (no client normalisation)."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tinkex_actors.local.server import LocalServer

TEXT = list(b"the quick brown fox jumps over the lazy dog")
ADAM = {"learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-12,
        "weight_decay": 0.0, "grad_clip_norm": 0.0}


class Raw:
    """One keep-alive connection to a server; reconnects when the server closed it."""

    def __init__(self, server: LocalServer, key: str | None = None) -> None:
        parts = urlsplit(server.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.key = key
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        key: bool = True,
    ) -> tuple[int, bytes]:
        """Send as written; (status, body). A dropped connection raises."""
        hdrs = dict(headers or {})
        if key and self.key is not None:
            hdrs.setdefault("X-API-Key", self.key)
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn = self._conn
        try:
            conn.putrequest(method, path, skip_accept_encoding=True,
                            skip_host="Host" in hdrs)
            for name, value in hdrs.items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            answer = conn.getresponse()
            data = answer.read()
        except BaseException:
            self.close()  # a fresh connection for the next request; this failure stands
            raise
        if answer.getheader("connection", "").lower() == "close":
            self.close()
        return answer.status, data

    def json(self, method: str, path: str, payload: Any, **kw: Any) -> tuple[int, Any]:
        """A JSON request; (status, decoded body)."""
        status, data = self.request(
            method, path, json.dumps(payload).encode(), {"Content-Type": "application/json"}, **kw
        )
        return status, json.loads(data) if data else None

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Victim:
    """A user training a model over raw HTTP with the server's key, with checkpoints on disk."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.http = Raw(server, server.api_key)
        status, body = self.http.json("POST", "/api/v1/create_session", {"tags": []})
        assert status == 200, body
        self.session_id = body["session_id"]
        status, body = self.http.json("POST", "/api/v1/create_model", {
            "session_id": self.session_id, "model_seq_id": 0, "base_model": "tiny-byte-lm",
            "lora_config": {"rank": 4, "seed": 0}})
        assert status == 200, body
        self.model_id: str = body["model_id"]
        self.result(body["request_id"])
        self.seq = 0
        self.losses = [self.step()]
        self.paths = [self.save("save_weights", "a"), self.save("save_weights", "b"),
                      self.save("save_weights_for_sampler", "s")]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def result(self, request_id: str, deadline_s: float = 30.0) -> Any:
        """Long-poll a future to its end; the result (a failure raises)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            status, body = self.http.json("POST", "/api/v1/retrieve_future",
                                          {"request_id": request_id})
            if status == 200 and body.get("type") != "try_again":
                assert "error" not in body, body
                return body
            assert status == 408, (status, body)
        raise TimeoutError(f"future {request_id} did not finish in {deadline_s} s")

    def step(self) -> float:
        """One forward_backward and optim_step; the loss."""
        n = len(TEXT) - 1
        status, body = self.http.json("POST", "/api/v1/forward_backward", {
            "model_id": self.model_id, "seq_id": self.next_seq(),
            "forward_backward_input": {"loss_fn": "cross_entropy", "data": [{
                "model_input": {"chunks": [{"type": "encoded_text", "tokens": TEXT[:-1]}]},
                "loss_fn_inputs": {
                    "target_tokens": {"data": TEXT[1:], "dtype": "int64", "shape": [n]},
                    "weights": {"data": [1.0] * n, "dtype": "float32", "shape": [n]}}}]}})
        assert status == 200, body
        loss = float(self.result(body["request_id"])["metrics"]["loss:sum"])
        status, body = self.http.json("POST", "/api/v1/optim_step", {
            "model_id": self.model_id, "seq_id": self.next_seq(), "adam_params": ADAM})
        assert status == 200, body
        self.result(body["request_id"])
        return loss

    def save(self, endpoint: str, name: str) -> str:
        """Save a checkpoint; its tinker path."""
        status, body = self.http.json("POST", f"/api/v1/{endpoint}", {
            "model_id": self.model_id, "seq_id": self.next_seq(), "path": name})
        assert status == 200, body
        return str(self.result(body["request_id"])["path"])

    def checkpoint_ids(self) -> set[str]:
        """The checkpoints the server lists for the victim's run."""
        status, body = self.http.json(
            "GET", f"/api/v1/training_runs/{self.model_id}/checkpoints", None)
        assert status == 200, body
        return {c["checkpoint_id"] for c in body["checkpoints"]}


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with a hash of its bytes (symlinks by their target)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link->" + str(path.readlink())
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out
