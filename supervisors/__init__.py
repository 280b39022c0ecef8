"""OTP-style supervision for pykka actors.

This package knows nothing of Tinker: it offers synchronous start, exit reasons, monitors and
links, child specs, supervisors with restart strategies and intensity, dynamic supervisors, a
registry and timers, for any pykka application.
"""

from __future__ import annotations

__all__: list[str] = []
