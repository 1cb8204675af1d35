"""The SQL console as harlequin has it (issue 25.15), against a real daemon: paging past the first
1,000 rows one page at a time, sorting the whole result by a column, the cell viewer with copy,
history across restarts with up and down, and completion of table, view and column names.

The workspace holds 2,501 generated samples, written before the daemon starts; a byte copy of the
database taken then is what DuckDB itself answers from, to compare the console's pages with.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TextArea, Tree

import tui.screens.sql as sql_module
from engine.client.connection import Client, RequestFailed
from engine.daemon.sql_paging import PageRequest, sql_page
from engine.workspace import Workspace
from storage.store import ReadOnlyQueryError, Store, _cell
from tests.tui.screen_support import HostApp, settle, until, workspace
from tests.tui.test_sql_screen import console, run, status
from tui.screens.sql import SQLScreen, load_history
from tui.screentext import screen_text
from tui.widgets.sql_cell import CellViewer, pretty
from tui.widgets.sql_editor import SQLEditor

ROWS = 2_501
SPECIAL = "before\x1b[2J\rafter\x07 and a tab\there\nsecond line"
"""A completion that would clear the screen and move the cursor if it reached the terminal."""
EXTRA = '{"scorer": "exact", "tries": [1, 2, 3], "note": "x"}'


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Path]]:
    """A workspace whose `samples` has 2,501 rows (one with control characters), and a copy of its
    database for DuckDB to read."""
    tmp = tmp_path_factory.mktemp("harlequin")
    with workspace(tmp / "home") as ws:
        ws.ensure()
        store = Store.open(ws.db)
        try:
            store.con.execute("""
                INSERT INTO prompts SELECT md5_number('prompt ' || i), 'prompt ' || i FROM range(50) t(i);
                INSERT INTO sample_rows
                SELECT 'run-' || (i % 3), i * 100, ['arith', 'chain', 'spell'][i % 3 + 1], 'item-' || (i // 4),
                       i % 4, md5_number('prompt ' || (i % 50)), 'completion ' || i, (i % 10)::VARCHAR,
                       (i * 37 % 101) / 100.0, (i * 7919) % 1000, 'stop', NULL, NULL, false
                FROM range(2500) t(i);""")
            store.con.execute("INSERT INTO sample_rows VALUES ('run-x', 0, 'arith', 'special', 0, NULL, ?, NULL,"
                              " NULL, 7, 'length', ['truncated'], ?, false)", [SPECIAL, EXTRA])
        finally:
            store.close()
        copy = tmp / "copy.duckdb"
        shutil.copyfile(ws.db, copy)
        yield ws, copy


def duckdb_rows(copy: Path, query: str) -> list[list[Any]]:
    """DuckDB's own answer on the copy, as the daemon sends cells (JSON-friendly)."""
    con = duckdb.connect(str(copy), read_only=True)
    try:
        return [[_cell(v) for v in row] for row in con.execute(query).fetchall()]
    finally:
        con.close()


def drive(ws: Workspace, scenario: Callable[[Pilot[Any]], Awaitable[None]], query: str = "SELECT 1 AS one",
          size: tuple[int, int] = (80, 24), calls: list[tuple[str, dict[str, Any]]] | None = None) -> None:
    """Run the console on `query`; every request it sends goes into `calls` (then to the daemon)."""
    async def main() -> None:
        app = HostApp(ws, lambda source: SQLScreen(source, query))
        if calls is not None:
            send = app.source.request

            async def recorded(op: str, **args: Any) -> Any:
                calls.append((op, args))
                return await send(op, **args)
            app.source.request = recorded  # type: ignore[method-assign]
        async with app.run_test(size=size) as pilot:
            screen = await until(pilot, lambda: isinstance(pilot.app.screen, SQLScreen) and pilot.app.screen)
            await until(pilot, lambda: screen.runs >= 1)  # the initial query, counted
            await scenario(pilot)
    asyncio.run(main())


async def turn(pilot: Pilot[Any], *keys: str) -> SQLScreen:
    """Press `keys` on the grid and wait for the page they ask for."""
    screen = console(pilot)
    before = screen.pages
    screen.grid.focus()
    await pilot.press(*keys)
    await until(pilot, lambda: screen.pages > before, what=f"a page after {keys}")
    return screen


# -- paging --------------------------------------------------------------------------------------------
def test_page_two_of_samples_is_duckdbs_rows_1001_to_2000(db: tuple[Workspace, Path]) -> None:
    ws, copy = db
    expected = duckdb_rows(copy, "select * from samples")
    calls: list[tuple[str, dict[str, Any]]] = []

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = console(pilot)
        assert status(screen).startswith(f"1,000 of {ROWS:,} rows · 13 columns")
        assert screen.result is not None and screen.result["rows"] == expected[:1000]
        await turn(pilot, "right_square_bracket")
        assert status(screen).startswith(f"rows 1,001–2,000 of {ROWS:,} · 13 columns")
        assert screen.result["rows"] == expected[1000:2000]
        assert screen.grid.row_count == 1_000 and screen.grid.cursor_row == 0
        screen.grid.move_cursor(row=999)
        await turn(pilot, "pagedown")  # past the last row: the next page
        assert status(screen).startswith(f"rows 2,001–{ROWS:,} of {ROWS:,}")
        assert screen.result["rows"] == expected[2000:]
        await pilot.press("right_square_bracket")  # the last page: nothing to fetch
        await pilot.pause(0.2)
        assert screen.result["offset"] == 2000
        await turn(pilot, "left_square_bracket")
        assert screen.result["rows"] == expected[1000:2000]
        assert screen.grid.cursor_row == 999  # going back lands on the page's last row
        assert "rows 1,001–2,000" in screen_text(pilot.app)

    drive(ws, scenario, "select * from samples", calls=calls)
    pages = [args for op, args in calls if op == "sql_page"]
    assert [p["offset"] for p in pages] == [0, 1000, 2000, 1000] and {p["limit"] for p in pages} == {1000}
    # the count never fetches the rows: one row and the total, from sql_total
    assert [args["max_rows"] for op, args in calls if op in ("sql", "sql_total")] == [1]


def test_sort_orders_every_row_not_the_page(db: tuple[Workspace, Path]) -> None:
    ws, copy = db
    query = "select item_id, verdict, tokens from samples"
    rows = duckdb_rows(copy, query)
    # ties broken by every column left to right, NULL last (verdict is NULL in one row)
    ascending = sorted(rows, key=lambda r: (r[2], r[0], r[1] is None, r[1] or 0, r[2]))
    descending = sorted(rows, key=lambda r: (-r[2], r[0], r[1] is None, r[1] or 0, r[2]))

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = console(pilot)
        screen.grid.move_cursor(column=2)
        await turn(pilot, "s")
        assert screen.result is not None and screen.result["rows"] == ascending[:1000]
        assert [str(c.label) for c in screen.grid.columns.values()] == ["item_id", "verdict", "tokens ▲"]
        assert "sorted by tokens ascending" in status(screen) and screen.grid.cursor_column == 2
        await turn(pilot, "s")
        assert screen.result["rows"] == descending[:1000]
        assert str(list(screen.grid.columns.values())[2].label) == "tokens ▼"
        await turn(pilot, "right_square_bracket")  # page 2 of the sorted whole
        assert screen.result["rows"] == descending[1000:2000]
        assert status(screen).startswith(f"rows 1,001–2,000 of {ROWS:,}") and "descending" in status(screen)
        assert sql_module.sorted_query(query + ";", screen.sort) == (
            f"SELECT * FROM ({query}\n) AS q ORDER BY #3 DESC NULLS LAST")  # what ^s exports
        await turn(pilot, "s")  # a third time: the query's own order
        assert screen.result["rows"] == rows[:1000] and "sorted" not in status(screen)

    drive(ws, scenario, query, size=(120, 30))  # the whole status line: narrower, it drops whole parts


def test_sql_page_checks_like_sql_and_keeps_duplicate_names(tmp_path: Path) -> None:
    """The refusals are `sql`'s own words; a query's names survive the wrapping; EXPLAIN is one page."""
    store = Store.open(tmp_path / "t.duckdb")
    try:
        for refused in ("DELETE FROM runs", "with x as (delete from runs returning *) select * from x",
                        "SELECT 1; SELECT 2"):
            with pytest.raises(ReadOnlyQueryError) as page_error:
                sql_page(store, PageRequest(refused))
            with pytest.raises(ReadOnlyQueryError) as sql_error:
                store.query_readonly(refused)
            assert str(page_error.value) == str(sql_error.value)
        both = sql_page(store, PageRequest("select a.i, b.i from range(3) a(i), range(2) b(i) -- note;", 2, 2,
                                           sort=1, descending=True))
        assert both["columns"] == ["i", "i"] and both["rows"] == [[2, 1], [0, 0]] and both["truncated"]
        quoted = sql_page(store, PageRequest('select 2 as "a""b", 1 as c union all select 1, 1', sort=0))
        assert quoted["columns"] == ['a"b', "c"] and quoted["rows"] == [[1, 1], [2, 1]]
        explain = sql_page(store, PageRequest("EXPLAIN SELECT 1"))
        assert not explain["pageable"] and explain["rows"]
        with pytest.raises(duckdb.Error, match="no column 4"):
            sql_page(store, PageRequest("SELECT 1 AS a", sort=3))
        with pytest.raises(ValueError, match="limit"):
            PageRequest.parse({"query": "SELECT 1", "limit": 10**6})
    finally:
        store.close()


def test_sql_page_op_refuses_in_sqls_words(db: tuple[Workspace, Path]) -> None:
    ws, _copy = db
    with Client(ws) as client:
        for query in ("DELETE FROM runs", "SELECT nope FROM runs"):
            with pytest.raises(RequestFailed) as by_sql:
                client.request("sql", query=query)
            with pytest.raises(RequestFailed) as by_page:
                client.request("sql_page", query=query)
            assert str(by_page.value) == str(by_sql.value)
        with pytest.raises(RequestFailed, match="limit must be a whole number from 1 to 10,000"):
            client.request("sql_page", query="SELECT 1", limit=0)
        page = client.request("sql_page", query="select item_id from samples", offset=2_500, limit=5)
        assert page["rows"] == [["special"]] and not page["truncated"]


# -- the cell viewer -------------------------------------------------------------------------------------
async def open_cell(pilot: Pilot[Any], column: int) -> CellViewer:
    screen = console(pilot)
    screen.grid.focus()
    screen.grid.move_cursor(row=0, column=column)
    await pilot.press("enter")
    return await until(pilot, lambda: isinstance(pilot.app.screen, CellViewer) and pilot.app.screen)


def test_cell_viewer_shows_controls_and_copies_the_raw_value(db: tuple[Workspace, Path]) -> None:
    ws, _copy = db

    async def scenario(pilot: Pilot[Any]) -> None:
        viewer = await open_cell(pilot, 0)
        shown = str(viewer.query_one("#cell-value", Static).render())
        assert shown == "before␛[2J␍after␇ and a tab\there\nsecond line"  # every control shown
        assert "\x1b" not in screen_text(pilot.app) and "before␛[2J␍after␇" in screen_text(pilot.app)
        await pilot.press("y")
        assert pilot.app.clipboard == SPECIAL  # the raw value, controls and all
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, SQLScreen))
        viewer = await open_cell(pilot, 1)
        assert str(viewer.query_one("#cell-value", Static).render()) == json.dumps(json.loads(EXTRA), indent=2)
        await pilot.press("ctrl+c")
        assert pilot.app.clipboard == EXTRA
        await pilot.press("escape")
        viewer = await open_cell(pilot, 2)  # a list
        assert str(viewer.query_one("#cell-value", Static).render()) == '[\n  "truncated"\n]'

    drive(ws, scenario, "select completion, extra, flags from samples where item_id = 'special'")
    assert pretty(None) == "NULL" and pretty("[not json") == "[not json" and pretty(3.25) == "3.25"


