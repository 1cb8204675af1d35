"""One metric of several runs on one plotext chart: a colour per run, a legend under the plot, EMA
smoothing and a log y axis, each bucket's min/max envelope kept (a one-step spike shows).

W&B and TensorBoard overlay runs the same way: each run's curve in its own colour, smoothed by an
exponential moving average whose weight is shown (0 = raw, 0.99 = very smooth), debiased as
TensorBoard's is (early steps are not dragged towards 0). plotext draws into the figure that
tui.widgets.plotext_view builds off the UI thread; its own legend sits on the data, so the legend
is a caption of styled text under the plot instead, in the same colours (256-colour codes that
plotext and Rich both know). On a log axis a value <= 0 has no place: it is left out and the note
says how many were. Pure functions of the data and the size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from tui.format import visible
from tui.screens.run_detail import envelope, short_number, step_ticks, tick_labels

#: 256-colour codes, distinct on dark and light backgrounds; runs past the eighth reuse them.
PALETTE = (39, 208, 40, 199, 178, 51, 141, 250)
#: EMA weights `E` cycles through (W&B's slider runs 0 to 0.99).
WEIGHTS = (0.6, 0.8, 0.9, 0.95, 0.99)

Points = list[tuple[int, float]]


@dataclass(frozen=True)
class Curve:
    """One run's points of the metric, and how the legend names it."""

    label: str
    points: Points


def colour(index: int) -> int:
    return PALETTE[index % len(PALETTE)]


def ema(points: Points, weight: float) -> Points:
    """TensorBoard's debiased exponential moving average: s_t = w s_(t-1) + (1 - w) x_t, divided
    by 1 - w^t so the first points are not pulled towards zero. weight 0 returns the points."""
    if weight <= 0:
        return list(points)
    out, last = [], 0.0
    for count, (step, value) in enumerate(points, start=1):
        last = last * weight + (1 - weight) * value
        out.append((step, last / (1 - weight ** count)))
    return out


def positive(points: Points) -> tuple[Points, int]:
    """The points a log axis can show (value > 0) and how many it cannot."""
    kept = [p for p in points if p[1] > 0]
    return kept, len(points) - len(kept)


def prepared(curves: Sequence[Curve], smoothing: float, log_y: bool, width: int) -> tuple[list[Points], int]:
    """Each curve as drawn (smoothed, positive on a log axis, log10 there, enveloped to about two
    points per cell), and the count of values a log axis left out. Smoothing comes first: EMA over
    the raw points, as W&B's, so the envelope keeps the smoothed curve's extremes."""
    out, dropped = [], 0
    for curve in curves:
        points = ema(curve.points, smoothing)
        if log_y:
            points, lost = positive(points)
            dropped += lost
            points = [(s, math.log10(v)) for s, v in points]
        out.append(envelope(points, max(10, width * 2)))
    return out, dropped


def overlay_drawer(curves: Sequence[Curve], smoothing: float, log_y: bool, width: int, height: int,
                   report: Callable[[int], None] | None = None) -> Any:
    """A plotext draw function: every curve with points, in its colour, joined by lines; round step
    ticks on x; y ticks over the real range (labelled with real values on a log axis). The points
    are smoothed and enveloped when it runs (off the UI thread); `report` then gets the count of
    values a log axis left out. The tick count follows the height the figure is drawn at (the
    widget redraws this at its new size when the picker opens or the terminal shrinks; `height`
    is only the fallback): ticks for a taller chart fall on one row and overwrite each other."""

    def draw(figure: Any) -> None:
        import plotext

        rows = max(2, (figure.size()[1] or height) - 3)

        drawn, dropped = prepared(curves, smoothing, log_y, width)
        if report is not None:
            report(dropped)
        ys = [v for points in drawn for _, v in points]
        steps = [s for points in drawn for s, _ in points]
        for i, points in enumerate(drawn):
            if points:
                marker = plotext.marker("braille").fill(colour(i))
                signal = figure.signal([p[0] for p in points], [p[1] for p in points], marker=marker)
                figure.draw(signal.lines())
        if not ys:
            return
        ticks = step_ticks(min(steps), max(steps))
        figure.ruler("x").ticks(ticks, [str(s) for s in ticks])
        low, high = min(ys), max(ys)
        if low == high:
            pad = abs(low) * 0.5 or 1.0
            low, high = low - pad, high + pad
        values, labels = log_ticks(low, high, rows) if log_y else linear_ticks(low, high, rows)
        figure.ruler("y").lim(low, high)
        figure.ruler("y").ticks(values, labels)

    return draw


def linear_ticks(low: float, high: float, rows: int) -> tuple[list[float], list[str]]:
    count = max(2, min(5, rows // 2 + 1))
    values = [low + (high - low) * i / (count - 1) for i in range(count)]
    return values, tick_labels(values)


def log_ticks(low: float, high: float, rows: int) -> tuple[list[float], list[str]]:
    """Ticks on a log10 axis labelled with the values themselves (`1e-3`, `0.01`, `0.1`)."""
    count = max(2, min(5, rows // 2 + 1))
    values = [low + (high - low) * i / (count - 1) for i in range(count)]
    for digits in range(2, 8):  # just enough digits to tell the ticks apart
        labels = [f"{10 ** v:.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            return values, labels
    return values, labels


def legend(curves: Sequence[Curve], width: int) -> Text:
    """`━ label last-value` per run in its colour, as many to a line as fit `width`; a run without
    points of the metric says so."""
    items = []
    for i, curve in enumerate(curves):
        item = Text("━ ", style=f"bold color({colour(i)})")
        item.append(visible(curve.label), style=f"color({colour(i)})")
        last = curve.points[-1] if curve.points else None
        item.append(f" {short_number(last[1])} @ {last[0]}" if last else " (no points)", style="dim")
        items.append(item)
    lines, line = [], Text()
    for item in items:
        if line.plain and len(line) + 3 + len(item) > width:
            lines.append(line)
            line = Text()
        line = line + Text("   ") + item if line.plain else item
    lines.append(line)
    out = Text("\n").join(lines)
    out.no_wrap, out.overflow = True, "ellipsis"
    return out


def note(metric: str, smoothing: float, log_y: bool, dropped: int | None, index: int, total: int) -> str:
    """The line under the legend: which metric, the EMA weight, the y axis and what it left out."""
    ema_part = f"EMA {smoothing:g}" if smoothing > 0 else "EMA off"
    log_part = "log y" + (f" ({dropped} values <= 0 left out)" if dropped else "") if log_y else "linear y"
    return f"{visible(metric)} ({index + 1}/{total}) · {ema_part} · {log_part}"
