"""Data is shown as it is. Never as Rich markup or emoji codes: a run, its log, its samples and
its error all carry `[red]x[/red]:fire:` and every widget that shows them must print it literally
(Textual would otherwise show a red `x` and a flame). Never obeyed by the terminal: EVIL (an ESC
sequence that clears the screen, CR, BS, BEL, NUL, OSC 52 writing the clipboard, an OSC 8 link,
a C1 control) must reach no widget's output raw, and show as control pictures (`␛[2J`)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Label, Log, OptionList, Select, Static
from textual.widgets.option_list import Option

from engine.experiments.plan import make_run
from storage import Store
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import Files, Recorded, add_run, at
from tui.screens.analytics import TIDetailScreen, TIScreen
from tui.screens.gpus import render as render_gpus
from tui.screens.placeholder import PlaceholderScreen
from tui.screens.run_detail import RunDetailScreen, clean_log
from tui.screens.sql import SQLScreen
from tui.screentext import screen_text
from tui.widgets.charts import Bar, ChartView, bars_text
from tui.widgets.confirm import Confirm
from tui.widgets.literal import LiteralNotify, LiteralTable, literal, literal_options
from tui.widgets.runs_table import RunsTable

MARK = "[red]x[/red]:fire:"


def add_marked_run(rec: Recorded) -> str:
    """A failed eval run whose name, error, log, samples and benchmark all carry MARK."""
    plan = make_run("eval", f"v{MARK}", f"e{MARK}", {"suite": "lab"}, [])
    row = {"state": "failed", "created_at": at(30), "started_at": at(29), "finished_at": at(28),
           "error": f"ValueError: bad {MARK}", "attempt": 1}

    def write(f: Files) -> None:
        f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
        f.event(1, "log", message=f"loading {MARK}")
        f.sample(benchmark=f"b{MARK}", group="math", item_id=f"i{MARK}", sample_idx=0, prompt=f"p{MARK}",
                 completion=f"c{MARK}", extracted=None, verdict=0.0, tokens=3, finish_reason="stop", flags=[],
                 gold=f"g{MARK}")
        f.event(2, "failed", error=f"ValueError: bad {MARK}")
        f.out(f"stdout {MARK}\n")

    return add_run(rec.ws, plan, row, write, experiment=None)


def test_run_name_error_log_and_samples_are_literal(recorded: Recorded) -> None:
    run_id = add_marked_run(recorded)

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        app.open_run(run_id)
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="detail")
        screen = app.screen
        await until(pilot, lambda: f"e{MARK}/v{MARK}" in screen_text(app), what="name in the head")
        assert f"ValueError: bad {MARK}" in screen_text(app)
        await pilot.press("l")
        await until(pilot, lambda: f"stdout {MARK}" in screen_text(app), what="log line")
        await pilot.press("s")
        await until(pilot, lambda: f"p{MARK}" in screen_text(app), what="sample prompt")
        assert f"c{MARK}" in screen_text(app) and f"g{MARK}" in screen_text(app)
        table = screen.query_one("#sample-table", LiteralTable)
        assert f"b{MARK}"[:12] in "".join(getattr(c, "plain", "") for c in table.get_row_at(0))
        await pilot.press("slash")
        box = screen.query_one("#search")
        box.value = MARK
        await pilot.press("enter")
        await until(pilot, lambda: f"match “{MARK}”" in screen_text(app), what="search echoed")
        await pilot.press("escape", "escape", "ctrl+p")  # the palette lists runs by name
        await pilot.press(*run_id[:9])
        await until(pilot, lambda: f"e{MARK}/v{MARK}" in screen_text(app), what="palette entry")
        await pilot.press("escape")

    run_app(make_app(recorded.ws), scenario, size=(140, 40))


class Widgets(LiteralNotify):
    """Each widget that shows data, given MARK."""

    def compose(self) -> ComposeResult:
        table = LiteralTable(id="table")
        yield table
        yield Select(literal_options([(f"s{MARK}", "v")]), value="v", id="select")
        yield OptionList(Option(_text(f"o{MARK}")), id="options")
        yield Label(f"l{MARK}", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(LiteralTable)
        table.add_columns(f"h{MARK}", "second")
        table.add_row(f"c{MARK}", 1.5, key="r")
        table.add_row("plain", "y", key="s")
        table.update_cell("s", table.ordered_columns[1].key, f"u{MARK}")


def _text(value: str) -> Any:
    from rich.text import Text

    return Text(value)


def test_each_data_widget_prints_markup_literally() -> None:
    async def main() -> None:
        app = Widgets()
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await pilot.pause()
            text = screen_text(app)
            for shown in (f"h{MARK}", f"c{MARK}", f"u{MARK}", f"s{MARK}", f"o{MARK}", f"l{MARK}"):
                assert shown in text, (shown, text)
            app.notify(f"cannot read {MARK}")
            await pilot.pause(0.2)
            assert f"cannot read {MARK}" in screen_text(app)
            app.push_screen(Confirm(f"Cancel run {MARK}?"))
            await pilot.pause()
            assert f"Cancel run {MARK}?" in screen_text(app)
            app.pop_screen()
            app.push_screen(PlaceholderScreen("SQL", "tui.screens.sql", f"ImportError: {MARK}"))
            await pilot.pause()
            assert f"ImportError: {MARK}" in screen_text(app)

    asyncio.run(main())


# -- control characters: shown, never obeyed by the terminal -----------------------------------------
EVIL = ("\x1b[2J\r\x08\x07\x00"  # clear the screen, carriage return, backspace, bell, NUL
        "\x1b]52;c;aGk=\x07"  # OSC 52: write "hi" to the user's clipboard
        "\x1b]8;;http://x.example/\x1b\\l\x1b]8;;\x1b\\"  # OSC 8: a hyperlink
        "\x9b")  # C1 CSI
SHOWN = "␛[2J␍␈␇␀␛]52;c;aGk=␇␛]8;;http://x.example/␛\\l␛]8;;␛\\\\x9b"
"""EVIL as every widget must show it (written out here, not computed by the code under test)."""
RAW = re.compile("[\x00-\x1f\x7f-\x9f]")
NO_CR, SHOWN_NO_CR = EVIL.replace("\r", ""), SHOWN.replace("␍", "")
"""In a log a CR redraws its line (a progress bar shows its last state): the rest of EVIL is shown."""


def raw_controls(app: App[Any]) -> list[str]:
    """Text of the screen's rendered segments (what the terminal is sent) that holds a control
    character; a multi-line widget's lines are separate strips, so no newline is legitimate here."""
    return [seg.text for strip in app.screen._compositor.render_strips() for seg in strip
            if not seg.control and RAW.search(seg.text)]


