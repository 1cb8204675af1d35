"""A results grid that scrolls sideways without cutting a value at its edge.

A DataTable wider than its pane scrolls horizontally, and the column at the pane's edge shows
only its first cells: beside the schema browser `48.1667` read `48.16`, with nothing to say more
was there. `WholeColumnTable` blanks a column the edge cuts and puts `›` (more to the right) or
`‹` (more to the left) in its place, so every value shown is whole and the marker says where
the rest is (scroll with the arrow keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable

from tui.widgets.literal import LiteralTable

MORE_RIGHT, MORE_LEFT = "›", "‹"


class WholeColumns(DataTable[Any]):
    """A DataTable whose edge columns are shown whole or not at all (see the module docstring);
    mixed into a table class before its DataTable base."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        left, width = int(self.scroll_x), self.scrollable_content_region.width  # less the scrollbar
        below = y >= self.virtual_size.height - int(self.scroll_y)  # a line under the last row
        if self.virtual_size.width <= width or width < 2 or below:
            return strip
        edges, style = self.column_edges(), self.rich_style
        if any(start <= left and end > left + width for start, end in edges):
            # One column wider than the view: blanking it left an empty pane of `›` (a long name
            # in `select name, error from runs`), so what fits shows and `›` says more is there.
            return Strip.join([strip.crop(0, width - 1), Strip([Segment(MORE_RIGHT, style)])])
        cut_left, cut_right = edge_cuts(edges, left, left + width)
        if cut_right is not None and cut_right < width:
            blank = Segment(" " * (width - cut_right - 1), style)
            strip = Strip.join([strip.crop(0, cut_right), Strip([blank, Segment(MORE_RIGHT, style)])])
        if cut_left is not None and cut_left > 0:
            blank = Segment(" " * (cut_left - 1), style)
            strip = Strip.join([Strip([Segment(MORE_LEFT, style), blank]), strip.crop(cut_left)])
        return strip

    def column_edges(self) -> list[tuple[int, int]]:
        """(start, end) of each column in the table's own coordinates (row labels first)."""
        x = self._label_column.get_render_width(self) if self._should_render_row_labels else 0
        edges = []
        for column in self.ordered_columns:
            width = column.get_render_width(self)
            edges.append((x, x + width))
            x += width
        return edges


class WholeColumnTable(WholeColumns, LiteralTable):
    """A LiteralTable whose edge columns are shown whole or not at all."""


def edge_cuts(edges: list[tuple[int, int]], x1: int, x2: int) -> tuple[int | None, int | None]:
    """Where to blank a view of columns `edges` from x1 to x2 (exclusive): the view position up
    to which a column cut by the left edge runs, and the one from which a column cut by the right
    edge starts; None where no column is cut."""
    left = next((end - x1 for start, end in edges if start < x1 < end), None)
    right = next((start - x1 for start, end in edges if start < x2 < end), None)
    return left, right


class PagedGrid(WholeColumnTable):
    """The SQL console's grid: `pagedown` on the last row asks for the next page of the result,
    `pageup` on the first row for the previous one (`]` and `[` do the same from anywhere)."""

    @dataclass
    class PageWanted(Message):
        """The user paged past this page's last row (step 1) or before its first (-1)."""

        grid: PagedGrid
        step: int

        @property
        def control(self) -> PagedGrid:
            return self.grid

    def action_page_down(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.post_message(self.PageWanted(self, 1))
            return
        super().action_page_down()

    def action_page_up(self) -> None:
        if self.row_count and self.cursor_row <= 0:
            self.post_message(self.PageWanted(self, -1))
            return
        super().action_page_up()
