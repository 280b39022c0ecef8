"""What the demo prints: samples before and after, the summary with its curve, where things are.

Everything goes through `Console.say`, which fits text to the stream's encoding, so the demo
runs under `LANG=C` / `PYTHONIOENCODING=ascii` as it does under UTF-8.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from tinkex_actors.demo import data as demo_data
from tinkex_actors.reporting.plot import plot_metrics, terminal_curve
from tinkex_actors.reporting.progress import fit, stream_encoding

__all__ = ["Console", "printable"]

CURVE_WIDTH = 48
CURVE_ROWS = 4


def printable(text: str) -> str:
    """`text` with control bytes and undecodable bytes shown as dots (a model emits noise)."""
    return "".join(c if c.isprintable() and c != "\ufffd" else "." for c in text)


class Console:
    """The demo's permanent output on one stream (progress bars print through `say` too)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.say_to: Any = None  # a live StepProgress, while one runs

    def say(self, text: str = "") -> None:
        """Print one line (above the live bar, when one runs)."""
        if self.say_to is not None:
            self.say_to.say(text)
            return
        self.stream.write(fit(text, self.stream) + "\n")
        self.stream.flush()

    def samples(
        self, title: str, words: list[str], got: list[str], pairs: dict[str, str]
    ) -> float:
        """Show each word's completion against its target; returns the mean match."""
        self.say(title)
        scores = []
        for word, completion in zip(words, got, strict=True):
            score = demo_data.char_match(completion, pairs[word])
            scores.append(score)
            shown = f"{printable(completion)!r:<16}"
            self.say(f"  {word}{demo_data.SEPARATOR}{shown} want {pairs[word]!r}  {score:.0%}")
        return sum(scores) / len(scores) if scores else 0.0

    def curve(self, output_dir: Path, label: str) -> dict[str, Any]:
        """Draw the run's picture from its metrics.jsonl and print the compact curve."""
        picture, metric, values = plot_metrics(output_dir)
        if values:
            self.say(f"  {label} curve ({len(values)} step{'' if len(values) == 1 else 's'})")
            for line in terminal_curve(
                values, width=CURVE_WIDTH, rows=CURVE_ROWS, encoding=stream_encoding(self.stream)
            ):
                self.say("  " + line)
        self.say(f"  picture      {picture}")
        return {"curve_path": str(picture), "curve_metric": metric}

    def where(
        self,
        output_dir: Path,
        model_id: str,
        server_dir: Path | None,
        saved: Sequence[str],
    ) -> None:
        """Where the run's records and checkpoints live, and the exact commands to browse them."""
        self.say(f"  metrics      {output_dir / 'metrics.jsonl'}")
        self.say(f"  recorded in  {output_dir / 'checkpoints.jsonl'}")
        for path in saved:
            self.say(f"  checkpoint   {path}")
        if server_dir is not None:
            self.say(f"  stored in    {server_dir}")
            self.say("  browse them: tinkex-actors serve --data-dir "
                     f"{shlex.quote(str(server_dir))}   (it prints its key)")
            self.say("         then: TINKER_API_KEY=<that key> tinkex-actors checkpoint list "
                     f"--run-id {model_id} --base-url http://127.0.0.1:8765")
        else:
            self.say(f"  browse them: tinkex-actors checkpoint list --run-id {model_id}")
        self.say(f"  redraw:      tinkex-actors plot {shlex.quote(str(output_dir))}")
