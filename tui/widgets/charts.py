"""Charts drawn cell by cell: labelled bars and the PCA trajectory.

plotext places a horizontal bar's label by its own rounding, so at 60x18 a bar could sit beside
the wrong name, and it cuts names to a fixed width at any size; its scatter joins points with runs
of the marker, burying one series under the other, and draws its legend over the data. Here a
bar is one line holding its label, value and bar (they cannot drift apart), labels take the width
the terminal gives, and the trajectory draws each layer's point with its own character and colour
(`o` base, `x` tuned: readable without colour), thin `·` paths in layer order, a few layer labels
that never cover a point, and the legend under the plot. Pure functions of the data and the size:
cheap enough to run on the UI thread at every resize.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widget import Widget

from tui.format import bar, fit, visible

BAR_STYLE, NEGATIVE_STYLE = "cyan", "red"
BASE, TUNED, BOTH = ("o", "bright_blue"), ("x", "orange1"), ("*", "magenta")
PATH = "·"
MIN_BAR = 10


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value, the value as written, and for a stacked bar its parts
    (share of the whole, style, text written after the bar)."""

    label: str
    value: float
    shown: str
    parts: tuple[tuple[float, str, str], ...] = ()


def bars_text(bars: list[Bar], width: int, title: str = "") -> Text:
    """One line per bar: label (as wide as the longest while the bar keeps MIN_BAR cells), value, bar."""
    labels = [visible(b.label) for b in bars]  # names from the data
    value_w = max(len(b.shown) for b in bars)
    notes_w = max(len(_part_note(b)) for b in bars)
    label_w = min(max(len(label) for label in labels), max(6, width - value_w - notes_w - 2 - MIN_BAR))
    bar_w = max(1, width - label_w - value_w - 2 - notes_w)
    top = max((abs(b.value) for b in bars), default=0.0) or 1.0
    lines = [Text(title, style="bold")] if title else []
    for b, label in zip(bars, labels, strict=True):
        line = Text(fit(label, label_w).ljust(label_w) + " " + b.shown.rjust(value_w) + " ")
        if b.parts:
            for share, style, _ in b.parts:
                line.append("█" * round(max(0.0, share) * bar_w), style=style)
            line.append(_part_note(b), style="dim")
        else:
            style = NEGATIVE_STYLE if b.value < 0 else BAR_STYLE
            line.append(bar(abs(b.value) / top, bar_w).rstrip(), style=style)
        lines.append(line)
    return Text("\n").join(lines)


def _part_note(b: Bar) -> str:
    notes = [note for _, _, note in b.parts if note]
    return (" " + " ".join(notes)) if notes else ""


