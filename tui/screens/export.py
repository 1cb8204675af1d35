"""The export dialog shared by the TI view and the SQL console: pick a format, confirm a path.

It only asks; the calling screen writes the file (in a worker thread) and reports the outcome.
A path that exists already is written over only after `y` (`n` keeps it and the dialog open).
The path starts as `<stem>.<ext>` in the current directory and follows the format's extension
until the user edits it. Keys: up/down pick the format, enter moves to the path, enter again
exports, escape cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.format import visible
from tui.widgets.confirm import Answer, Confirm
from tui.widgets.footer import FitFooter


@dataclass(frozen=True)
class ExportFormat:
    """One choice in the dialog: `key` is what the caller renders (csv, md, latex, parquet)."""

    key: str
    label: str
    ext: str


@dataclass(frozen=True)
class ExportChoice:
    """What the user confirmed."""

    format: ExportFormat
    path: Path


def home_short(path: Path) -> str:
    """`~/x` for paths under the home folder: the dialog is 64 columns wide."""
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) and path != home else str(path)


class ExportScreen(ModalScreen[ExportChoice | None]):
    """Format list and path input; dismisses with an ExportChoice, or None on escape."""

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical {
        width: 64; max-width: 100%; height: auto; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    ExportScreen OptionList { height: auto; max-height: 6; }
    ExportScreen #export-error { color: $error; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, formats: list[ExportFormat], stem: str) -> None:
        super().__init__()
        self.title_text = title
        self.formats = formats
        self.stem = stem
        self._auto_path = True

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(visible(self.title_text), style="bold"))  # it names a model: literal
            yield OptionList(*[Option(f.label, id=f.key) for f in self.formats], id="export-formats")
            yield Label(f"file, relative to {home_short(Path.cwd())} (enter writes it):", markup=False)
            yield Input(self._default_path(self.formats[0]), id="export-path")
            yield Label("", id="export-error", markup=False)
        yield FitFooter()

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = 0
        self.query_one(OptionList).focus()

    def _default_path(self, fmt: ExportFormat) -> str:
        return f"{self.stem}.{fmt.ext}"

    @property
    def chosen(self) -> ExportFormat:
        index = self.query_one(OptionList).highlighted
        return self.formats[index or 0]

    @on(OptionList.OptionHighlighted)
    def _format_changed(self) -> None:
        if self._auto_path:
            path = self.query_one("#export-path", Input)
            path.value = self._default_path(self.chosen)

    @on(OptionList.OptionSelected)
    def _format_chosen(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(Input.Changed, "#export-path")
    def _path_edited(self, event: Input.Changed) -> None:
        self._auto_path = event.value == self._default_path(self.chosen)

    @on(Input.Submitted, "#export-path")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.query_one("#export-error", Label).update("give a file name")
            return
        path = Path(text).expanduser().absolute()  # the notification then says exactly where it went
        if path.is_dir():
            path = path / self._default_path(self.chosen)
        choice = ExportChoice(self.chosen, path)
        if not path.exists():
            self.dismiss(choice)
            return
        question = f"{path} exists already. Overwrite it?"
        answers = (Answer("y", "overwrite it", True), Answer("n", "keep it, pick another name", False))
        self.app.push_screen(Confirm(question, answers), lambda yes: self._overwrite(choice, bool(yes)))

    def _overwrite(self, choice: ExportChoice, yes: bool) -> None:
        """The answer to `exists already`: write over it, or stay here to change the name."""
        if yes:
            self.dismiss(choice)
            return
        self.query_one("#export-error", Label).update(f"{choice.path.name} kept: give another name")
        self.query_one("#export-path", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