@pytest.fixture
def sources_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app without its last guard (NoControls drops controls a widget still renders): each
    widget must show data's controls visibly on its own."""
    monkeypatch.setattr(LiteralNotify, "get_line_filters", App.get_line_filters)


def add_evil_run(rec: Recorded) -> str:
    """A failed eval run whose name, error, coloured log and sample carry EVIL."""
    plan = make_run("eval", f"v{EVIL}", f"e{EVIL}", {"suite": "lab"}, [])
    row = {"state": "failed", "created_at": at(1), "started_at": at(1), "finished_at": at(0.5),
           "error": f"ValueError: bad {EVIL}", "attempt": 1}

    def write(f: Files) -> None:
        f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
        f.sample(benchmark=f"b{EVIL}", group="math", item_id=f"i{EVIL}", sample_idx=0, prompt=f"p{EVIL}\nline 2",
                 completion=f"c{EVIL}", extracted=None, verdict=0.0, tokens=3, finish_reason="stop", flags=[],
                 gold=f"g{EVIL}")
        f.event(2, "failed", error=f"ValueError: bad {EVIL}")
        f.out(f"\x1b[1;32mgreen\x1b[0m out {NO_CR}\nbar 10%\rbar 20%\n")

    return add_run(rec.ws, plan, row, write, experiment=None)


