"""Client churn against a long-lived embedded server: does its memory stay flat?

Runs `tinkex-actors serve` in its own process with a short session timeout, then lets N
clients come and go, `CONCURRENCY` at a time: each creates a session and a LoRA model, trains
one step (forward_backward + optim_step), reads both results, and vanishes without a goodbye
(no finish, no heartbeat: what a killed script does). Once the last one is gone and the session
timeout has passed, the server's RSS and thread count are printed beside the same figures taken
after a warm-up of `CONCURRENCY` clients (the baseline: imports loaded, pools started).

    python benchmarks/churn_bench.py            # 1,000 clients
    python benchmarks/churn_bench.py --full     # 10,000 clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from _embedded import KEY, embedded_server

HOST = "127.0.0.1"
CONCURRENCY = 32
SESSION_TIMEOUT_S = 3.0
TOKENS = list(b"the quick brown fox jumps over the lazy dog")


class Conn:
    """One keep-alive HTTP/1.1 connection speaking JSON with the server's key."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer, port)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nhost: {HOST}:{self.port}\r\nx-api-key: {KEY}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n")
        self.writer.write(head.encode() + data)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        raw = await self.reader.readexactly(length)
        return status, json.loads(raw) if raw else None

    async def result(self, request_id: str) -> Any:
        while True:
            status, body = await self.request("POST", "/api/v1/retrieve_future",
                                              {"request_id": request_id})
            if status == 200 and body.get("type") != "try_again":
                if "error" in body:
                    raise RuntimeError(body["error"])
                return body
            if status != 408:
                raise RuntimeError(f"retrieve_future answered {status}: {body}")

    def close(self) -> None:
        self.writer.close()


async def one_client(port: int) -> None:
    """Session, model, one training step, then gone (the connection just closes)."""
    conn = await Conn.open(port)
    try:
        _, body = await conn.request("POST", "/api/v1/create_session", {"tags": ["churn"]})
        session_id = body["session_id"]
        _, body = await conn.request("POST", "/api/v1/create_model", {
            "session_id": session_id, "model_seq_id": 0, "base_model": "tiny-byte-lm",
            "lora_config": {"rank": 4}})
        model_id = body["model_id"]
        await conn.result(body["request_id"])
        n = len(TOKENS) - 1
        _, fb = await conn.request("POST", "/api/v1/forward_backward", {
            "model_id": model_id, "seq_id": 1, "forward_backward_input": {
                "loss_fn": "cross_entropy", "data": [{
                    "model_input": {"chunks": [{"type": "encoded_text", "tokens": TOKENS[:-1]}]},
                    "loss_fn_inputs": {"target_tokens": {
                        "data": TOKENS[1:], "dtype": "int64", "shape": [n]}}}]}})
        _, opt = await conn.request("POST", "/api/v1/optim_step", {
            "model_id": model_id, "seq_id": 2, "adam_params": {"learning_rate": 1e-3}})
        await conn.result(fb["request_id"])
        await conn.result(opt["request_id"])
    finally:
        conn.close()


async def churn(port: int, clients: int) -> float:
    """Run `clients` clients, CONCURRENCY at a time; wall seconds."""
    start = time.perf_counter()
    queue = iter(range(clients))

    async def lane() -> None:
        for _ in queue:
            await one_client(port)

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return time.perf_counter() - start


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MiB, thread count) of a process."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


async def stats(port: int) -> dict[str, Any]:
    conn = await Conn.open(port)
    try:
        _, body = await conn.request("GET", "/_control/stats")
        return {k: body[k] for k in ("sessions", "models", "futures", "pending_futures")}
    finally:
        conn.close()


async def main_async(port: int, pid: int, clients: int) -> None:
    boot = proc_status(pid)
    await churn(port, CONCURRENCY)  # warm-up: imports, pools, allocator arenas
    await asyncio.sleep(SESSION_TIMEOUT_S + 2.5)  # let the warm-up sessions expire
    warm = proc_status(pid)
    warm_stats = await stats(port)
    wall = await churn(port, clients)
    during = proc_status(pid)
    # The server's housekeeping runs each second; wait out the timeout plus two rounds.
    await asyncio.sleep(SESSION_TIMEOUT_S + 2.5)
    end = proc_status(pid)
    end_stats = await stats(port)
    print(f"{clients:,} clients in {wall:.1f} s ({clients / wall:,.0f}/s), "
          f"{CONCURRENCY} at a time; session timeout {SESSION_TIMEOUT_S:g} s")
    print(f"{'':<28} {'RSS MiB':>9} {'threads':>8}  server state")
    print(f"{'at boot':<28} {boot[0]:>9.1f} {boot[1]:>8}")
    print(f"{'start (after warm-up)':<28} {warm[0]:>9.1f} {warm[1]:>8}  {warm_stats}")
    print(f"{'last client just gone':<28} {during[0]:>9.1f} {during[1]:>8}")
    print(f"{'end (sessions expired)':<28} {end[0]:>9.1f} {end[1]:>8}  {end_stats}")
    print(f"growth start -> end: {end[0] - warm[0]:+.1f} MiB, {end[1] - warm[1]:+d} threads "
          f"({(end[0] - warm[0]) * 1024 * 1024 / clients:,.0f} bytes per client)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10,000 clients (default 1,000)")
    parser.add_argument("--clients", type=int, default=None, help="any other number")
    args = parser.parse_args()
    clients = args.clients or (10_000 if args.full else 1_000)
    with embedded_server("--session-timeout", f"{SESSION_TIMEOUT_S:g}",
                         "--long-poll-timeout", "10", log="warning") as (url, pid):
        port = int(url.rsplit(":", 1)[1])
        print(f"embedded server pid {pid} on port {port}")
        asyncio.run(main_async(port, pid, clients))


if __name__ == "__main__":
    main()
