"""`tinkex-actors checkpoint ...`: the official `tinker checkpoint` commands and flags.

Tables and JSON documents follow the official CLI; where we print more (a confirmation line
after publish, unpublish or set-ttl, the deleted paths in JSON), it is said in `--help`.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from tinkex_actors.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    WAIT_S,
    CliContext,
    CliError,
    check_path,
    common_options,
    count,
    fetch_pages,
    lora_text,
    one_line,
    rest_client,
)
from tinkex_actors.cli.output import (
    emit,
    print_table,
    relative_time,
    size,
    to_json,
    truncation_note,
    yes_no,
)

__all__ = ["checkpoint"]


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
    with rest_client(obj) as rest:
        if run_id:
            checkpoints = list(rest.list_checkpoints(run_id).result(WAIT_S).checkpoints)
        else:

            def page(want: int, offset: int) -> tuple[list[Any], int | None]:
                answer = rest.list_user_checkpoints(limit=want, offset=offset).result(WAIT_S)
                return answer.checkpoints, answer.cursor.total_count if answer.cursor else None

            checkpoints, total = fetch_pages(limit, page)
    document: dict[str, Any] = {"run_id": run_id} if run_id else {}
    document["checkpoints"] = checkpoints
    where = f" for run {run_id}" if run_id else ""
    title = (
        f"{count(len(checkpoints), 'checkpoint')}{where}"
        + truncation_note(len(checkpoints), total)
        if checkpoints
        else f"No checkpoints found{where}"
    )
    emit(obj.format, document, lambda: print_table(
        title, _CHECKPOINT_COLUMNS, [_checkpoint_row(c) for c in checkpoints]
    ))


def _find_checkpoint(rest: Any, path: str) -> tuple[Any, Any]:
    from tinkex_actors.rest.paths import parse_tinker_path

    parsed = parse_tinker_path(check_path(path))
    run = rest.get_training_run(parsed.training_run_id).result(WAIT_S)
    for found in rest.list_checkpoints(parsed.training_run_id).result(WAIT_S).checkpoints:
        if found.tinker_path == path:
            return found, run
    hint = "list them with `tinkex-actors checkpoint list`"
    raise CliError(f"checkpoint not found: {path}; {hint}", EXIT_NOT_FOUND)


@checkpoint.command()
@click.argument("checkpoint_path")
@common_options
@click.pass_obj
def info(obj: CliContext, checkpoint_path: str) -> None:
    """Show details of a specific checkpoint.

    CHECKPOINT_PATH must be a tinker path (e.g., tinker://run-id/weights/0001).
    """
    with rest_client(obj) as rest:
        found, run = _find_checkpoint(rest, checkpoint_path)
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
        ["LoRA", lora_text(run)],
    ]
    emit(obj.format, document, lambda: print_table(
        f"Checkpoint: {found.checkpoint_id}", ["Property", "Value"], rows
    ))


def _publish(obj: CliContext, checkpoint_path: str, public: bool) -> None:
    path = check_path(checkpoint_path)
    with rest_client(obj) as rest:
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
    with rest_client(obj) as rest:
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
    from tinkex_actors.rest.checkpoints import CheckpointDeleteError

    if bool(checkpoint_paths) == bool(run_id):
        raise CliError("give checkpoint paths or --run-id (exactly one of the two)", EXIT_USAGE)
    if (checkpoint_type or before or after) and not run_id:
        raise CliError("--type, --before and --after need --run-id", EXIT_USAGE)
    if checkpoint_type is not None and checkpoint_type not in _TYPES:
        raise CliError(f"--type {checkpoint_type!r}: use weights or sampler_weights", EXIT_USAGE)
    low = _parse_date("--after", after) if after else None
    high = _parse_date("--before", before) if before else None
    with rest_client(obj) as rest:
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
                    f"refusing to delete {count(len(paths), 'checkpoint')} without "
                    "confirmation: pass --yes",
                    EXIT_USAGE,
                )
            click.echo(f"Will delete {count(len(paths), 'checkpoint')}:")
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
    with rest_client(obj) as rest:
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
