"""Client CPU per small JSON POST on loopback: our Transport beside plain httpx.AsyncClient.

Run: python benchmarks/transport_bench.py [--requests 1000]

A small asyncio + h11 server runs in a subprocess (pinned to the last core when
the machine has two or more). The client process measures its own CPU time
(all threads: our Transport does its I/O on a loop thread) while keeping 1, 50
and 500 requests in flight. Both clients use the same connection limits (the
official 1,000 connections, 20 kept alive), so the difference is our layer:
headers, retries bookkeeping and the hop between the caller's thread and the
loop thread (`submit` from a plain thread, as an actor does).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import h11
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinkex_actors.config import Config, PoolLimits  # noqa: E402
from tinkex_actors.transport.messages import HttpRequest  # noqa: E402
from tinkex_actors.transport.transport import Transport  # noqa: E402

BODY = b'{"type":"create_model","session_id":"s-1","base_model":"tiny","seq_id":1}'
ANSWER = b'{"model_id":"m-1","type":"create_model"}'
KEY = "tml-BenchmarkKey000000000000000000000000"
WAIT_S = 120.0


# -- the server (subprocess) -----------------------------------------------------------


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            if isinstance(event, h11.EndOfMessage):
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(ANSWER))),
                ]
                writer.write(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
                writer.write(conn.send(h11.Data(data=ANSWER)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                break
    except (h11.RemoteProtocolError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve() -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", 0, backlog=2048)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    # The parent closes our stdin to stop us.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def _pin(core_from_end: int) -> None:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) >= 2:
        os.sched_setaffinity(0, {cores[-1 - core_from_end]})


# -- the clients -----------------------------------------------------------------------


def bench_httpx(url: str, in_flight: int, total: int) -> float:
    """CPU seconds per request for plain httpx.AsyncClient on the main thread's loop."""

    async def run() -> float:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=20)
        async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:
            headers = {"content-type": "application/json", "x-api-key": KEY}
            await client.post(url, content=BODY, headers=headers)  # warm up
            remaining = total

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    response = await client.post(url, content=BODY, headers=headers)
                    assert response.status_code == 200

            start = time.process_time()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return (time.process_time() - start) / total

    return asyncio.run(run())


def bench_transport(base_url: str, in_flight: int, total: int) -> float:
    """CPU seconds per request for Transport.submit from a plain thread (as an actor does)."""
    config = Config(
        api_key=KEY, base_url=base_url, pool_limits={}  # the official limits for every kind
    )
    assert config.limits_for(next(iter(config.pool_limits))) == PoolLimits()
    request = HttpRequest("POST", "create_model", BODY)
    with Transport(config) as transport:
        transport.submit(request).result(WAIT_S)  # warm up
        window = threading.Semaphore(in_flight)
        done = threading.Event()
        failures: list[BaseException] = []
        finished = 0
        lock = threading.Lock()

        def on_done(future: concurrent.futures.Future[object]) -> None:
            nonlocal finished
            if future.exception() is not None:
                failures.append(future.exception())  # type: ignore[arg-type]
            window.release()
            with lock:
                finished += 1
                if finished == total:
                    done.set()

        start = time.process_time()
        for _ in range(total):
            if not window.acquire(timeout=WAIT_S):
                raise RuntimeError("no request completed within the deadline")
            transport.submit(request).add_done_callback(on_done)
        if not done.wait(WAIT_S):
            raise RuntimeError("requests did not complete within the deadline")
        elapsed = time.process_time() - start
        if failures:
            raise RuntimeError(f"{len(failures)} requests failed: {failures[0]!r}")
    return elapsed / total


def main() -> None:
    """Start the server, measure both clients at each concurrency, print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="requests per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per cell; the best is shown"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _pin(0)
        asyncio.run(_serve())
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        _pin(1)
        base_url = f"http://127.0.0.1:{port}"
        url = f"{base_url}/api/v1/create_model"
        print(
            f"client CPU per small JSON POST (ms), best of {args.rounds} alternating rounds "
            f"of {args.requests} requests; load average {os.getloadavg()[0]:.2f}"
        )
        print(f"{'in flight':>10} {'httpx.AsyncClient':>18} {'our Transport':>14} {'ratio':>7}")
        for in_flight in (1, 50, 500):
            baseline = ours = float("inf")
            # Alternate the two so that load from other processes hits both alike.
            for _ in range(args.rounds):
                baseline = min(baseline, bench_httpx(url, in_flight, args.requests))
                ours = min(ours, bench_transport(base_url, in_flight, args.requests))
            print(
                f"{in_flight:>10} {baseline * 1e3:>18.3f} {ours * 1e3:>14.3f} "
                f"{ours / baseline:>6.2f}x"
            )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    main()