def test_cell_viewer_snapshot(db: tuple[Workspace, Path], snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, _copy = db
    monkeypatch.setattr(sql_module, "elapsed_label", lambda seconds: "")
    query = "select completion, extra from samples where item_id = 'special'"

    async def ready(pilot: Pilot[Any]) -> None:
        screen = await until(pilot, lambda: isinstance(pilot.app.screen, SQLScreen) and pilot.app.screen)
        await until(pilot, lambda: screen.runs >= 1 and screen.query_one(Tree).root.children)
        screen.query_one(TextArea).cursor_blink = False
        screen.action_toggle_schema()  # the tables behind the viewer change with every migration
        await open_cell(pilot, 1)

    app = HostApp(ws, lambda source: SQLScreen(source, query))
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle(ready))


@pytest.mark.parametrize("size", [(60, 18), (160, 48)], ids=["60x18", "160x48"])
def test_paging_and_viewer_fit_small_and_large(db: tuple[Workspace, Path], size: tuple[int, int]) -> None:
    ws, _copy = db

    async def scenario(pilot: Pilot[Any]) -> None:
        await turn(pilot, "right_square_bracket")
        assert f"rows 1,001–2,000 of {ROWS:,}" in screen_text(pilot.app)
        await open_cell(pilot, 0)
        text = screen_text(pilot.app)
        assert "y copy" in text and "esc close" in text and "completion 1000" in text

    drive(ws, scenario, "select completion from samples", size=size)


