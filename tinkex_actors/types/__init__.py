"""Wire types shared by the client and the embedded server."""

from __future__ import annotations

__all__: list[str] = []
