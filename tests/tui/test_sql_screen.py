"""The SQL console against a real daemon: capped grid with the total, inline errors, history,
the schema browser, CSV and Parquet export; and engine/daemon/tui_ops.py's counted query."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, TextArea, Tree

import tui.screens.sql as sql_module
from engine.client.connection import Client, RequestFailed
from engine.daemon.tui_ops import count_query, export_query, sql_with_total
from engine.workspace import Workspace
from storage.store import ReadOnlyQueryError, Store
from tests.tui.screen_support import HostApp, import_scores, settle, until, workspace, write_scores_csv
from tui.screens.export import ExportScreen
from tui.screens.sql import SQLScreen, load_history, write_parquet
from tui.screentext import screen_text


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A daemon with imported scores (18 rows in `model_scores`)."""
    tmp = tmp_path_factory.mktemp("sql")
    with workspace(tmp / "home") as ws:
        ws.ensure()
        with Client(ws) as client:
            import_scores(client, write_scores_csv(tmp / "scores.csv"))
        yield ws


def drive(ws: Workspace, scenario: Callable[[Pilot[Any]], Awaitable[None]], query: str = "SELECT 1 AS one") -> None:
    async def main() -> None:
        async with HostApp(ws, lambda source: SQLScreen(source, query)).run_test(size=(80, 24)) as pilot:
            screen = await until(pilot, lambda: isinstance(pilot.app.screen, SQLScreen) and pilot.app.screen)
            await until(pilot, lambda: screen.runs >= 1)  # the initial query
            await scenario(pilot)
    asyncio.run(main())


def console(pilot: Pilot[Any]) -> SQLScreen:
    assert isinstance(pilot.app.screen, SQLScreen)
    return pilot.app.screen


async def run(pilot: Pilot[Any], query: str, key: str = "f5") -> SQLScreen:
    """Type `query` into the editor and run it with `key`; wait for the answer."""
    screen = console(pilot)
    before = screen.runs
    screen.editor.text = query
    screen.editor.focus()
    await pilot.press(key)
    await until(pilot, lambda: screen.runs > before)
    return screen


def status(screen: SQLScreen) -> str:
    return str(screen.query_one("#sql-status").render())


def daemon_error(ws: Workspace, query: str) -> str:
    """The one-line reason the daemon gives `tix sql` for this query."""
    with Client(ws) as client, pytest.raises(RequestFailed) as failed:
        client.request("sql", query=query)
    return str(failed.value)


def test_grid_is_capped_with_the_total_and_errors_show_inline(db: Workspace) -> None:
    bad, refused = "SELECT nope FROM runs", "DELETE FROM runs"

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await run(pilot, "SELECT i, i * 2 AS twice FROM range(2500) t(i);", key="ctrl+enter")
        grid = screen.query_one("#sql-grid", DataTable)
        assert grid.row_count == 1_000 and status(screen).startswith("1,000 of 2,500 rows · 2 columns")
        assert [c.label.plain for c in grid.columns.values()] == ["i", "twice"]
        await run(pilot, "SELECT model, score FROM model_scores WHERE benchmark = 'arith' ORDER BY model")
        assert [[c.plain for c in grid.get_row_at(i)] for i in range(grid.row_count)] == [
            ["base", "40.0"], ["rl", "40.5"], ["sft", "55.0"]]
        assert status(screen).startswith("3 rows · 2 columns")
        await run(pilot, bad)
        error = screen.query_one("#sql-error")
        assert screen.error == messages[bad] and str(error.render()) == messages[bad] and error.display
        assert grid.row_count == 3  # the last good result stays
        await run(pilot, refused)
        assert str(error.render()) == messages[refused] and "read-only" in messages[refused]
        await run(pilot, nested)  # a write inside a query: the same words as `tix sql`
        assert str(error.render()) == messages[nested] and "holds DELETE" in messages[nested]
        await run(pilot, "SELECT 42 AS answer")
        assert not error.display and screen.error is None

    nested = "with x as (delete from runs returning *) select * from x"
    messages = {q: daemon_error(db, q) for q in (bad, refused, nested)}
    # DuckDB's message quotes the user's query (issue 25.11), not the EXPLAIN (FORMAT JSON) the
    # read-only check plans it with
    assert "EXPLAIN" not in messages[bad] and "LINE 1: SELECT nope FROM runs" in messages[bad]
    drive(db, scenario)


