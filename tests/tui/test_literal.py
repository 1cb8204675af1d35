"""Data is shown as it is, never as Rich markup or emoji codes: a run, its log, its samples and
its error all carry `[red]x[/red]:fire:` and every widget that shows them must print it literally
(Textual would otherwise show a red `x` and a flame)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.pilot import Pilot
from textual.widgets import Label, OptionList, Select
from textual.widgets.option_list import Option

from engine.experiments.plan import make_run
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import Files, Recorded, add_run, at
from tui.screens.placeholder import PlaceholderScreen
from tui.screens.run_detail import RunDetailScreen
from tui.screentext import screen_text
from tui.widgets.confirm import Confirm
from tui.widgets.literal import LiteralNotify, LiteralTable, literal_options

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

    import asyncio

    asyncio.run(main())
