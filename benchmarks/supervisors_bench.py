"""Cost of supervision, side by side with plain pykka measured in the same process.

Run: ``python benchmarks/supervisors_bench.py [--restarts 300] [--children 1000] [--asks 20000]``

It prints:
- restart latency: from the crash of a child (an exception in a told message) to its
  replacement answering an ``ask``, median and p99, under a one_for_one ``Supervisor``;
  baseline: a hand-written pykka loop that waits for the actor's stop event, starts a new
  actor and asks it (what you would write without supervisors);
- time, resident memory and threads to start and then stop 1,000 children under a
  ``Supervisor`` (via ``start_child``), under a ``DynamicSupervisor``, and as pooled processes
  (``pooled = True``) under a ``DynamicSupervisor``; baseline: 1,000 plain pykka actors
  started with ``start()`` and stopped with ``ActorRegistry.stop_all()``;
- ask round trip (median of all asks, and median of the best round) to a plain pykka
  actor, to a ``Process`` by raw ref, to the same ``Process`` through a ``SupervisedRef``
  (one registry lookup per call), and to a pooled ``Process``; then raw ref and
  ``SupervisedRef`` alternated call by call on the same ``Process``, the fair figure for the
  lookup's cost.

Logging is silenced (structlog and the ``pykka`` logger) so that formatting tracebacks does not
dominate the figures. Targets from issue 3: supervision adds under 10% to ask latency;
restarts complete in under 5 ms median.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import logging
import os
import queue
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pykka
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    Process,
    Registry,
    SupervisedRef,
    Supervisor,
    start_child,
    stop,
)

TIMEOUT_S = 30.0
ROUNDS = 40


class PlainEcho(pykka.ThreadingActor):
    """Baseline actor: answers asks, raises on 'crash'."""

    def __init__(self, started: threading.Event | None = None) -> None:
        super().__init__()
        self.started = started

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        return message


class Echo(Process):
    """Supervised actor: answers asks, raises on 'crash', announces each start on a queue."""

    def __init__(self, started: queue.SimpleQueue[Any] | None = None) -> None:
        super().__init__()
        self.started = started

    def init(self) -> None:
        if self.started is not None:
            self.started.put(self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        return message


class PooledEcho(Echo):
    """The same actor as a pooled process: it shares the scheduler's workers."""

    pooled = True


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def restart_latency(n: int) -> tuple[list[float], list[float]]:
    """Crash-to-answer latencies (seconds) under a Supervisor, and for the pykka baseline."""
    supervised: list[float] = []
    started: queue.SimpleQueue[Any] = queue.SimpleQueue()
    sup = Supervisor.start(
        [ChildSpec(id="echo", start=lambda: Echo.start(started))], max_restarts=10 * n
    )
    ref = started.get(timeout=TIMEOUT_S)
    for _ in range(n):
        begin = time.perf_counter()
        ref.tell("crash")
        ref = started.get(timeout=TIMEOUT_S)
        ref.ask("ping", timeout=TIMEOUT_S)
        supervised.append(time.perf_counter() - begin)
    stop(sup, timeout_s=TIMEOUT_S)

    baseline: list[float] = []
    plain = PlainEcho.start()
    for _ in range(n):
        begin = time.perf_counter()
        plain.tell("crash")
        if not plain.actor_stopped.wait(TIMEOUT_S):
            raise TimeoutError("no stop")
        plain = PlainEcho.start()
        plain.ask("ping", timeout=TIMEOUT_S)
        baseline.append(time.perf_counter() - begin)
    plain.stop(timeout=TIMEOUT_S)
    return supervised, baseline


def start_stop(n: int, kind: str) -> tuple[float, float, float, int]:
    """(start seconds, stop seconds, RSS MB added, threads added) for n children."""
    gc.collect()
    before, threads_before = rss_mb(), threading.active_count()
    begin = time.perf_counter()
    if kind == "pykka":
        refs = [PlainEcho.start() for _ in range(n)]
        refs[-1].ask("ping", timeout=TIMEOUT_S)
    elif kind == "supervisor":
        sup = Supervisor.start([])
        for i in range(n):
            start_child(sup, ChildSpec(id=i, start=Echo.start), timeout_s=TIMEOUT_S)
    else:
        actor = PooledEcho if kind == "pooled" else Echo
        sup = DynamicSupervisor.start()
        for i in range(n):
            start_child(sup, ChildSpec(id=i, start=actor.start), timeout_s=TIMEOUT_S)
    started = time.perf_counter() - begin
    grown, threads = rss_mb() - before, threading.active_count() - threads_before
    begin = time.perf_counter()
    if kind == "pykka":
        pykka.ActorRegistry.stop_all(block=True, timeout=TIMEOUT_S)
    else:
        stop(sup, timeout_s=TIMEOUT_S)
    stopped = time.perf_counter() - begin
    return started, stopped, grown, threads


