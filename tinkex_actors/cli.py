"""The `tinkex-actors` command line, in the conventions of the official `tinker` CLI.

    tinkex-actors demo [--rl] [--steps N] ...      the main job (see tinkex_actors.demo)
    tinkex-actors serve [--host H] [--port P]      the embedded server, in the foreground
    tinkex-actors checkpoint list|info|delete|publish|unpublish|set-ttl|download
    tinkex-actors run list|info
    tinkex-actors sample --prompt TEXT (--model-path tinker://... | --base-model NAME)
    tinkex-actors version

Commands that talk to a service use `--base-url` or `TINKER_BASE_URL`, and `TINKER_API_KEY`.
`--json` prints one JSON document for scripts; otherwise tables for people. Errors are one
line on stderr (`error: ...`), with the traceback only under `--debug`.

Exit codes: 0 success; 1 the operation failed (the service refused it, or the demo did not
learn); 2 bad usage or input; 3 not found; 4 authentication or permission; 5 the service could
not be reached; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinkex_actors._version import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_UNREACHABLE = 5
EXIT_INTERRUPTED = 130
WAIT_S = 120.0
MAX_RETRIES = 2
"""A person is waiting: give up on an unreachable service after a few seconds, not a minute."""
_PATH_HINT = "pass a tinker path such as tinker://<run_id>/weights/<name>"


class CliError(Exception):
    """An error the command line reports as one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- output ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a wire value (Structs, datetimes and paths become builtins)."""
    import msgspec

    return msgspec.to_builtins(value, enc_hook=str)


def _emit(args: argparse.Namespace, document: Any, table: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(_plain(document), indent=2, sort_keys=True))
    else:
        table()


def _table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    """Print an aligned plain-text table (no colours, so it pastes anywhere)."""
    if title:
        print(title)
    if not rows:
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "N/A"
    value = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "Never"


# -- clients ----------------------------------------------------------------------------------


def _connection(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(base URL, API key); a key alone means the production service (the default URL)."""
    base_url = args.base_url or os.environ.get("TINKER_BASE_URL") or None
    api_key = os.environ.get("TINKER_API_KEY") or None
    if base_url is None and api_key is None:
        raise CliError(
            "no service to talk to: pass --base-url URL or set TINKER_BASE_URL / TINKER_API_KEY "
            "(for the embedded server, run `tinkex-actors serve` and pass its URL)",
            EXIT_USAGE,
        )
    return base_url, api_key


@contextmanager
def _rest(args: argparse.Namespace) -> Iterator[Any]:
    from tinkex_actors.config import Config
    from tinkex_actors.rest import RestClient

    base_url, api_key = _connection(args)
    config = Config.resolve(api_key=api_key, base_url=base_url, max_retries=MAX_RETRIES)
    client = RestClient(config=config)
    try:
        yield client
    finally:
        client.close()


def _check_path(path: str) -> str:
    from tinkex_actors.rest import parse_tinker_path

    try:
        parse_tinker_path(path)
    except (ValueError, TypeError) as exc:
        message = f"checkpoint path {path!r} is not valid ({exc}); {_PATH_HINT}"
        raise CliError(message, EXIT_USAGE) from None
    return path


# -- version, serve, demo ---------------------------------------------------------------------


