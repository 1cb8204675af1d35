"""The SQL console's cell viewer: `enter` on a grid cell shows its whole value.

The grid cuts long text at 60 characters and shows a list or JSON on one line; a completion, a
prompt or a sample's `extra` needs to be read whole. The viewer pretty-prints JSON (a JSON
column, or text that parses as an object or array) and lists, wraps long lines, and scrolls.
`y` or `ctrl+c` copies the value through the terminal (Textual's `App.copy_to_clipboard`, OSC 52):
the RAW value, control characters included, exactly as stored (JSON values as compact JSON),
while the screen shows them made visible (`␛[2J`, never a cleared screen). `escape` closes.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.format import visible


def pretty(value: Any, duck_type: str | None = None) -> str:
    """The value to read: JSON and lists indented, NULL as NULL, the rest as it is."""
    if value is None:
        return "NULL"
    if isinstance(value, (list, dict)):
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    text = str(value)
    if isinstance(value, str) and (duck_type == "JSON" or text.lstrip()[:1] in ("{", "[")):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    return text


def raw(value: Any) -> str | None:
    """What copy puts on the clipboard: the stored text itself (None for NULL)."""
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


class CellViewer(ModalScreen[None]):
    """One cell's whole value, scrollable, with copy."""

    DEFAULT_CSS = """
    CellViewer { align: center middle; }
    CellViewer > Vertical { width: 90%; max-width: 120; height: 90%; border: round $accent;
                            background: $surface; }
    CellViewer #cell-title { height: 1; padding: 0 1; text-style: bold; }
    CellViewer #cell-body { height: 1fr; padding: 0 1; }
    CellViewer #cell-keys { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "close"),
        Binding("y,ctrl+c", "copy", "copy the raw value"),
    ]

    def __init__(self, value: Any, column: str, duck_type: str | None, row: int) -> None:
        super().__init__()
        self.value = value
        self.column = column
        self.duck_type = duck_type
        self.row = row
        """1-based, in the whole result (not the page)."""
        self.text = pretty(value, duck_type)
        """What is shown (before control characters are made visible)."""

    def compose(self) -> ComposeResult:
        kind = f" · {self.duck_type.lower()}" if self.duck_type else ""
        size = f" · {len(raw(self.value) or ''):,} characters"
        with Vertical():
            yield Static(Text(f"{visible(self.column)} · row {self.row:,}{kind}{size}"), id="cell-title")
            with VerticalScroll(id="cell-body"):
                yield Static(Text(visible(self.text, lines=True)), id="cell-value")
            yield Static("y copy raw · esc close · ↑↓ pgup pgdn scroll", id="cell-keys")

    def on_mount(self) -> None:
        self.query_one("#cell-body").focus()

    def action_copy(self) -> None:
        value = raw(self.value)
        if value is None:
            self.notify("NULL: nothing to copy", severity="warning")
            return
        self.app.copy_to_clipboard(value)
        self.notify(f"copied {len(value):,} characters (the raw value)")
