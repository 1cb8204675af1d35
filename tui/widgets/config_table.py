"""A run's configuration as a key/value table: the run detail's config tab and the compare diff.

In a widget module of its own because both screens draw it, and run detail cannot import the
compare screen (compare imports run detail's curve names).
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from tui.format import visible


def config_table(rows: list[list[str]], headers: tuple[str, ...] = ("key", "value")) -> Table:
    """Keys and values (from the data, made visible), long values folded onto more lines, never cut."""
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0), expand=False,
                  header_style="bold")
    table.add_column(Text(visible(headers[0])), style="cyan", overflow="fold")
    for header in headers[1:]:
        table.add_column(Text(visible(header)), overflow="fold")
    for row in rows:
        table.add_row(*(Text(visible(cell)) for cell in row))  # Text: markup in the data stays literal
    return table
