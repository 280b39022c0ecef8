"""fleet_gil: a busy fleet in one process under GIL pressure, with and without out-of-process
sampling, against the embedded server in its own process.

One ServiceClient with 64 training clients (each sending small forward_backward steps) and 64
samplers keeping 500 samples in flight, while a thread of the user's holds the GIL half the time
(50 ms of pure-Python work, 50 ms of rest). The server answers one sampling request in five
with 429, and 50 polls with 408 carrying a paused queue state. Printed per mode: the session's
heartbeat jitter as the server saw it (the largest gap between heartbeats beyond the 10 s
period), total backoff the samplers took, queue-state warnings logged, samples done, wall
time (set-up, the run, and waiting for the last samples), client CPU (the process's CPU less
the GIL-holding thread's own, which is the user's work), peak threads and peak RSS. The
client runs in a fresh process per mode; in the out-of-process mode the sampling child's CPU
is added to the parent's.

    python benchmarks/fleet_bench.py [--seconds 45]
"""

from __future__ import annotations

import argparse
import itertools
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

from _embedded import embedded_server

TRAINERS = 64
SAMPLERS = 64
IN_FLIGHT = 500


def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def inject_faults(url: str, expected_samples: int) -> None:
    """One sampling request in five answered 429; one poll in twenty answered 408 (50 times)."""
    control(url, "/_control/faults", {"action": "add", "fault": {
        "path": "/api/v1/asample", "kind": "status", "status": 429, "every": 5,
        "times": max(1, expected_samples), "headers": {"retry-after": "0.5"}}})
    control(url, "/_control/faults", {"action": "add", "fault": {
        "path": "/api/v1/retrieve_future", "kind": "status", "status": 408, "every": 20,
        "times": 50, "body": {"type": "try_again", "queue_state": "paused_capacity",
                              "queue_state_reason": "fleet bench"}}})


