"""Constants of the official-surface tests; their fixtures (`server`, `service`, `trainer`)
live in this folder's conftest."""

from __future__ import annotations

WAIT_S = 60.0
KEY = "tml-official-surface-tests"
BASE = "tiny-byte-lm"
