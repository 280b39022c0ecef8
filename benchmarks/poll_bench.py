"""What waiting on many futures costs the client: ours (PollerPool) beside the official SDK.

The embedded server runs in its own process (`tinkex-actors serve`), so only client costs are
measured. For each level (1,000 and 10,000 futures in flight) the server makes synthetic
futures (`/_control/make_futures`) that complete over 10 s; a fresh child process of this script
then waits on all of them, with the official `tinker` SDK (its `_APIFuture`, one coroutine per
future on its own loop), with ours (a PollerPool of 4 Poller actors on one Transport, its
default httpx-over-aiohttp layer), and with ours on pyqwest (the official SDK's HTTP backend,
as an httpx transport under our Transport). Each child reports:

- threads: the most OS threads alive at once while waiting (from /proc, so the official SDK's
  native transport threads count too), the sampler thread excluded;
- peak memory: the highest resident set size while waiting, minus the size before;
- CPU: user + system time of the client process from the first future to the last result,
  per future;
- polls per future: `retrieve_future` calls sent per completed future.

    python benchmarks/poll_bench.py [--quick]      # --quick: 1,000 only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from _embedded import HEADERS, KEY, embedded_server

HOST = "127.0.0.1"
RESOLVE_AFTER_S = 0.5
SPREAD_S = 10.0
WAIT_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def os_threads() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return threading.active_count()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class Sampler:
    """Samples thread count and RSS every 20 ms until stopped."""

    def __init__(self) -> None:
        self.max_threads = 0
        self.max_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_threads = max(self.max_threads, os_threads() - 1)
            self.max_rss = max(self.max_rss, rss_bytes())
            self._stop.wait(0.02)


def make_futures(url: str, count: int) -> list[str]:
    import httpx

    answer = httpx.post(
        url + "/_control/make_futures",
        json={"count": count, "resolve_after_s": RESOLVE_AFTER_S, "spread_s": SPREAD_S},
        timeout=60.0,
        headers=HEADERS,
    )
    answer.raise_for_status()
    ids: list[str] = answer.json()["request_ids"]
    return ids


def measure(
    url: str, count: int, setup: Callable[[str], tuple[Callable[[str], Any], Callable[[], int]]]
) -> dict[str, float]:
    """Track `count` futures with the client `setup(url)` builds; the figures of one run."""
    track, polls = setup(url)
    for warm in make_futures(url, 4):  # connections open, code paths warm
        track(warm).result(60)
    ids = make_futures(url, count)
    polls_before = polls()
    rss_before = rss_bytes()
    with Sampler() as sampler:
        cpu0, wall0 = time.process_time(), time.monotonic()
        futures = [track(rid) for rid in ids]
        for future in futures:
            future.result(WAIT_S)
        cpu1, wall1 = time.process_time(), time.monotonic()
    return {
        "threads": sampler.max_threads,
        "peak_mb": max(sampler.max_rss - rss_before, 0) / 2**20,
        "cpu_ms_per_future": (cpu1 - cpu0) * 1000 / count,
        "polls_per_future": (polls() - polls_before) / count,
        "wall_s": wall1 - wall0,
    }


def ours(url: str, *, pyqwest: bool = False) -> tuple[Callable[[str], Any], Callable[[], int]]:
    from tinkex_actors.config import Config
    from tinkex_actors.futures.poll_ledger import PollSpec
    from tinkex_actors.futures.poller_pool import PollerPool
    from tinkex_actors.transport.transport import Transport

    factory = None
    if pyqwest:  # the official SDK's HTTP backend under our httpx client
        import pyqwest as pyqwest_module
        from pyqwest.httpx import AsyncPyqwestTransport

        def factory(_kind: Any, _limits: Any) -> Any:
            return AsyncPyqwestTransport(transport=pyqwest_module.HTTPTransport())

    transport = Transport(Config(api_key=KEY, base_url=url), transport_factory=factory)
    sent = [0]
    submit = transport.submit

    def counting_submit(request: Any) -> Any:
        sent[0] += 1
        return submit(request)

    transport.submit = counting_submit  # type: ignore[method-assign]
    pool = PollerPool(transport).start()
    return (lambda rid: pool.track(PollSpec(rid, "OptimStep"))), (lambda: sent[0])


def official(url: str) -> tuple[Callable[[str], Any], Callable[[], int]]:
    import tinker
    from tinker import types
    from tinker.lib.api_future_impl import _APIFuture
    from tinker.resources.futures import AsyncFuturesResource

    sent = [0]
    retrieve = AsyncFuturesResource.retrieve

    async def counting_retrieve(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return await retrieve(self, *args, **kwargs)

    AsyncFuturesResource.retrieve = counting_retrieve  # type: ignore[method-assign]
    service = tinker.ServiceClient(base_url=url, api_key=KEY)
    holder = service._get_session_holder()

    def track(rid: str) -> Any:
        return _APIFuture(
            types.OptimStepResponse,
            holder,
            types.UntypedAPIFuture(request_id=rid),
            time.time(),
            "OptimStep",
        )

    return track, (lambda: sent[0])


def ours_pyqwest(url: str) -> tuple[Callable[[str], Any], Callable[[], int]]:
    return ours(url, pyqwest=True)


CLIENTS: dict[str, Callable[[str], tuple[Callable[[str], Any], Callable[[], int]]]] = {
    "official": official,
    "ours": ours,
    "ours+pyqwest": ours_pyqwest,
}


def child(kind: str, url: str, count: int) -> None:
    figures = measure(url, count, CLIENTS[kind])
    print(json.dumps(figures), flush=True)
    os._exit(0)  # the official client keeps daemon threads; the figures are out


def run_child(kind: str, url: str, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--url", url, "--count", str(count)],
        capture_output=True,
        text=True,
        timeout=WAIT_S + 120,
        env=dict(os.environ, TINKER_TELEMETRY="0"),
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} child failed ({out.returncode}): {out.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(lines[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 futures only")
    parser.add_argument("--child", choices=list(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.count)
        return
    levels = [1000] if args.quick else [1000, 10_000]
    with embedded_server(log="warning") as (url, pid):
        print(f"embedded server pid {pid}; futures complete over {SPREAD_S:g} s after "
              f"{RESOLVE_AFTER_S:g} s; each client in a fresh process")
        print(f"{'futures':>8} | {'client':>12} | {'threads':>7} | {'peak MB':>8} | "
              f"{'CPU ms/future':>13} | {'polls/future':>12} | {'wall s':>6}")
        for count in levels:
            rows = {kind: run_child(kind, url, count) for kind in CLIENTS}
            for kind, f in rows.items():
                print(f"{count:>8} | {kind:>12} | {f['threads']:>7.0f} | {f['peak_mb']:>8.1f} | "
                      f"{f['cpu_ms_per_future']:>13.3f} | {f['polls_per_future']:>12.2f} | "
                      f"{f['wall_s']:>6.1f}")
            base = rows["official"]["cpu_ms_per_future"]
            ratios = ", ".join(
                f"{kind} {rows[kind]['cpu_ms_per_future'] / base:.2f}" for kind in CLIENTS
                if kind != "official"
            )
            print(f"{'':>8}   CPU per future relative to official: {ratios}")


if __name__ == "__main__":
    main()
