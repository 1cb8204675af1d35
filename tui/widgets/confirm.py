"""A question over the current screen (cancel a run, resume it with what its cancel took down):
each answer has its own letter, and escape declines.

Enter never answers: on the runs table enter opens a run, so a second enter pressed out of habit
would confirm a cancel of a training that ran for hours. It says which letters answer instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.format import visible


@dataclass(frozen=True)
class Answer:
    """One way to answer: the key that gives it, what it does, and the value the question returns."""

    key: str
    label: str
    value: Any


YES_NO = (Answer("y", "yes", True), Answer("n", "no", False))


class Confirm(ModalScreen[Any]):
    """Dismisses with the value of the answer whose key was pressed; escape gives the last
    answer's value (no, by convention). Keyboard only, no buttons to tab to."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 64; max-width: 100%; height: auto; border: thick $warning;
                         background: $surface; padding: 0 1; }
    Confirm #keys { color: $text-muted; margin-top: 1; }
    Confirm #keys.-asked { color: $warning; text-style: bold; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "decline", "no")]

    def __init__(self, question: str, answers: Sequence[Answer] = YES_NO) -> None:
        super().__init__()
        self.question = question
        self.answers = {a.key: a for a in answers}
        self.declined = answers[-1].value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(visible(self.question, lines=True), id="question", markup=False)
            yield Static(self.keys_line(), id="keys", markup=False)

    def keys_line(self) -> str:
        keys = [f"{a.key}: {a.label}" for a in self.answers.values()]
        return "    ".join([*keys[:-1], keys[-1] + " (or escape)"])

    def on_key(self, event: events.Key) -> None:
        answer = self.answers.get(event.key)
        if answer is not None:
            event.stop()
            self.dismiss(answer.value)
        elif event.key == "enter":  # see the module docstring
            event.stop()
            keys = self.query_one("#keys", Static)
            keys.update("enter does not answer: " + self.keys_line())
            keys.add_class("-asked")

    def action_decline(self) -> None:
        self.dismiss(self.declined)
