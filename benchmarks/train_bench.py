"""The `sft_step` shape users run, ours beside the official SDK, against one embedded server.

Per client (each in its own process, so CPU and peak memory are its own):
- 50 pipelined steps (the next step submitted before the previous result is read) of
  forward_backward on 128 datums x 512 tokens + optim_step;
- one large forward_backward of 256 datums x 4,096 tokens (at least 4 chunks at the official
  5 MB chunk limit).

Printed: wall time, client CPU (user + system of the client process), the client's encode time
per million tokens (building Datums from arrays and the request body), peak RSS of the client,
and the requests the server saw. The server runs in a third process (`tinkex-actors serve`).

    python benchmarks/train_bench.py [--steps 50] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from typing import Any

import numpy as np
from _embedded import HEADERS, KEY, embedded_server

HOST = "127.0.0.1"


def batch(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 256, size=(n, length + 1), dtype=np.int64)
    return tokens[:, :-1], tokens[:, 1:]


def build_ours(inputs: np.ndarray, targets: np.ndarray) -> list[Any]:
    from tinkex_actors import types

    weights = np.ones(targets.shape[1], dtype=np.float32)
    wt = types.TensorData.from_numpy(weights)
    return [
        types.Datum(
            model_input=types.ModelInput.from_ints(inp.astype(np.int32)),
            loss_fn_inputs={"target_tokens": types.TensorData.from_numpy(tgt), "weights": wt},
        )
        for inp, tgt in zip(inputs, targets, strict=True)
    ]


def build_official(inputs: np.ndarray, targets: np.ndarray) -> list[Any]:
    from tinker import types

    weights = np.ones(targets.shape[1], dtype=np.float32)
    return [
        types.Datum(
            model_input=types.ModelInput.from_ints(inp.tolist()),
            loss_fn_inputs={"target_tokens": tgt, "weights": weights},
        )
        for inp, tgt in zip(inputs, targets, strict=True)
    ]


def encode_seconds(which: str, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Time to build Datums and encode one request body, as each client does per step."""
    start = time.perf_counter()
    if which == "ours":
        from tinkex_actors import types
        from tinkex_actors.types import proto

        data = build_ours(inputs, targets)
        proto.encode_forward_backward_request(
            types.ForwardBackwardInput(data=data, loss_fn="cross_entropy"),
            model_id="m", seq_id=1)
    else:
        from tinker.proto.request_conv import forward_backward_request_to_proto
        from tinker.types import ForwardBackwardInput, ForwardBackwardRequest

        data = build_official(inputs, targets)
        request = ForwardBackwardRequest(
            forward_backward_input=ForwardBackwardInput(data=data, loss_fn="cross_entropy"),
            model_id="m", seq_id=1)
        forward_backward_request_to_proto(request).SerializeToString()
    return time.perf_counter() - start


def run_client(which: str, url: str, steps: int, large: tuple[int, int]) -> dict[str, Any]:
    small_in, small_tg = batch(128, 512, 1)
    big_in, big_tg = batch(large[0], large[1], 2)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if which == "ours":
        import tinkex_actors as tx

        sc: Any = tx.ServiceClient(base_url=url, api_key=KEY)
        adam: Any = tx.AdamParams(learning_rate=1e-3)
        build, create = build_ours, {}
    else:
        import tinker
        from tinker import types

        sc = tinker.ServiceClient(base_url=url, api_key=KEY)
        adam = types.AdamParams(learning_rate=1e-3)
        build, create = build_official, {"base_model": "tiny-byte-lm"}
    with sc:
        args = () if create else ("tiny-byte-lm",)
        tc = sc.create_lora_training_client(*args, rank=8, seed=0, **create).result()
        pending = None
        for _ in range(steps):  # pipelined: submit step n+1 before reading step n
            fb = tc.forward_backward(build(small_in, small_tg), "cross_entropy")
            opt = tc.optim_step(adam)
            if pending is not None:
                pending[0].result()
                pending[1].result()
            pending = (fb, opt)
        assert pending is not None
        last = pending[0].result().metrics["loss:sum"]
        pending[1].result()
        tc.forward_backward(build(big_in, big_tg), "cross_entropy").result()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    enc = min(encode_seconds(which, small_in, small_tg) for _ in range(5))
    return {
        "wall_s": wall, "cpu_s": cpu, "last_loss": last,
        "encode_s_per_mtok": enc / (small_in.size / 1e6),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def stats(url: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/_control/stats", headers=HEADERS)
    with urllib.request.urlopen(request, timeout=30) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="5 steps, a smaller large step")
    parser.add_argument("--client", choices=["ours", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    large = (64, 1024) if args.quick else (256, 4096)
    steps = 5 if args.quick else args.steps
    if args.client:
        print(json.dumps(run_client(args.client, args.url, steps, large)))
        return

    env = dict(os.environ, TINKER_LOG="error", OPENBLAS_NUM_THREADS="1")
    with embedded_server() as (url, _pid):
        rows = {}
        for which in ("official", "ours"):
            before = stats(url)["requests"]
            out = subprocess.run(
                [sys.executable, __file__, "--client", which, "--url", url,
                 "--steps", str(steps)] + (["--quick"] if args.quick else []),
                env=env, capture_output=True, text=True, timeout=1800)
            if out.returncode != 0:
                raise RuntimeError(f"{which} client failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            after = stats(url)["requests"]
            row["requests"] = sum(after.values()) - sum(before.values())
            rows[which] = row

    print(f"{steps} pipelined steps of forward_backward 128 x 512 + optim_step, then one "
          f"forward_backward of {large[0]} x {large[1]}; embedded server in its own process")
    print(f"{'':22} | {'official 0.38':>14} | {'tinkex-actors':>14} | {'ratio':>7}")
    print("-" * 66)
    for key, label in (("wall_s", "wall time (s)"), ("cpu_s", "client CPU (s)"),
                       ("encode_s_per_mtok", "encode s / Mtoken"),
                       ("peak_rss_mb", "peak RSS (MB)"), ("requests", "requests sent")):
        o, t = rows["official"][key], rows["ours"][key]
        print(f"{label:22} | {o:>14.3f} | {t:>14.3f} | {t / o if o else float('nan'):>7.2f}")


if __name__ == "__main__":
    main()
