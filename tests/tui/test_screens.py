"""The app shell: the GPU panel (with the GPU-count override), help, the command palette, and the
placeholder a screen slot shows when its module cannot be loaded."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from textual.command import CommandPalette
from textual.pilot import Pilot

from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import Recorded, build_workspace
from tui import app as app_module
from tui.screens.gpus import GpusScreen, render
from tui.screens.help import HelpScreen
from tui.screens.placeholder import PlaceholderScreen
from tui.screens.runs import RunsScreen
from tui.screens.sql import SQLScreen
from tui.screentext import screen_text


def test_gpu_panel_shows_each_gpu_and_the_run_holding_it(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIX_GPUS", "2")
    rec = build_workspace(ws)

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, GpusScreen) and app.screen.last, what="gpus")
        text = screen_text(app)
        assert "2 GPUs" in text and "2 GPUs (the gpus setting)" in text
        holder = next(line for line in text.splitlines() if rec.ids["rl"] in line)
        assert holder.lstrip().startswith("0 ") and "tiny-lab/rl" in holder
        assert any(line.lstrip().startswith("1 ") and "free" in line for line in text.splitlines())

    try:
        run_app(make_app(ws), scenario)
    finally:
        rec.stop_worker()


def test_gpu_panel_without_gpus_says_how_detection_works(recorded: Recorded) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, GpusScreen) and app.screen.last, what="resources")
        text = screen_text(app)
        assert "CPU slots" in text and "1 free" in text  # without GPUs: the CPU slots first (issue 25.17)
        console = Console(width=80, record=True, file=io.StringIO())
        console.print(render(app.screen.last, 78, app.screen.resources)[1])
        body = console.export_text()
        assert "no GPUs detected (how detection works)" in body and "nvidia-smi" in body

    run_app(make_app(recorded.ws), scenario)


def test_help_palette_and_a_missing_screen(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app_module.LAZY_SCREENS, "experiments", ("tui.screens.not_written", "Nothing"))

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await until(pilot, lambda: "Everywhere" in screen_text(app), what="help drawn")
        text = screen_text(app)
        assert "reverse order" in text and "command palette" in text and "escape, q or ? closes this help" in text
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"go to resources")
        await until(pilot, lambda: "Go to Resources" in screen_text(app), what="palette match")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, GpusScreen), what="palette switched")
        await pilot.press("ctrl+p")  # another screen's action: switch there, then run it
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"sql: schema")
        await until(pilot, lambda: "SQL: schema" in screen_text(app), what="palette match")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SQLScreen)
                    and app.screen.query_one("#sql-schema").has_class("-hidden"), what="schema hidden")
        await pilot.press("escape", "2")  # out of the SQL editor, then to the experiments screen
        await until(pilot, lambda: isinstance(app.screen, PlaceholderScreen), what="placeholder")
        assert "tui.screens.not_written.Nothing could not be loaded" in screen_text(app).replace("\n", " ")
        await pilot.press("1")
        assert isinstance(app.screen, RunsScreen)

    run_app(make_app(recorded.ws), scenario, size=(100, 48))  # the help's runs keys on screen


def test_sql_console_first_visit_keeps_the_screen_keys(recorded: Recorded) -> None:
    """The SQL console opens on its grid: number keys switch screens at once, `i` enters the
    editor, escape leaves it, and nothing was typed into the query on the way."""
    from textual.widgets import DataTable

    app = make_app(recorded.ws)

    async def scenario(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        await pilot.press("5")
        sql = await until(pilot, lambda: isinstance(pilot.app.screen, SQLScreen) and pilot.app.screen)
        await until(pilot, lambda: sql.runs >= 1)
        query = sql.editor.text
        assert isinstance(pilot.app.focused, DataTable)
        await pilot.press("1")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen))
        await pilot.press("5")
        await until(pilot, lambda: pilot.app.screen is sql)
        assert sql.editor.text == query
        await pilot.press("i")
        assert sql.editor.has_focus
        await pilot.press("ctrl+a", *"SELECT 7")
        assert sql.editor.text == "SELECT 7"
        await pilot.press("escape")
        assert not sql.editor.has_focus
        await pilot.press("1")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen))

    run_app(app, scenario)


def test_footers_fit_at_80_columns_with_help_and_quit_always_shown(recorded: Recorded) -> None:
    """Every screen's footer keeps `? help` and `q quit` and never cuts a key in half: what does
    not fit is dropped from the end (the screen lists its keys most important first)."""

    def footer_line(pilot: Pilot[Any]) -> str:
        return next(x for x in reversed(screen_text(pilot.app).splitlines()) if "palette" in x)

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        for key in ("1", "2", "3", "4", "5", "6"):
            await pilot.press(key)
            await pilot.pause(0.3)
            await until(pilot, lambda: any("palette" in x for x in screen_text(app).splitlines()), what="footer")
            line = footer_line(pilot)
            assert "? help" in line and "q quit" in line, (key, line)
            keys = line.split("▏")[0]
            assert keys.endswith("  ") or keys.endswith("quit"), (key, line)  # nothing cut at the edge
        app.open_run(recorded.ids["rl"])
        await until(pilot, lambda: any("palette" in x and "q quit" in x for x in screen_text(app).splitlines()),
                    what="run detail's footer")  # a fixed pause was too short on a busy box

    run_app(make_app(recorded.ws), scenario, size=(80, 24))


def test_fitting_keeps_the_essentials_then_the_screen_order() -> None:
    from textual.widgets._footer import FooterKey

    from tui.widgets.footer import fitting, key_cells

    keys = [FooterKey(k, k, d, a) for k, d, a in (("enter", "open", "open"), ("l", "logs", "logs"),
                                                  ("c", "cancel", "cancel"), ("?", "help", "help"),
                                                  ("q", "quit", "quit"))]
    width = key_cells(keys[3]) + key_cells(keys[4]) + key_cells(keys[0]) + 2
    assert [k.action for k in fitting(keys, width)] == ["open", "help", "quit"]
    assert [k.action for k in fitting(keys, 1000)] == ["open", "logs", "cancel", "help", "quit"]
    assert [k.action for k in fitting(keys, 5)] == ["help", "quit"]
