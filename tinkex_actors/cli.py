"""The `tinkex-actors` command line: `demo`, `serve`, `version`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence

import structlog

from tinkex_actors._version import __version__


def _configure_logging() -> None:
    # TINKER_LOG sets the level (default: warning), so a run's output is the job's, not ours.
    name = os.environ.get("TINKER_LOG", "warning").upper()
    level = logging.getLevelNamesMapping().get(name, logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))


def _cmd_version(_args: argparse.Namespace) -> int:
    print(f"tinkex-actors {__version__}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tinkex_actors.smoke import run_smoke

    return run_smoke(steps=args.steps)


def _cmd_serve(args: argparse.Namespace) -> int:
    from tinkex_actors.local.server import serve
    from tinkex_actors.local.service import ServerSettings

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tinkex-serve-")
    settings = ServerSettings(
        long_poll_timeout_s=args.long_poll_timeout,
        session_timeout_s=args.session_timeout,
    )
    print(
        f"serving the embedded Tinker-compatible server on http://{args.host}:{args.port} "
        f"(data in {data_dir}); Ctrl-C stops it",
        flush=True,
    )
    try:
        serve(args.host, args.port, data_dir, settings, log_level=args.log_level)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="tinkex-actors", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    demo = sub.add_parser("demo", help="train a small LoRA on the embedded server")
    demo.add_argument("--steps", type=int, default=30, help="training steps (default 30)")
    demo.set_defaults(func=_cmd_demo)
    serve = sub.add_parser("serve", help="run the embedded server in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument("--data-dir", default=None, help="where checkpoints live")
    serve.add_argument(
        "--long-poll-timeout",
        type=float,
        default=30.0,
        help="seconds a retrieve_future poll is held (default 30)",
    )
    serve.add_argument(
        "--session-timeout",
        type=float,
        default=120.0,
        help="seconds of silence before a session expires (default 120)",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn's log level")
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    _configure_logging()
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