def test_history_walks_and_persists(db: Workspace) -> None:
    path = db.home / "sql_history"
    path.unlink(missing_ok=True)

    async def first(pilot: Pilot[Any]) -> None:
        screen = await run(pilot, "SELECT 1 AS a")
        await run(pilot, "SELECT 2 AS b")
        screen.editor.text = "SELECT 3 -- a draft"
        await pilot.press("alt+up")
        assert screen.editor.text == "SELECT 2 AS b"
        await pilot.press("alt+up", "alt+up")
        assert screen.editor.text == "SELECT 1 AS a"  # the oldest stays
        await pilot.press("alt+down", "alt+down")
        assert screen.editor.text == "SELECT 3 -- a draft"  # past the newest: the draft again
        await pilot.press("ctrl+a", "4")  # select all, then typing replaces the query
        assert screen.editor.text == "4"
        assert "esc leave editor" in screen_text(pilot.app)  # the footer says how to get out
        await pilot.press("escape")  # out of the editor (the app's number keys then switch screens)
        assert not screen.editor.has_focus
        await until(pilot, lambda: load_history(path)[-2:] == ["SELECT 1 AS a", "SELECT 2 AS b"])

    async def second(pilot: Pilot[Any]) -> None:
        screen = console(pilot)
        await until(pilot, lambda: screen.history)
        await pilot.press("alt+up")
        assert screen.editor.text == "SELECT 2 AS b"

    drive(db, first)
    assert [json.loads(line) for line in path.read_text().splitlines()] == ["SELECT 1 AS a", "SELECT 2 AS b"]
    path.write_text("".join(json.dumps(f"SELECT {i}") + "\n" for i in range(600)) + "not json\n")
    assert load_history(path) == [f"SELECT {i}" for i in range(100, 600)]  # the last 500, bad lines skipped
    path.write_text(json.dumps("SELECT 1 AS a") + "\n" + json.dumps("SELECT 2 AS b") + "\n")
    drive(db, second)


def test_schema_browser_lists_tables_and_writes_queries(db: Workspace) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        screen = console(pilot)
        tree = screen.query_one("#sql-schema", Tree)
        await until(pilot, lambda: len(tree.root.children) == 2)
        tables, views = tree.root.children
        assert str(tables.label).startswith("tables (") and str(views.label).startswith("views (")
        names = [str(n.label) for n in tables.children]
        assert {"runs", "scores", "experiments", "shift_results"} <= set(names)
        assert {"ti", "model_scores", "pca_points"} <= {str(n.label) for n in views.children}
        runs = tables.children[names.index("runs")]
        assert "id varchar" in [str(c.label) for c in runs.children]
        tree.focus()
        tree.move_cursor(runs)
        await pilot.press("enter")
        assert screen.editor.text == "SELECT * FROM runs LIMIT 100" and screen.editor.has_focus
        await pilot.press("f5")
        await until(pilot, lambda: status(screen).startswith("0 rows"))
        await pilot.press("f2")
        assert not tree.display
        await pilot.press("f2")
        assert tree.display

    drive(db, scenario)


async def export(pilot: Pilot[Any], option: int, path: Path) -> None:
    screen = console(pilot)
    await pilot.press("ctrl+s")
    dialog = await until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen) and pilot.app.screen)
    assert dialog.query_one(Input).value.startswith("tix-query-")
    dialog.query_one(OptionList).highlighted = option
    await pilot.press("enter")
    await until(pilot, lambda: dialog.query_one(Input).has_focus)
    dialog.query_one(Input).value = str(path)
    await pilot.press("enter")
    await until(pilot, lambda: screen.last_export == path)


