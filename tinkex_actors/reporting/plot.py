"""Loss curves: a PNG chart written with numpy and zlib alone, and a compact terminal curve.

Why no plotting library: the demo draws one line chart at the end of every run, and the
ecosystem's charting standard (matplotlib) would add tens of megabytes and a second or more of
import time for it. A line chart is a few rectangles, lines and labels: numpy rasterizes them,
zlib compresses them, and `_font` supplies the labels; the file is a standard 8-bit RGB PNG
that every viewer opens.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinkex_actors.reporting import font as _font
from tinkex_actors.reporting.metrics import (
    LOSS,
    REWARD,
    choose_metric,
    read_metrics,
    series,
    smoothed,
)

__all__ = [
    "HEIGHT",
    "WIDTH",
    "curve_file_name",
    "plot_metrics",
    "render_chart",
    "terminal_curve",
    "write_png",
]

WIDTH = 800
HEIGHT = 450
_SCALE = 2  # font cells are 2x2 pixels: 10x14 per character
_LEFT, _RIGHT, _TOP, _BOTTOM = 96, 24, 48, 56
_PAPER = (255, 255, 255)
_INK = (40, 40, 40)
_GRID = (225, 228, 232)
_RAW = (160, 196, 232)
_LINE = (24, 96, 176)
_BLOCKS = " \u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
_LABELS = {LOSS: "loss per token", REWARD: "mean reward"}


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write an (height, width, 3) uint8 array as an 8-bit RGB PNG."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be (height, width, 3) uint8, not {pixels.shape}")
    height, width, _ = pixels.shape
    # Each scanline starts with its filter type (0: none).
    raw = np.zeros((height, width * 3 + 1), dtype=np.uint8)
    raw[:, 1:] = pixels.reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )
    Path(path).write_bytes(png)


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.pixels = np.empty((height, width, 3), dtype=np.uint8)
        self.pixels[:] = _PAPER
        self.width, self.height = width, height

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        self.pixels[y0:y1, x0:x1] = color

    def polyline(
        self, xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int], thick: int
    ) -> None:
        if not xs:
            return
        points_x: list[np.ndarray] = [np.array([xs[0]])]
        points_y: list[np.ndarray] = [np.array([ys[0]])]
        for i in range(1, len(xs)):
            n = int(max(abs(xs[i] - xs[i - 1]), abs(ys[i] - ys[i - 1]))) + 2
            points_x.append(np.linspace(xs[i - 1], xs[i], n))
            points_y.append(np.linspace(ys[i - 1], ys[i], n))
        px = np.rint(np.concatenate(points_x)).astype(int)
        py = np.rint(np.concatenate(points_y)).astype(int)
        for dx in range(-(thick // 2), thick - thick // 2):
            for dy in range(-(thick // 2), thick - thick // 2):
                x, y = px + dx, py + dy
                keep = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
                self.pixels[y[keep], x[keep]] = color

    def text(self, x: int, y: int, text: str, color: tuple[int, int, int] = _INK) -> None:
        for i, char in enumerate(text.lower()):
            glyph = _font.GLYPHS.get(char, _font.GLYPHS["\0"])
            left = x + i * (_font.WIDTH + 1) * _SCALE
            for row, cells in enumerate(glyph):
                for col, ink in enumerate(cells):
                    if ink:
                        top = y + row * _SCALE
                        self.rect(left + col * _SCALE, top, left + (col + 1) * _SCALE,
                                  top + _SCALE, color)


def _text_width(text: str) -> int:
    return len(text) * (_font.WIDTH + 1) * _SCALE - _SCALE


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round-numbered ticks covering [low, high]."""
    if high <= low:
        return [low]
    rough = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def render_chart(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    title: str,
    y_label: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> np.ndarray:
    """A line chart of ys over xs (raw in light blue, smoothed in dark blue), as pixels."""
    if len(xs) != len(ys) or not xs:
        raise ValueError("a chart needs at least one point, and as many xs as ys")
    canvas = _Canvas(width, height)
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    y_low, y_high = min(ys), max(ys)
    pad = (y_high - y_low) * 0.05 or abs(y_high) * 0.05 or 1.0
    y_low, y_high = y_low - pad, y_high + pad

    def px(x: float) -> float:
        return _LEFT + (x - x_low) / (x_high - x_low) * (plot_w - 1)

    def py(y: float) -> float:
        return _TOP + (y_high - y) / (y_high - y_low) * (plot_h - 1)

    for tick in _ticks(y_low, y_high):
        row = round(py(tick))
        canvas.rect(_LEFT, row, _LEFT + plot_w, row + 1, _GRID)
        text = _label(tick)
        canvas.text(_LEFT - 8 - _text_width(text), row - 7, text)
    for tick in _ticks(x_low, x_high, 6):
        if tick != int(tick):
            continue
        col = round(px(tick))
        canvas.rect(col, _TOP, col + 1, _TOP + plot_h, _GRID)
        text = str(int(tick))
        canvas.text(col - _text_width(text) // 2, _TOP + plot_h + 10, text)
    canvas.rect(_LEFT - 1, _TOP, _LEFT + 1, _TOP + plot_h, _INK)
    canvas.rect(_LEFT - 1, _TOP + plot_h - 1, _LEFT + plot_w, _TOP + plot_h + 1, _INK)
    screen_x = [px(x) for x in xs]
    canvas.polyline(screen_x, [py(y) for y in ys], _RAW, 1)
    canvas.polyline(screen_x, [py(y) for y in smoothed(ys)], _LINE, 3)
    canvas.text(_LEFT, 16, title)
    canvas.text(_LEFT + plot_w - _text_width("step"), height - 22, "step")
    canvas.text(_LEFT, height - 22, "each step", _RAW)
    canvas.text(_LEFT + _text_width("each step  "), height - 22, f"smoothed {y_label}", _LINE)
    return canvas.pixels


def curve_file_name(metric: str) -> str:
    """`loss.png` for a loss, `reward.png` for a reward, else the metric's name."""
    if metric == LOSS:
        return "loss.png"
    if metric == REWARD:
        return "reward.png"
    return "".join(c if c.isalnum() else "_" for c in metric) + ".png"


def plot_metrics(
    source: Path,
    *,
    metric: str | None = None,
    output: Path | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> tuple[Path, str, list[float]]:
    """Draw one metric of a metrics.jsonl; returns (picture path, metric, its values)."""
    records = read_metrics(source)
    chosen = choose_metric(records, metric)
    xs, ys = series(records, chosen)
    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    target = Path(output) if output is not None else folder / curve_file_name(chosen)
    label = _LABELS.get(chosen, chosen)
    title = f"{label}: {_label(ys[0])} -> {_label(ys[-1])} in {len(ys)} steps"
    write_png(target, render_chart(xs, ys, title=title, y_label=label, width=width,
                                   height=height))
    return target, chosen, ys


def terminal_curve(values: Sequence[float], *, width: int = 60, rows: int = 4,
                   encoding: str | None = "utf-8") -> list[str]:
    """A few lines drawing `values` with block characters (`*` marks on an ASCII terminal).

    Values are averaged into at most `width` columns; the top and bottom lines carry the
    range so the curve reads without a legend.
    """
    if not values:
        return []
    columns = _bucket(values, width)
    low, high = min(columns), max(columns)
    span = (high - low) or 1.0
    unicode_ok = _can_encode(_BLOCKS, encoding)
    levels = rows * (8 if unicode_ok else 1)
    heights = [round((v - low) / span * (levels - 1)) + 1 for v in columns]
    lines = []
    for row in range(rows - 1, -1, -1):
        cells = []
        for h in heights:
            fill = h - row * (levels // rows)
            if unicode_ok:
                cells.append(_BLOCKS[max(0, min(8, fill))])
            else:
                cells.append("*" if fill == 1 else " ")
        lines.append("".join(cells))
    marks = [f"{_label(high):>8} |", *(f"{'':>8} |" for _ in range(rows - 2)),
             f"{_label(low):>8} |"]
    return [m + line for m, line in zip(marks if rows > 1 else [marks[0]], lines, strict=True)]


def _bucket(values: Sequence[float], width: int) -> list[float]:
    if len(values) <= width:
        return [float(v) for v in values]
    edges = np.linspace(0, len(values), width + 1).astype(int)
    array = np.asarray(values, dtype=float)
    return [float(array[a:b].mean()) for a, b in itertools.pairwise(edges) if b > a]


def _can_encode(text: str, encoding: str | None) -> bool:
    try:
        text.encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def describe(values: Sequence[float]) -> dict[str, Any]:
    """First, last, minimum and count of a series (for summaries and `--json`)."""
    return {"first": values[0], "last": values[-1], "min": min(values), "count": len(values)}
