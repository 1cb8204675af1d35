"""Data shown as it is: run names, benchmark and model names, log lines, sample text, error
messages and SQL results may contain `[red]` or `:smile:`, which Textual would read as markup.

Every widget that shows data goes through these: `LiteralTable` (a DataTable whose string cells
and labels are plain text), `literal` for one value, `literal_options` for Select and OptionList
prompts. Static and Label widgets that show data are built with `markup=False`, and the app's
notifications never parse markup (TixApp.notify)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from rich.text import Text
from textual.app import App
from textual.notifications import SeverityLevel
from textual.widgets import DataTable

T = TypeVar("T")


def literal(value: object, style: str = "") -> Text:
    """`value` as plain text; an existing Text is kept (it is already literal)."""
    return value if isinstance(value, Text) else Text(str(value), style=style)


def literal_cell(value: Any) -> Any:
    """A table cell: strings become plain Text, everything else (numbers, Text) stays."""
    return Text(value) if isinstance(value, str) else value


def literal_options(options: Iterable[tuple[str, T]]) -> list[tuple[Text, T]]:
    """(label, value) pairs for a Select, with labels that are never markup."""
    return [(literal(label), value) for label, value in options]


class LiteralTable(DataTable[Any]):
    """A DataTable that never reads its string cells or column labels as markup."""

    def add_column(self, label: Any, *, width: int | None = None, key: str | None = None,
                   default: Any = None) -> Any:
        return super().add_column(literal_cell(label), width=width, key=key, default=default)

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None,
                label: Any = None) -> Any:
        return super().add_row(*(literal_cell(c) for c in cells), height=height, key=key,
                               label=literal_cell(label))

    def update_cell(self, row_key: Any, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, literal_cell(value), update_width=update_width)

    def update_cell_at(self, coordinate: Any, value: Any, *, update_width: bool = False) -> None:
        super().update_cell_at(coordinate, literal_cell(value), update_width=update_width)


class LiteralNotify(App[Any]):
    """An app whose notifications never read markup: they carry names, paths and error messages."""

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)
