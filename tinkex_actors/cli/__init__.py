"""The `tinkex-actors` command line (`main`), in the conventions of the official `tinker` CLI."""

from __future__ import annotations

from tinkex_actors.cli.app import cli, main

__all__ = ["cli", "main"]
