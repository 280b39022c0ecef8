"""The embedded, loopback-only Tinker-compatible server and its tiny numpy model."""

from __future__ import annotations

from tinkex_actors.local.faults import Fault, FaultPlan
from tinkex_actors.local.server import LocalServer, serve
from tinkex_actors.local.settings import ServerSettings

__all__ = ["Fault", "FaultPlan", "LocalServer", "ServerSettings", "serve"]
