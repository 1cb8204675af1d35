"""A plotext figure as a Textual widget, redrawn at the widget's size and built off the UI thread.

plotext draws into one global figure, so every build holds a module lock; a screen hands the
widget a `draw(figure)` callable (what to plot) and the widget picks the size. Written for plotext
6 (`plotext.figure`: `signal`, `bar`, `draw`, `build().string()`); colours come out as ANSI codes
that `rich.text.Text.from_ansi` turns into styles. The `simple` theme leaves the frame uncoloured
so the plot sits on the app's own background in dark and light themes alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.widgets import Static
from textual.worker import get_current_worker

Draw = Callable[[Any], None]
"""Draws on plotext's figure (signals, bars, title); the widget sets the size and theme."""

_PLOTEXT = threading.Lock()


def render_figure(draw: Draw, width: int, height: int) -> Text:
    """Build one figure of `width` x `height` cells as styled text (thread-safe)."""
    import plotext

    with _PLOTEXT:
        figure = plotext.figure
        figure.clear()
        figure.plot_size(width, height)
        figure.theme("simple")
        draw(figure)
        text = Text.from_ansi(figure.build().string())
    text.rstrip()
    return text


class PlotextView(Static):
    """Shows `draw` at the widget's current size; `message` instead while there is nothing to draw."""

    DEFAULT_CSS = """
    PlotextView { width: 1fr; height: 1fr; }
    PlotextView.-empty { content-align: center middle; color: $text-muted; }
    """

    def __init__(self, message: str = "no data", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self._draw: Draw | None = None
        self._message = message
        self._caption: Text | None = None
        self.drawn = 0
        """Figures built so far (tests wait on it)."""

    def plot(self, draw: Draw | None, message: str = "no data", caption: Text | None = None) -> None:
        """Replace the figure; None shows `message` (why there is nothing to plot). `caption` goes
        under the figure (a legend plotext cannot draw, such as stacked bars' segments)."""
        self._draw, self._message, self._caption = draw, message, caption
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        width, height = self.content_size
        height -= 0 if self._caption is None else len(self._caption.split())
        if self._draw is None or width < 20 or height < 5:
            self.add_class("-empty")
            self.update(self._message if self._draw is None else "(too small to plot)")
            return
        self._build(self._draw, self._caption, width, height)

    @work(thread=True, exclusive=True, group="plot")
    def _build(self, draw: Draw, caption: Text | None, width: int, height: int) -> None:
        try:
            text = render_figure(draw, width, height)
        except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn says why; the app goes on
            text = Text(f"cannot draw this plot ({type(exc).__name__}: {exc}); tix draws with plotext 6",
                        style="red")
        if caption is not None:
            text = Text("\n").join([text, caption])
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, text)

    def _show(self, text: Text) -> None:
        if not self.is_attached:
            return
        self.remove_class("-empty")
        self.update(text)
        self.drawn += 1
