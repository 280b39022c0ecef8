"""Threads per idle client, and the thread switches of one forward_backward and one sample.

The walk docs/architecture.md describes, measured. The server runs in its own process
(`tinkex-actors serve`), so every thread counted here is the client's. A profiler
(`sys.setprofile` + `threading.setprofile`, nothing patched) records, while one call is traced,
which thread runs each function of `tinkex_actors` and `supervisors`; consecutive calls on the
same thread form one hop, and a thread switch is a change of thread from one hop to the next.
Each figure is the median of `--runs` calls after one untraced warm-up call.

Printed: the threads a ServiceClient, a training client and a sampling client add while idle
(with their names), the same for the embedded server started in-process, and for each call
the hand-offs between threads (a message, a loop submit, a timer, the result: the design's
hops), every thread switch on the request's path (hand-offs plus the interpreter resuming a
thread that lost the GIL mid-handler), the switches with the telemetry side branch, and the
hops of the shortest run (thread: the first and last function it ran).

    python benchmarks/trace_hops.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from _embedded import KEY, embedded_server

import tinkex_actors as tx
from tinkex_actors import types

PACKAGE_DIRS = tuple(
    str(Path(__file__).resolve().parent.parent / name) + os.sep
    for name in ("tinkex_actors", "supervisors")
)
SERVER_DIR = str(Path(__file__).resolve().parent.parent / "tinkex_actors" / "local") + os.sep
MODEL = "tiny-byte-lm"

Event = tuple[str, str]  # (thread name, "module.function")
SIDE_BRANCH = ("tinkex-telemetry", "TelemetryReporter")
"""Threads that observe a request (telemetry events) but are not on its path."""


class Tracer:
    """Records (thread, function) of our package's calls while `recording` is set."""

    def __init__(self) -> None:
        self.recording = False
        self.events: list[Event] = []
        self._actor: dict[int, str] = {}  # a pool worker's thread -> the actor of its slice

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.recording or event != "call":
            return
        filename = frame.f_code.co_filename
        if filename.startswith(PACKAGE_DIRS) and not filename.startswith(SERVER_DIR):
            module = Path(filename).stem
            thread = threading.current_thread()
            function = f"{module}.{frame.f_code.co_qualname}"
            if function == "_process.Process._slice":  # a pooled actor takes the worker
                self._actor[thread.ident or 0] = type(frame.f_locals.get("self")).__name__
            actor = self._actor.get(thread.ident or 0)
            # On a pool worker, which actor runs tells the hop: two actors, two hops.
            self.events.append((f"{thread.name}[{actor}]" if actor else thread.name, function))

    def trace(self, call: Callable[[], object]) -> list[Event]:
        """The events of one call, from the caller's first line until its result is in."""
        self.events = []
        self.recording = True
        try:
            call()
            # The caller waking with the result runs none of our functions: mark it.
            self.events.append((threading.current_thread().name, "<caller has the result>"))
        finally:
            self.recording = False
        return self.events


def hops(events: list[Event]) -> list[tuple[str, str, str]]:
    """Consecutive events of one thread merged: (thread, first function, last function)."""
    merged: list[tuple[str, str, str]] = []
    for thread, function in events:
        if merged and merged[-1][0] == thread:
            merged[-1] = (thread, merged[-1][1], function)
        else:
            merged.append((thread, function, function))
    return merged


def role(thread: str) -> str:
    """A thread's name without its serial number (Poller-5 -> Poller), with the actor a pool
    worker runs (supervisors-pool-1[TelemetryReporter] -> supervisors-pool[TelemetryReporter])."""
    name, bracket, actor = thread.partition("[")
    head, _, tail = name.rpartition("-")
    return (head if tail.isdigit() else name) + bracket + actor


def thread_names() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


HAND_OFF_ENTRIES = (
    "_process.Process._slice",  # a pooled actor takes a message
    "_process.Process._step",  # a threaded actor takes a message
    "loop_thread.LoopThread._drain",  # the loop takes work handed to it
    "timers.",  # the timer thread fires a delayed message
    "<caller",
)
"""Functions a hop starts with when another thread handed it work. A hop that starts elsewhere
is a thread resuming what it was doing when the GIL went to another thread: a switch the
interpreter made, not a hop of the design."""


