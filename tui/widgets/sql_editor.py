"""The SQL console's editor: the code editor plus shell-style history keys and completion of
table, view and column names.

History: `up` on the first line asks for an older query and `down` on the last line for a newer
one (as IPython and shells do with a multi-line entry), posted as `HistoryWanted`; the screen
owns the history. Anywhere else up and down move the cursor as usual.

Completion, as in harlequin: once two letters of a name are typed, a small dropdown under the
cursor lists the tables, views and columns that start with them (right after FROM or JOIN only
tables and views; elsewhere the columns of the tables the query reads come first); after `name.`
it lists that table's (or alias's) columns. `tab` takes the highlighted one, `up`/`down` choose,
`escape` closes the list (a second escape leaves the editor), and anything else (moving the
cursor, a space) closes it. Names come from the `schema` op, loaded once per screen (`Catalog`).
TextArea has no dropdown of its own (only an inline `suggestion`, one name at a time), so this
one is an OptionList drawn over the screen at the cursor that never takes focus: typing goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from textual import events
from textual.geometry import Offset
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.format import visible
from tui.widgets.editor import CodeEditor

SHOWN = 8
"""At most this many names in the dropdown."""
MIN_PREFIX = 2
"""Letters typed before names are offered (after `table.`, at once): one letter matches too much."""
WORD = re.compile(r"(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)?$")
"""The name being typed, right before the cursor: an optional `qualifier.` and a prefix."""
SOURCE = re.compile(r'\b(?:from|join)\s+("?[A-Za-z_][A-Za-z0-9_]*"?)'
                    r"(?:\s+(?:as\s+)?([A-Za-z_][A-Za-z0-9_]*))?", re.IGNORECASE)
"""A table the query reads (`FROM runs r`, `JOIN scores AS s`), with its alias."""
AFTER_FROM = re.compile(r"\b(?:from|join)\s+$", re.IGNORECASE)
"""Right after FROM or JOIN a table or view comes next, never a column."""
KEYWORDS = frozenset({"where", "join", "left", "right", "inner", "outer", "full", "cross", "on", "using",
                      "group", "order", "limit", "offset", "union", "except", "intersect", "having",
                      "window", "qualify", "natural", "positional", "asof", "semi", "anti", "lateral"})
PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass
class Catalog:
    """Tables and views with their columns, in the schema's order (the `schema` op's rows)."""

    tables: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_schema(cls, rows: list[dict[str, str]]) -> Catalog:
        tables: dict[str, list[str]] = {}
        for row in rows:
            tables.setdefault(row["table"], []).append(row["column"])
        return cls(tables)

    def candidates(self, query: str, before: str) -> tuple[str, list[str]]:
        """(the prefix being typed, the names that complete it) for `before`, the text of the
        cursor's line up to the cursor, in `query`."""
        typed = WORD.search(before)
        qualifier, prefix = (typed[1], typed[2] or "") if typed else (None, "")
        if qualifier is None and len(prefix) < MIN_PREFIX:
            return prefix, []
        sources = self.sources(query)
        if qualifier is None and AFTER_FROM.search(before[: len(before) - len(prefix)]):
            pool = list(self.tables)  # FROM or JOIN: only a table or view can come next
        elif qualifier is not None:
            table = sources.get(qualifier.lower(), qualifier)
            pool = self._columns_of(table)
        else:
            named = {t for t in sources.values()}
            pool = [c for t in named for c in self._columns_of(t)] + list(self.tables)
            pool += [c for t, cols in self.tables.items() if t not in named for c in cols]
        low = prefix.lower()
        return prefix, list(dict.fromkeys(n for n in pool if n.lower().startswith(low) and n.lower() != low))

    def sources(self, query: str) -> dict[str, str]:
        """alias or table name (lower case) -> table name, for the tables `query` reads."""
        out: dict[str, str] = {}
        for match in SOURCE.finditer(query):
            table = match[1].strip('"')
            out[table.lower()] = table
            if match[2] and match[2].lower() not in KEYWORDS:
                out[match[2].lower()] = table
        return out

    def _columns_of(self, table: str) -> list[str]:
        found = next((t for t in self.tables if t.lower() == table.lower()), None)
        return self.tables.get(found, []) if found else []


def as_sql(name: str) -> str:
    """A name as SQL text: bare when simple, else double-quoted."""
    return name if PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