def ask_round_trip(n: int) -> dict[str, list[list[float]]]:
    """Per-ask seconds for a plain pykka actor, a Process by raw ref, and by SupervisedRef."""
    plain = PlainEcho.start()
    registry = Registry()
    sup = Supervisor.start([ChildSpec(id="echo", start=Echo.start, name="echo")], registry=registry)
    raw = registry.whereis("echo")
    assert raw is not None
    handle = SupervisedRef("echo", registry)
    pooled = PooledEcho.start()
    targets: dict[str, Any] = {
        "pykka actor (raw ref)": plain,
        "Process (raw ref)": raw,
        "Process (SupervisedRef)": handle,
        "pooled Process (raw ref)": pooled,
    }
    results: dict[str, list[list[float]]] = {name: [] for name in targets}
    for target in targets.values():  # warm up
        for _ in range(500):
            target.ask("ping", timeout=TIMEOUT_S)
    for _ in range(ROUNDS):  # short interleaved rounds, so load from elsewhere hits all alike
        for name, target in targets.items():
            timings: list[float] = []
            for _ in range(n // ROUNDS):
                begin = time.perf_counter()
                target.ask("ping", timeout=TIMEOUT_S)
                timings.append(time.perf_counter() - begin)
            results[name].append(timings)
    paired: dict[str, list[list[float]]] = {"raw": [[]], "supervised": [[]]}
    for _ in range(n // 2):  # the same actor, calls alternated: the lookup's own cost
        begin = time.perf_counter()
        raw.ask("ping", timeout=TIMEOUT_S)
        middle = time.perf_counter()
        handle.ask("ping", timeout=TIMEOUT_S)
        paired["raw"][0].append(middle - begin)
        paired["supervised"][0].append(time.perf_counter() - middle)
    results["paired raw"] = paired["raw"]
    results["paired SupervisedRef"] = paired["supervised"]
    plain.stop(timeout=TIMEOUT_S)
    stop(pooled, timeout_s=TIMEOUT_S)
    stop(sup, timeout_s=TIMEOUT_S)
    return results


def main() -> None:
    """Run every measurement and print the figures beside their baselines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=300)
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--asks", type=int, default=20000)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    logging.getLogger("pykka").setLevel(logging.CRITICAL)

    pykka_version = importlib.metadata.version("pykka")
    print(f"python {sys.version.split()[0]}, pykka {pykka_version}, {os.cpu_count()} cpus")
    supervised, baseline = restart_latency(args.restarts)
    ms = 1000.0
    print(f"\nrestart latency, crash -> replacement answers an ask ({args.restarts} restarts)")
    print(f"  {'':34} {'median ms':>10} {'p99 ms':>10}")
    print(
        f"  {'Supervisor one_for_one':34} {statistics.median(supervised) * ms:10.3f} "
        f"{pct(supervised, 0.99) * ms:10.3f}"
    )
    print(
        f"  {'baseline: hand-written pykka loop':34} {statistics.median(baseline) * ms:10.3f} "
        f"{pct(baseline, 0.99) * ms:10.3f}"
    )

    print(f"\nstart then stop {args.children} children")
    print(f"  {'':34} {'start s':>10} {'stop s':>10} {'RSS +MB':>10} {'threads +':>10}")
    for label, kind in [
        ("baseline: plain pykka actors", "pykka"),
        ("Supervisor + start_child", "supervisor"),
        ("DynamicSupervisor + start_child", "dynamic"),
        ("DynamicSupervisor, pooled children", "pooled"),
    ]:
        started, stopped, grown, threads = start_stop(args.children, kind)
        print(f"  {label:34} {started:10.3f} {stopped:10.3f} {grown:10.1f} {threads:10d}")

    results = ask_round_trip(args.asks)
    print(f"\nask round trip ({args.asks} asks each, {ROUNDS} interleaved rounds)")
    print(f"  {'':34} {'median us':>10} {'best round':>10} {'vs pykka':>10}")
    paired_raw = statistics.median(results.pop("paired raw")[0])
    paired_handle = statistics.median(results.pop("paired SupervisedRef")[0])
    bests = {}
    for name, rounds in results.items():
        median = statistics.median([t for timings in rounds for t in timings])
        bests[name] = min(statistics.median(timings) for timings in rounds)
        versus = (bests[name] / bests["pykka actor (raw ref)"] - 1) * 100
        print(f"  {name:34} {median * 1e6:10.1f} {bests[name] * 1e6:10.1f} {versus:+9.1f}%")
    raw, handle = bests["Process (raw ref)"], bests["Process (SupervisedRef)"]
    print(
        f"  SupervisedRef vs raw ref to the same Process (best rounds): "
        f"{(handle / raw - 1) * 100:+.1f}%"
    )
    print("  (vs pykka compares best-round medians, the figure least disturbed by other load)")
    print(
        f"  SupervisedRef vs raw ref, calls alternated on the same Process: "
        f"{paired_handle * 1e6:.1f} vs {paired_raw * 1e6:.1f} us median, "
        f"{(paired_handle / paired_raw - 1) * 100:+.1f}%"
    )
    print("  (rounds of one kind at a time land on different thread wake-up patterns from run")
    print("  to run; alternating call by call compares the two paths under the same ones)")


if __name__ == "__main__":
    main()
