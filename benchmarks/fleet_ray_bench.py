"""fleet_ray: rollouts on 1 process, a process pool and Ray, beside the official SDK on Ray.

A rollout samples 4 continuations of an 8-token prompt (8 new tokens) and grades them (a little
pure Python). Each mode runs the same rollouts against the embedded server in its own process
(`tinkex-actors serve`), by default answering one sampling request in five with 429:

- `1 process`: our SamplingClient in this process, 16 rollouts at once on threads;
- `process pool`: RolloutFleet(backend="process"), 4 workers x 4 rollouts;
- `ray`: RolloutFleet(backend="ray"), 4 worker actors x 4 rollouts;
- `ray + official`: the baseline, the official SDK's SamplingClient pickled into 4 Ray actors
  (threaded, 4 rollouts each), every worker with its own 429 window and budget.

Printed per mode: rollouts per second, client CPU per sample (this process, plus the workers'
and the coordinator's processes), asample requests the server saw per sample, and the 429s it
answered; for our fleets also the 429s reported to the coordinator and its lease asks per
sample. The 1-process and process-pool modes run before Ray starts, so that Ray's threads in
this process do not count against them. `--rate N` puts a token bucket (N samples a second)
in front of the server instead of the every-5th 429, as a rate-limited service answers.

    python benchmarks/fleet_ray_bench.py [--rollouts 256] [--every 5] [--workers 4]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _embedded import HEADERS, KEY, embedded_server

API_KEY = KEY  # the embedded server's benchmark key, not a secret
CONCURRENCY = 4
WAIT_S = 120.0


class RateLimited:
    """ASGI middleware of the bench's server: a token bucket on asample (`rate` a second,
    bursts of `rate`); a request finding it empty is answered 429 at once, as a rate-limited
    service does. Serves its counts at `GET /_bench_limits`."""

    def __init__(self, app: Any, rate: float) -> None:
        self.app, self.rate = app, rate
        self.tokens, self.at = rate, time.monotonic()
        self.counts = {"asample": 0, "429": 0}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench_limits":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(self.counts).encode()})
            return
        if scope["type"] == "http" and scope["path"] == "/api/v1/asample":
            self.counts["asample"] += 1
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1:
                self.counts["429"] += 1
                while (await receive()).get("more_body"):
                    pass
                await send({"type": "http.response.start", "status": 429,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body",
                            "body": b'{"detail": "rate limited"}'})
                return
            self.tokens -= 1
        await self.app(scope, receive, send)


def _serve_limited(conn: Any, rate: float) -> None:
    import tempfile

    from tinkex_actors.local.runner import ServerThread
    from tinkex_actors.local.server import build_app
    from tinkex_actors.local.settings import ServerSettings

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as data_dir:
        app, service = build_app(
            Path(data_dir), ServerSettings(session_timeout_s=3600), api_key=KEY, control=True
        )
        thread = ServerThread(RateLimited(app, rate), log_level="error")
        thread.start()
        app.guard.bind(str(thread.host), int(thread.port))
        conn.send(thread.url)
        with contextlib.suppress(EOFError):
            conn.recv()
        thread.stop()
        service.stop()


@contextlib.contextmanager
def limited_server(rate: float) -> Iterator[tuple[str, int]]:
    """The embedded server behind a rate limit, in a spawned process."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve_limited, args=(child, rate), daemon=True)
    process.start()
    try:
        yield parent.recv(), process.pid or 0
    finally:
        parent.send("stop")
        process.join(30)


def limits(url: str) -> dict[str, int]:
    """The rate-limited server's counts (zeros on the plain server)."""
    try:
        answer: dict[str, int] = control(url, "/_bench_limits")
        return answer
    except Exception:
        return {"asample": 0, "429": 0}


def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{path}", data=data,
                                     headers={"content-type": "application/json", **HEADERS})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def reset_faults(url: str, every: int) -> None:
    """Clear the faults and start the 1-in-`every` 429 pattern afresh (0: none)."""
    control(url, "/_control/faults", {"action": "clear"})
    if every:
        control(url, "/_control/faults", {"action": "add", "fault": {
            "path": "/api/v1/asample", "kind": "status", "status": 429, "every": every,
            "times": 1_000_000}})


def counts(url: str) -> tuple[int, int]:
    """(asample requests, 429s answered by the rate limit) the server saw so far."""
    limited = limits(url)
    asample = int(control(url, "/_control/stats")["requests"].get("/api/v1/asample", 0))
    return asample + limited["429"], limited["429"]


def grade(tokens: list[list[int]]) -> int:
    return sum(t * t for seq in tokens for t in seq) % 97


def rollout(sampler: Any, item: int) -> int:
    """Ours: sample 4 continuations, grade them."""
    from tinkex_actors import types

    prompt = types.ModelInput.from_ints([97 + (item + i) % 26 for i in range(8)])
    response = sampler.sample(prompt, 4, types.SamplingParams(max_tokens=8, seed=item))
    return grade([list(s.tokens) for s in response.result(WAIT_S).sequences])


def rollout_official(sampler: Any, item: int) -> int:
    """The official SDK: the same rollout."""
    import tinker

    prompt = tinker.types.ModelInput.from_ints([97 + (item + i) % 26 for i in range(8)])
    response = sampler.sample(prompt=prompt, num_samples=4,
                              sampling_params=tinker.types.SamplingParams(max_tokens=8,
                                                                          seed=item))
    return grade([list(s.tokens) for s in response.result(WAIT_S).sequences])


