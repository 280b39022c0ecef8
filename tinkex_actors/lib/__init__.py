"""The official SDK's `tinker.lib` import paths, for code written against them."""

from __future__ import annotations
