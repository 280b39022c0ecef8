"""Chaos profiles: wall time against an undisturbed run, ours beside the official SDK.

The embedded server runs in its own process; faults go in through `/_control/faults`. Each
client runs a training loop of N steps (forward_backward + optim_step, waiting on each step as
a recipe does) in a child process of this script, with ours or with the official `tinker` SDK:

- calm: nothing injected (the baseline of the same run);
- (b) faults: one request in ten (per training path, polls and heartbeats) dropped or answered
  503, 408 or 429;
- (c) outage: every training request, poll and heartbeat answered 503 for OUTAGE_S seconds
  starting once the loop runs; the server counts the `retrieve_future` calls made meanwhile, so
  "polls/s/future" is polls per second per pending future during the outage.

A run that fails prints its error instead of a wall time.

    python benchmarks/chaos_bench.py [--quick] [--steps N] [--outage S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from _embedded import HEADERS, KEY, embedded_server

PATHS = (
    "/api/v1/forward_backward",
    "/api/v1/optim_step",
    "/api/v1/retrieve_future",
    "/api/v1/session_heartbeat",
)
RETRIEVE = "/api/v1/retrieve_future"
CHILD_WAIT_S = 900.0


def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}{path}", data=data, headers={"content-type": "application/json", **HEADERS}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def add_fault(url: str, **fault: Any) -> None:
    control(url, "/_control/faults", {"action": "add", "fault": fault})


def polls(url: str) -> int:
    return int(control(url, "/_control/stats")["requests"].get(RETRIEVE, 0))


# -- the child: one client, one loop ---------------------------------------------------------


def child(client: str, url: str, steps: int) -> None:
    """Train `steps` steps; print READY once the model exists, then one JSON result line."""
    tokens = [(7 * i + 3) % 200 + 1 for i in range(9)]
    if client == "ours":
        import tinkex_actors as sdk
        from tinkex_actors import types
    else:
        import tinker as sdk  # type: ignore[no-redef]
        from tinker import types  # type: ignore[no-redef]
    datum = types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": [1.0] * (len(tokens) - 1)},
    )
    service = sdk.ServiceClient(base_url=url, api_key=KEY)
    trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result()
    print("READY", flush=True)
    started = time.monotonic()
    error = None
    done = 0
    try:
        for _ in range(steps):  # one future pending at a time: polls/s are per future
            trainer.forward_backward([datum], "cross_entropy").result()
            trainer.optim_step(types.AdamParams(learning_rate=1e-3)).result()
            done += 1
    except Exception as exc:  # the figure says the profile failed, and how
        error = f"{type(exc).__name__}: {str(exc)[:120]}"
    wall_s = time.monotonic() - started
    print(json.dumps({"wall_s": wall_s, "steps": done, "error": error}), flush=True)
    close = getattr(service, "close", None)
    if close is not None:
        close()
    os._exit(0)  # the official SDK's client may keep its threads: the figure is in


def run_child(client: str, url: str, steps: int, on_ready: Any) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", client, "--url", url, "--steps", str(steps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, TINKER_LOG="error"),
    )
    assert proc.stdout is not None
    result: dict[str, Any] = {"error": "no result"}
    for line in proc.stdout:
        if line.startswith("READY"):
            on_ready()
        elif line.startswith("{"):
            result = json.loads(line)
    proc.wait(CHILD_WAIT_S)
    return result


# -- the parent: profiles ---------------------------------------------------------------------


def profile(client: str, name: str, steps: int, outage_s: float) -> dict[str, Any]:
    with embedded_server() as (url, _pid):
        figures: dict[str, Any] = {}

        def start_faults() -> None:
            if name == "faults":
                for path in PATHS:
                    for status in (None, 503, 408, 429):
                        kind = {"kind": "drop"} if status is None else {
                            "kind": "status", "status": status,
                            "headers": {"retry-after-ms": "50"} if status == 429 else {},
                        }
                        add_fault(url, path=path, times=100_000, every=40, **kind)
            elif name == "outage":

                def outage() -> None:
                    before = polls(url)
                    for path in PATHS:
                        add_fault(url, path=path, kind="status", status=503, times=10_000_000)
                    time.sleep(outage_s)  # the outage itself: real time, by definition
                    control(url, "/_control/faults", {"action": "clear"})
                    figures["polls_per_s"] = (polls(url) - before) / outage_s

                threading.Thread(target=outage, daemon=True).start()

        result = run_child(client, url, steps, start_faults)
        result.update(figures)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("ours", "official"))
    parser.add_argument("--url")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="10 steps, a 10 s outage")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.steps)
        return
    steps, outage_s = (10, 10.0) if args.quick else (args.steps, args.outage)
    clients = ["ours"]
    try:
        import tinker  # noqa: F401

        clients.append("official")
    except ImportError:
        print("official SDK not installed: ours only")
    print(f"chaos_bench: {steps} steps per run, outage {outage_s:g} s")
    print(f"{'client':<9} {'profile':<8} {'wall s':>8} {'x calm':>7} {'polls/s/future':>15}  note")
    for client in clients:
        calm = profile(client, "calm", steps, outage_s)
        for name in ("calm", "faults", "outage"):
            result = calm if name == "calm" else profile(client, name, steps, outage_s)
            wall = result.get("wall_s")
            ratio = (
                f"{wall / calm['wall_s']:.2f}" if wall and calm.get("wall_s") else "-"
            )
            pps = result.get("polls_per_s")
            pps_text = f"{pps:.2f}" if pps is not None else "-"
            note = result.get("error") or f"{result.get('steps')} steps"
            wall_text = f"{wall:.2f}" if wall is not None else "-"
            print(f"{client:<9} {name:<8} {wall_text:>8} {ratio:>7} {pps_text:>15}  {note}")


if __name__ == "__main__":
    main()
