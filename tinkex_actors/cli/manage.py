"""The management commands the official `tinker` CLI also has: run, model, auth.

Names, flags, table layouts and JSON documents follow the official CLI, so a user of one knows
the other (checkpoint commands are in `cli_checkpoint`).
"""

from __future__ import annotations

from typing import Any

import click

from tinkex_actors.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    WAIT_S,
    CliContext,
    CliError,
    common_options,
    count,
    fetch_pages,
    lora_text,
    rest_client,
)
from tinkex_actors.cli.output import emit, print_table, relative_time, truncation_note, yes_no

__all__ = ["auth", "model", "run"]


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
    with rest_client(obj) as rest:

        def page(want: int, offset: int) -> tuple[list[Any], int | None]:
            answer = rest.list_training_runs(limit=want, offset=offset).result(WAIT_S)
            return answer.training_runs, answer.cursor.total_count

        runs, total = fetch_pages(limit, page)
    title = (
        count(len(runs), "training run") + truncation_note(len(runs), total)
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
    with rest_client(obj) as rest:
        found = rest.get_training_run(run_id).result(WAIT_S)
    rows = [
        ["Run ID", found.training_run_id],
        ["Base Model", found.base_model],
        ["Owner", found.model_owner],
        ["LoRA", lora_text(found)],
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
    with rest_client(obj) as rest:
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
        with rest_client(obj) as rest:
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
    with rest_client(obj) as rest:
        identity = rest.whoami().result(WAIT_S)
    rows = [["Email", identity.email or "N/A"], ["User", identity.user_urn],
            ["Organization", identity.org_urn]]
    emit(obj.format, identity, lambda: print_table(None, ["Property", "Value"], rows))