def test_export_writes_the_whole_result(db: Workspace, tmp_path: Path) -> None:
    query = "SELECT i, i * 0.5 AS half, 'x' || i AS label, NULL::INTEGER AS nothing FROM range(1500) t(i) ORDER BY i"

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await run(pilot, query)
        assert screen.query_one("#sql-grid", DataTable).row_count == 1_000
        await export(pilot, 0, tmp_path / "out.csv")
        await export(pilot, 1, tmp_path / "out.parquet")

    drive(db, scenario)
    with open(tmp_path / "out.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["i", "half", "label", "nothing"] and len(rows) == 1_501
    assert rows[1500] == ["1499", "749.5", "x1499", ""]
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 1_500 and table.column_names == ["i", "half", "label", "nothing"]
    assert table.column("label").to_pylist()[0] == "x0" and str(table.schema.field("i").type) == "int64"
    # DECIMAL travels as JSON text; the daemon's COPY (`sql_export`) or the column types of
    # `sql_total` keep it a decimal
    half = table.column("half").to_pylist()[-1]
    typed = has_op(db, "sql_export") or has_op(db, "sql_total")
    assert half == (Decimal("749.5") if typed else "749.5")


def has_op(ws: Workspace, op: str) -> bool:
    """Whether the daemon knows `op` (engine/daemon/tui_ops.py's ops are registered by engine/daemon/server.py)."""
    with Client(ws) as client:
        try:
            client.request(op)
        except RequestFailed as exc:
            return not str(exc).startswith("unknown op")
    return True


def test_parquet_keeps_the_duckdb_types(tmp_path: Path) -> None:
    rows = [["1.50", "2025-03-14", "2025-03-14 12:00:00", [1, 2], 7], [None, None, None, None, None]]
    types = ["DECIMAL(4,2)", "DATE", "TIMESTAMP", "INTEGER[]", "INTEGER"]
    write_parquet(tmp_path / "t.parquet", ["d", "day", "at", "list", "n"], rows, types)
    table = pq.read_table(tmp_path / "t.parquet")
    assert [str(f.type) for f in table.schema] == ["decimal128(4, 2)", "date32[day]", "timestamp[us]",
                                                   "list<element: int64>", "int64"]
    assert table.to_pylist()[0] == {"d": Decimal("1.50"), "day": date(2025, 3, 14),
                                    "at": datetime(2025, 3, 14, 12), "list": [1, 2], "n": 7}
    mixed = tmp_path / "m.parquet"
    write_parquet(mixed, ["x"], [[1], ["a"], [{"k": 1}]])  # no types, mixed values: text
    assert pq.read_table(mixed).column("x").to_pylist() == ["1", "a", '{"k": 1}']


def test_sql_with_total_counts_only_truncated_results(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "t.duckdb")
    try:
        capped = sql_with_total(store, "SELECT * FROM range(10) -- trailing comment;", 3)
        assert (len(capped["rows"]), capped["truncated"], capped["total"]) == (3, True, 10)
        small = sql_with_total(store, "SELECT 1 AS a", 3)
        assert (small["rows"], small["truncated"], small["total"]) == ([[1]], False, 1)
        params = sql_with_total(store, "SELECT * FROM range(?)", 2, [5])
        assert params["total"] == 5
        explain = sql_with_total(store, "EXPLAIN SELECT 1", 100)
        assert explain["total"] == len(explain["rows"])
        with pytest.raises(ReadOnlyQueryError):
            sql_with_total(store, "DROP TABLE runs")
    finally:
        store.close()
    assert count_query("SELECT 1;  ") == "SELECT count(*) FROM (SELECT 1\n) AS counted"


def test_export_query_writes_typed_files_with_copy(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "t.duckdb")
    query = "SELECT i, i * 0.5 AS half, DATE '2025-03-14' AS day FROM range(?) t(i) -- comment;"
    try:
        done = export_query(store, query, str(tmp_path / "o's.parquet"), "parquet", [2500])
        assert done == {"rows": 2500, "path": str(tmp_path / "o's.parquet")}
        table = pq.read_table(tmp_path / "o's.parquet")
        assert table.num_rows == 2500 and str(table.schema.field("half").type).startswith("decimal")
        assert export_query(store, "SELECT 'a,b' AS s", str(tmp_path / "o.csv"), "csv")["rows"] == 1
        assert (tmp_path / "o.csv").read_text() == 's\n"a,b"\n'
        with pytest.raises(ReadOnlyQueryError):
            export_query(store, "DELETE FROM runs", str(tmp_path / "x.csv"), "csv")
        with pytest.raises(ValueError, match="absolute"):
            export_query(store, "SELECT 1", "x.csv", "csv")
        with pytest.raises(ValueError, match="format"):
            export_query(store, "SELECT 1", str(tmp_path / "x.json"), "json")
    finally:
        store.close()


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_sql_snapshot(db: Workspace, snap_compare: Any, size: tuple[int, int],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_module, "elapsed_label", lambda seconds: "")
    query = 'SELECT model, benchmark, "group", score FROM model_scores ORDER BY model, "group", benchmark'

    async def ready(pilot: Pilot[Any]) -> None:
        screen = await until(pilot, lambda: isinstance(pilot.app.screen, SQLScreen) and pilot.app.screen)
        await until(pilot, lambda: screen.runs >= 1 and screen.query_one(Tree).root.children)
        screen.query_one(TextArea).cursor_blink = False

    app = HostApp(db, lambda source: SQLScreen(source, query))
    assert snap_compare(app, terminal_size=size, run_before=settle(ready))


def test_numbers_are_readable_and_data_is_shown_literally(db: Workspace) -> None:
    """Floats to a column's decimals (at most 6 significant digits), never 17 digits of noise;
    column names and cells that look like Rich markup or emoji codes are shown as written."""

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await run(pilot, "SELECT * FROM (VALUES (36.0::DOUBLE, 8.999999999999::DOUBLE, "
                                  "57.99999999999999, 'a:fire:b'), (40.5, 0.1234567891, 1.5, '[red]x[/]')) "
                                  't(score, "[red]col[/]", ":fire:", text)')
        grid = screen.query_one("#sql-grid", DataTable)
        assert [c.label.plain for c in grid.columns.values()] == ["score", "[red]col[/]", ":fire:", "text"]
        rows = [[c.plain for c in grid.get_row_at(i)] for i in range(grid.row_count)]
        assert rows == [["36.0", "9.000000", "58.0", "a:fire:b"], ["40.5", "0.123457", "1.5", "[red]x[/]"]]
        shown = screen_text(pilot.app)
        assert "[red]col[/]" in shown and "a:fire:b" in shown and "🔥" not in shown

    drive(db, scenario)