class OfficialWorker:
    """A Ray actor holding an official SamplingClient that arrived pickled."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.cpu0 = time.process_time()

    def run(self, item: int) -> int:
        return rollout_official(self.sampler, item)

    def cpu(self) -> float:
        return time.process_time() - self.cpu0


def figures(name: str, rollouts: int, wall: float, cpu: float, before: tuple[int, int],
            after: tuple[int, int], every: int, reports: int | None,
            asks: int | None = None) -> dict[str, Any]:
    requests = after[0] - before[0]
    row = {
        "mode": name,
        "rollouts_per_s": round(rollouts / wall, 2),
        "client_cpu_ms_per_sample": round(cpu / rollouts * 1e3, 2),
        "asample_requests_per_sample": round(requests / rollouts, 3),
        "429s_answered": (requests // every if every else 0) + after[1] - before[1],
        "429s_reported_to_coordinator": reports,
        "lease_asks_per_sample": None if asks is None else round(asks / rollouts, 3),
    }
    print(json.dumps(row), flush=True)
    return row


def one_process(url: str, handle: str, items: list[int], every: int) -> dict[str, Any]:
    from tinkex_actors.clients.sampling import SamplingClient

    with SamplingClient.from_sampler_handle(handle, api_key=API_KEY) as sampler:
        rollout(sampler, 0)  # warm: connections open
        reset_faults(url, every)
        before, cpu0, t0 = counts(url), time.process_time(), time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(4 * CONCURRENCY) as pool:
            list(pool.map(lambda i: rollout(sampler, i), items))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return figures("1 process", len(items), wall, cpu, before, counts(url), every, None)


def fleet(url: str, handle: str, items: list[int], every: int, backend: str,
          workers: int) -> dict[str, Any]:
    from tinkex_actors.fleet import RolloutFleet

    with RolloutFleet(handle, rollout, backend=backend, workers=workers,  # type: ignore[arg-type]
                      concurrency=CONCURRENCY, api_key=API_KEY) as f:
        f.run(list(range(workers)), timeout_s=WAIT_S)  # warm
        reset_faults(url, every)
        s0 = f.stats()
        before, cpu0, t0 = counts(url), time.process_time(), time.perf_counter()
        f.run(items, timeout_s=WAIT_S * 10)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        s1 = f.stats()
    cpu += sum(b["cpu_s"] - a["cpu_s"] for a, b in zip(s0["workers"], s1["workers"],
                                                       strict=True))
    cpu += s1["coordinator"]["cpu_s"] - s0["coordinator"]["cpu_s"]
    reports = s1["coordinator"]["reports_429"] - s0["coordinator"]["reports_429"]
    asks = sum(p["asks"] for p in s1["coordinator"]["pools"].values()) - sum(
        p["asks"] for p in s0["coordinator"]["pools"].values())
    name = "process pool" if backend == "process" else "ray"
    return figures(name, len(items), wall, cpu, before, counts(url), every, reports, asks)


def official_on_ray(ray: Any, url: str, items: list[int], every: int,
                    workers: int) -> dict[str, Any]:
    import tinker

    with tinker.ServiceClient(base_url=url, api_key=API_KEY) as service:
        sampler = service.create_sampling_client(base_model="tiny-byte-lm")
        sampler = sampler.result() if hasattr(sampler, "result") else sampler
        actor_cls = ray.remote(OfficialWorker).options(max_concurrency=CONCURRENCY, num_cpus=0)
        actors = [actor_cls.remote(sampler) for _ in range(workers)]
        ray.get([a.run.remote(0) for a in actors], timeout=WAIT_S)  # warm
        reset_faults(url, every)
        cpu_before = ray.get([a.cpu.remote() for a in actors])
        before, cpu0, t0 = counts(url), time.process_time(), time.perf_counter()
        refs = [actors[i % workers].run.remote(item) for i, item in enumerate(items)]
        ray.get(refs, timeout=WAIT_S * 10)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        cpu += sum(ray.get([a.cpu.remote() for a in actors])) - sum(cpu_before)
        for actor in actors:
            ray.kill(actor)
    return figures("ray + official", len(items), wall, cpu, before, counts(url), every,
                   None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=256)
    parser.add_argument("--every", type=int, default=5, help="1 sample in N gets 429 (0: none)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="instead: the server admits N samples a second, 429s the rest")
    args = parser.parse_args()
    if args.rate:
        args.every = 0
    items = list(range(args.rollouts))
    os.environ["TINKER_API_KEY"] = API_KEY  # the official workers' own credentials
    server = limited_server(args.rate) if args.rate else embedded_server()
    with server as (url, _pid):
        from tinkex_actors.service.service_client import ServiceClient

        with ServiceClient(base_url=url, api_key=API_KEY) as service:
            handle = service.create_sampling_client(
                base_model="tiny-byte-lm").result(WAIT_S).get_sampler_handle()
            one_process(url, handle, items, args.every)
            fleet(url, handle, items, args.every, "process", args.workers)
            import ray

            root = str(Path(__file__).resolve().parents[1])
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     configure_logging=False,
                     runtime_env={"env_vars": {"TINKER_API_KEY": API_KEY,
                                               "PYTHONPATH": root}})
            try:
                fleet(url, handle, items, args.every, "ray", args.workers)
                official_on_ray(ray, url, items, args.every, args.workers)
            finally:
                ray.shutdown()


if __name__ == "__main__":
    main()
