"""The warning category of APIs that may change in any release (official `ExperimentalWarning`)."""

from __future__ import annotations

__all__ = ["ExperimentalWarning"]


class ExperimentalWarning(FutureWarning):
    """Emitted by an API that may change or go away in any release, without deprecation.

    Silence it with `warnings.filterwarnings("ignore", category=ExperimentalWarning)`.
    """
