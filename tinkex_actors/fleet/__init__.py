"""Rollout fleets: a rollout function over many processes or Ray actors, one well-behaved client.

`RolloutFleet(sampler, rollout, backend="process" | "ray", workers=4)` runs
`rollout(sampler, item)` for a batch of items on a pool of workers, each holding the sampler
rebuilt once from its handle, and returns the results in order. A `FleetCoordinator` (a Ray
actor, or a manager process) owns the 429 window, the in-flight request and byte budgets and
the pause-warning debounce for the whole fleet; workers lease capacity from it. Ray is optional:
`pip install "tinkex-actors[ray]"`.
"""

from __future__ import annotations

from tinkex_actors.fleet.coordinator import FleetCoordinator, fleet_key
from tinkex_actors.fleet.pool import (
    FleetIntensityError,
    FleetProcess,
    RolloutError,
    RolloutFleet,
)

__all__ = [
    "FleetCoordinator",
    "FleetIntensityError",
    "FleetProcess",
    "RolloutError",
    "RolloutFleet",
    "fleet_key",
]
