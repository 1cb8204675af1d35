"""The SQL console: a read-only query editor over the daemon, with history, a results grid that
pages and sorts, a cell viewer, name completion, inline errors, export to CSV or Parquet, and a
schema browser.

Queries go through the daemon (`sql_page` one page at a time, `sql_total` for the row count, or
on daemons without `sql_page` the first `GRID_ROWS` rows and their count), so the console sees
exactly what `tix sql` sees: SELECT and EXPLAIN only, one statement, DuckDB's message on one line
when a query fails. The grid holds one page of `GRID_ROWS` rows and says which (`rows
1,001–2,000 of 48,213`); `]` / `[` (or pgdn on the last row, pgup on the first) fetch the next
or previous page, and `s` sorts the whole result by the cursor's column (again: descending,
a third time: the query's own order), server-side, so the order is over all rows. The count
runs after the page is shown, in its own worker. `enter` on a cell opens it whole
(tui/widgets/sql_cell.py). History is kept in `TIX_HOME/sql_history` (JSON lines, the last 500
distinct queries; a query run again moves to the newest place).

Keys: i enters the editor (the screen opens on the grid, so the number keys switch screens from
the first visit), escape leaves it; F5 (or ctrl+enter where the terminal reports it: kitty,
WezTerm, foot, or tmux with `extended-keys on`) runs the editor's query; alt+up / alt+down walk
the history, and so do up on the editor's first line and down on its last
(tui/widgets/sql_editor.py, which also completes table, view and column names: tab takes the
highlighted one); ctrl+s exports the last result (the whole result, run again: written by the
daemon with DuckDB's COPY, or on daemons without the `sql_export` op fetched, at most `EXPORT_ROWS`
rows); F2 shows or hides the schema browser, where enter on a table writes `SELECT * FROM name
LIMIT 100` into the editor (the replaced text stays in the history) and enter on a column
inserts its name; escape leaves the editor (tab indents there).
"""

from __future__ import annotations

import csv
import json
import re
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static, Tree
from textual.worker import get_current_worker

from engine.analysis.report import cell
from tui.format import column_decimals, fit_parts, readable_number, visible
from tui.messages import ConnectionChanged
from tui.screens.export import ExportChoice, ExportFormat, ExportScreen
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.footer import FitFooter
from tui.widgets.grid import PagedGrid
from tui.widgets.literal import literal
from tui.widgets.sql_cell import CellViewer
from tui.widgets.sql_editor import Catalog, SQLEditor

GRID_ROWS = 1_000
EXPORT_ROWS = 200_000
HISTORY_SIZE = 500
SQL_FORMATS = [ExportFormat("csv", "CSV", "csv"), ExportFormat("parquet", "Parquet (pyarrow)", "parquet")]
DEFAULT_QUERY = "SELECT id, experiment, name, kind, state FROM runs ORDER BY created_at DESC LIMIT 100"
_HISTORY_LOCK = threading.Lock()
PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
NUMBER = re.compile(r"-?\d+\.\d+")


def quote_name(name: str) -> str:
    """An identifier as SQL text: bare when simple, else double-quoted."""
    return name if PLAIN_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def count_query(query: str) -> str:
    """The same count engine/daemon/tui_ops.py runs, for daemons that lack the `sql_total` op."""
    body = query.strip().rstrip(";").rstrip()
    return f"SELECT count(*) FROM ({body}\n) AS counted"


def elapsed_label(seconds: float) -> str:
    """How long the round trip took (snapshot tests blank it: it differs on every run)."""
    return f" · {seconds * 1000:.0f} ms"


NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def is_numeric(duck_type: str | None) -> bool:
    return duck_type is not None and duck_type.split("(")[0] in NUMERIC_TYPES


def grid_cell(value: Any, numeric: bool = False, decimals: int | None = None) -> Text:
    """NULL dimmed; numbers right-aligned (DECIMAL arrives as text), fractions with the column's
    `decimals` (else 6 significant digits) and never cut; long text cut (exports keep it).
    Always literal: a value is data, never Rich markup or an emoji code, its controls shown."""
    if value is None:
        return Text("NULL", style="dim")
    if fraction(value, numeric):
        number = float(value)
        text = readable_number(number) if decimals is None else f"{number:.{decimals}f}"
        return Text(text, justify="right")
    right = numeric or (isinstance(value, int) and not isinstance(value, bool))
    return Text(visible(cell(value, None, None if right else 60)), justify="right" if right else "left")


