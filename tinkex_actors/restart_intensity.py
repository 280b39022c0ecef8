"""How often the client's supervisors may restart a child before they give up themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CLIENT_TREE_RESTARTS", "POLLER_POOL_RESTARTS", "RestartIntensity"]


@dataclass(frozen=True, slots=True)
class RestartIntensity:
    """At most `max_restarts` restarts within any `max_seconds`; one more ends the supervisor."""

    max_restarts: int
    max_seconds: float

    def options(self) -> dict[str, Any]:
        """The keyword arguments of a `Supervisor` / `DynamicSupervisor` that set it."""
        return {"max_restarts": self.max_restarts, "max_seconds": self.max_seconds}


CLIENT_TREE_RESTARTS = RestartIntensity(max_restarts=10, max_seconds=10.0)
"""The ServiceClient's tree: its top supervisor and its clients' dynamic supervisors."""
POLLER_POOL_RESTARTS = RestartIntensity(max_restarts=10, max_seconds=5.0)
"""The PollerPool's own supervisor (`tinkex_actors.futures.poller_actor`, its default)."""