def hand_offs(events: list[Event]) -> int:
    """Thread switches caused by a hand-off (message, loop submit, timer, result)."""
    return sum(first.startswith(HAND_OFF_ENTRIES) for _, first, _ in hops(events)[1:])


def on_path(events: list[Event]) -> list[Event]:
    """The events of the request's own path: the telemetry side branch left out."""
    return [
        (thread, function)
        for thread, function in events
        if not any(side in role(thread) for side in SIDE_BRANCH)
    ]


def report(label: str, runs: list[list[Event]]) -> None:
    handed = [hand_offs(on_path(events)) for events in runs]
    every = [len(hops(events)) - 1 for events in runs]
    path = [len(hops(on_path(events))) - 1 for events in runs]
    print(f"\n{label}: hand-offs between threads (the design's hops): median "
          f"{statistics.median(handed):g}, runs {handed}")
    print(f"  thread switches on the request's path (GIL interleaving included): median "
          f"{statistics.median(path):g}, runs {path}")
    print(f"  counting the telemetry side branch too: median {statistics.median(every):g}, "
          f"runs {every}")
    example = on_path(runs[path.index(min(path))])
    for thread, first, last in hops(example):
        print(f"  {role(thread):<18} {first}  ..  {last}")
    threads = {role(t).partition("[")[0] for t, _ in example}
    print(f"  threads on the path: {len(threads)} ({', '.join(sorted(threads))})")
    longest = on_path(runs[path.index(max(path))])
    if max(path) > min(path):
        print(f"  the longest run ({max(path)}) went: "
              + " > ".join(role(thread) for thread, _, _ in hops(longest)))


def measure_threads_in_process_server() -> None:
    """Threads of a ServiceClient that starts the embedded server in this process."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TINKER_")}
    before = thread_names()
    service = tx.ServiceClient(environ=environ)
    try:
        added = sorted(thread_names() - before)
        print(f"\nServiceClient() with the in-process embedded server: +{len(added)} threads")
        print("  " + ", ".join(added))
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    tracer = Tracer()
    sys.setprofile(tracer)
    threading.setprofile(tracer)  # every thread the client starts from here on
    datum = types.Datum(
        model_input=types.ModelInput.from_ints(list(range(1, 65))),
        loss_fn_inputs={"target_tokens": list(range(2, 66)), "weights": [1.0] * 64},
    )
    prompt = types.ModelInput.from_ints(list(range(1, 33)))
    params = types.SamplingParams(max_tokens=8, temperature=1.0, seed=1)
    with embedded_server() as (url, _pid):
        start = thread_names()
        service: Any = tx.ServiceClient(base_url=url, api_key=KEY)
        try:
            with_service = thread_names()
            trainer = service.create_lora_training_client(MODEL, rank=8).result(60)
            with_trainer = thread_names()
            sampler = service.create_sampling_client(base_model=MODEL).result(60)
            with_sampler = thread_names()
            print(f"threads before any client: {len(start)} ({', '.join(sorted(start))})")
            for label, grown, base in (
                ("ServiceClient (idle)", with_service, start),
                ("+ training client (idle)", with_trainer, with_service),
                ("+ sampling client (idle)", with_sampler, with_trainer),
            ):
                added = sorted(grown - base)
                print(f"{label}: +{len(added)} threads  {', '.join(added)}")
            print(f"total with one of each, main thread included: {len(with_sampler)}")

            def forward_backward() -> object:
                return trainer.forward_backward([datum], "cross_entropy").result(60)

            def sample() -> object:
                return sampler.sample(prompt, 1, params).result(60)

            forward_backward()
            sample()  # warm: connections open, code paths imported
            report("forward_backward", [tracer.trace(forward_backward) for _ in range(args.runs)])
            report("sample", [tracer.trace(sample) for _ in range(args.runs)])
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]
            service.close()
    measure_threads_in_process_server()


if __name__ == "__main__":
    main()