def fraction(value: Any, numeric: bool) -> bool:
    """A float, or a DECIMAL sent as text."""
    return isinstance(value, float) or (numeric and isinstance(value, str) and bool(NUMBER.fullmatch(value)))


def grid_rows(result: dict[str, Any]) -> list[list[Text]]:
    """The grid's cells: each fractional column formatted to one number of decimals."""
    numeric = [is_numeric(t) for t in result.get("types") or [None] * len(result["columns"])]
    decimals = []
    for i, is_num in enumerate(numeric):
        values = [float(row[i]) for row in result["rows"] if row[i] is not None and fraction(row[i], is_num)]
        decimals.append(column_decimals(values) if values else None)
    return [[grid_cell(v, n, d) for v, n, d in zip(row, numeric, decimals, strict=True)]
            for row in result["rows"]]


# -- history ---------------------------------------------------------------------------------------
def load_history(path: Path) -> list[str]:
    """Distinct queries from oldest to newest, each where it was last run; unreadable lines are
    skipped (the file is the user's)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            query = json.loads(line)
        except ValueError:
            continue
        if isinstance(query, str) and query.strip():
            out.append(query)
    return distinct(out)[-HISTORY_SIZE:]


def distinct(queries: list[str]) -> list[str]:
    """Each query once, at its last place (a query run again is the newest, not a duplicate)."""
    last = {query: i for i, query in enumerate(queries)}
    return [query for i, query in enumerate(queries) if last[query] == i]


def append_history(path: Path, query: str) -> None:
    """Append one query (two consoles open at once both keep theirs); past twice the kept size,
    rewrite the last HISTORY_SIZE through a temporary file, never leaving half a file."""
    with _HISTORY_LOCK:
        with open(path, "a") as f:
            f.write(json.dumps(query) + "\n")
        with open(path) as f:
            lines = sum(1 for _ in f)
        if lines > 2 * HISTORY_SIZE:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(json.dumps(q) + "\n" for q in load_history(path)))
            tmp.replace(path)


# -- export ----------------------------------------------------------------------------------------
def write_csv(path: Path, columns: list[str], rows: list[list[Any]], types: list[str] | None = None) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([[_csv_value(v) for v in row] for row in rows])


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def write_parquet(path: Path, columns: list[str], rows: list[list[Any]],
                  types: list[str] | None = None) -> None:
    """Columns with their DuckDB type where the daemon sent it as text (DECIMAL, DATE, TIMESTAMP),
    else typed by pyarrow from the values; a column it cannot type (mixed values) as text. Used
    when the daemon cannot write the file itself (no `sql_export` op).

    pyarrow loads numpy, so it is imported here, in the export thread, and only for Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [arrow_column([row[i] for row in rows], types[i] if types else None)
              for i in range(len(columns))]
    pq.write_table(pa.Table.from_arrays(arrays, names=columns), path)


def arrow_column(values: list[Any], duck_type: str | None) -> Any:
    import pyarrow as pa

    try:
        typed = _typed(values, duck_type or "")
        return typed if typed is not None else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, ArithmeticError):
        return pa.array([None if v is None else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
                         for v in values], pa.string())


def _typed(values: list[Any], duck_type: str) -> Any:
    """An Arrow array for the types JSON flattens to text; None for the rest."""
    import pyarrow as pa

    def each(convert: Any) -> list[Any]:
        return [None if v is None else convert(v) for v in values]

    if decimal := re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", duck_type):
        return pa.array(each(Decimal), pa.decimal128(int(decimal[1]), int(decimal[2])))
    if duck_type == "DATE":
        return pa.array(each(date.fromisoformat), pa.date32())
    if duck_type.startswith("TIMESTAMP"):
        zone = "UTC" if "TIME ZONE" in duck_type else None
        return pa.array(each(datetime.fromisoformat), pa.timestamp("us", tz=zone))
    return None