class Completions(OptionList):
    """The dropdown: drawn over the screen at the cursor, never focused."""

    DEFAULT_CSS = """
    Completions { overlay: screen; layer: _tooltips; constrain: inside inflect; width: auto; min-width: 16;
                  max-width: 40; height: auto; max-height: 10; display: none; border: none; padding: 0;
                  background: $panel; }
    """
    can_focus = False


class SQLEditor(CodeEditor):
    """The console's editor: history on up/down at the first/last line, name completion."""

    @dataclass
    class HistoryWanted(Message):
        """up on the first line (step -1, older) or down on the last (step 1, newer)."""

        editor: SQLEditor
        step: int

        @property
        def control(self) -> SQLEditor:
            return self.editor

    COMPLETION_KEYS: ClassVar[frozenset[str]] = frozenset({"tab", "up", "down", "escape"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.catalog = Catalog()
        """Set by the screen once the schema has loaded."""
        self.prefix = ""
        """What the open dropdown would replace."""

    @property
    def dropdown(self) -> Completions:
        return self.screen.query_one(Completions)

    @property
    def completing(self) -> bool:
        """Whether the dropdown is open."""
        return bool(self.screen.query(Completions)) and self.dropdown.display

    def on_mount(self) -> None:
        if not self.screen.query(Completions):
            self.screen.mount(Completions())

    # -- keys ------------------------------------------------------------------------------------
    async def _on_key(self, event: events.Key) -> None:
        """While the dropdown is open, tab, up, down and escape are its own; any other key that is
        not part of a name closes it (a printable key updates it after the edit)."""
        if self.completing and event.key in self.COMPLETION_KEYS:
            event.stop()
            event.prevent_default()
            self._completion_key(event.key)
            return
        if self.completing and not (event.is_printable or event.key == "backspace"):
            self.close_completions()
        await super()._on_key(event)

    def _completion_key(self, key: str) -> None:
        if key == "tab":
            self.accept_completion()
        elif key == "escape":
            self.close_completions()
        else:
            self.dropdown.action_cursor_down() if key == "down" else self.dropdown.action_cursor_up()

    def action_cursor_up(self, select: bool = False) -> None:
        if not select and self.selection.is_empty \
                and self.navigator.is_first_wrapped_line(self.cursor_location):
            self.post_message(self.HistoryWanted(self, -1))
            return
        super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        if not select and self.selection.is_empty \
                and self.navigator.is_last_wrapped_line(self.cursor_location):
            self.post_message(self.HistoryWanted(self, 1))
            return
        super().action_cursor_down(select)

    def on_blur(self) -> None:
        self.close_completions()

    # -- completion ------------------------------------------------------------------------------
    def edit(self, edit: Any) -> Any:
        """After typing one character (or deleting while the list is open), look again."""
        result = super().edit(edit)
        if len(edit.text) == 1 or (not edit.text and self.completing):
            self.call_after_refresh(self.update_completions)
        elif self.completing:
            self.close_completions()
        return result

    def update_completions(self) -> None:
        """Open, refill or close the dropdown for the name before the cursor."""
        row, column = self.cursor_location
        before = self.document.get_line(row)[:column]
        self.prefix, names = self.catalog.candidates(self.text, before)
        if not names or not self.has_focus:
            self.close_completions()
            return
        dropdown = self.dropdown
        dropdown.clear_options()
        dropdown.add_options([Option(visible(name), id=name) for name in names[:SHOWN]])
        dropdown.highlighted = 0
        cursor = self.cursor_screen_offset
        dropdown.absolute_offset = Offset(max(0, cursor.x - len(self.prefix)), cursor.y + 1)
        dropdown.display = True

    def close_completions(self) -> None:
        if self.screen.query(Completions):
            self.dropdown.display = False

    def accept_completion(self) -> None:
        """Replace the typed prefix with the highlighted name."""
        dropdown = self.dropdown
        index = dropdown.highlighted
        self.close_completions()
        if index is None:
            return
        name = dropdown.get_option_at_index(index).id or ""
        row, column = self.cursor_location
        self.replace(as_sql(name), (row, column - len(self.prefix)), (row, column))

    def completion_names(self) -> list[str]:
        """The names the open dropdown offers (for tests)."""
        if not self.completing:
            return []
        dropdown = self.dropdown
        return [dropdown.get_option_at_index(i).id or "" for i in range(dropdown.option_count)]
