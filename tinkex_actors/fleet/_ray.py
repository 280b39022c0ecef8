"""The Ray backend: the coordinator and the workers as Ray actors.

Workers are created with Ray's own restart options: `max_restarts` (the pool's restart
intensity, as a total) and `max_task_retries=1`, so a rollout whose worker died is run again,
once, by the restarted worker; the pool only deduplicates by rollout id and checks the
restarts against its intensity window.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Hashable
from typing import Any, Final

from tinkex_actors.fleet.coordinator import FleetCoordinator
from tinkex_actors.fleet.worker import FleetWorker, Secret

CALL_TIMEOUT_S: Final = 30.0


def require_ray() -> Any:
    """The `ray` module, or an ImportError saying how to get it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            'backend="ray" needs Ray: pip install "tinkex-actors[ray]", '
            'or use backend="process" on one machine'
        ) from exc
    return ray


class _RayWorker:
    """The body of a Ray worker actor: a FleetWorker calling the coordinator actor."""

    def __init__(
        self,
        worker: int,
        handle: str,
        rollout: Callable[[Any, Any], Any],
        coordinator: Any,
        api_key: Secret,
    ) -> None:
        import ray

        def call(method: str, *args: Any) -> Any:
            return ray.get(getattr(coordinator, method).remote(*args), timeout=CALL_TIMEOUT_S)

        self.worker = FleetWorker(worker, handle, rollout, call, api_key)

    def run(self, rollout_id: Hashable, item: Any) -> tuple[Hashable, Any]:
        """One rollout."""
        return self.worker.run(rollout_id, item)

    def stats(self) -> dict[str, Any]:
        """The worker's stats."""
        return self.worker.stats()

    def close(self) -> None:
        """Close the worker (before the actor is killed)."""
        self.worker.close()


class RayBackend:
    """Coordinator and workers on the Ray runtime the caller initialised (or a local one)."""

    def __init__(
        self,
        *,
        workers: int,
        concurrency: int,
        max_restarts: int,
        coordinator_args: dict[str, Any],
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        self.ray = require_ray()
        self.count = workers
        self.concurrency = concurrency
        self.max_restarts = max_restarts
        self.coordinator_args = coordinator_args
        self.actor_options = dict(actor_options or {})
        self.coordinator: Any = None
        self.actors: list[Any] = []

    def call(self, method: str, *args: Any) -> Any:
        """Call the coordinator and wait for the answer."""
        return self.ray.get(
            getattr(self.coordinator, method).remote(*args), timeout=CALL_TIMEOUT_S
        )

    def start(self, handle: str, rollout: Callable[[Any, Any], Any], api_key: Secret) -> None:
        """Start the coordinator, then the workers (each rebuilds the sampler once)."""
        ray = self.ray
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        coord_cls = ray.remote(FleetCoordinator).options(
            max_concurrency=4 * self.count + 16, num_cpus=0
        )
        self.coordinator = coord_cls.remote(**self.coordinator_args)
        options = {"num_cpus": 0, **self.actor_options}
        worker_cls = ray.remote(_RayWorker).options(
            max_restarts=self.max_restarts,
            max_task_retries=1,
            max_concurrency=self.concurrency + 1,
            **options,
        )
        self.actors = [
            worker_cls.remote(i, handle, rollout, self.coordinator, api_key)
            for i in range(self.count)
        ]
        ray.get([a.stats.remote() for a in self.actors], timeout=120)

    def submit(
        self, worker: int, rollout_id: Hashable, item: Any
    ) -> concurrent.futures.Future[Any]:
        """Run one rollout on a worker; the Future gives (rollout_id, result)."""
        future: concurrent.futures.Future[Any] = self.actors[worker].run.remote(
            rollout_id, item
        ).future()
        return future

    def worker_stats(self) -> list[dict[str, Any]]:
        """Every worker's stats."""
        return list(self.ray.get([a.stats.remote() for a in self.actors], timeout=CALL_TIMEOUT_S))

    def close(self) -> None:
        """Close the workers (their leases back), then kill them and the coordinator."""
        ray = self.ray
        closing = [a.close.remote() for a in self.actors]
        try:
            ray.wait(closing, num_returns=len(closing), timeout=CALL_TIMEOUT_S)
        finally:
            for actor in self.actors:
                ray.kill(actor, no_restart=True)
            if self.coordinator is not None:
                ray.kill(self.coordinator, no_restart=True)
            self.actors = []
            self.coordinator = None