def assert_clean(app: App[Any], *shown: str) -> None:
    """Each of `shown` is on the screen and no control character reaches the terminal."""
    text = screen_text(app)
    for s in shown:
        assert s in text, (s, text)
    assert not raw_controls(app), raw_controls(app)


def test_controls_in_a_run_are_shown_not_obeyed(recorded: Recorded, sources_only: None) -> None:
    """Runs table, selected run, run head, log, samples table and sample, palette."""
    run_id = add_evil_run(recorded)

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: run_id in table.shown, what="run listed")
        table.select(run_id)
        await pilot.pause()
        cells = [c.plain.strip() for c in table.shown[run_id]]
        assert any(c.startswith("e␛[2J␍␈") for c in cells) and any(c.startswith("v␛[2J␍␈") for c in cells), cells
        assert_clean(app, f"ValueError: bad {SHOWN}")  # the selected run's error line
        app.open_run(run_id)
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="detail")
        await until(pilot, lambda: f"e{SHOWN}/v" in screen_text(app), what="name in the head")
        assert_clean(app, f"ValueError: bad {SHOWN}")
        await pilot.press("l")
        await until(pilot, lambda: "green out" in screen_text(app), what="log line")
        assert_clean(app, f"green out {SHOWN_NO_CR}", "bar 20%")  # colours dropped, the rest visible
        assert "bar 10%" not in screen_text(app)
        assert "␛[1;32m" not in screen_text(app)
        await pilot.press("s")
        await until(pilot, lambda: f"p{SHOWN}" in screen_text(app), what="sample prompt")
        assert_clean(app, f"p{SHOWN}", "line 2", f"c{SHOWN}", f"g{SHOWN}", f"b{SHOWN}"[:12])
        await pilot.press("escape", "ctrl+p")  # the palette lists runs by name
        await pilot.press(*run_id[:9])
        await until(pilot, lambda: "(e␛[2J␍" in screen_text(app), what="palette entry")
        assert_clean(app)
        await pilot.press("escape")

    run_app(make_app(recorded.ws), scenario, size=(150, 40))


async def sql(pilot: Pilot[Any], query: str) -> SQLScreen:
    """Run `query` in the SQL console (F5) and wait for the answer."""
    screen = pilot.app.screen
    assert isinstance(screen, SQLScreen)
    before = screen.runs
    screen.editor.text = query
    screen.editor.focus()
    await pilot.press("f5")
    await until(pilot, lambda: screen.runs > before, what="query answered")
    return screen


def test_controls_in_sql_cells_and_errors_are_shown_not_obeyed(recorded: Recorded, sources_only: None) -> None:
    """A cell holding `ESC[2J` blanked the console's tabs, editor and status; a DuckDB error
    quotes the value it could not convert, controls and all."""
    add_evil_run(recorded)
    where = "FROM runs WHERE name LIKE 'v%' AND kind = 'eval' AND error LIKE '%bad%'"

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, SQLScreen) and app.screen.runs >= 1, what="console")
        screen = await sql(pilot, f"SELECT experiment, error {where}")
        # DataTable widens its columns on its next idle: wait for that frame (under load the first lags).
        await until(pilot, lambda: f"e{SHOWN}" in screen_text(app), what="cell whole")
        assert_clean(app, f"e{SHOWN}", f"ValueError: bad {SHOWN}"[:40], "1 Runs", "1 row · 2 columns")
        assert screen.editor.text.startswith("SELECT experiment")
        await sql(pilot, f"SELECT CAST(experiment AS INTEGER) {where}")
        assert_clean(app, "Conversion Error", "'e␛[2J", "␈␇\\0␛]52;c;aGk=␇␛]8;;http", "1 Runs")

    run_app(make_app(recorded.ws), scenario, size=(150, 40))