def _cmd_version(args: argparse.Namespace) -> int:
    _emit(
        args,
        {"name": "tinkex-actors", "version": __version__, "python": sys.version.split()[0]},
        lambda: print(f"tinkex-actors {__version__}"),
    )
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from tinkex_actors.demo import DemoOptions, run_demo

    try:
        options = DemoOptions(
            steps=args.steps,
            rank=args.rank,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            base_model=args.base_model,
            output_dir=Path(args.output_dir),
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            seed=args.seed,
            rl=args.rl,
            rl_warmup_steps=args.rl_warmup_steps,
            base_url=args.base_url,
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if not args.json:
        return run_demo(options)
    # For scripts: the running commentary goes to stderr, one JSON document to stdout.
    report: dict[str, Any] = {}
    code = run_demo(options, stdout=sys.stderr, report=report)
    print(json.dumps({**report, "exit_code": code}, indent=2, sort_keys=True))
    return code


def _cmd_serve(args: argparse.Namespace) -> int:
    from tinkex_actors.local.guard import new_api_key
    from tinkex_actors.local.server import serve
    from tinkex_actors.local.service import ServerSettings

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tinkex-serve-")
    settings = ServerSettings(
        long_poll_timeout_s=args.long_poll_timeout,
        session_timeout_s=args.session_timeout,
    )
    supplied = args.api_key or os.environ.get("TINKER_API_KEY") or None
    api_key = supplied or new_api_key()

    def announce(url: str) -> None:
        # A key the user chose is theirs already: never echo it. A generated one must be shown,
        # or nobody could connect.
        shown = (
            "the key you gave (--api-key or TINKER_API_KEY)"
            if supplied
            else api_key
        )
        print(
            f"serving the embedded Tinker-compatible server on {url} "
            f"(data in {data_dir}{'; /_control endpoints on' if args.control else ''}); "
            "Ctrl-C stops it\n"
            f"connect with TINKER_BASE_URL={url} and TINKER_API_KEY={shown}",
            flush=True,
        )

    try:
        serve(args.host, args.port, data_dir, settings, log_level=args.log_level,
              announce=announce, api_key=api_key, control=args.control)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    return EXIT_OK


# -- checkpoint -------------------------------------------------------------------------------


def _checkpoint_rows(checkpoints: list[Any]) -> list[list[str]]:
    return [
        [
            c.checkpoint_id,
            c.checkpoint_type,
            _size(c.size_bytes),
            "Yes" if c.public else "No",
            _when(c.time),
            _when(c.expires_at),
            c.tinker_path,
        ]
        for c in checkpoints
    ]


_CHECKPOINT_COLUMNS = ["Checkpoint ID", "Type", "Size", "Public", "Created", "Expires", "Path"]


def _cmd_checkpoint_list(args: argparse.Namespace) -> int:
    with _rest(args) as rest:
        if args.run_id:
            checkpoints = list(rest.list_checkpoints(args.run_id).result(WAIT_S).checkpoints)
        else:
            checkpoints = []
            for checkpoint in rest.iter_user_checkpoints(page_size=100, timeout_s=WAIT_S):
                if args.limit and len(checkpoints) >= args.limit:
                    break
                checkpoints.append(checkpoint)
    document: dict[str, Any] = {"checkpoints": checkpoints}
    if args.run_id:
        document["run_id"] = args.run_id
    title = _count(len(checkpoints), "checkpoint") + (
        f" for run {args.run_id}" if args.run_id else ""
    )
    if not checkpoints:
        title = "No checkpoints found" + (f" for run {args.run_id}" if args.run_id else "")
    _emit(args, document, lambda: _table(title, _CHECKPOINT_COLUMNS, _checkpoint_rows(checkpoints)))
    return EXIT_OK


def _find_checkpoint(rest: Any, path: str) -> tuple[Any, Any]:
    from tinkex_actors.rest import parse_tinker_path

    parsed = parse_tinker_path(_check_path(path))
    run = rest.get_training_run(parsed.training_run_id).result(WAIT_S)
    for checkpoint in rest.list_checkpoints(parsed.training_run_id).result(WAIT_S).checkpoints:
        if checkpoint.tinker_path == path:
            return checkpoint, run
    hint = "list them with `tinkex-actors checkpoint list`"
    raise CliError(f"checkpoint not found: {path}; {hint}", EXIT_NOT_FOUND)


def _cmd_checkpoint_info(args: argparse.Namespace) -> int:
    with _rest(args) as rest:
        checkpoint, run = _find_checkpoint(rest, args.checkpoint_path)
    document = dict(_plain(checkpoint))
    document.update(
        training_run_id=run.training_run_id,
        base_model=run.base_model,
        is_lora=run.is_lora,
        lora_rank=run.lora_rank,
    )

    def table() -> None:
        lora = f"Yes (rank {run.lora_rank})" if run.is_lora and run.lora_rank else (
            "Yes" if run.is_lora else "No"
        )
        rows = [
            ["Checkpoint ID", checkpoint.checkpoint_id],
            ["Type", checkpoint.checkpoint_type],
            ["Tinker Path", checkpoint.tinker_path],
            ["Size", _size(checkpoint.size_bytes)],
            ["Public", "Yes" if checkpoint.public else "No"],
            ["Created", _when(checkpoint.time)],
            ["Expires", _when(checkpoint.expires_at)],
            ["Training Run ID", run.training_run_id],
            ["Base Model", run.base_model],
            ["LoRA", lora],
        ]
        _table(f"Checkpoint: {checkpoint.checkpoint_id}", ["Property", "Value"], rows)

    _emit(args, document, table)
    return EXIT_OK


def _cmd_checkpoint_delete(args: argparse.Namespace) -> int:
    from tinkex_actors.rest import CheckpointDeleteError

    if bool(args.checkpoint_paths) == bool(args.run_id):
        raise CliError("give checkpoint paths or --run-id (exactly one of the two)", EXIT_USAGE)
    with _rest(args) as rest:
        if args.run_id:
            listed = rest.list_checkpoints(args.run_id).result(WAIT_S).checkpoints
            paths = [c.tinker_path for c in listed]
        else:
            paths = [_check_path(p) for p in args.checkpoint_paths]
        if paths and not args.yes:
            if not sys.stdin.isatty():
                raise CliError(
                    f"refusing to delete {_count(len(paths), 'checkpoint')} without "
                    "confirmation: pass --yes",
                    EXIT_USAGE,
                )
            print("\n".join(paths))
            answer = input(f"Delete {_count(len(paths), 'checkpoint')} permanently? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Deletion cancelled.")
                return EXIT_FAILED
        failed: dict[str, BaseException] = {}
        try:
            rest.delete_checkpoints_from_tinker_paths(paths).result(WAIT_S)
        except CheckpointDeleteError as exc:
            failed = exc.failures
    deleted = [p for p in paths if p not in failed]
    document = {
        "deleted_count": len(deleted),
        "deleted": deleted,
        "failed": [{"tinker_path": p, "error": _one_line(e)} for p, e in failed.items()],
    }

    def table() -> None:
        print(f"Deleted {_count(len(deleted), 'checkpoint')}")
        for path, error in failed.items():
            print(f"failed: {path}: {_one_line(error)}", file=sys.stderr)

    _emit(args, document, table)
    if failed:
        return _exit_code_of(next(iter(failed.values())))
    return EXIT_OK


def _cmd_checkpoint_publish(args: argparse.Namespace) -> int:
    path = _check_path(args.checkpoint_path)
    with _rest(args) as rest:
        if args.unpublish:
            rest.unpublish_checkpoint_from_tinker_path(path).result(WAIT_S)
        else:
            rest.publish_checkpoint_from_tinker_path(path).result(WAIT_S)
    verb = "Unpublished" if args.unpublish else "Published"
    _emit(
        args,
        {"tinker_path": path, "public": not args.unpublish},
        lambda: print(f"{verb} {path}"),
    )
    return EXIT_OK


def _cmd_checkpoint_set_ttl(args: argparse.Namespace) -> int:
    path = _check_path(args.checkpoint_path)
    if (args.ttl is None) == (not args.remove):
        raise CliError("give exactly one of --ttl SECONDS or --remove", EXIT_USAGE)
    if args.ttl is not None and args.ttl <= 0:
        raise CliError(f"--ttl {args.ttl} must be a positive number of seconds", EXIT_USAGE)
    with _rest(args) as rest:
        rest.set_checkpoint_ttl_from_tinker_path(path, args.ttl).result(WAIT_S)
    message = f"Removed the expiry of {path}" if args.remove else (
        f"{path} expires in {args.ttl} s"
    )
    _emit(args, {"tinker_path": path, "ttl_seconds": args.ttl}, lambda: print(message))
    return EXIT_OK


def _cmd_checkpoint_download(args: argparse.Namespace) -> int:
    path = _check_path(args.checkpoint_path)
    output = Path(args.output) if args.output else Path.cwd()
    with _rest(args) as rest:
        try:
            target = rest.download_checkpoint_archive(path, output, overwrite=args.force).result(
                WAIT_S * 5
            )
        except FileExistsError as exc:
            raise CliError(f"{exc} (pass --force to overwrite)", EXIT_USAGE) from exc
    size = sum(f.stat().st_size for f in Path(target).rglob("*") if f.is_file())
    _emit(
        args,
        {"checkpoint_path": path, "destination": str(target), "size_bytes": size},
        lambda: print(f"Downloaded {path} to {target} ({_size(size)})"),
    )
    return EXIT_OK


# -- run --------------------------------------------------------------------------------------


def _run_row(run: Any) -> list[str]:
    lora = f"Rank {run.lora_rank}" if run.is_lora and run.lora_rank else (
        "Yes" if run.is_lora else "No"
    )
    return [
        run.training_run_id,
        run.base_model,
        lora,
        _when(run.last_request_time),
        "Failed" if run.corrupted else "OK",
    ]


_RUN_COLUMNS = ["Run ID", "Base Model", "LoRA", "Last Update", "Status"]


def _cmd_run_list(args: argparse.Namespace) -> int:
    runs: list[Any] = []
    with _rest(args) as rest:
        for run in rest.iter_training_runs(page_size=100, timeout_s=WAIT_S):
            if args.limit and len(runs) >= args.limit:
                break
            runs.append(run)
    title = _count(len(runs), "training run") if runs else "No training runs found"
    _emit(args, {"runs": runs}, lambda: _table(title, _RUN_COLUMNS, [_run_row(r) for r in runs]))
    return EXIT_OK


def _cmd_run_info(args: argparse.Namespace) -> int:
    with _rest(args) as rest:
        run = rest.get_training_run(args.run_id).result(WAIT_S)

    def table() -> None:
        rows = [[name, value] for name, value in zip(_RUN_COLUMNS, _run_row(run), strict=True)]
        rows.append(["Owner", run.model_owner])
        for label, checkpoint in (
            ("Last Checkpoint", run.last_checkpoint),
            ("Last Sampler Checkpoint", run.last_sampler_checkpoint),
        ):
            rows.append([label, checkpoint.tinker_path if checkpoint else "None"])
        _table(f"Training run: {run.training_run_id}", ["Property", "Value"], rows)

    _emit(args, run, table)
    return EXIT_OK


# -- sample -----------------------------------------------------------------------------------


def _cmd_sample(args: argparse.Namespace) -> int:
    import tinkex_actors as tx
    from tinkex_actors.tokenizer import get_tokenizer

    if (args.prompt is None) == (args.prompt_file is None):
        raise CliError("give exactly one of --prompt TEXT or --prompt-file FILE", EXIT_USAGE)
    if (args.model_path is None) == (args.base_model is None):
        raise CliError(
            "give exactly one of --model-path tinker://... or --base-model NAME", EXIT_USAGE
        )
    if args.prompt_file is not None:
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8")
        except OSError as exc:
            message = f"--prompt-file {args.prompt_file!r}: {exc.strerror}"
            raise CliError(message, EXIT_USAGE) from None
    else:
        prompt = args.prompt
    if args.model_path is not None:
        _check_path(args.model_path)
    base_url, api_key = _connection(args)
    with tx.ServiceClient(api_key=api_key, base_url=base_url, max_retries=MAX_RETRIES) as service:
        base_model = args.base_model
        if base_model is None:
            info = service.create_rest_client().get_weights_info_by_tinker_path(args.model_path)
            base_model = info.result(WAIT_S).base_model
        tokenizer = get_tokenizer(base_model)
        sampler = service.create_sampling_client(
            model_path=args.model_path, base_model=args.base_model
        ).result(WAIT_S)
        params = tx.SamplingParams(
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
            stop=args.stop,
        )
        tokens = list(tokenizer.encode(prompt, add_special_tokens=False))
        answer = sampler.sample(tx.ModelInput.from_ints(tokens), args.num_samples, params)
        sequences = answer.result(WAIT_S).sequences
        samples = [
            {
                "text": tokenizer.decode(list(s.tokens)),
                "tokens": [int(t) for t in s.tokens],
                "stop_reason": s.stop_reason,
            }
            for s in sequences
        ]

    def table() -> None:
        for i, sample in enumerate(samples):
            print(f"--- sample {i} ({sample['stop_reason']})")
            print(prompt + sample["text"])

    document = {"prompt": prompt, "base_model": base_model, "model_path": args.model_path,
                "samples": samples}
    _emit(args, document, table)
    return EXIT_OK


# -- errors -----------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _exit_code_of(exc: BaseException) -> int:
    from tinkex_actors import errors

    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, errors.NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, errors.AuthenticationError | errors.PermissionDeniedError):
        return EXIT_AUTH
    if isinstance(exc, errors.APIConnectionError):
        return EXIT_UNREACHABLE
    if isinstance(exc, errors.BadRequestError | errors.UnprocessableEntityError):
        return EXIT_USAGE
    if isinstance(exc, ValueError | TypeError | FileNotFoundError):
        return EXIT_USAGE
    return EXIT_FAILED