WRITERS = {"csv": write_csv, "parquet": write_parquet}


def sorted_query(query: str, sort: tuple[int, bool] | None) -> str:
    """The query in the grid's order, for the export: sorted by a column position (no name to quote;
    ties as sql_page breaks them are not needed, every row is written)."""
    if sort is None:
        return query
    body = query.strip().rstrip(";").rstrip()
    return f"SELECT * FROM ({body}\n) AS q ORDER BY #{sort[0] + 1} {'DESC' if sort[1] else 'ASC'} NULLS LAST"


def page_span(result: dict[str, Any], total: int | None, counting: bool) -> str:
    """Which rows the grid shows: `18 rows`, `1,000 of 48,213 rows` on the first page of more,
    `rows 1,001–2,000 of 48,213` past it (`counting…` until the count is in)."""
    shown, offset = len(result["rows"]), result.get("offset", 0)
    if offset == 0 and not result["truncated"]:
        return f"{shown:,} row{'s' if shown != 1 else ''}"
    of = f"of {total:,}" if total is not None else "counting…" if counting else "more not counted"
    if offset == 0:
        return f"{shown:,} {of} rows" if total is not None else f"first {shown:,} rows ({of})"
    if not shown:
        return f"no rows past row {offset:,}"
    span = f"rows {offset + 1:,}–{offset + shown:,}"
    return f"{span} {of}" if total is not None else f"{span} ({of})"