def test_controls_in_imported_names_are_shown_not_obeyed(recorded: Recorded, sources_only: None) -> None:
    """TI table, its drill-down, the experiments list and the toast that names an experiment."""
    store = Store.open(recorded.ws.db)
    try:
        store.ensure_experiment(f"x{EVIL}")
        models = [{"model": "base", "base_model": None, "method": "base"},
                  {"model": f"m{EVIL}", "base_model": "base", "method": f"t{EVIL}"}]
        scores = [{"model": m, "benchmark": f"{b}{EVIL}", "group": g, "value": v + (9 if m != "base" else 0)}
                  for m in ("base", f"m{EVIL}") for b, g, v in (("k", "math", 40.0), ("o", "other", 50.0),
                                                               ("n", "non", 60.0))]
        store.replace_imports("aaa-lab", "test", models, scores, True)
    finally:
        store.close()

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("3")
        screen = await until(pilot, lambda: isinstance(app.screen, TIScreen) and app.screen.loaded and app.screen)
        screen.query_one("#ti-experiment", Select).value = "aaa-lab"
        await until(pilot, lambda: f"m{SHOWN}" in screen_text(app), what="model row")
        assert_clean(app, f"t{SHOWN}"[:6])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TIDetailScreen), what="drill-down")
        await pilot.pause()
        assert_clean(app, f"m{SHOWN}", f"k{SHOWN}"[:8])
        await pilot.press("escape", "2")
        await until(pilot, lambda: "x␛[2J␍␈␇␀" in screen_text(app), what="experiment listed")
        options = app.screen.query_one("#exp-list", OptionList)
        options.highlighted = next(i for i in range(options.option_count)
                                   if "x␛[2J" in str(options.get_option_at_index(i).prompt))
        await pilot.press("enter")
        await until(pilot, lambda: "holds imported results" in screen_text(app), what="toast")
        assert_clean(app, f"x{SHOWN}"[:12])
        await app.source.close()

    async def main() -> None:
        async with make_app(recorded.ws).run_test(size=(150, 40), notifications=True) as pilot:
            await scenario(pilot)

    asyncio.run(main())


GPU_INFO = {"source": "nvml", "gpus": [{"index": 0, "name": f"A100{EVIL}", "detected": True, "util": 50,
                                        "mem_used": 1 << 30, "mem_total": 8 << 30, "temperature": 60,
                                        "runs": [{"id": "r1", "experiment": f"e{EVIL}", "name": "n"}]}]}
SLURM_INFO = {"source": "slurm", "error": f"sinfo: {EVIL}",
              "totals": {"nodes": 1, "gpus": 4, "gpus_used": 0, "gpus_free": 4},
              "partitions": [{"name": f"p{EVIL}", "avail": "up", "nodes": 1, "states": {"idle": 1},
                              "gpus_free": 4, "gpus": 4, "gpus_used": 0}],
              "nodes": [{"name": f"n{EVIL}", "partitions": ["p"], "state": "idle", "gpus_used": 0, "gpus": 4,
                         "gres": f"gpu{EVIL}"}],
              "jobs": [{"run": "r1", "job_id": "7", "state": "queued", "slurm_state": "PENDING", "node": None,
                        "reason": f"why{EVIL}", "experiment": "e", "name": f"j{EVIL}"}]}


class EvilWidgets(LiteralNotify):
    """Each data widget given EVIL: table, select, option list, GPU and Slurm panels, bar chart."""

    def compose(self) -> ComposeResult:
        yield LiteralTable(id="table")
        yield Select(literal_options([(f"s{EVIL}", "v")]), value="v", id="select")
        yield OptionList(literal(f"o{EVIL}"), id="options")
        for info in (GPU_INFO, SLURM_INFO):
            head, body = render_gpus(info, 150)
            yield Static(head)
            yield Static(body)
        chart = ChartView("", id="chart")
        chart.show(lambda width, _h: bars_text([Bar(f"q{EVIL}", 1.0, "1")], width), "")
        yield chart

    def on_mount(self) -> None:
        table = self.query_one(LiteralTable)
        table.add_columns(f"h{EVIL}", "second")
        table.add_row(f"c{EVIL}", 1.5, key="r")
        table.add_row("plain", "y", key="s")
        table.update_cell("s", table.ordered_columns[1].key, f"u{EVIL}")