def _describe(exc: BaseException) -> str:
    from tinkex_actors import errors

    if isinstance(exc, errors.APIConnectionError):
        return f"cannot reach the service ({_one_line(exc)}); check --base-url / TINKER_BASE_URL"
    if isinstance(exc, errors.NotFoundError):
        detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
        return f"not found: {detail or _one_line(exc)}"
    if isinstance(exc, errors.AuthenticationError):
        return f"authentication failed ({_one_line(exc)}); check TINKER_API_KEY"
    return _one_line(exc)


# -- the parser -------------------------------------------------------------------------------


def _common(defaults: bool) -> argparse.ArgumentParser:
    # The same flags work before or after the subcommand; only the top level sets defaults,
    # so a flag given before the subcommand is not overwritten by the subcommand's default.
    parser = argparse.ArgumentParser(add_help=False)
    flag_default: Any = False if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--json", action="store_true", default=flag_default, help="print JSON for scripts"
    )
    parser.add_argument("--debug", action="store_true", default=flag_default, help="tracebacks")
    parser.add_argument(
        "--base-url",
        default=None if defaults else argparse.SUPPRESS,
        help="the service URL (default: TINKER_BASE_URL)",
    )
    return parser


def _add(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, parents=[_common(False)]
    )
    parser.set_defaults(func=func)
    return parser


