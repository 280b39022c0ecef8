"""How fast the embedded server answers, and what an open long-poll costs it.

Runs the server in its own process (`tinkex-actors serve`) and drives it from this one with a
minimal keep-alive HTTP/1.1 client on asyncio, so the client is never what limits the figures.
Prints, at 1, 100 and 10,000 concurrent clients:

- requests/s of `session_heartbeat`,
- requests/s of a small `forward_backward` submit (8 datums x 32 tokens, JSON; the work runs
  behind the answer, so this measures the request path) and of the matching results,
- the server's resident memory per open `retrieve_future` long-poll (the growth of its RSS
  while the polls are held, divided by their number: at 1 client this is allocator noise).

The baseline, measured in the same run, is `GET healthz`: the cheapest answer the server can
give, i.e. what uvicorn and our ASGI layer cost with no handler work at all.

    python benchmarks/server_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

from _embedded import KEY, embedded_server

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer, port)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nhost: {HOST}:{self.port}\r\n"
                f"x-api-key: {KEY}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\n\r\n").encode()
        self.writer.write(head + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def open_conns(port: int, n: int) -> list[Conn]:
    conns: list[Conn] = []
    for i in range(0, n, 500):  # in batches, to stay within the listen backlog
        conns += await asyncio.gather(*(Conn.open(port) for _ in range(min(500, n - i))))
    return conns


async def rate(conns: list[Conn], total: int, make: Any) -> float:
    """Requests/s for `total` requests spread over the connections, each one at a time."""
    per = max(1, total // len(conns))

    async def worker(conn: Conn) -> None:
        for _ in range(per):
            method, path, body = make()
            status, _ = await conn.request(method, path, body)
            assert status == 200, status

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return per * len(conns) / (time.perf_counter() - start)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def main_async(port: int, pid: int, levels: list[int], total: int) -> None:
    ctl = await Conn.open(port)
    _, raw = await ctl.request("POST", "/api/v1/create_session",
                               {"tags": [], "user_metadata": None, "sdk_version": "bench"})
    session_id = json.loads(raw)["session_id"]
    _, raw = await ctl.request("POST", "/api/v1/create_model", {
        "session_id": session_id, "model_seq_id": 0, "base_model": "tiny-byte-lm",
        "lora_config": {"rank": 8}})
    model_id = json.loads(raw)["model_id"]
    tokens = list(range(65, 97))
    datum = {"model_input": {"chunks": [{"type": "encoded_text", "tokens": tokens}]},
             "loss_fn_inputs": {"target_tokens": {"data": tokens, "dtype": "int64",
                                                  "shape": [32]}}}
    fb_body = {"forward_backward_input": {"data": [datum] * 8, "loss_fn": "cross_entropy"},
               "model_id": model_id}
    # A future that stays pending: its predecessor seq_id never comes.
    _, raw = await ctl.request("POST", "/api/v1/forward_backward",
                               {**fb_body, "seq_id": 10**9})
    pending_id = json.loads(raw)["request_id"]

    print(f"{'clients':>8} | {'healthz req/s':>14} | {'heartbeat req/s':>16} | "
          f"{'fwd_bwd submit/s':>17} | {'bytes per long-poll':>20}")
    print("-" * 89)
    for n in levels:
        conns = await open_conns(port, n)
        n_total = max(total, n)
        base = await rate(conns, n_total, lambda: ("GET", "/api/v1/healthz", None))
        beat = await rate(conns, n_total, lambda: (
            "POST", "/api/v1/session_heartbeat", {"session_id": session_id}))
        fb = await rate(conns, min(n_total, 2000),
                        lambda: ("POST", "/api/v1/forward_backward", fb_body))
        before = rss_bytes(pid)
        polls = [asyncio.ensure_future(c.request("POST", "/api/v1/retrieve_future",
                                                 {"request_id": pending_id})) for c in conns]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, raw = await ctl.request("GET", "/_control/stats")
            if json.loads(raw)["waiting_polls"] >= n:
                break
            await asyncio.sleep(0.05)
        per_poll = (rss_bytes(pid) - before) / n
        print(f"{n:>8} | {base:>14,.0f} | {beat:>16,.0f} | {fb:>17,.0f} | {per_poll:>20,.0f}")
        for c in conns:
            c.close()
        await asyncio.gather(*polls, return_exceptions=True)
        # let the server drain the training work queued by the submits before the next level
        while True:
            _, raw = await ctl.request("GET", "/_control/stats")
            if json.loads(raw)["pending_futures"] <= 1:
                break
            await asyncio.sleep(0.1)
    ctl.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 100 clients only")
    args = parser.parse_args()
    levels = [1, 100] if args.quick else [1, 100, 10_000]
    with embedded_server("--long-poll-timeout", "120", log="warning") as (url, pid):
        port = int(url.rsplit(":", 1)[1])
        print(f"embedded server pid {pid} on port {port}; client: raw HTTP/1.1 keep-alive")
        asyncio.run(main_async(port, pid, levels, total=3000))


if __name__ == "__main__":
    main()
