"""Compat tests that start clients run under the leak check (as the client tests do)."""

from __future__ import annotations

from tests._leaks import leak_check as leak_check  # the shared autouse fixture