class SQLScreen(Screen[None]):
    """Editor, inline error, status line and results grid, with the schema browser on the left."""

    DEFAULT_CSS = """
    SQLScreen #sql-schema { width: 26; border-right: solid $primary-darken-2; }
    SQLScreen #sql-schema.-hidden { display: none; }
    SQLScreen #sql-editor { height: 8; }
    SQLScreen #sql-error { color: $error; height: auto; max-height: 3; padding: 0 1; }
    SQLScreen #sql-error.-empty { display: none; }
    SQLScreen #sql-status { height: 1; padding: 0 1; color: $text-muted; }
    SQLScreen #sql-grid { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5,ctrl+enter", "run", "run"),
        Binding("i", "edit", "edit query"),
        Binding("ctrl+s", "export", "export"),  # before the history keys: they go first at 80 columns
        Binding("f2", "toggle_schema", "schema"),
        Binding("alt+up", "history(-1)", "older"),
        Binding("alt+down", "history(1)", "newer"),
        # listed by ? (help), kept out of the footer: it keeps run, edit, export, schema and history
        Binding("right_square_bracket", "page(1)", "next page", show=False),
        Binding("left_square_bracket", "page(-1)", "previous page", show=False),
        Binding("s", "sort", "sort all rows by the cursor's column (again: descending; a third time: off)",
                show=False),
    ]
    AUTO_FOCUS = "#sql-grid"
    """Not the editor: on a first visit the number keys must still switch screens (`i` edits)."""
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("escape", "leave the editor (tab indents in it)"),
        ("enter (grid)", "open the cell's whole value (y copies it, esc closes)"),
        ("pgdn, pgup (grid)", "on the last row: next page; on the first: previous page"),
        ("up, down (editor)", "on the first line: older query; on the last: newer"),
        ("tab (completion)", "take the highlighted table, view or column name (esc closes the list)"),
        ("enter (schema)", "a table: write SELECT * FROM it; a column: insert its name"),
        ("space (schema)", "show or hide a table's columns"))

    def __init__(self, source: Source, query: str = DEFAULT_QUERY) -> None:
        super().__init__()
        self.source = source
        self.initial_query = query
        self.history_path = source.ws.home / "sql_history"
        self.history: list[str] = []
        self._history_at: int | None = None
        self._draft = ""
        self.last_query: str | None = None
        self.result: dict[str, Any] | None = None
        """The grid's page: columns, types, rows (at most GRID_ROWS), offset, truncated (more rows
        follow), pageable, sort, descending."""
        self.total: int | None = None
        """The last query's row count: None while counting or where it cannot be counted."""
        self.counting = False
        self.sort: tuple[int, bool] | None = None
        """(column position, descending) the grid is sorted by, server-side; None: the query's order."""
        self.error: str | None = None
        self.runs = 0
        """Queries answered (or refused) so far, their count included; tests wait on it."""
        self.pages = 0
        """Pages shown so far (a new query, a page turned, a sort); tests wait on it."""
        self.page_sizes: list[int] = []
        """The `limit` of every page asked of the daemon (tests: never the whole result)."""
        self.last_export: Path | None = None
        self._elapsed = 0.0
        self._cursor_after: tuple[int, int] = (0, 0)
        self._has_total_op = True
        self._has_export_op = True
        self._has_page_op = True

    def compose(self) -> ComposeResult:
        yield Chrome()
        with Horizontal():
            yield Tree("schema", id="sql-schema")
            with Vertical():
                yield SQLEditor.code_editor(self.initial_query, language="sql", id="sql-editor",
                                            soft_wrap=True, show_line_numbers=False)
                yield Static("", id="sql-error", classes="-empty")
                yield Static("F5 runs the query · read-only: SELECT and EXPLAIN", id="sql-status")
                yield PagedGrid(id="sql-grid", zebra_stripes=True)
        yield FitFooter()

    def on_mount(self) -> None:
        tree = self.query_one("#sql-schema", Tree)
        tree.show_root = False
        tree.auto_expand = False
        getattr(self.app, "listen", lambda _w: None)(self)
        self.load_history()
        self.load_schema()
        self.run_query(self.editor.text)

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.online:
            self.load_schema()

    @property
    def editor(self) -> SQLEditor:
        return self.query_one("#sql-editor", SQLEditor)

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#sql-grid", PagedGrid)

    def action_edit(self) -> None:
        """Into the editor (escape leaves it): typing a query is an explicit choice. Focused now,
        not after the next refresh, so a key sent right after `i` (ctrl+a) reaches the editor."""
        self.set_focus(self.editor)

    # -- running -----------------------------------------------------------------------------------
    def action_run(self) -> None:
        query = self.editor.text
        if query.strip():
            self.remember(query)
            self.run_query(query)

    def run_query(self, query: str) -> None:
        """A new query: its first page in its own order, then (when it has more) its row count."""
        self._status("running…")
        self._cursor_after = (0, 0)
        self.load_page(query, 0, None, new=True)

    @work(exclusive=True, group="sql-run")
    async def load_page(self, query: str, offset: int, sort: tuple[int, bool] | None,
                        new: bool = False) -> None:
        """One page from the daemon; a new query also starts its count (`count_rows`)."""
        started = time.monotonic()
        try:
            result = await self.fetch_page(query, offset, sort)
        except SourceError as exc:
            self.show_error(str(exc))
            return
        if new:
            more = result["truncated"] and "total" not in result
            self.total = result.get("total", None if more else len(result["rows"]))
            self.counting = more
        self.last_query, self.result, self.error, self.sort = query, result, None, sort
        self.show_result(result, time.monotonic() - started)
        if new and self.counting:
            self.count_rows(query)
        elif new:
            self.runs += 1

    async def fetch_page(self, query: str, offset: int, sort: tuple[int, bool] | None) -> dict[str, Any]:
        """GRID_ROWS rows from `offset` (`sql_page`); a daemon without that op sends the first
        GRID_ROWS and the total (`fetch`), as one page that cannot turn or sort."""
        if self._has_page_op:
            args: dict[str, Any] = {"query": query, "offset": offset, "limit": GRID_ROWS}
            if sort is not None:
                args |= {"sort": sort[0], "descending": sort[1]}
            self.page_sizes.append(GRID_ROWS)
            try:
                return await self.source.request("sql_page", **args)
            except SourceError as exc:
                if not str(exc).startswith("unknown op"):
                    raise
                self._has_page_op = False
        result = await self.fetch(query, GRID_ROWS)
        return result | {"offset": 0, "pageable": False, "sort": None, "descending": False}

    @work(exclusive=True, group="sql-count")
    async def count_rows(self, query: str) -> None:
        """The row count (`sql_total` with one row: DuckDB counts without materialising the
        rows), after the first page is on screen."""
        try:
            total = (await self.fetch(query, 1))["total"]
        except SourceError:
            total = None
        if query == self.last_query:
            self.total, self.counting = total, False
            if self.result is not None:
                self._status(self.summary(self.result, self._elapsed))
            self.runs += 1

    async def fetch(self, query: str, max_rows: int) -> dict[str, Any]:
        """At most `max_rows` rows and the total row count (None when the query cannot be counted)."""
        if self._has_total_op:
            try:
                return await self.source.request("sql_total", query=query, max_rows=max_rows)
            except SourceError as exc:
                if not str(exc).startswith("unknown op"):
                    raise
                self._has_total_op = False
        result = await self.source.request("sql", query=query, max_rows=max_rows)
        result["total"] = len(result["rows"])
        if result["truncated"]:
            try:
                counted = await self.source.request("sql", query=count_query(query), max_rows=1)
                result["total"] = int(counted["rows"][0][0])
            except SourceError:
                result["total"] = None
        return result

    def show_error(self, message: str) -> None:
        """The daemon's one-line reason, in red under the editor; the last good grid stays."""
        self.error = message
        error = self.query_one("#sql-error", Static)
        error.update(Text(visible(message, lines=True)))  # DuckDB's caret under the query: lines kept
        error.remove_class("-empty")
        self._status("the query failed; the grid shows the last result")
        self.runs += 1

    def show_result(self, result: dict[str, Any], seconds: float) -> None:
        self.query_one("#sql-error", Static).add_class("-empty")
        grid = self.grid
        grid.clear(columns=True)
        rows = grid_rows(result)
        # Each column as wide as its widest cell, set here: DataTable measures auto-width columns
        # only on a later idle pass, which under load left a page at its header widths for 15 s
        # (twice in six full test runs).
        for i, name in enumerate(result["columns"]):
            label = self.header(i, name)
            grid.add_column(label, width=max([label.cell_len, *(row[i].cell_len for row in rows)]))
        grid.add_rows(rows)
        if grid.row_count:
            row, column = self._cursor_after
            grid.move_cursor(row=min(row, grid.row_count - 1), column=min(column, len(result["columns"]) - 1))
        self._elapsed = seconds
        self._status(self.summary(result, seconds))
        self.pages += 1

    def header(self, position: int, name: str) -> Text:
        """A column's label; the sorted column's says which way (▲ ascending, ▼ descending)."""
        label = literal(name)
        if self.sort is not None and self.sort[0] == position:
            label = Text.assemble(label, (" ▼" if self.sort[1] else " ▲", "bold"))
        return label

    def summary(self, result: dict[str, Any], seconds: float) -> str:
        """What the grid shows of how many rows, the sort, the columns, the round trip (in that
        order: a narrow status line keeps the first whole parts)."""
        columns = len(result["columns"])
        plural = "s" if columns != 1 else ""
        parts = [page_span(result, self.total, self.counting)]
        if self.sort is not None and self.sort[0] < len(result["columns"]):
            name = visible(result["columns"][self.sort[0]])
            parts.append(f"sorted by {name} {'descending' if self.sort[1] else 'ascending'}")
        parts.append(f"{columns} column{plural}")
        return " · ".join(parts) + elapsed_label(seconds)

    def _status(self, text: str) -> None:
        """The line over the grid; narrower than it (60 columns, beside the schema), whole ` · `
        parts then `…`: cut through the middle it read `rows 1,001–2,000 of 2,500 · 2`."""
        self._status_text = text
        status = self.query_one("#sql-status", Static)
        width = status.content_size.width
        if width and len(text) > width:
            status.update(fit_parts([Text(part) for part in text.split(" · ")], width))
        else:
            status.update(Text(text))

    def on_resize(self) -> None:
        """The status line fitted again (after the layout: its width is the new one then)."""
        self.call_after_refresh(self._refit_status)

    def _refit_status(self) -> None:
        if getattr(self, "_status_text", None):  # the latest text: a result may have come meanwhile
            self._status(self._status_text)

    # -- paging, sorting, the cell viewer ----------------------------------------------------------
    def action_page(self, step: int) -> None:
        """The next (1) or previous (-1) page of the last result, from the daemon."""
        result = self.result
        if result is None or self.last_query is None:
            return
        if not result.get("pageable"):
            self.notify(self.one_page_reason(), severity="warning")
            return
        if (step > 0 and not result["truncated"]) or (step < 0 and result["offset"] == 0):
            self.notify("this is the last page" if step > 0 else "this is the first page")
            return
        column = self.grid.cursor_column
        self._cursor_after = (0 if step > 0 else GRID_ROWS - 1, column)
        self._status("fetching the page…")
        self.load_page(self.last_query, max(0, result["offset"] + step * GRID_ROWS), self.sort)

    @on(PagedGrid.PageWanted, "#sql-grid")
    def _paged_past_edge(self, message: PagedGrid.PageWanted) -> None:
        self.action_page(message.step)

    def action_sort(self) -> None:
        """Sort the whole result by the cursor's column (server-side): ascending, then descending,
        then back to the query's own order; the grid goes back to the first page."""
        result = self.result
        if result is None or self.last_query is None or not result["columns"]:
            return
        if not result.get("pageable"):
            self.notify(self.one_page_reason(), severity="warning")
            return
        column = self.grid.cursor_column
        if self.sort is None or self.sort[0] != column:
            sort: tuple[int, bool] | None = (column, False)
        else:
            sort = (column, True) if not self.sort[1] else None
        self._cursor_after = (0, column)
        self._status("sorting…")
        self.load_page(self.last_query, 0, sort)

    def one_page_reason(self) -> str:
        if not self._has_page_op:
            return "this daemon cannot page or sort (it predates sql_page): restart it (tix daemon stop)"
        return "EXPLAIN's plan is one page: it cannot be paged or sorted"

    @on(DataTable.CellSelected, "#sql-grid")
    def _cell_chosen(self, event: DataTable.CellSelected) -> None:
        result = self.result
        row, column = event.coordinate.row, event.coordinate.column
        if result is None or row >= len(result["rows"]) or column >= len(result["columns"]):
            return
        types = result.get("types")
        self.app.push_screen(CellViewer(result["rows"][row][column], result["columns"][column],
                                        types[column] if types else None, result.get("offset", 0) + row + 1))

    # -- history -----------------------------------------------------------------------------------
    @work(thread=True, group="sql-history")
    def load_history(self) -> None:
        queries = load_history(self.history_path)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._history_loaded, queries)

    def _history_loaded(self, queries: list[str]) -> None:
        self.history = distinct(queries + self.history)[-HISTORY_SIZE:]

    def remember(self, query: str) -> None:
        """Add a query to the history (an earlier copy moves to the newest place) and persist it
        off the UI thread."""
        self._history_at = None
        if query.strip() and (not self.history or self.history[-1] != query):
            self.history = [q for q in self.history if q != query] + [query]
            del self.history[:-HISTORY_SIZE]
            self.persist_history(query)

    @work(thread=True, group="sql-history-save")
    def persist_history(self, query: str) -> None:
        try:
            append_history(self.history_path, query)
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"cannot save the history: {exc}", severity="warning")

    @on(SQLEditor.HistoryWanted, "#sql-editor")
    def _history_key(self, message: SQLEditor.HistoryWanted) -> None:
        self.action_history(message.step)

    def action_history(self, step: int) -> None:
        """Walk the history; past the newest entry the text being written comes back. The cursor
        lands on the first line going back and on the last going forward, so pressing the same
        key again goes on walking."""
        if not self.history:
            return
        if self._history_at is None:
            if step > 0:
                return
            self._draft = self.editor.text
            at = len(self.history) - 1
            if self.history[at] == self._draft and at > 0:
                at -= 1  # the newest entry is what the editor holds already
        else:
            at = self._history_at + step
        if at >= len(self.history):
            self._history_at = None
            self._show_history(self._draft, step)
            return
        self._history_at = max(0, at)
        self._show_history(self.history[self._history_at], step)

    def _show_history(self, text: str, step: int) -> None:
        editor = self.editor
        editor.text = text
        row = 0 if step < 0 else editor.document.line_count - 1
        editor.move_cursor((row, len(editor.document.get_line(row))))

    # -- schema ------------------------------------------------------------------------------------
    @work(exclusive=True, group="sql-schema")
    async def load_schema(self) -> None:
        try:
            rows = await self.source.request("schema")
        except SourceError as exc:
            self.notify(f"cannot load the schema: {exc}", severity="warning")
            return
        self.editor.catalog = Catalog.from_schema(rows)  # completion's names, once per load
        tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in rows:
            kind = "views" if r["type"] == "VIEW" else "tables"
            tables.setdefault((kind, r["table"]), []).append((r["column"], r["data_type"]))
        tree = self.query_one("#sql-schema", Tree)
        tree.clear()
        for kind in ("tables", "views"):
            names = sorted(name for k, name in tables if k == kind)
            branch = tree.root.add(f"{kind} ({len(names)})", expand=kind == "tables")
            for name in names:
                node = branch.add(literal(name), data=("table", name))
                for column, data_type in tables[(kind, name)]:
                    label = Text.assemble(visible(column), " ", (visible(data_type.lower()), "dim"))
                    node.add_leaf(label, data=("column", column))

    @on(Tree.NodeSelected, "#sql-schema")
    def _schema_chosen(self, event: Tree.NodeSelected[Any]) -> None:
        if not event.node.data:
            return
        kind, name = event.node.data
        if kind == "table":
            self.remember(self.editor.text)
            self.editor.text = f"SELECT * FROM {quote_name(name)} LIMIT 100"
            self.editor.focus()
        else:
            self.editor.insert(quote_name(name))

    def action_toggle_schema(self) -> None:
        schema = self.query_one("#sql-schema", Tree)
        schema.toggle_class("-hidden")
        if schema.has_class("-hidden") and schema.has_focus:
            self.editor.focus()

    # -- export ------------------------------------------------------------------------------------
    def action_export(self) -> None:
        if self.last_query is None:
            self.notify("run a query first (F5)", severity="warning")
            return
        stem = time.strftime("tix-query-%Y%m%d-%H%M%S")
        self.app.push_screen(ExportScreen("Export the last result (all its rows)", SQL_FORMATS, stem),
                             self._export_chosen)

    def _export_chosen(self, choice: ExportChoice | None) -> None:
        if choice is not None and self.last_query is not None:
            self.export(sorted_query(self.last_query, self.sort), choice)

    @work(exclusive=True, group="sql-export")
    async def export(self, query: str, choice: ExportChoice) -> None:
        """The daemon writes the whole result with DuckDB's COPY (`sql_export`: any size, DuckDB's
        types); a daemon without that op sends the rows (at most EXPORT_ROWS) and a thread writes them."""
        path = choice.path.expanduser().resolve()  # the daemon's working directory is not ours
        self.notify(f"exporting to {path}…")
        try:
            if self._has_export_op:
                done = await self.source.request("sql_export", query=query, path=str(path),
                                                 format=choice.format.key)
                self.exported(path, f"wrote {done['rows']:,} rows to {path}")
                return
        except SourceError as exc:
            if not str(exc).startswith("unknown op"):
                self.notify(f"export failed: {exc}", severity="error")
                return
            self._has_export_op = False
        try:
            result = await self.fetch(query, EXPORT_ROWS)
        except SourceError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.write_export(ExportChoice(choice.format, path), result)

    def exported(self, path: Path, message: str) -> None:
        self.last_export = path
        self.notify(message)

    @work(thread=True, group="sql-export-write")
    def write_export(self, choice: ExportChoice, result: dict[str, Any]) -> None:
        try:
            WRITERS[choice.format.key](choice.path, result["columns"], result["rows"], result.get("types"))
        except Exception as exc:  # noqa: BLE001 - any writer failure is one line for the user
            self.app.call_from_thread(self.notify, f"export failed: {exc}", severity="error")
            return
        total = result["total"] if result["truncated"] else None
        note = f" (the first {EXPORT_ROWS:,} of {total:,})" if total else ""
        self.app.call_from_thread(self.exported, choice.path,
                                  f"wrote {len(result['rows']):,} rows to {choice.path}{note}")