# -- the PCA trajectory -----------------------------------------------------------------------------
class Canvas:
    """A grid of characters with a style each; later marks never overwrite markers."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.cells: list[list[tuple[str, str]]] = [[(" ", "")] * width for _ in range(height)]
        self.markers: set[tuple[int, int]] = set()

    def put(self, col: int, row: int, char: str, style: str, marker: bool = False) -> None:
        if 0 <= col < self.width and 0 <= row < self.height and (col, row) not in self.markers:
            self.cells[row][col] = (char, style)
            if marker:
                self.markers.add((col, row))

    def free(self, col: int, row: int, length: int) -> bool:
        return col >= 0 and col + length <= self.width and 0 <= row < self.height and all(
            self.cells[row][c][0] in (" ", PATH) for c in range(col, col + length))

    def write(self, col: int, row: int, text: str, style: str) -> None:
        for i, char in enumerate(text):
            self.put(col + i, row, char, style)

    def text(self) -> list[Text]:
        lines = []
        for row in self.cells:
            line = Text()
            for char, style in row:
                line.append(char, style=style)
            lines.append(line)
        return lines


def limits(values: list[float], margin: float = 0.05) -> tuple[float, float]:
    low, high = min(values), max(values)
    room = (high - low) * margin or abs(high) * margin or 1.0
    return low - room, high + room


def tick(value: float) -> str:
    return f"{value:.3g}"


def trajectory_text(points: list[dict[str, Any]], width: int, height: int) -> Text:
    """Base (`o`) and tuned (`x`) mean projections per layer on PC1/PC2, each joined by `·` in
    layer order, a layer label every few layers, axis ranges, and the legend on the last line."""
    x_lo, x_hi = limits([p[k] for p in points for k in ("base_pc1", "tuned_pc1")])
    y_lo, y_hi = limits([p[k] for p in points for k in ("base_pc2", "tuned_pc2")])
    margin = max(len(tick(y_lo)), len(tick(y_hi)), 3) + 1
    plot_w, plot_h = max(4, width - margin - 1), max(3, height - 3)
    canvas = Canvas(plot_w, plot_h)

    def place(x: float, y: float) -> tuple[int, int]:
        return (round((x - x_lo) / (x_hi - x_lo) * (plot_w - 1)),
                round((y_hi - y) / (y_hi - y_lo) * (plot_h - 1)))

    series = {who: [place(p[f"{who}_pc1"], p[f"{who}_pc2"]) for p in points] for who in ("base", "tuned")}
    for who, style in (("base", BASE[1]), ("tuned", TUNED[1])):
        for a, b in zip(series[who], series[who][1:], strict=False):
            for col, row in segment(a, b)[1:-1]:
                canvas.put(col, row, PATH, f"dim {style}")
    both = set(series["base"]) & set(series["tuned"])
    for who, (char, style) in (("base", BASE), ("tuned", TUNED)):
        for cell in series[who]:
            mark, mark_style = BOTH if cell in both else (char, style)
            canvas.put(*cell, mark, mark_style, marker=True)
    label_layers(canvas, points, series["tuned"])
    return frame(canvas, margin, (x_lo, x_hi), (y_lo, y_hi))


def segment(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """The cells on the straight line from a to b, both ends included."""
    steps = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
    return [(round(a[0] + (b[0] - a[0]) * i / steps), round(a[1] + (b[1] - a[1]) * i / steps))
            for i in range(steps + 1)]


def label_layers(canvas: Canvas, points: list[dict[str, Any]], cells: list[tuple[int, int]]) -> None:
    """`L<layer>` beside the tuned point of the first, last and every few layers between, on the
    right when free, else on the left; a label that would cover anything is left out."""
    every = max(1, math.ceil(len(points) / 5))
    chosen = sorted({0, len(points) - 1, *range(0, len(points), every)})
    for i in chosen:
        label, (col, row) = f"L{points[i]['layer']}", cells[i]
        for start in (col + 1, col - len(label)):
            if canvas.free(start, row, len(label)):
                canvas.write(start, row, label, "bold")
                break


def frame(canvas: Canvas, margin: int, xs: tuple[float, float], ys: tuple[float, float]) -> Text:
    """The canvas inside a y axis (ticks at the ends), an x axis with its range, and the legend."""
    lines = []
    for row, line in enumerate(canvas.text()):
        label = tick(ys[1]) if row == 0 else tick(ys[0]) if row == canvas.height - 1 else \
            "PC2" if row == canvas.height // 2 else ""
        lines.append(Text(label.rjust(margin - 1) + " │", style="dim") + line)
    lines.append(Text(" " * margin + "└" + "─" * canvas.width, style="dim"))
    low, high = tick(xs[0]), tick(xs[1])
    inner = max(0, canvas.width - len(low) - len(high))
    lines.append(Text(" " * (margin + 1) + low + "PC1".center(inner) + high, style="dim"))
    lines.append(legend(margin + 1 + canvas.width, margin + 1))
    return Text("\n").join(lines)


def legend(width: int, indent: int) -> Text:
    """The markers, then as much of the explanation as fits in `width` cells."""
    text = Text(" " * indent)
    for (char, style), name in ((BASE, "base"), (TUNED, "tuned"), (BOTH, "both")):
        text.append(char, style=f"bold {style}")
        text.append(f" {name}  ")
    for note in (f"{PATH} path in layer order", "  L3 = layer 3"):
        if len(text) + len(note) <= width:
            text.append(note, style="dim")
    return text


class ChartView(Widget):
    """Draws `chart(width, height)` at the widget's size, or a message while there is none."""

    DEFAULT_CSS = """
    ChartView { width: 1fr; height: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    ChartView.-empty { content-align: center middle; color: $text-muted; }
    """

    def __init__(self, message: str = "no data", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.chart: Callable[[int, int], Text] | None = None
        self.add_class("-empty")

    def show(self, chart: Callable[[int, int], Text] | None, message: str = "no data") -> None:
        self.chart, self.message = chart, message
        self.set_class(chart is None, "-empty")
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        if self.chart is None:
            return Text(visible(self.message))
        if width < 12 or height < 3:
            return Text("(too small to draw)", style="dim")
        return self.chart(width, height)  # lines longer than the pane are cut (CSS), never wrapped