# -- history ---------------------------------------------------------------------------------------------
def test_history_survives_a_restart_with_up_and_down(db: tuple[Workspace, Path]) -> None:
    ws, _copy = db
    path = ws.home / "sql_history"
    path.unlink(missing_ok=True)

    async def first(pilot: Pilot[Any]) -> None:
        for query in ("SELECT 1 AS a", "SELECT 2 AS b\nFROM range(1)", "SELECT 1 AS a"):
            await run(pilot, query)
        assert console(pilot).history == ["SELECT 2 AS b\nFROM range(1)", "SELECT 1 AS a"]  # once each
        await until(pilot, lambda: len(path.read_text().splitlines()) == 3)

    async def second(pilot: Pilot[Any]) -> None:
        screen = console(pilot)
        await until(pilot, lambda: screen.history)
        editor = screen.editor
        editor.text = "SELECT 3 -- a draft"
        editor.focus()
        editor.move_cursor((0, 5))
        await pilot.press("up")  # on the first line: the newest query
        assert editor.text == "SELECT 1 AS a"
        await pilot.press("up")  # the cursor stays on the first line, so up goes on back
        assert editor.text == "SELECT 2 AS b\nFROM range(1)" and editor.cursor_location[0] == 0
        await pilot.press("down")  # inside a two-line query, down moves the cursor
        assert editor.text == "SELECT 2 AS b\nFROM range(1)" and editor.cursor_location[0] == 1
        await pilot.press("down")  # on the last line: newer
        assert editor.text == "SELECT 1 AS a"
        await pilot.press("down")
        assert editor.text == "SELECT 3 -- a draft"  # past the newest: the draft again

    drive(ws, first)
    assert load_history(path) == ["SELECT 2 AS b\nFROM range(1)", "SELECT 1 AS a"]
    drive(ws, second)


