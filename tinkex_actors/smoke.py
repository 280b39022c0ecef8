"""The main job until the client actors land: a short real training run on the embedded server.

It exercises every layer that exists so far over real HTTP on loopback: the wire types and the
protobuf codec (forward_backward is sent as protobuf, results are read as protobuf), the
transport (official headers, retries), and the embedded server's tiny model (the loss falls,
a checkpoint is saved, and sampling shows what was learned).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tinkex_actors import types
from tinkex_actors.config import Config, PoolKind
from tinkex_actors.local.server import LocalServer
from tinkex_actors.transport import HttpRequest, HttpResponse, Transport
from tinkex_actors.types import proto

PAIRS = [("hello", "ellohay"), ("world", "orldway"), ("actor", "actoray"), ("train", "aintray")]
_DEADLINE_S = 60.0


def _tokens(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _datum(prompt: str, completion: str) -> types.Datum:
    tokens = _tokens(f"{prompt} -> {completion}\n")
    prefix = len(_tokens(f"{prompt} -> "))
    weights = [0.0] * (prefix - 1) + [1.0] * (len(tokens) - prefix)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.array(tokens[1:], dtype=np.int64)),
            "weights": types.TensorData.from_numpy(np.array(weights, dtype=np.float32)),
        },
    )


class _Api:
    """Just enough of a client to drive the server: post, then poll the future."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def post(self, path: str, payload: Any, pool: PoolKind = PoolKind.TRAIN) -> Any:
        body = types.to_json(payload) if not isinstance(payload, bytes) else payload
        response = self.transport.submit(HttpRequest("POST", path, body, pool=pool)).result(
            _DEADLINE_S
        )
        return response.json()

    def post_proto(self, path: str, body: bytes) -> Any:
        request = HttpRequest("POST", path, body, "application/x-protobuf", pool=PoolKind.TRAIN)
        return self.transport.submit(request).result(_DEADLINE_S).json()

    def wait(self, request_id: str, accept_proto: bool = False) -> HttpResponse:
        headers = {"accept": "application/x-protobuf"} if accept_proto else {}
        deadline = time.monotonic() + _DEADLINE_S
        while time.monotonic() < deadline:
            request = HttpRequest.json(
                "POST",
                "retrieve_future",
                {"request_id": request_id},
                pool=PoolKind.RETRIEVE_PROMISE,
                headers=headers,
                max_retries=0,
                timeout_s=45,
            )
            future = self.transport.submit(request)
            try:
                response = future.result(_DEADLINE_S)
            except Exception as exc:  # a 408 long-poll expiry: poll again
                if getattr(exc, "status_code", None) == 408:
                    continue
                raise
            if response.headers.get("content-type", "").startswith("application/json"):
                body = response.json()
                if isinstance(body, dict) and body.get("type") == "try_again":
                    continue
                if isinstance(body, dict) and "error" in body:
                    raise RuntimeError(f"request {request_id} failed: {body['error']}")
            return response
        raise TimeoutError(f"request {request_id} did not finish within {_DEADLINE_S} s")


def _sample(api: _Api, sampler_id: str, prompt: str, seq_id: int) -> str:
    request = types.SampleRequest(
        prompt=types.ModelInput.from_ints(_tokens(f"{prompt} -> ")),
        sampling_params=types.SamplingParams(max_tokens=10, temperature=0.0, stop=["\n"]),
        num_samples=1,
        sampling_session_id=sampler_id,
        seq_id=seq_id,
    )
    promise = api.post("asample", request, PoolKind.SAMPLE)
    result = proto.decode_sample_response(api.wait(promise["request_id"], True).content)
    return bytes(t for t in result.sequences[0].tokens if t < 256).decode("utf-8", "replace")


def run_smoke(steps: int = 30) -> int:
    """Train a LoRA on a few pig-latin pairs on the embedded server; returns an exit code."""
    started = time.monotonic()
    with LocalServer() as server:
        config = Config.resolve(base_url=server.url, api_key="tml-embedded-local-server")
        transport = Transport(config)
        transport.start()
        try:
            api = _Api(transport)
            session = api.post(
                "create_session",
                {
                    "tags": ["smoke"],
                    "user_metadata": None,
                    "sdk_version": "tinkex-actors",
                    "type": "create_session",
                },
                PoolKind.SESSION,
            )
            session_id = session["session_id"]
            created = api.post(
                "create_model",
                {
                    "session_id": session_id,
                    "model_seq_id": 0,
                    "base_model": "tiny-byte-lm",
                    "lora_config": {"rank": 16, "seed": 0},
                    "type": "create_model",
                },
            )
            api.wait(created["request_id"])
            model_id = created["model_id"]
            print(f"embedded server at {server.url}; model {model_id}")
            data = types.ForwardBackwardInput(
                data=[_datum(p, c) for p, c in PAIRS], loss_fn="cross_entropy"
            )
            adam = types.AdamParams(learning_rate=2e-2)
            seq_id = 1
            first_loss = last_loss = 0.0
            for step in range(steps):
                body = proto.encode_forward_backward_request(data, model_id=model_id, seq_id=seq_id)
                fb = api.post_proto("forward_backward", body)
                opt = api.post(
                    "optim_step", {"adam_params": adam, "model_id": model_id, "seq_id": seq_id + 1}
                )
                seq_id += 2
                output = proto.decode_forward_backward_output(
                    api.wait(fb["request_id"], True).content
                )
                api.wait(opt["request_id"])
                n = sum(float(w) for d in data.data for w in d.loss_fn_inputs["weights"].tolist())
                last_loss = output.metrics["loss:sum"] / n
                first_loss = first_loss or last_loss
                if step % 5 == 0 or step == steps - 1:
                    print(f"step {step:3d}  loss/token {last_loss:.3f}")
            saved = api.post(
                "save_weights_for_sampler",
                {
                    "model_id": model_id,
                    "path": "smoke-final",
                    "seq_id": seq_id,
                    "type": "save_weights_for_sampler",
                },
            )
            path = api.wait(saved["request_id"]).json()["path"]
            sampler = api.post(
                "create_sampling_session",
                {
                    "session_id": session_id,
                    "sampling_session_seq_id": 0,
                    "model_path": path,
                    "type": "create_sampling_session",
                },
                PoolKind.SESSION,
            )["sampling_session_id"]
            for i, (prompt, want) in enumerate(PAIRS[:2]):
                got = _sample(api, sampler, prompt, i + 1)
                print(f"sample  {prompt} -> {got.strip()!r}  (taught {want!r})")
        finally:
            transport.close()
    print(f"checkpoint {path}")
    print(
        f"loss/token {first_loss:.3f} -> {last_loss:.3f} in {steps} steps, "
        f"{time.monotonic() - started:.1f} s"
    )
    if not last_loss < first_loss:
        print("FAILED: the loss did not fall")
        return 1
    return 0
