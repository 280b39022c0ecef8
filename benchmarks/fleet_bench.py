"""fleet_gil: a busy fleet in one process under GIL pressure, with and without out-of-process
sampling, against the embedded server in its own process.

One ServiceClient with 64 training clients (each sending small forward_backward steps) and 64
samplers keeping 500 samples in flight, while a thread of the user's holds the GIL half the time
(50 ms of pure-Python work, 50 ms of rest). The server answers one sampling request in five
with 429, and 50 polls with 408 carrying a paused queue state. Printed per mode: the session's
heartbeat jitter as the server saw it (the largest gap between heartbeats beyond the 10 s
period), total backoff the samplers took, queue-state warnings logged, API requests the
server received, wall
time (set-up, the run, and waiting for the last samples), client CPU (the process's CPU less
the GIL-holding thread's own, which is the user's work), peak threads and peak RSS. The
client runs in a fresh process per mode; in the out-of-process mode the sampling child's CPU
is added to the parent's.

    python benchmarks/fleet_bench.py [--samples 1000] [--rounds 10]
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

from _embedded import HEADERS, KEY, embedded_server

TRAINERS = 64
SAMPLERS = 64
IN_FLIGHT = 500


def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data,
                                     headers={"content-type": "application/json", **HEADERS})
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


def run_fleet(
    sample: Any, train_round: Any, done: Any, samples: int, rounds: int
) -> int:
    """The same work for every client: `samples` samples kept IN_FLIGHT at a time, and
    `rounds` rounds of one forward_backward per trainer (a round starts when the last one
    ended), checked every 50 ms as a user's loop would; returns the peak thread count."""
    pending: list[Any] = []
    steps: list[Any] = []
    issued = rounds_issued = peak = 0
    while True:
        pending = [f for f in pending if not done(f)]
        while len(pending) < IN_FLIGHT and issued < samples:
            pending.append(sample(issued))
            issued += 1
        steps_done = all(done(f) for f in steps)
        if steps_done and rounds_issued < rounds:
            steps = train_round()
            rounds_issued += 1
            steps_done = False
        peak = max(peak, len(os.listdir("/proc/self/task")))
        if issued == samples and not pending and rounds_issued == rounds and steps_done:
            return peak
        time.sleep(0.05)


def run_official(url: str, samples: int, rounds: int) -> dict[str, Any]:
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
    cpu0, t0, child0 = time.process_time(), time.perf_counter(), children_cpu()
    with tinker.ServiceClient(base_url=url, api_key=KEY) as sc:
        trainers = [sc.create_lora_training_client(base_model="tiny-byte-lm", rank=2)
                    for _ in range(TRAINERS)]
        trainers = [t.result() for t in trainers]
        samplers = [sc.create_sampling_client(base_model="tiny-byte-lm")
                    for _ in range(SAMPLERS)]
        samplers = [s.result() for s in samplers]
        session_id = sc.holder.get_session_id()
        setup_wall, setup_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        inject_faults(url, samples)
        hog.start()
        peak_threads = run_fleet(
            lambda n: samplers[n % SAMPLERS].sample(prompt, 1, params),
            lambda: [t.forward_backward([datum], "cross_entropy") for t in trainers],
            lambda f: f.future().done(),
            samples,
            rounds,
        )
        stop.set()
        hog.join(5)
    return {
        "session_id": session_id, "samples": samples, "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - cpu0 - sum(hog_cpu) + children_cpu() - child0,
        "threads": peak_threads,
        "setup_wall_s": setup_wall, "setup_cpu_s": setup_cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "backoff_s": float("nan"), "warnings": Count.count,
    }