def children_cpu() -> float:
    """CPU seconds of this process's ended and reaped children (the sampling child)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gil_hog(stop: threading.Event, spent: list[float]) -> None:
    """The user's own work: pure Python holding the GIL 50 ms of every 100 ms; its own CPU
    time goes to ``spent`` (it is the user's, not the client's, and is taken out of the CPU
    figure)."""
    start = time.thread_time()
    while not stop.is_set():
        end = time.perf_counter() + 0.05
        x = 0
        while time.perf_counter() < end:
            x += 1
        stop.wait(0.05)
    spent.append(time.thread_time() - start)


def run_official(url: str, seconds: float) -> dict[str, Any]:
    """The same fleet on the official SDK (its warnings counted from the logging module)."""
    import logging

    import numpy as np
    import tinker
    from tinker import types

    class Count(logging.Handler):
        count = 0

        def emit(self, record: logging.LogRecord) -> None:
            if "paused" in record.getMessage():
                Count.count += 1

    logging.getLogger("tinker").addHandler(Count())
    prompt = types.ModelInput.from_ints(list(range(65, 97)))
    params = types.SamplingParams(max_tokens=8, seed=1)
    datum = types.Datum(model_input=types.ModelInput.from_ints(list(range(65, 80))),
                        loss_fn_inputs={"target_tokens": np.arange(66, 81, dtype=np.int64)})
    stop = threading.Event()
    hog_cpu: list[float] = []
    hog = threading.Thread(target=gil_hog, args=(stop, hog_cpu), daemon=True)
    peak_threads = 0
    cpu0, t0, child0 = time.process_time(), time.perf_counter(), children_cpu()
    with tinker.ServiceClient(base_url=url, api_key="tml-bench-fleet-official") as sc:
        trainers = [sc.create_lora_training_client(base_model="tiny-byte-lm", rank=2)
                    for _ in range(TRAINERS)]
        trainers = [t.result() for t in trainers]
        samplers = [sc.create_sampling_client(base_model="tiny-byte-lm")
                    for _ in range(SAMPLERS)]
        samplers = [s.result() for s in samplers]
        session_id = sc.holder.get_session_id()
        setup_wall, setup_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        inject_faults(url, int(IN_FLIGHT * seconds))
        hog.start()
        pending: list[Any] = []
        steps: list[Any] = []
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            pending = [f for f in pending if not f.future().done()]
            while len(pending) < IN_FLIGHT:
                pending.append(samplers[i % SAMPLERS].sample(prompt, 1, params))
                i += 1
            if not steps or all(s.future().done() for s in steps):
                steps = [t.forward_backward([datum], "cross_entropy") for t in trainers]
            peak_threads = max(peak_threads, len(os.listdir("/proc/self/task")))
            time.sleep(0.05)
        for f in pending:
            f.result()
        stop.set()
        hog.join(5)
    return {
        "session_id": session_id, "samples": i, "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - cpu0 - sum(hog_cpu) + children_cpu() - child0,
        "threads": peak_threads,
        "setup_wall_s": setup_wall, "setup_cpu_s": setup_cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "backoff_s": float("nan"), "warnings": Count.count,
    }


def run_client(url: str, seconds: float, out_of_process: bool) -> dict[str, Any]:
    import structlog

    import tinkex_actors as tx

    warnings: list[Any] = []
    structlog.configure(processors=[lambda _l, _m, e: warnings.append(e) or e["event"]],
                        logger_factory=structlog.ReturnLoggerFactory())
    prompt = tx.ModelInput.from_ints(list(range(65, 97)))
    params = tx.SamplingParams(max_tokens=8, seed=1)
    datum = tx.Datum(model_input=tx.ModelInput.from_ints(list(range(65, 80))),
                     loss_fn_inputs={"target_tokens": tx.TensorData.from_numpy(
                         __import__("numpy").arange(66, 81, dtype="int64"))})
    stop = threading.Event()
    hog_cpu: list[float] = []
    hog = threading.Thread(target=gil_hog, args=(stop, hog_cpu), daemon=True)
    peak_threads = 0
    cpu0, t0, child0 = time.process_time(), time.perf_counter(), children_cpu()
    with tx.ServiceClient(base_url=url, api_key="tml-bench-fleet") as sc:
        trainers = [sc.create_lora_training_client("tiny-byte-lm", rank=2)
                    for _ in range(TRAINERS)]
        trainers = [t.result() for t in trainers]
        samplers = [sc.create_sampling_client(base_model="tiny-byte-lm",
                                              out_of_process=out_of_process)
                    for _ in range(SAMPLERS)]
        samplers = [s.result() for s in samplers]
        session_id = sc.session_id
        setup_wall, setup_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        inject_faults(url, int(IN_FLIGHT * seconds))  # after set-up: they hit the fleet's work
        hog.start()
        pending: list[Any] = []
        steps: list[Any] = []
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            pending = [f for f in pending if not f.done()]
            while len(pending) < IN_FLIGHT:
                pending.append(samplers[i % SAMPLERS].sample(prompt, 1, params))
                i += 1
            if not steps or all(s.done() for s in steps):
                steps = [t.forward_backward([datum], "cross_entropy") for t in trainers]
            peak_threads = max(peak_threads, len(os.listdir("/proc/self/task")))
            time.sleep(0.05)  # the driver's own pacing, as a user's loop would have
        for f in pending:
            f.result()
        stop.set()
        hog.join(5)
        backoffs = sc._limiter.stats()
    wall = time.perf_counter() - t0
    return {
        "session_id": session_id, "samples": i, "wall_s": wall,
        "cpu_s": time.process_time() - cpu0 - sum(hog_cpu) + children_cpu() - child0,
        "threads": peak_threads,
        "setup_wall_s": setup_wall, "setup_cpu_s": setup_cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "backoff_s": backoffs.total_backoff_s,
        "warnings": sum(1 for w in warnings if w.get("event") == "queue_paused"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client == "official":
        print(json.dumps(run_official(args.url, args.seconds)))
        return
    if args.client:
        print(json.dumps(run_client(args.url, args.seconds, args.client == "oop")))
        return
    print(f"{TRAINERS} training + {SAMPLERS} sampling clients, {IN_FLIGHT} samples in flight, "
          f"a thread holding the GIL half the time, {args.seconds:g} s")
    print(f"{'mode':<16}| {'hb jitter s':>11} | {'backoff s':>9} | {'warnings':>8} | "
          f"{'samples':>7} | {'wall s':>6} | {'CPU s':>6} | {'threads':>7} | {'RSS MB':>6}")
    print("-" * 100)
    for mode, label in (("official", "official 0.38"), ("thread", "in-process"),
                        ("oop", "out-of-process")):
        with embedded_server() as (url, _pid):
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--client", mode,
                 "--url", url, "--seconds", str(args.seconds)],
                capture_output=True, text=True, timeout=1800,
                env=dict(os.environ, TINKER_LOG="error"))
            if proc.returncode != 0:
                raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            times = control(url, f"/_control/heartbeats/{row['session_id']}")["times"]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            jitter = max((g - 10.0 for g in gaps), default=float("nan"))
        print(f"{label:<16}| {jitter:>11.2f} | {row['backoff_s']:>9.1f} | "
              f"{row['warnings']:>8} | {row['samples']:>7} | {row['wall_s']:>6.1f} | "
              f"{row['cpu_s']:>6.1f} | {row['threads']:>7} | {row['rss_mb']:>6.1f}")


if __name__ == "__main__":
    main()
