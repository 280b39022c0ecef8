"""The `tinkex-actors` command line, in the conventions of the official `tinker` CLI.

Built like the official one (click, rich tables, `-f/--format table|json`, relative times),
with the same names and flags for the commands both have (checkpoint, run, model, auth,
version), and ours beyond them:

    tinkex-actors demo [--rl] [--steps N] [--lr LR] ...   the main job (tinkex_actors.demo.run)
    tinkex-actors serve [--host H] [--port P]             the embedded server, in the foreground
    tinkex-actors sample --prompt TEXT (--model-path tinker://... | --base-model NAME)
    tinkex-actors plot DIR                                a run's curve from its metrics.jsonl

Commands that talk to a service use `--base-url` or `TINKER_BASE_URL`, and `TINKER_API_KEY`.
`--base-url`, `-f/--format`, `--json` (same as `-f json`) and `--debug` work before or after
the command. Errors are one line on stderr (`error: ...`), with the traceback only under
`--debug`. A closed pipe (`| head`) ends the command quietly with exit 0.

Exit codes: 0 success; 1 the operation failed (the service refused it, or the demo did not
learn); 2 bad usage or input; 3 not found; 4 authentication or permission; 5 the service could
not be reached; 130 interrupted (Ctrl-C).

More commands can be registered with `cli.add_command(...)` (a click command or group).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from tinkex_actors._version import __version__
from tinkex_actors.cli.checkpoint import checkpoint
from tinkex_actors.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    MAX_RETRIES,
    WAIT_S,
    CliContext,
    CliError,
    check_path,
    common_options,
    connection,
    describe,
    exit_code_of,
)
from tinkex_actors.cli.manage import auth, model, run
from tinkex_actors.cli.output import emit, visible
from tinkex_actors.compat.launcher import exec_command

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "cli",
    "main",
]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _PipeClosedError(Exception):
    """stdout's reader went away (`| head`): the command ends quietly, successfully."""


