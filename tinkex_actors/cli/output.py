"""How the command line prints: rich tables or JSON, as the official `tinker` CLI does.

Tables have the official layout (a title, the first column in bright cyan, rich's box
drawing), times are relative ("2 hours ago", "in 3 days"), sizes human ("1.2 MB"). JSON is
one indented document with the wire field names; datetimes print as `str()` gives them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "emit",
    "print_table",
    "relative_time",
    "size",
    "to_json",
    "truncation_note",
    "visible",
    "yes_no",
]


def to_json(value: Any) -> Any:
    """A JSON-ready copy of a wire value: Structs become dicts with every field (unset ones as
    null, as the official CLI prints them); datetimes stay for `str`."""
    import msgspec

    if isinstance(value, msgspec.Struct):
        return {k: to_json(v) for k, v in msgspec.structs.asdict(value).items()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return msgspec.to_builtins(value, builtin_types=(dt.datetime,), enc_hook=str)


def emit(fmt: str, document: Any, table: Callable[[], None]) -> None:
    """Print `document` as JSON when `fmt` is json, else call `table`."""
    if fmt == "json":
        sys.stdout.write(json.dumps(to_json(document), indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        table()


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on stdout: the title above, the first column highlighted."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title) if title else Table()
    for i, column in enumerate(columns):
        if i == 0:
            table.add_column(column, style="bright_cyan", no_wrap=True)
        else:
            table.add_column(column)
    for row in rows:
        table.add_row(*(visible(cell) for cell in row))
    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1 here; the command line treats a closed pipe as success.
            raise BrokenPipeError

    # emoji=False: ids like ":smile:" stay text.
    _Console(emoji=False).print(table)


def visible(text: str) -> str:
    """`text` with control characters shown as escapes (a terminal never interprets them)."""
    return "".join(
        c if c in "\n\t" or unicodedata.category(c) != "Cc" else repr(c)[1:-1] for c in text
    )


def yes_no(value: bool | None) -> str:
    """Yes / No (N/A when unknown)."""
    return "N/A" if value is None else ("Yes" if value else "No")


def size(size_bytes: int | None) -> str:
    """A byte count for people: 512 B, 1.5 KB, 2.0 GB."""
    if size_bytes is None or size_bytes < 0:
        return "N/A"
    value = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1024.0:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024.0
    return f"{value:.1f} EB"


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("s" if n > 1 else "")


def relative_time(value: dt.datetime | str | None, now: dt.datetime | None = None) -> str:
    """'just now', '5 minutes ago', 'in 2 days', or the date beyond a month (N/A if none)."""
    if not value:
        return "N/A"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    delta = now - when
    future = delta.total_seconds() < 0
    if future:
        delta = -delta
    seconds = int(delta.total_seconds())
    if delta.days > 30:
        return when.astimezone(dt.UTC).strftime("%Y-%m-%d")
    if delta.days > 7:
        amount = _plural(delta.days // 7, "week")
    elif delta.days > 0:
        amount = _plural(delta.days, "day")
    elif seconds > 3600:
        amount = _plural(seconds // 3600, "hour")
    elif seconds > 60:
        amount = _plural(seconds // 60, "minute")
    else:
        return "in less than a minute" if future else "just now"
    return f"in {amount}" if future else f"{amount} ago"


def truncation_note(shown: int, total: int | None) -> str:
    """' (N more not shown, use --limit to see more)' when a list was cut short, else ''."""
    if total is None or total <= shown:
        return ""
    return f" ({total - shown} more not shown, use --limit to see more)"
