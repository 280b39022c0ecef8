"""The `tinkex-actors` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tinkex_actors._version import __version__


def _cmd_version(_args: argparse.Namespace) -> int:
    print(f"tinkex-actors {__version__}")
    return 0


def _cmd_demo(_args: argparse.Namespace) -> int:
    # Until the embedded server and the training demo land, the demo is a smoke check of what
    # exists: the wire types round-trip through JSON and the binary wire.
    from tinkex_actors.smoke import run_smoke

    return run_smoke()


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="tinkex-actors", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    sub.add_parser("demo", help="run the demo").set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