def _add_demo(sub: Any) -> None:
    demo = _add(sub, "demo", _cmd_demo, "fine-tune a LoRA on pig latin, end to end")
    demo.add_argument("--rl", action="store_true", help="the RL variant (sampling + rewards)")
    demo.add_argument("--steps", type=int, default=None, help="training steps (200; RL 20)")
    demo.add_argument("--rank", type=int, default=16, help="LoRA rank (default 16)")
    demo.add_argument("--learning-rate", type=float, default=None, help="Adam LR (1e-2; RL 5e-3)")
    demo.add_argument("--batch-size", type=int, default=None, help="examples per step (32)")
    demo.add_argument(
        "--base-model", default=None, help="small-byte-lm embedded (RL: tiny-byte-lm)"
    )
    demo.add_argument(
        "--output-dir", default="tinkex-demo-out", help="checkpoints.jsonl lives here"
    )
    demo.add_argument("--checkpoint-every", type=int, default=50, help="save_state every N steps")
    demo.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    demo.add_argument("--seed", type=int, default=0, help="data order and LoRA init seed")
    demo.add_argument(
        "--rl-warmup-steps", type=int, default=10, help="RL: supervised steps first (default 10)"
    )


def _add_serve(sub: Any) -> None:
    serve = _add(sub, "serve", _cmd_serve, "run the embedded server in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument("--data-dir", default=None, help="where checkpoints live")
    serve.add_argument(
        "--long-poll-timeout", type=float, default=30.0,
        help="seconds a retrieve_future poll is held (default 30)",
    )
    serve.add_argument(
        "--session-timeout", type=float, default=120.0,
        help="seconds of silence before a session expires (default 120)",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn's log level")
    serve.add_argument(
        "--api-key", default=None,
        help="the key clients must send (default: TINKER_API_KEY, else a random one, printed)",
    )
    serve.add_argument(
        "--control", action="store_true",
        help="serve the /_control/* endpoints (fault injection, stats) for tests and benchmarks",
    )


def _add_checkpoint(sub: Any) -> None:
    group = sub.add_parser("checkpoint", help="manage checkpoints").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = _add(group, "list", _cmd_checkpoint_list, "list checkpoints")
    listing.add_argument("--run-id", default=None, help="only this training run's")
    listing.add_argument("--limit", type=int, default=20, help="at most N (0: all; default 20)")
    _add(group, "info", _cmd_checkpoint_info, "show one checkpoint").add_argument(
        "checkpoint_path"
    )
    delete = _add(group, "delete", _cmd_checkpoint_delete, "delete checkpoints permanently")
    delete.add_argument("checkpoint_paths", nargs="*")
    delete.add_argument("--run-id", default=None, help="every checkpoint of this run")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for name, unpublish in (("publish", False), ("unpublish", True)):
        cmd = _add(group, name, _cmd_checkpoint_publish, f"{name} a checkpoint")
        cmd.add_argument("checkpoint_path")
        cmd.set_defaults(unpublish=unpublish)
    ttl = _add(group, "set-ttl", _cmd_checkpoint_set_ttl, "set or remove a checkpoint's expiry")
    ttl.add_argument("checkpoint_path")
    ttl.add_argument("--ttl", type=int, default=None, help="expire this many seconds from now")
    ttl.add_argument("--remove", action="store_true", help="never expire")
    download = _add(group, "download", _cmd_checkpoint_download, "download and extract")
    download.add_argument("checkpoint_path")
    download.add_argument("--output", "-o", default=None, help="parent directory (default: .)")
    download.add_argument("--force", action="store_true", help="overwrite an existing directory")


def _add_run(sub: Any) -> None:
    group = sub.add_parser("run", help="inspect training runs").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = _add(group, "list", _cmd_run_list, "list training runs")
    listing.add_argument("--limit", type=int, default=20, help="at most N (0: all; default 20)")
    _add(group, "info", _cmd_run_info, "show one training run").add_argument("run_id")


def _add_sample(sub: Any) -> None:
    sample = _add(sub, "sample", _cmd_sample, "sample from saved weights or a base model")
    sample.add_argument("--prompt", default=None, help="the prompt text")
    sample.add_argument("--prompt-file", default=None, help="read the prompt from a file")
    sample.add_argument("--model-path", default=None, help="tinker://.../sampler_weights/...")
    sample.add_argument("--base-model", default=None, help="a base model name")
    sample.add_argument("--max-tokens", type=int, default=64, help="default 64")
    sample.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    sample.add_argument("--num-samples", type=int, default=1, help="default 1")
    sample.add_argument("--seed", type=int, default=None, help="sampling seed")
    sample.add_argument("--stop", action="append", default=None, help="a stop string (repeat)")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tinkex-actors",
        description="Tinker client runtime: the demo, the embedded server, and management.",
        parents=[_common(True)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add(sub, "version", _cmd_version, "print the version")
    _add_demo(sub)
    _add_serve(sub)
    _add_checkpoint(sub)
    _add_run(sub)
    _add_sample(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from tinkex_actors.logs import configure_logging

    args = build_parser().parse_args(argv)
    try:
        configure_logging()
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return _exit_code_of(exc)
    return code


if __name__ == "__main__":
    sys.exit(main())
