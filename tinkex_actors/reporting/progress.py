"""Progress of a long-running command: a live rich bar on a terminal, plain lines elsewhere.

On a terminal: description, bar, step/total, elapsed, ETA, the smoothed metric (loss or
reward), tokens/s and any status (a paused queue), redrawn a few times a second by rich.
Anywhere else (a pipe, a file, CI logs): one plain line for the first and last step and about
`max_lines` in between (every N steps), plus one if `every_s` seconds passed without a line, so
a long run prints a bounded, readable log and no control characters.

Text is fitted to the stream's encoding (`LANG=C`, `PYTHONIOENCODING=ascii`): what the stream
cannot encode becomes `?` rather than an exception.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

__all__ = ["StepProgress", "fit", "stream_encoding"]


def stream_encoding(stream: TextIO) -> str:
    """The encoding a text stream writes with (utf-8 when it does not say)."""
    return getattr(stream, "encoding", None) or "utf-8"


def fit(text: str, stream: TextIO) -> str:
    """`text` with every character the stream cannot encode replaced by `?`."""
    encoding = stream_encoding(stream)
    try:
        return text.encode(encoding, "replace").decode(encoding)
    except LookupError:
        return text.encode("ascii", "replace").decode("ascii")


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class StepProgress:
    """Progress over `total` steps, starting at `first` (a resumed run), for one stream.

    Use as a context manager; call `advance` as each step completes, `status` to show a
    transient condition, `say` for a permanent line above the bar.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        first: int = 0,
        description: str = "training",
        metric: str = "loss",
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 10.0,
        max_lines: int = 10,
        smoothing: float = 0.9,
        plain_lines: bool = True,
    ) -> None:
        self.stream = stream
        self.total = total
        self.first = first
        self.metric = metric
        self.tty = stream.isatty() if tty is None else tty
        self._clock = clock
        self._every_s = every_s
        self._every_n = max(1, math.ceil((total - first) / max(1, max_lines)))
        self._weight = smoothing
        self._average = 0.0
        self._seen = 0
        self._tokens = 0
        self._started = clock()
        self._last_line_at = self._started
        self._status = ""
        self.step = first
        self.smoothed: float | None = None
        self.lines = 0
        self._rich: Any = None
        self._task: Any = None
        self._description = description
        self._plain_lines = plain_lines

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> StepProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            console = Console(file=self.stream, emoji=False, highlight=False)
            self._rich = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[shown]}"),
                console=console,
                refresh_per_second=4,
                get_time=self._clock,
            )
            self._rich.start()
            self._task = self._rich.add_task(
                self._description, total=self.total, completed=self.first, shown=""
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the live bar (leaving its last state on screen); idempotent."""
        if self._rich is not None:
            self._rich.refresh()
            self._rich.stop()
            self._rich = None

    # -- updates ------------------------------------------------------------------------------

    def advance(self, step: int, value: float | None = None, tokens: int = 0) -> None:
        """Step `step` (1-based, absolute) completed with this metric value and token count."""
        self.step = step
        self._tokens += tokens
        if value is not None and math.isfinite(value):
            self._seen += 1
            self._average = self._weight * self._average + (1 - self._weight) * value
            self.smoothed = self._average / (1 - self._weight**self._seen)
        self._status = ""
        if self._rich is not None:
            self._rich.update(self._task, completed=step, shown=self._fields())
            return
        if not self._plain_lines:
            return
        now = self._clock()
        due = (
            step == self.first + 1
            or step >= self.total
            or (step - self.first) % self._every_n == 0
            or now - self._last_line_at >= self._every_s
        )
        if due:
            self._line(f"{self._description} {self._count()}  {self._fields()}  "
                       f"elapsed {_clock_text(now - self._started)}  eta {self._eta(now)}")

    def status(self, text: str) -> None:
        """Show a transient condition ('' clears it); plain output prints each change once."""
        if text == self._status:
            return
        self._status = text
        if self._rich is not None:
            self._rich.update(self._task, shown=self._fields())
        elif text:
            self._line(f"{self._description} {self._count()}  {text}")

    def say(self, text: str) -> None:
        """A permanent line, printed above the live bar (or in order, on a pipe)."""
        if self._rich is not None:
            self._rich.console.print(fit(text, self.stream), markup=False, soft_wrap=True)
        else:
            self.stream.write(fit(text, self.stream) + "\n")
            self.stream.flush()

    # -- text ---------------------------------------------------------------------------------

    def rate(self) -> float:
        """Tokens per second since the start."""
        return self._tokens / max(self._clock() - self._started, 1e-9)

    def _count(self) -> str:
        width = len(str(self.total))
        return f"{self.step:>{width}}/{self.total}"

    def _fields(self) -> str:
        parts = []
        if self.smoothed is not None:
            parts.append(f"{self.metric} {self.smoothed:.4f}")
        if self._tokens:
            parts.append(f"{self.rate():,.0f} tok/s")
        if self._status:
            parts.append(self._status)
        return "  ".join(parts)

    def _eta(self, now: float) -> str:
        done = self.step - self.first
        if done <= 0:
            return "?"
        left = (now - self._started) / done * (self.total - self.step)
        return _clock_text(left)

    def _line(self, text: str) -> None:
        self.stream.write(fit(text, self.stream) + "\n")
        self.stream.flush()
        self.lines += 1
        self._last_line_at = self._clock()
