"""The code editor of the experiments screen and the SQL console.

A TextArea takes every printable key, so the number keys that switch screens elsewhere type
into it; escape is the way out. TextArea already moves focus on escape, but says so nowhere:
this subclass puts the key in the footer, which is where a new user looks. ctrl+a selects
everything (TextArea's default is the start of the line), so a query is replaced by typing.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import TextArea


class CodeEditor(TextArea):
    """A TextArea whose footer shows how to leave it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "leave editor"),
        Binding("ctrl+a", "select_all", "select all", show=False),  # as in harlequin and VS Code
    ]

    def action_leave(self) -> None:
        """Reached when read-only (a writable TextArea handles escape itself, the same way)."""
        self.screen.focus_next()