class _Root(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # click would report a closed pipe as exit 1; for us it is a reader that has
            # seen enough.
            raise _PipeClosedError from None


@click.group(
    cls=_Root, context_settings=_CONTEXT, epilog="Run `tinkex-actors COMMAND --help` for more."
)
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--base-url", default=None, help="The service URL (default: TINKER_BASE_URL).")
@click.option("--debug", is_flag=True, help="Print tracebacks with errors.")
@click.version_option(__version__, "--version", prog_name="tinkex-actors",
                      message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, fmt: str, as_json: bool, base_url: str | None, debug: bool) -> None:
    """Tinker client runtime: the demo, the embedded server, and management.

    \b
    Examples:
      tinkex-actors demo                     fine-tune a LoRA on pig latin, offline
      tinkex-actors serve                    a Tinker-compatible server on 127.0.0.1:8765
      tinkex-actors -f json run list         training runs as JSON
      tinkex-actors checkpoint list --run-id <run-id>
    """
    ctx.obj = CliContext(format="json" if as_json else fmt, base_url=base_url, debug=debug)


for _group in (checkpoint, run, model, auth, exec_command):
    cli.add_command(_group)


@cli.command()
@common_options
@click.pass_obj
def version(obj: CliContext) -> None:
    """Show version information."""
    emit(
        obj.format,
        {"name": "tinkex-actors", "version": __version__, "python": sys.version.split()[0]},
        lambda: click.echo(f"tinkex-actors {__version__}"),
    )


# -- demo -------------------------------------------------------------------------------------


@cli.command()
@click.option("--rl", is_flag=True, help="The RL variant (sampling + rewards).")
@click.option("--steps", type=int, default=None, help="Training steps (default 200; RL 20).")
@click.option("--rank", type=int, default=16, show_default=True, help="LoRA rank.")
@click.option("--lr", "--learning-rate", "learning_rate", type=float, default=None,
              help="Adam learning rate (default 1e-2; RL 5e-3).")
@click.option("--batch-size", type=int, default=None, help="Examples per step (default 32).")
@click.option("--base-model", default=None,
              help="Base model (embedded: small-byte-lm, RL tiny-byte-lm; on a service: one "
              "it serves, asked with get_server_capabilities).")
@click.option("--output-dir", default="tinkex-demo-out", show_default=True,
              help="Where metrics.jsonl, checkpoints.jsonl and the curve go.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True,
              help="save_state every N steps (and at the end).")
@click.option("--resume", is_flag=True, help="Continue from the last recorded checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Data order and LoRA init seed.")
@click.option("--rl-warmup-steps", type=int, default=10, show_default=True,
              help="RL: supervised steps first.")
@common_options
@click.pass_obj
def demo(obj: CliContext, /, **flags: Any) -> None:
    """Fine-tune a LoRA on pig latin, end to end.

    Runs on an embedded server unless TINKER_BASE_URL / TINKER_API_KEY name a service. Shows
    a progress bar, samples before and after, and ends with a loss curve; writes
    metrics.jsonl, checkpoints.jsonl and loss.png (reward.png for --rl) to --output-dir.
    Ctrl-C saves a checkpoint; --resume continues from it.

    \b
    Examples:
      tinkex-actors demo
      tinkex-actors demo --steps 50 --lr 2e-2
      tinkex-actors demo --rl --steps 10
      tinkex-actors --json demo --steps 20 > report.json
    """
    from tinkex_actors.demo.run import DemoOptions, run_demo

    try:
        options = DemoOptions(
            output_dir=Path(flags.pop("output_dir")), base_url=obj.base_url, **flags
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if not obj.json:
        code = run_demo(options)
    else:
        # For scripts: the running commentary goes to stderr, one JSON document to stdout.
        report: dict[str, Any] = {}
        code = run_demo(options, stdout=sys.stderr, report=report)
        click.echo(json.dumps({**report, "exit_code": code}, indent=2, sort_keys=True))
    if code:
        raise click.exceptions.Exit(code)


# -- serve ------------------------------------------------------------------------------------

# One list, so a flag added to `serve` is one more entry here.
SERVE_OPTIONS = [
    click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address."),
    click.option("--port", type=int, default=8765, show_default=True, help="The port."),
    click.option("--data-dir", default=None, help="Where checkpoints live (default: a new "
                 "temporary directory)."),
    click.option("--long-poll-timeout", type=float, default=30.0, show_default=True,
                 help="Seconds a retrieve_future poll is held."),
    click.option("--session-timeout", type=float, default=120.0, show_default=True,
                 help="Seconds of silence before a session expires."),
    click.option("--log-level", default="info", show_default=True, help="uvicorn's log level."),
    click.option("--api-key", default=None,
                 help="The key clients must send (default: TINKER_API_KEY, else a new random "
                 "key, printed once)."),
    click.option("--control", is_flag=True,
                 help="Also serve the /_control fault-injection endpoints (tests, benchmarks)."),
]


def _serve(
    host: str,
    port: int,
    data_dir: str | None,
    long_poll_timeout: float,
    session_timeout: float,
    log_level: str,
    api_key: str | None = None,
    control: bool = False,
    **_more: Any,
) -> None:
    """Run the embedded server until Ctrl-C."""
    from tinkex_actors.local.guard import new_api_key
    from tinkex_actors.local.server import serve as run_server
    from tinkex_actors.local.settings import ServerSettings

    folder = data_dir or tempfile.mkdtemp(prefix="tinkex-serve-")
    settings = ServerSettings(long_poll_timeout_s=long_poll_timeout,
                              session_timeout_s=session_timeout)
    supplied = api_key or os.environ.get("TINKER_API_KEY") or None
    key = supplied or new_api_key()

    def announce(url: str) -> None:
        # A key the user chose is theirs already: never echo it. A generated one must be
        # shown, or nobody could connect.
        shown = "the key you gave (--api-key or TINKER_API_KEY)" if supplied else key
        click.echo(
            f"serving the embedded Tinker-compatible server on {url} "
            f"(data in {folder}{'; /_control endpoints on' if control else ''}); "
            "Ctrl-C stops it\n"
            f"connect with TINKER_BASE_URL={url} and TINKER_API_KEY={shown}"
        )
        sys.stdout.flush()

    try:
        run_server(host, port, folder, settings, log_level=log_level, announce=announce,
                   api_key=key, control=control)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _serve_command() -> click.Command:
    def serve(**flags: Any) -> None:
        """Run the embedded Tinker-compatible server in the foreground.

        \b
        Examples:
          tinkex-actors serve
          tinkex-actors serve --port 9000 --data-dir tinkex-demo-out/server
          TINKER_API_KEY=tml-my-key tinkex-actors serve --data-dir tinker-data
        """
        _serve(**flags)

    command: Any = serve
    for option in reversed(SERVE_OPTIONS):
        command = option(command)
    return click.command(name="serve")(common_options(command))


cli.add_command(_serve_command())


# -- sample -----------------------------------------------------------------------------------


@cli.command()
@click.option("--prompt", default=None, help="The prompt text.")
@click.option("--prompt-file", default=None, help="Read the prompt from a file.")
@click.option("--model-path", default=None, help="tinker://.../sampler_weights/...")
@click.option("--base-model", default=None, help="A base model name.")
@click.option("--max-tokens", type=int, default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True,
              help="0 is greedy.")
@click.option("--num-samples", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=None, help="Sampling seed.")
@click.option("--stop", multiple=True, help="A stop string (repeat for more).")
@common_options
@click.pass_obj
def sample(
    obj: CliContext,
    prompt: str | None,
    prompt_file: str | None,
    model_path: str | None,
    base_model: str | None,
    max_tokens: int,
    temperature: float,
    num_samples: int,
    seed: int | None,
    stop: tuple[str, ...],
) -> None:
    """Sample from saved weights or a base model.

    Control characters in the model's output are shown escaped (\\x07), never sent to the
    terminal; -f json gives the exact text and tokens.

    \b
    Examples:
      tinkex-actors sample --base-model tiny-byte-lm --prompt "chip -> "
      tinkex-actors sample --model-path tinker://<run>/sampler_weights/s --prompt-file p.txt
    """
    import tinkex_actors as tx
    from tinkex_actors.tokenizer import get_tokenizer

    if (prompt is None) == (prompt_file is None):
        raise CliError("give exactly one of --prompt TEXT or --prompt-file FILE", EXIT_USAGE)
    if (model_path is None) == (base_model is None):
        raise CliError(
            "give exactly one of --model-path tinker://... or --base-model NAME", EXIT_USAGE
        )
    if prompt_file is not None:
        try:
            prompt = Path(prompt_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"--prompt-file {prompt_file!r}: {exc.strerror}", EXIT_USAGE) from None
    assert prompt is not None
    if model_path is not None:
        check_path(model_path)
    base_url, api_key = connection(obj)
    with tx.ServiceClient(api_key=api_key, base_url=base_url, max_retries=MAX_RETRIES) as service:
        model_name = base_model
        if model_name is None:
            assert model_path is not None
            info = service.create_rest_client().get_weights_info_by_tinker_path(model_path)
            model_name = info.result(WAIT_S).base_model
        tokenizer = get_tokenizer(model_name)
        sampler = service.create_sampling_client(
            model_path=model_path, base_model=base_model
        ).result(WAIT_S)
        params = tx.SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed,
                                   stop=list(stop) or None)
        tokens = list(tokenizer.encode(prompt, add_special_tokens=False))
        answer = sampler.sample(tx.ModelInput.from_ints(tokens), num_samples, params)
        samples = [
            {
                "text": tokenizer.decode(list(s.tokens)),
                "tokens": [int(t) for t in s.tokens],
                "stop_reason": s.stop_reason,
            }
            for s in answer.result(WAIT_S).sequences
        ]

    def table() -> None:
        for i, item in enumerate(samples):
            click.echo(f"--- sample {i} ({item['stop_reason']})")
            click.echo(visible(prompt + item["text"]))

    document = {"prompt": prompt, "base_model": model_name, "model_path": model_path,
                "samples": samples}
    emit(obj.format, document, table)


# -- plot -------------------------------------------------------------------------------------


@cli.command()
@click.argument("source", metavar="DIR")
@click.option("--metric", default=None,
              help="The metric to draw (default: train_mean_nll, else the reward).")
@click.option("--output", "-o", default=None,
              help="The picture file (default: loss.png / reward.png beside the metrics).")
@click.option("--width", type=int, default=800, show_default=True, help="Picture width.")
@click.option("--height", type=int, default=450, show_default=True, help="Picture height.")
@common_options
@click.pass_obj
def plot(obj: CliContext, source: str, metric: str | None, output: str | None,
         width: int, height: int) -> None:
    """Redraw a run's loss curve from its metrics.jsonl.

    DIR is a run's output directory (or the metrics.jsonl itself): the demo's, or any
    tinker-cookbook run's.

    \b
    Examples:
      tinkex-actors plot tinkex-demo-out
      tinkex-actors plot runs/sl-1/metrics.jsonl --metric learning_rate -o lr.png
    """
    from tinkex_actors.reporting.plot import describe as summarize
    from tinkex_actors.reporting.plot import plot_metrics, terminal_curve
    from tinkex_actors.reporting.progress import stream_encoding

    if width < 200 or height < 150:
        raise CliError(f"--width {width} --height {height}: at least 200 x 150", EXIT_USAGE)
    picture, chosen, values = plot_metrics(
        Path(source), metric=metric, output=Path(output) if output else None,
        width=width, height=height,
    )
    document = {"picture": str(picture), "metric": chosen, **summarize(values)}

    def table() -> None:
        click.echo(f"{chosen}: {values[0]:.4g} -> {values[-1]:.4g} in {len(values)} steps")
        for line in terminal_curve(values, encoding=stream_encoding(sys.stdout)):
            click.echo(line)
        click.echo(f"wrote {picture}")

    emit(obj.format, document, table)


# -- main -------------------------------------------------------------------------------------


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from tinkex_actors.logs import configure_logging

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        try:
            configure_logging()
            # Not standalone: click returns an Exit's code (demo's 1 or 130) rather than exiting.
            code = cli.main(args=args, prog_name="tinkex-actors", standalone_mode=False)
        except click.exceptions.Exit as done:
            return int(done.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            return EXIT_INTERRUPTED
        except click.exceptions.ClickException as exc:
            exc.show()
            return exc.exit_code
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            return EXIT_INTERRUPTED
        except (BrokenPipeError, _PipeClosedError):
            raise
        except Exception as exc:
            if debug:
                traceback.print_exc()
            message = describe(exc)
            if message:
                click.echo(f"error: {message}", err=True)
            return exit_code_of(exc)
        sys.stdout.flush()
    except (BrokenPipeError, _PipeClosedError):
        # `... | head`: the reader has what it wanted; that is success, not an error.
        _quiet_stdout()
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
