"""The management commands the official `tinker` CLI also has: checkpoint, run, model, auth.

Names, flags, table layouts, JSON documents and titles follow the official CLI, so a user of
one knows the other; where we print more (a confirmation after publish), it is said in `--help`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from tinkex_actors.cli_common import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    MAX_RETRIES,
    WAIT_S,
    CliContext,
    CliError,
    check_path,
    common_options,
    connection,
    one_line,
)
from tinkex_actors.cli_output import (
    emit,
    print_table,
    relative_time,
    size,
    truncation_note,
    yes_no,
)

__all__ = ["auth", "checkpoint", "model", "run"]

_PAGE = 100


@contextmanager
def _rest(obj: CliContext) -> Iterator[Any]:
    from tinkex_actors.config import Config
    from tinkex_actors.rest import RestClient

    base_url, api_key = connection(obj)
    config = Config.resolve(api_key=api_key, base_url=base_url, max_retries=MAX_RETRIES)
    client = RestClient(config=config)
    try:
        yield client
    finally:
        client.close()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# -- checkpoint -------------------------------------------------------------------------------


@click.group()
def checkpoint() -> None:
    """Manage checkpoints."""


_CHECKPOINT_COLUMNS = ["Checkpoint ID", "Type", "Size", "Public", "Created", "Expires", "Path"]


def _checkpoint_row(c: Any) -> list[str]:
    return [
        c.checkpoint_id,
        c.checkpoint_type,
        size(c.size_bytes),
        yes_no(c.public),
        relative_time(c.time),
        relative_time(c.expires_at) if c.expires_at else "Never",
        c.tinker_path,
    ]


@checkpoint.command(name="list")
@click.option("--run-id", default=None, help="Training run ID")
@click.option(
    "--limit", type=int, default=20, show_default=True,
    help="Maximum number of checkpoints to display when listing from all runs "
    "(use --limit=0 to show all)",
)
@common_options
@click.pass_obj
def checkpoint_list(obj: CliContext, run_id: str | None, limit: int) -> None:
    """List checkpoints.

    With --run-id, every checkpoint of that training run; otherwise the most recent ones
    across your runs (a title says how many more there are).

    \b
    Examples:
      tinkex-actors checkpoint list
      tinkex-actors checkpoint list --run-id <run-id> -f json
    """
    if limit < 0:
        raise CliError(f"--limit {limit} must be >= 0 (0 shows all)", EXIT_USAGE)
    total: int | None = None
    with _rest(obj) as rest:
        if run_id:
            checkpoints = list(rest.list_checkpoints(run_id).result(WAIT_S).checkpoints)
        else:
            checkpoints = []
            while limit == 0 or len(checkpoints) < limit:
                want = _PAGE if limit == 0 else min(_PAGE, limit - len(checkpoints))
                page = rest.list_user_checkpoints(limit=want, offset=len(checkpoints))
                answer = page.result(WAIT_S)
                checkpoints.extend(answer.checkpoints)
                total = answer.cursor.total_count if answer.cursor else len(checkpoints)
                if len(answer.checkpoints) < want or len(checkpoints) >= total:
                    break
    document: dict[str, Any] = {"run_id": run_id} if run_id else {}
    document["checkpoints"] = checkpoints
    where = f" for run {run_id}" if run_id else ""
    title = (
        f"{_count(len(checkpoints), 'checkpoint')}{where}"
        + truncation_note(len(checkpoints), total)
        if checkpoints
        else f"No checkpoints found{where}"
    )
    emit(obj.format, document, lambda: print_table(
        title, _CHECKPOINT_COLUMNS, [_checkpoint_row(c) for c in checkpoints]
    ))


def _find_checkpoint(rest: Any, path: str) -> tuple[Any, Any]:
    from tinkex_actors.rest import parse_tinker_path

    parsed = parse_tinker_path(check_path(path))
    run = rest.get_training_run(parsed.training_run_id).result(WAIT_S)
    for found in rest.list_checkpoints(parsed.training_run_id).result(WAIT_S).checkpoints:
        if found.tinker_path == path:
            return found, run
    hint = "list them with `tinkex-actors checkpoint list`"
    raise CliError(f"checkpoint not found: {path}; {hint}", EXIT_NOT_FOUND)


def _lora(run: Any) -> str:
    if not run.is_lora:
        return "No"
    return f"Yes (Rank {run.lora_rank})" if run.lora_rank else "Yes"


@checkpoint.command()
@click.argument("checkpoint_path")
@common_options
@click.pass_obj
def info(obj: CliContext, checkpoint_path: str) -> None:
    """Show details of a specific checkpoint.

    CHECKPOINT_PATH must be a tinker path (e.g., tinker://run-id/weights/0001).
    """
    with _rest(obj) as rest:
        found, run = _find_checkpoint(rest, checkpoint_path)
    from tinkex_actors.cli_output import to_json

    document = dict(to_json(found))
    document.update(
        is_lora=run.is_lora,
        lora_rank=run.lora_rank,
        training_run_id=run.training_run_id,
        base_model=run.base_model,
    )
    rows = [
        ["Checkpoint ID", found.checkpoint_id],
        ["Type", found.checkpoint_type],
        ["Tinker Path", found.tinker_path],
        *([["Size", size(found.size_bytes)]] if found.size_bytes is not None else []),
        ["Public", yes_no(found.public)],
        ["Created", relative_time(found.time)],
        ["Expires", relative_time(found.expires_at) if found.expires_at else "Never"],
        ["Training Run ID", run.training_run_id],
        ["LoRA", _lora(run)],
    ]
    emit(obj.format, document, lambda: print_table(
        f"Checkpoint: {found.checkpoint_id}", ["Property", "Value"], rows
    ))


def _publish(obj: CliContext, checkpoint_path: str, public: bool) -> None:
    path = check_path(checkpoint_path)
    with _rest(obj) as rest:
        if public:
            rest.publish_checkpoint_from_tinker_path(path).result(WAIT_S)
        else:
            rest.unpublish_checkpoint_from_tinker_path(path).result(WAIT_S)
    verb = "Published" if public else "Unpublished"
    emit(obj.format, {"tinker_path": path, "public": public}, lambda: click.echo(f"{verb} {path}"))


@checkpoint.command()
@click.argument("checkpoint_path")
@common_options
@click.pass_obj
def publish(obj: CliContext, checkpoint_path: str) -> None:
    """Publish a checkpoint to make it publicly accessible.

    CHECKPOINT_PATH must be a tinker path (e.g., tinker://run-id/weights/0001).
    Only the owner of the training run can publish checkpoints.
    """
    _publish(obj, checkpoint_path, True)


@checkpoint.command()
@click.argument("checkpoint_path")
@common_options
@click.pass_obj
def unpublish(obj: CliContext, checkpoint_path: str) -> None:
    """Unpublish a checkpoint to make it private again.

    CHECKPOINT_PATH must be a tinker path (e.g., tinker://run-id/weights/0001).
    Only the owner of the training run can unpublish checkpoints.
    """
    _publish(obj, checkpoint_path, False)


@checkpoint.command(name="set-ttl")
@click.argument("checkpoint_path")
@click.option("--ttl", type=int, default=None, help="TTL in seconds (1 hour to 10 years)")
@click.option("--remove", is_flag=True, help="Remove the expiration from the checkpoint")
@common_options
@click.pass_obj
def set_ttl(obj: CliContext, checkpoint_path: str, ttl: int | None, remove: bool) -> None:
    """Set or remove the TTL (time-to-live) on a checkpoint.

    Use --ttl to set an expiration (in seconds from now), or --remove to clear it.

    \b
    Examples:
      tinkex-actors checkpoint set-ttl tinker://run-id/weights/0001 --ttl 86400
      tinkex-actors checkpoint set-ttl tinker://run-id/weights/0001 --remove
    """
    path = check_path(checkpoint_path)
    if (ttl is None) == (not remove):
        raise CliError("give exactly one of --ttl SECONDS or --remove", EXIT_USAGE)
    if ttl is not None and ttl <= 0:
        raise CliError(f"--ttl {ttl} must be a positive number of seconds", EXIT_USAGE)
    with _rest(obj) as rest:
        rest.set_checkpoint_ttl_from_tinker_path(path, ttl).result(WAIT_S)
    message = f"Removed the expiry of {path}" if remove else f"{path} expires in {ttl} s"
    emit(obj.format, {"tinker_path": path, "ttl_seconds": ttl}, lambda: click.echo(message))


def _parse_date(flag: str, value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{flag} {value!r} is not a date: use ISO 8601 (2024-01-01, 2024-01-01T08:00:00Z)",
            EXIT_USAGE,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


_TYPES = {"weights": "training", "sampler_weights": "sampler", "training": "training",
          "sampler": "sampler"}


@checkpoint.command()
@click.argument("checkpoint_paths", nargs=-1, required=False)
@click.option("--run-id", default=None, help="Delete all checkpoints for a training run")
@click.option("--type", "checkpoint_type", default=None,
              help="Filter by type: weights or sampler_weights")
@click.option("--before", default=None, help="Filter: created before date in UTC (ISO 8601)")
@click.option("--after", default=None, help="Filter: created after date in UTC (ISO 8601)")
@click.option("--yes", "-y", is_flag=True, help="Skip confirmation prompt")
@common_options
@click.pass_obj
def delete(
    obj: CliContext,
    checkpoint_paths: tuple[str, ...],
    run_id: str | None,
    checkpoint_type: str | None,
    before: str | None,
    after: str | None,
    yes: bool,
) -> None:
    """Delete one or more checkpoints permanently.

    \b
    Examples:
      tinkex-actors checkpoint delete tinker://run-id/weights/0001 tinker://run-id/weights/0002
      tinkex-actors checkpoint delete --run-id <run-id>
      tinkex-actors checkpoint delete --run-id <run-id> --type weights --before 2024-06-01

    Without a terminal to ask on, pass --yes. This cannot be undone.
    """
    from tinkex_actors.rest import CheckpointDeleteError

    if bool(checkpoint_paths) == bool(run_id):
        raise CliError("give checkpoint paths or --run-id (exactly one of the two)", EXIT_USAGE)
    if (checkpoint_type or before or after) and not run_id:
        raise CliError("--type, --before and --after need --run-id", EXIT_USAGE)
    if checkpoint_type is not None and checkpoint_type not in _TYPES:
        raise CliError(f"--type {checkpoint_type!r}: use weights or sampler_weights", EXIT_USAGE)
    low = _parse_date("--after", after) if after else None
    high = _parse_date("--before", before) if before else None
    with _rest(obj) as rest:
        if run_id:
            listed = rest.list_checkpoints(run_id).result(WAIT_S).checkpoints
            paths = [
                c.tinker_path for c in listed
                if (checkpoint_type is None or c.checkpoint_type == _TYPES[checkpoint_type])
                and (low is None or c.time > low) and (high is None or c.time < high)
            ]
        else:
            paths = [check_path(p) for p in checkpoint_paths]
        if paths and not yes:
            if not sys.stdin.isatty():
                raise CliError(
                    f"refusing to delete {_count(len(paths), 'checkpoint')} without "
                    "confirmation: pass --yes",
                    EXIT_USAGE,
                )
            click.echo(f"Will delete {_count(len(paths), 'checkpoint')}:")
            for path in paths:
                click.echo(f"  - {path}")
            click.echo("WARNING: This action is permanent and cannot be undone.")
            if not click.confirm(f"Are you sure you want to delete {len(paths)} checkpoint(s)?"):
                click.echo("Deletion cancelled.")
                raise CliError("", EXIT_FAILED)
        failed: dict[str, BaseException] = {}
        try:
            rest.delete_checkpoints_from_tinker_paths(paths).result(WAIT_S)
        except CheckpointDeleteError as exc:
            failed = exc.failures
    deleted = [p for p in paths if p not in failed]
    document = {
        "deleted_count": len(deleted),
        "deleted": deleted,
        "failed": [{"tinker_path": p, "error": one_line(e)} for p, e in failed.items()],
    }

    def table() -> None:
        click.echo(f"Deleted {len(deleted)} checkpoint(s)")
        for path, error in failed.items():
            click.echo(f"failed: {path}: {one_line(error)}", err=True)

    emit(obj.format, document, table)
    if failed:
        raise next(iter(failed.values()))


@checkpoint.command()
@click.argument("checkpoint_path")
@click.option("--output", "-o", default=None,
              help="Parent directory for extracted checkpoint (default: current directory)")
@click.option("--force", is_flag=True, help="Overwrite existing directory if it exists")
@common_options
@click.pass_obj
def download(obj: CliContext, checkpoint_path: str, output: str | None, force: bool) -> None:
    """Download and extract a checkpoint.

    Creates <output>/<run-id>_<type>_<name>/ with the checkpoint files; an existing
    directory is kept unless --force.

    \b
    Examples:
      tinkex-actors checkpoint download tinker://run-123/weights/final
      tinkex-actors checkpoint download tinker://run-123/weights/final -o ./models --force
    """
    path = check_path(checkpoint_path)
    parent = Path(output) if output else Path.cwd()
    with _rest(obj) as rest:
        try:
            target = rest.download_checkpoint_archive(path, parent, overwrite=force).result(
                WAIT_S * 5
            )
        except FileExistsError as exc:
            raise CliError(f"{exc} (pass --force to overwrite)", EXIT_USAGE) from exc
    total = sum(f.stat().st_size for f in Path(target).rglob("*") if f.is_file())
    document = {"checkpoint_path": path, "destination": str(target), "file_size_bytes": total}
    rows = [["Checkpoint Path", path], ["Total Size", size(total)],
            ["Downloaded to", str(target)]]
    emit(obj.format, document, lambda: print_table(
        f"Checkpoint Download: {path}", ["Property", "Value"], rows
    ))


# -- run --------------------------------------------------------------------------------------


@click.group()
def run() -> None:
    """Manage training runs."""


_RUN_COLUMNS: dict[str, tuple[str, Any]] = {
    "id": ("Run ID", lambda r: r.training_run_id),
    "model": ("Base Model", lambda r: r.base_model),
    "owner": ("Owner", lambda r: r.model_owner),
    "lora": ("LoRA", lambda r: f"Rank {r.lora_rank}" if r.is_lora and r.lora_rank
             else yes_no(r.is_lora)),
    "updated": ("Last Update", lambda r: relative_time(r.last_request_time)),
    "status": ("Status", lambda r: "Failed" if r.corrupted else "OK"),
    "checkpoint": ("Last Checkpoint", lambda r: r.last_checkpoint.checkpoint_id
                   if r.last_checkpoint else "None"),
    "checkpoint_time": ("Checkpoint Time", lambda r: relative_time(r.last_checkpoint.time)
                        if r.last_checkpoint else "N/A"),
}
_DEFAULT_RUN_COLUMNS = "id,model,lora,updated,status"


@run.command(name="list")
@click.option("--limit", type=int, default=20, show_default=True,
              help="Maximum number of runs to fetch (use --limit=0 to fetch all)")
@click.option("--columns", "-c", default=_DEFAULT_RUN_COLUMNS, show_default=True,
              help=f"Columns to display, comma-separated, from: {', '.join(_RUN_COLUMNS)}")
@common_options
@click.pass_obj
def run_list(obj: CliContext, limit: int, columns: str) -> None:
    """List all training runs.

    \b
    Examples:
      tinkex-actors run list --limit 5
      tinkex-actors run list -c id,model,checkpoint -f json
    """
    chosen = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in _RUN_COLUMNS]
    if unknown:
        raise CliError(
            f"--columns: unknown column(s) {', '.join(unknown)}; use {', '.join(_RUN_COLUMNS)}",
            EXIT_USAGE,
        )
    if limit < 0:
        raise CliError(f"--limit {limit} must be >= 0 (0 fetches all)", EXIT_USAGE)
    runs: list[Any] = []
    total = 0
    with _rest(obj) as rest:
        while limit == 0 or len(runs) < limit:
            want = _PAGE if limit == 0 else min(_PAGE, limit - len(runs))
            answer = rest.list_training_runs(limit=want, offset=len(runs)).result(WAIT_S)
            runs.extend(answer.training_runs)
            total = answer.cursor.total_count
            if len(answer.training_runs) < want or len(runs) >= total:
                break
    title = (
        _count(len(runs), "training run") + truncation_note(len(runs), total)
        if runs else "No training runs found"
    )
    emit(obj.format, {"runs": runs}, lambda: print_table(
        title, [_RUN_COLUMNS[c][0] for c in chosen],
        [[_RUN_COLUMNS[c][1](r) for c in chosen] for r in runs],
    ))


@run.command(name="info")
@click.argument("run_id")
@common_options
@click.pass_obj
def run_info(obj: CliContext, run_id: str) -> None:
    """Show details of a specific run."""
    with _rest(obj) as rest:
        found = rest.get_training_run(run_id).result(WAIT_S)
    rows = [
        ["Run ID", found.training_run_id],
        ["Base Model", found.base_model],
        ["Owner", found.model_owner],
        ["LoRA", _lora(found)],
        ["Last Update", relative_time(found.last_request_time)],
        ["Status", "Failed" if found.corrupted else "OK"],
    ]
    for label, last in (("Last Training Checkpoint", found.last_checkpoint),
                        ("Last Sampler Checkpoint", found.last_sampler_checkpoint)):
        if last:
            rows += [[label, last.checkpoint_id], ["  - Time", relative_time(last.time)],
                     ["  - Path", last.tinker_path]]
    if getattr(found, "user_metadata", None):
        rows.append(["Metadata", ""])
        rows += [[f"  - {k}", str(v)] for k, v in found.user_metadata.items()]
    emit(obj.format, found, lambda: print_table(
        f"Training Run: {found.training_run_id}", ["Property", "Value"], rows
    ))


# -- model ------------------------------------------------------------------------------------


@click.group()
def model() -> None:
    """List available models."""


@model.command(name="list")
@click.argument("substring", required=False)
@common_options
@click.pass_obj
def model_list(obj: CliContext, substring: str | None) -> None:
    """List the models the server offers.

    SUBSTRING keeps only the models whose name contains it, ignoring case.
    Pass the name in the Model column as base_model (or `demo --base-model`).
    """
    with _rest(obj) as rest:
        models = list(rest.get_server_capabilities().result(WAIT_S).supported_models)
    if substring is not None:
        models = [m for m in models if m.model_name and substring.lower() in m.model_name.lower()]
        if not models:
            raise CliError(
                f"no model name contains {substring!r}: run `tinkex-actors model list` to see "
                "every model the server offers",
                EXIT_NOT_FOUND,
            )
    rows = [
        [m.model_name or "N/A",
         str(m.max_context_length) if m.max_context_length is not None else "N/A",
         yes_no(m.trainable), yes_no(m.sampleable)]
        for m in models
    ]
    emit(obj.format, {"models": models}, lambda: print_table(
        None, ["Model", "Max Context", "Trainable", "Sampleable"], rows
    ))


# -- auth -------------------------------------------------------------------------------------


@click.group()
def auth() -> None:
    """Check credentials and who they belong to."""


@auth.command()
@common_options
@click.pass_obj
def status(obj: CliContext) -> None:
    """Check credential availability and live access to the service."""
    import os

    has_key = bool(os.environ.get("TINKER_API_KEY"))
    click.echo(f"Credentials available: {'yes' if has_key else 'no'}")
    if not has_key:
        raise CliError("no credentials: set TINKER_API_KEY", EXIT_USAGE)
    try:
        with _rest(obj) as rest:
            rest.whoami().result(WAIT_S)
    except Exception:
        click.echo("Tinker accessible: no")
        raise
    click.echo("Tinker accessible: yes")


@auth.command()
@common_options
@click.pass_obj
def whoami(obj: CliContext) -> None:
    """Show the user and organization of the active credential."""
    with _rest(obj) as rest:
        identity = rest.whoami().result(WAIT_S)
    rows = [["Email", identity.email or "N/A"], ["User", identity.user_urn],
            ["Organization", identity.org_urn]]
    emit(obj.format, identity, lambda: print_table(None, ["Property", "Value"], rows))
