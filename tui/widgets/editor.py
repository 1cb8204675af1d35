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
from textual.widgets.text_area import Edit, EditResult


class CodeEditor(TextArea):
    """A TextArea whose footer shows how to leave it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "leave editor"),
        Binding("ctrl+a", "select_all", "select all", show=False),  # as in harlequin and VS Code
    ]

    def edit(self, edit: Edit) -> EditResult:
        """Edit, then keep the cursor in view once the new size is known: a line added at the end
        grows the document, and scrolling to it at once stops at the old bottom, which left the
        new line under the horizontal scrollbar."""
        result = super().edit(edit)
        self.call_after_refresh(self.scroll_cursor_visible)
        return result

    def action_leave(self) -> None:
        """Reached when read-only (a writable TextArea handles escape itself, the same way)."""
        self.screen.focus_next()
