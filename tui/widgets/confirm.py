"""A yes/no question over the current screen (cancel a run, ...): `y` or enter confirms."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.format import visible


class Confirm(ModalScreen[bool]):
    """Dismisses with True on y/enter, False on n/escape; keyboard only, no buttons to tab to."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 64; height: auto; border: thick $warning; background: $surface;
                         padding: 0 1; }
    Confirm #keys { color: $text-muted; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(visible(self.question, lines=True), id="question", markup=False)
            yield Static("y / enter: yes    n / escape: no", id="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
