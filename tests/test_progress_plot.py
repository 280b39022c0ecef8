"""The pieces behind the demo's output: plain progress lines, metrics files, pictures, curves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinkex_actors.reporting.metrics import (
    LOSS,
    REWARD,
    MetricsLog,
    choose_metric,
    read_metrics,
    smoothed,
)
from tinkex_actors.reporting.plot import plot_metrics, render_chart, terminal_curve, write_png
from tinkex_actors.reporting.progress import StepProgress, fit


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class AsciiStream(io.StringIO):
    encoding = "ascii"


class TestPlainProgress:
    def test_a_pipe_gets_first_last_and_about_ten_lines_between(self) -> None:
        """1000 fast steps: the first, every 100th and the last, with ETA and smoothed loss."""
        clock, stream = Clock(), io.StringIO()
        with StepProgress(stream, 1000, tty=False, clock=clock) as progress:
            for step in range(1, 1001):
                clock.now += 0.01
                progress.advance(step, 2.0, tokens=100)
        lines = stream.getvalue().splitlines()
        assert len(lines) == 11 == progress.lines
        assert lines[0].startswith("training    1/1000  loss 2.0000  10,000 tok/s")
        assert lines[-1].startswith("training 1000/1000") and "eta 0:00:00" in lines[-1]
        assert lines[1].startswith("training  100/1000") and "eta 0:00:09" in lines[1]

    def test_a_slow_step_still_gets_a_line_every_few_seconds(self) -> None:
        """Without a line for `every_s` seconds, the next step prints one."""
        clock, stream = Clock(), io.StringIO()
        with StepProgress(stream, 1000, tty=False, clock=clock, every_s=5.0) as progress:
            progress.advance(1, 1.0)
            clock.now += 6.0
            progress.advance(2, 1.0)
            progress.advance(3, 1.0)
        assert [ln.split()[1] for ln in stream.getvalue().splitlines()] == ["1/1000", "2/1000"]

    def test_status_changes_print_once_and_the_loss_is_smoothed(self) -> None:
        """A status shows once per change; the shown loss is the bias-corrected average."""
        stream = io.StringIO()
        progress = StepProgress(stream, 10, tty=False, clock=Clock())
        progress.advance(1, 4.0)
        progress.status("queue paused")
        progress.status("queue paused")
        progress.advance(2, 2.0)
        assert stream.getvalue().count("queue paused") == 1
        assert progress.smoothed == pytest.approx(smoothed([4.0, 2.0])[-1])
        assert progress.smoothed == pytest.approx((0.09 * 4 + 0.1 * 2) / (1 - 0.81))

    def test_text_is_fitted_to_an_ascii_stream(self) -> None:
        """Characters an ASCII stream cannot encode become '?', never an exception."""
        stream = AsciiStream()
        StepProgress(stream, 2, tty=False).say("caf\u00e9 \u00b7 \u2588")
        assert stream.getvalue() == "caf? ? ?\n" == fit("caf\u00e9 \u00b7 \u2588", stream) + "\n"


class TestMetricsFiles:
    def test_lines_are_step_then_metrics_and_a_torn_line_is_skipped(self, tmp_path: Path) -> None:
        """Each line is one object with `step`; a half-written last line does not break reads."""
        log = MetricsLog(tmp_path)
        log.log(0, {LOSS: 2.5})
        log.log(1, {LOSS: 2.0})
        with log.path.open("a") as f:
            f.write('{"step": 2, "train_me')
        assert read_metrics(tmp_path) == [{"step": 0, LOSS: 2.5}, {"step": 1, LOSS: 2.0}]
        assert MetricsLog(tmp_path).path.read_text() == ""  # a fresh run starts a fresh file

    def test_the_metric_to_draw_is_the_loss_then_the_reward(self) -> None:
        """Loss first, else reward; an unknown name lists the numeric ones."""
        assert choose_metric([{"step": 0, REWARD: 0.5, LOSS: 1.0}]) == LOSS
        assert choose_metric([{"step": 0, REWARD: 0.5, "note": "x"}]) == REWARD
        with pytest.raises(ValueError, match=r"'nll'.*env/all/reward/total"):
            choose_metric([{"step": 0, REWARD: 0.5}], "nll")


class TestPictures:
    def test_write_png_round_trips_through_a_decoder(self, tmp_path: Path) -> None:
        """Our PNG writer's pixels come back exactly from Pillow."""
        pixels = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
        write_png(tmp_path / "x.png", pixels)
        with Image.open(tmp_path / "x.png") as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), pixels)

    def test_a_falling_curve_is_drawn_falling(self, tmp_path: Path) -> None:
        """The thick line's ink is high on the left and low on the right of the plot."""
        pixels = render_chart([0, 1, 2, 3], [4.0, 3.0, 2.0, 1.0], title="t", y_label="loss")
        line = np.all(pixels == (24, 96, 176), axis=2)
        rows_left = np.nonzero(line[:, 120])[0]
        rows_right = np.nonzero(line[:, 760])[0]
        assert rows_left.size and rows_right.size and rows_left.mean() < rows_right.mean()

    def test_plot_metrics_picks_the_file_name_from_the_metric(self, tmp_path: Path) -> None:
        """A reward run draws reward.png beside its metrics.jsonl."""
        (tmp_path / "metrics.jsonl").write_text(
            "\n".join(json.dumps({"step": i, REWARD: i / 10}) for i in range(5)) + "\n"
        )
        picture, metric, values = plot_metrics(tmp_path)
        assert picture == tmp_path / "reward.png" and metric == REWARD and len(values) == 5
        with Image.open(picture) as image:
            assert image.size == (800, 450)


class TestTerminalCurve:
    def test_blocks_on_utf8_stars_on_ascii_with_the_range_marked(self) -> None:
        """Four rows, the maximum on the top line and the minimum on the bottom one."""
        values = [4.0, 3.0, 2.0, 1.0]
        rows = terminal_curve(values, rows=4)
        assert len(rows) == 4 and rows[0].startswith("       4 |\u2588")
        assert rows[-1] == "       1 |\u2588\u2588\u2588\u2581"  # the minimum: the lowest block
        ascii_rows = terminal_curve(values, rows=4, encoding="ascii")
        assert [r.split("|")[1] for r in ascii_rows] == ["*   ", " *  ", "  * ", "   *"]

    def test_long_series_are_averaged_into_the_width(self) -> None:
        """1000 values fit in 40 columns."""
        rows = terminal_curve([float(i) for i in range(1000)], width=40)
        assert all(len(r.split("|", 1)[1]) == 40 for r in rows)
