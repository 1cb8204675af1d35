"""Data shown as it is: run names, benchmark and model names, log lines, sample text, error
messages and SQL results may contain `[red]` or `:smile:`, which Textual would read as markup, and
control characters (an ESC sequence, a CR, OSC 52), which the terminal would obey.

Every widget that shows data goes through these: `LiteralTable` (a DataTable whose string cells
and labels are plain text), `literal` for one value, `literal_options` for Select and OptionList
prompts. Static and Label widgets that show data are built with `markup=False`, and the app's
notifications never parse markup (TixApp.notify). Each of them shows control characters with
`tui.format.visible`; `NoControls` then drops any that a widget still renders, so none reaches
the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from rich.segment import Segment
from rich.text import Text
from textual.app import App
from textual.color import Color
from textual.filter import LineFilter
from textual.notifications import SeverityLevel
from textual.widgets import DataTable

from tui.format import CONTROLS, visible

T = TypeVar("T")


def literal(value: object, style: str = "", lines: bool = False) -> Text:
    """`value` as plain text with its controls visible (`lines`: newlines kept); an existing Text
    is kept (it is already literal)."""
    return value if isinstance(value, Text) else Text(visible(value, lines), style=style)


def literal_cell(value: Any) -> Any:
    """A table cell: strings become plain one-line Text, everything else (numbers, Text) stays."""
    return Text(visible(value)) if isinstance(value, str) else value


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


class NoControls(LineFilter):
    """Drops control characters from every rendered line: the last guard, for a widget that shows
    data without `visible` (an editor's text, a pasted search). Rich gives them no width, so the
    line's layout is unchanged; removing beats showing here, where a wider line would not fit."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if CONTROLS.search("".join([s.text for s in segments])) is None:  # nearly always
            return segments
        cleaned = (s if s.control else Segment(CONTROLS.sub("", s.text), s.style) for s in segments)
        return [s for s in cleaned if s.text or s.control]


NO_CONTROLS = NoControls()


class LiteralNotify(App[Any]):
    """An app that shows data as it is: notifications (they carry names, paths and error messages)
    never read markup and show controls visibly, and no widget's line sends the terminal a control
    character (NoControls)."""

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        super().notify(visible(message, lines=True), title=visible(title), severity=severity,
                       timeout=timeout, markup=False)

    def action_help_quit(self) -> None:
        """ctrl+c (which copies in a text field) says how to quit in plain words: Textual's own
        toast is markup (`Press [b]ctrl+q[/b]`), which `notify` here shows literally."""
        keys = [key for key, active in self.active_bindings.items()
                if active.binding.action in ("quit", "app.quit")]
        if keys:
            self.notify(f"press {' or '.join(keys)} to quit (ctrl+c copies in a text field)",
                        title="Do you want to quit?")

    def get_line_filters(self) -> Sequence[LineFilter]:
        return [*super().get_line_filters(), NO_CONTROLS]