def run_client(url: str, samples: int, rounds: int, out_of_process: bool) -> dict[str, Any]:
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
    cpu0, t0, child0 = time.process_time(), time.perf_counter(), children_cpu()
    with tx.ServiceClient(base_url=url, api_key=KEY) as sc:
        trainers = [sc.create_lora_training_client("tiny-byte-lm", rank=2)
                    for _ in range(TRAINERS)]
        trainers = [t.result() for t in trainers]
        samplers = [sc.create_sampling_client(base_model="tiny-byte-lm",
                                              out_of_process=out_of_process)
                    for _ in range(SAMPLERS)]
        samplers = [s.result() for s in samplers]
        session_id = sc.session_id
        setup_wall, setup_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        inject_faults(url, samples)  # after set-up: they hit the fleet's work
        hog.start()
        peak_threads = run_fleet(
            lambda n: samplers[n % SAMPLERS].sample(prompt, 1, params),
            lambda: [t.forward_backward([datum], "cross_entropy") for t in trainers],
            lambda f: f.done(),
            samples,
            rounds,
        )
        stop.set()
        hog.join(5)
        backoffs = sc._limiter.stats()
    wall = time.perf_counter() - t0
    return {
        "session_id": session_id, "samples": samples, "wall_s": wall,
        "cpu_s": time.process_time() - cpu0 - sum(hog_cpu) + children_cpu() - child0,
        "threads": peak_threads,
        "setup_wall_s": setup_wall, "setup_cpu_s": setup_cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Out of process, the samplers' limiter lives in the child: not visible from here.
        "backoff_s": float("nan") if out_of_process else backoffs.total_backoff_s,
        "warnings": sum(1 for w in warnings if w.get("event") == "queue_paused"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="samples per client")
    parser.add_argument("--rounds", type=int, default=10, help="training rounds per client")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client == "official":
        print(json.dumps(run_official(args.url, args.samples, args.rounds)))
        return
    if args.client:
        print(json.dumps(run_client(args.url, args.samples, args.rounds, args.client == "oop")))
        return
    print(f"{TRAINERS} training + {SAMPLERS} sampling clients, {IN_FLIGHT} samples in flight, "
          f"a thread holding the GIL half the time; each client does the same work: "
          f"{args.samples} samples and {args.rounds} training rounds")
    print(f"{'mode':<16}| {'hb jitter s':>11} | {'backoff s':>9} | {'warnings':>8} | "
          f"{'requests':>8} | {'wall s':>6} | {'CPU s':>6} | {'threads':>7} | {'RSS MB':>6}")
    print("-" * 100)
    baseline: dict[str, Any] = {}
    for mode, label in (("official", "official 0.38"), ("thread", "in-process"),
                        ("oop", "out-of-process")):
        with embedded_server() as (url, _pid):
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--client", mode,
                 "--url", url, "--samples", str(args.samples),
                 "--rounds", str(args.rounds)],
                capture_output=True, text=True, timeout=1800,
                env=dict(os.environ, TINKER_LOG="error"))
            if proc.returncode != 0:
                raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            times = control(url, f"/_control/heartbeats/{row['session_id']}")["times"]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            jitter = max((g - 10.0 for g in gaps), default=float("nan"))
            counts = control(url, "/_control/stats")["requests"]
            row["requests"] = sum(n for path, n in counts.items() if path.startswith("/api/"))
        print(f"{label:<16}| {jitter:>11.2f} | {row['backoff_s']:>9.1f} | "
              f"{row['warnings']:>8} | {row['requests']:>8} | {row['wall_s']:>6.1f} | "
              f"{row['cpu_s']:>6.1f} | {row['threads']:>7} | {row['rss_mb']:>6.1f}")
        if not baseline:
            baseline = row
        else:
            print(f"{'  ratio':<16}| {'':>11} | {'':>9} | {'':>8} | {'':>8} | "
                  f"{row['wall_s'] / baseline['wall_s']:>6.2f} | "
                  f"{row['cpu_s'] / baseline['cpu_s']:>6.2f} | {'':>7} | "
                  f"{row['rss_mb'] / baseline['rss_mb']:>6.2f}")


if __name__ == "__main__":
    main()
