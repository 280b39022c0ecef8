"""tinkex-actors: a supervised-actor client runtime for the Tinker fine-tuning API."""

from __future__ import annotations

from tinkex_actors import types
from tinkex_actors._version import __version__

__all__ = ["__version__", "types"]