def test_each_data_widget_shows_controls_visibly(sources_only: None) -> None:
    async def main() -> None:
        app = EvilWidgets()
        async with app.run_test(size=(150, 50), notifications=True) as pilot:
            await pilot.pause()
            assert_clean(app, *(f"{c}{SHOWN}"[:12] for c in "hcusoq"), f"A100{SHOWN}"[:20],
                         f"r1 e{SHOWN}"[:30], f"sinfo: {SHOWN}", f"p{SHOWN}"[:8], f"n{SHOWN}"[:8], f"why{SHOWN}"[:8])
            app.notify(f"cannot read {EVIL}", title=f"t{EVIL}")
            await pilot.pause(0.2)
            assert_clean(app, "▌ cannot read", f"▌ {SHOWN}", f"▌ t{SHOWN}")  # the toast wraps its message
            app.push_screen(Confirm(f"Cancel{EVIL}?"))  # no space: a wrapped line keeps it whole
            await pilot.pause()
            assert_clean(app, "Cancel␛[2J␍␈␇␀")
            app.pop_screen()
            app.push_screen(PlaceholderScreen("SQL", "tui.screens.sql", f"ImportError:{EVIL}"))
            await pilot.pause()
            assert_clean(app, "ImportError:␛[2J␍␈␇␀")

    asyncio.run(main())


class Raw(LiteralNotify):
    """Widgets given EVIL as it is, with no `visible` on the way: the app's last guard must hold."""

    def compose(self) -> ComposeResult:
        yield Static(_text(f"static {EVIL}"))
        yield Log(id="log")

    def on_mount(self) -> None:
        self.query_one(Log).write_line(f"log {EVIL}")


def test_no_control_reaches_the_terminal_even_from_a_widget_that_forgets() -> None:
    async def main() -> None:
        for app, leaks in ((Raw(), False), (type("Bare", (App,), {"compose": Raw.compose,
                                                                  "on_mount": Raw.on_mount})(), True)):
            async with app.run_test(size=(100, 10)) as pilot:
                await pilot.pause()
                assert "static" in screen_text(app) and "log" in screen_text(app)
                assert bool(raw_controls(app)) is leaks  # a bare Textual app sends them on

    asyncio.run(main())


def test_visible_maps_each_control_to_a_picture() -> None:
    from tui.format import fit, last_line, visible

    assert visible(EVIL) == SHOWN and visible(SHOWN) == SHOWN  # idempotent
    assert visible("a\nb\tc\x7f\x85") == "a␊b␉c␡\\x85"  # one line stays one line
    assert visible("a\r\nb\tc\rd", lines=True) == "a\nb\tc␍d"  # a multi-line view keeps its lines
    assert visible("plain é ü 中") == "plain é ü 中"
    assert fit(f"x{EVIL}", 6) == "x␛[2J…"
    assert last_line(f"Traceback\n  boom\nValueError: a\rb{EVIL}\n") == f"ValueError: a␍b{SHOWN}"


def test_logs_drop_colours_and_show_every_other_control() -> None:
    assert clean_log("\x1b[1;32mok\x1b[0m \x1b[38;5;196mred\x1b[m\n") == "ok red\n"
    assert clean_log(f"out {NO_CR}\n") == f"out {SHOWN_NO_CR}\n"
    assert clean_log(" 10%|#\r 20%|##\r\ndone\x1b[2K\n") == " 20%|##\ndone␛[2K\n"  # a redrawn bar: its last state
