"""The old private name of `supervisors.library_logging`, kept so existing imports still work.

Import `supervisors.library_logging` (or `supervisors.get_logger`) in new code.
"""

from __future__ import annotations

from supervisors.library_logging import LEVELS, LibraryLogger, get_logger

__all__ = ["LEVELS", "LibraryLogger", "get_logger"]
