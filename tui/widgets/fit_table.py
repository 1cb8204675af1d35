"""A results table that never cuts a number: laid out at the width it is drawn at.

Rich shrinks a table that is too wide by cutting every column, so at 60 columns an accuracy read
`62…` and a PCA d of `6.236e-05` read `6.236e…` (6.236). Here only the first column (a benchmark
or group name: text) gives up width, down to `MIN_LABEL` cells; the other columns keep their
whole width, and those that still do not fit are left out from the right, with a line under
the table naming them (`› no ans, trunc, think: at a wider terminal`). Drawn on each render, so
a resize lays it out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

MIN_LABEL = 8
"""The narrowest the label column gets before numeric columns are left out."""
GAP = 3
"""Cells between two columns: a cell of padding each side and the box's (blank) divider."""


@dataclass(frozen=True)
class FitColumn:
    """A column: its header and how its cells line up (numbers right)."""

    name: str
    justify: str = "right"


class FitTable:
    """Rows of cells under `columns`; the first column is the label (see the module docstring)."""

    def __init__(self, columns: Sequence[FitColumn], rows: Sequence[Sequence[Text]]) -> None:
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]

    def natural(self) -> list[int]:
        """Each column's width when nothing is cut: its header or its widest cell."""
        return [max([len(c.name), *(r[i].cell_len for r in self.rows)]) for i, c in enumerate(self.columns)]

    def fit(self, width: int) -> tuple[list[int], int]:
        """(column widths, how many columns are shown) for `width` cells."""
        widths = self.natural()
        shown = len(widths)
        while shown > 1:
            rest = sum(widths[1:shown]) + GAP * (shown - 1)
            if rest + min(widths[0], MIN_LABEL) <= width:
                return [min(widths[0], width - rest), *widths[1:shown]], shown
            shown -= 1
        return [max(1, min(widths[0], width))], 1

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths, shown = self.fit(options.max_width)
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1))
        for column, width in zip(self.columns[:shown], widths, strict=True):
            table.add_column(column.name, justify=column.justify,  # type: ignore[arg-type]
                             no_wrap=True, overflow="ellipsis", width=width)
        for row in self.rows:
            table.add_row(*row[:shown])
        yield table
        if shown < len(self.columns):
            left = ", ".join(c.name for c in self.columns[shown:])
            yield Text(f"› {left}: not shown at this width (a wider terminal shows them)", style="dim")