# -- completion -------------------------------------------------------------------------------------------
def test_completion_offers_tables_and_columns(db: tuple[Workspace, Path]) -> None:
    ws, _copy = db

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = console(pilot)
        editor = screen.editor
        assert isinstance(editor, SQLEditor)
        await until(pilot, lambda: editor.catalog.tables)
        editor.text = ""
        editor.focus()
        await pilot.press("s", "e", "l", "e", "c", "t", "space", "*", "space", "f", "r", "o", "m", "space",
                          "s", "a", "m")
        names = await until(pilot, editor.completion_names)
        assert names[:2] == ["sample_rows", "samples"]
        assert screen.query_one("Completions").region.y == editor.cursor_screen_offset.y + 1  # under the cursor
        await pilot.press("down", "tab")
        assert editor.text == "select * from samples" and not editor.completing
        editor.text = "select  from samples s"
        editor.move_cursor((0, 7))
        await pilot.press("s", ".", "t", "o")
        assert await until(pilot, editor.completion_names) == ["tokens"]  # the alias's columns
        await pilot.press("tab")
        assert editor.text == "select s.tokens from samples s"
        await pilot.press("space", "v", "e", "r")
        assert "verdict" in await until(pilot, editor.completion_names)  # a column of a table the query reads
        await pilot.press("escape")  # closes the list, stays in the editor
        assert not editor.completing and editor.has_focus
        await pilot.press("escape")
        assert not editor.has_focus

    drive(ws, scenario)


def test_enter_on_the_grid_never_opens_a_viewer_without_rows(db: tuple[Workspace, Path]) -> None:
    ws, _copy = db

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = console(pilot)
        screen.query_one(DataTable).focus()
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(pilot.app.screen, SQLScreen) and status(screen).startswith("0 rows")

    drive(ws, scenario, "select * from samples where false")
