"""The sampling shapes RL users run, ours beside the official SDK, against one embedded server.

Shapes (each client in its own process, so CPU, threads and memory are its own):
- rl_fanout_1: N concurrent `sample(num_samples=1)`, 200-token prompts, T tokens out;
- rl_fanout_16: the same load as N/16 calls with `num_samples=16`;
- logprob_fanout: M concurrent `compute_logprobs` of 210-token prompts.

Printed per shape: wall time, client CPU, peak threads, peak RSS and requests sent per call. The
server (`tinkex-actors serve`) runs in a third process; its own latency is in both clients'
wall time alike.

    python benchmarks/sample_bench.py [--quick] [--full]
    # default: N=2048, T=256, M=512; --quick: N=256, T=32, M=64; --full adds 1,024 x 2,048
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from _embedded import HEADERS, KEY, embedded_server

HOST = "127.0.0.1"


def prompt_tokens(length: int, seed: int) -> list[int]:
    return [(seed * 31 + i * 7) % 250 + 1 for i in range(length)]


class ThreadPeak:
    """The most OS threads of this process seen while running."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _count(self) -> int:
        return len(os.listdir("/proc/self/task"))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._count() - 1)

    def __enter__(self) -> ThreadPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def run_client(which: str, url: str, shape: str, n: int, out_tokens: int, plen: int
               ) -> dict[str, Any]:
    calls = n // 16 if shape == "rl_fanout_16" else n
    per_call = 16 if shape == "rl_fanout_16" else 1
    prompts = [prompt_tokens(plen, i) for i in range(calls)]
    if which == "ours":
        import tinkex_actors as tx

        ctx: Any = tx.ServiceClient(base_url=url, api_key=KEY)
        types: Any = tx.types
    else:
        import tinker
        from tinker import types as official_types

        ctx = tinker.ServiceClient(base_url=url, api_key=KEY)
        types = official_types
    with ctx as sc:
        sampler = sc.create_sampling_client(base_model="tiny-byte-lm").result()
        params = types.SamplingParams(max_tokens=out_tokens, temperature=1.0, seed=1)
        cpu0, t0 = time.process_time(), time.perf_counter()
        with ThreadPeak() as threads:
            if shape == "logprob_fanout":
                futures = [sampler.compute_logprobs(types.ModelInput.from_ints(p))
                           for p in prompts]
            else:
                futures = [sampler.sample(types.ModelInput.from_ints(p), per_call, params)
                           for p in prompts]
            results = [f.result() for f in futures]
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert len(results) == calls
    return {"wall_s": wall, "cpu_s": cpu, "threads": threads.peak, "calls": calls,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def requests_seen(url: str) -> int:
    request = urllib.request.Request(f"{url}/_control/stats", headers=HEADERS)
    with urllib.request.urlopen(request, timeout=30) as r:
        return sum(json.loads(r.read())["requests"].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plen", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(run_client(args.client, args.url, args.shape, args.n, args.out,
                                    args.plen)))
        return
    n, t, m = (256, 32, 64) if args.quick else (2048, 256, 512)
    shapes = [("rl_fanout_1", n, t, 200), ("rl_fanout_16", n, t, 200),
              ("logprob_fanout", m, 1, 210)]
    if args.full:
        shapes.append(("logprob_fanout", 1024, 1, 2048))
    env = dict(os.environ, TINKER_LOG="error", OPENBLAS_NUM_THREADS="1")
    with embedded_server() as (url, _pid):
        print(f"{'shape':<26}| {'client':<9}| {'wall s':>7} | {'CPU s':>6} | {'threads':>7} | "
              f"{'RSS MB':>7} | {'req/call':>8}")
        print("-" * 86)
        for shape, count, out_tokens, plen in shapes:
            rows = {}
            for which in ("official", "ours"):
                before = requests_seen(url)
                proc = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--client", which,
                     "--shape", shape, "--url", url, "--n", str(count), "--out",
                     str(out_tokens), "--plen", str(plen)],
                    env=env, capture_output=True, text=True, timeout=3600)
                if proc.returncode != 0:
                    raise RuntimeError(f"{which} {shape} failed:\n{proc.stderr[-3000:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["per_call"] = (requests_seen(url) - before) / row["calls"]
                rows[which] = row
                label = f"{shape} {count}x{plen}"
                print(f"{label:<26}| {which:<9}| {row['wall_s']:>7.2f} | {row['cpu_s']:>6.2f} | "
                      f"{row['threads']:>7} | {row['peak_rss_mb']:>7.1f} | "
                      f"{row['per_call']:>8.2f}")
            o, u = rows["official"], rows["ours"]
            print(f"{'':<26}| ratio    | {u['wall_s'] / o['wall_s']:>7.2f} | "
                  f"{u['cpu_s'] / o['cpu_s']:>6.2f} |")


if __name__ == "__main__":
    main()
