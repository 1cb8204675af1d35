"""The help screen (`?`): every key binding of the app and of each screen, read from the code.

Reading `BINDINGS` rather than keeping a hand-written list means the help cannot drift from the
keys that actually work. Screens written elsewhere are included when they import.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: (section title, "module:Class") of every screen whose keys the help lists, in tab order.
SECTIONS = (
    ("Runs (1)", "tui.screens.runs:RunsScreen"),
    ("Run detail (enter on a run)", "tui.screens.run_detail:RunDetailScreen"),
    ("Compare (C on marked runs)", "tui.screens.compare:CompareScreen"),
    ("Config diff (d on two marked runs)", "tui.screens.compare:DiffScreen"),
    ("Experiments (2)", "tui.screens.experiments:ExperimentsScreen"),
    ("Experiment DAG (D on the runs or experiments list)", "tui.screens.dag:DagScreen"),
    ("TI (3)", "tui.screens.analytics:TIScreen"),
    ("Flips (f on a TI model)", "tui.screens.flips:FlipsScreen"),
    ("Flipped item (enter on an item in Flips)", "tui.screens.flips:FlipItemScreen"),
    ("Shift (4)", "tui.screens.analytics:ShiftScreen"),
    ("SQL (5)", "tui.screens.sql:SQLScreen"),
    ("SQL cell viewer (enter on a cell)", "tui.widgets.sql_cell:CellViewer"),
    ("Resources: GPUs, workers, CPU slots (6)", "tui.screens.gpus:GpusScreen"),
)
INTRO = ("escape, q or ? closes this help. "
         "Keys work without a mouse at 80x24. Number keys switch screens everywhere except while "
         "typing in a text field (press escape first). ctrl+p opens the command palette: every screen "
         "and action by name.")


def key_label(binding: Binding) -> str:
    names = {"slash": "/", "question_mark": "?", "escape": "esc", "enter": "enter",
             "left_square_bracket": "[", "right_square_bracket": "]"}
    return ", ".join(names.get(k, k) for k in binding.key.split(","))


def rows_of(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    out = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            out.append((key_label(b), b.description))
    return out


def section_rows(target: str) -> list[tuple[str, str]] | None:
    """The bindings of `module:Class` (its own and its widgets' declared ones); None if it won't import."""
    module, name = target.split(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - a missing or broken screen is listed as unavailable
        return None
    return rows_of(cls.BINDINGS) + [(k, d) for k, d in getattr(cls, "EXTRA_KEYS", ())]


class HelpScreen(ModalScreen[None]):
    """Key bindings, grouped by screen; escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100%; max-width: 100; height: 100%; border: round $accent;
                                  background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, app_bindings: Iterable[BindingType]) -> None:
        super().__init__()
        self.app_bindings = list(app_bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("tix: key bindings", style="bold"))
            yield Static(Text(INTRO, style="dim"))
            everywhere = [*rows_of(self.app_bindings), ("ctrl+p", "command palette")]
            yield Static(bindings_table("Everywhere", everywhere))
            for title, target in SECTIONS:
                rows = section_rows(target)
                yield Static(bindings_table(title, rows if rows is not None else [("", "(not available)")]))


def bindings_table(title: str, rows: list[tuple[str, str]]) -> Table:
    # as wide as the help (the action column takes the rest): a section of short keys made a
    # narrow table, and Rich folds a title to its table's width
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None,
                  padding=(0, 2, 0, 1), expand=True)
    table.add_column("key", style="bold cyan", no_wrap=True, min_width=12)
    table.add_column("action", ratio=1)
    for key, description in rows:
        table.add_row(key, description)
    return table
