"""What a screen slot shows when its screen cannot be loaded (its module missing or broken).

The app imports the Experiments, TI, Shift and SQL screens lazily by name; a failure there must
not take the rest of the app down, so the slot says what is missing and why, and every other
screen keeps working.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Static

from tui.format import visible
from tui.widgets.chrome import Chrome
from tui.widgets.footer import FitFooter


class PlaceholderScreen(Screen[None]):
    """A titled notice in place of a screen that could not be imported or built."""

    DEFAULT_CSS = """
    PlaceholderScreen Static#notice { width: auto; max-width: 76; border: round $warning; padding: 1 2; }
    """

    def __init__(self, title: str, target: str, error: str) -> None:
        super().__init__()
        self.title_text, self.target, self.error = title, target, error

    def compose(self) -> ComposeResult:
        yield Chrome()
        with Middle(), Center():
            error = visible(self.error, lines=True)
            yield Static(f"The {self.title_text} screen is not available.\n\n{self.target} could not be "
                         f"loaded:\n{error}\n\nThe other screens work; press 1 for runs, ? for help.",
                         id="notice", markup=False)
        yield FitFooter()
