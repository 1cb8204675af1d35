"""The question before quitting with unsaved editor buffers: save them, discard them, or stay."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.format import visible

SAVE, DISCARD, STAY = "save", "discard", "stay"


class QuitGuard(ModalScreen[str]):
    """Dismisses with `save` (s), `discard` (d) or `stay` (escape, n): nothing is lost by a reflex `q`."""

    DEFAULT_CSS = """
    QuitGuard { align: center middle; }
    QuitGuard > Vertical { width: 70; max-width: 100%; height: auto; border: thick $warning;
                           background: $surface; padding: 0 1; }
    QuitGuard #keys { color: $text-muted; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("s", f"answer('{SAVE}')", "save and quit"),
        Binding("d", f"answer('{DISCARD}')", "discard and quit"),
        Binding("escape,n", f"answer('{STAY}')", "stay"),
    ]

    def __init__(self, buffers: list[str]) -> None:
        super().__init__()
        self.buffers = buffers

    def compose(self) -> ComposeResult:
        question = Text("Unsaved changes in ", style="bold")
        question.append(visible(", ".join(self.buffers)))  # file names from disk: shown literally
        question.append(" - quit anyway?")
        with Vertical():
            yield Static(question, id="question")
            yield Static("s: save and quit    d: discard and quit    escape / n: stay", id="keys")

    def action_answer(self, choice: str) -> None:
        self.dismiss(choice)
