"""The TI view with intervals: a workspace whose eval runs have items, so the daemon's `ti` op returns
95% bootstrap intervals. TI cells carry them as `tix ti` prints them, dim where they hold 0; the
drill-down shows each benchmark's paired interval and p. (Imported scores, with no items, are
test_analytics_screens.py's.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from engine.workspace import Workspace
from tests.tui.screen_support import HostApp, settle, until, workspace
from tests.tui.test_analytics_screens import drive, same, signed, ti_loaded, tix_out
from tui.screens.analytics import TIDetailScreen, TIScreen


@pytest.fixture(scope="module")
def item_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace whose database holds eval runs with items (base, sft, rl on 100 binary items per
    benchmark), written before its daemon starts, so the TI view shows intervals."""
    from storage import Store
    from tests.unit.test_paired import item_lab

    with workspace(tmp_path_factory.mktemp("items") / "home") as ws:
        ws.ensure()
        store = item_lab(n=100, store=Store.open(ws.db))
        store.close()
        yield ws


def ci_text(interval: list[float]) -> str:
    """An interval as the screen writes it: signed bounds, whole from 10 up."""
    def bound(v: float) -> str:
        text = f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
        return "+" + text if v > 0 else text
    return f"[{bound(interval[0])}, {bound(interval[1])}]"


def test_ti_screen_shows_intervals_and_the_drilldown_tests(item_ws: Workspace, tmp_path: Path) -> None:
    """TI cells carry the 95% interval `tix ti` prints, dim where it holds 0; the drill-down shows each
    benchmark's paired interval and p, and its gain dim where the interval holds 0."""
    cli = {o["model"]: o for o in json.loads(tix_out("ti", "exp", "--format", "json"))}

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await ti_loaded(pilot)
        assert screen.experiment == "exp"
        for ours in screen.shown:
            assert same(ours, cli[ours["model"]])
        table = screen.query_one("#ti-table", DataTable)
        labels = [column.label.plain for column in table.columns.values()]  # at 80 columns the TI comes first
        other, non = labels.index("TI_other"), labels.index("TI_non")
        for i, o in enumerate(screen.shown):
            cells = table.get_row_at(i)
            mark = "!" if o["unstable"] else " "
            assert cells[other].plain == signed(o["ti_other"]) + mark + " " + ci_text(o["ti_other_ci"])
            assert cells[non].plain == signed(o["ti_non"]) + mark + " " + ci_text(o["ti_non_ci"])
            low, high = o["ti_other_ci"]
            assert ("dim" in str(cells[other].style)) == (low <= 0 <= high or abs(o["ti_other"]) < 25)
        assert "no 95% intervals" not in str(screen.query_one("#ti-notes").render())
        at = [o["model"] for o in screen.shown].index("sft")
        table.move_cursor(row=at)
        await pilot.press("enter")
        detail = await until(pilot, lambda: isinstance(pilot.app.screen, TIDetailScreen) and pilot.app.screen)
        rows = detail.query_one(DataTable)
        await until(pilot, lambda: rows.row_count == 4)
        sft = cli["sft"]
        for i in range(rows.row_count):
            cells = rows.get_row_at(i)
            paired = sft["benchmarks"][cells[0].plain]["paired"]
            assert cells[5].plain == ci_text(paired["ci"])
            low, high = paired["ci"]
            assert ("dim" in str(cells[4].style)) == (low <= 0 <= high or abs(paired["delta"]) < 1)
            assert cells[6].plain == (f"{paired['p']:.3f}" if paired["p"] >= 0.001 else f"{paired['p']:.1e}")
        await pilot.press("escape")

    drive(item_ws, TIScreen, scenario)




def test_ti_intervals_snapshot(item_ws: Workspace, snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, TIScreen) and pilot.app.screen.loaded)

    assert snap_compare(HostApp(item_ws, TIScreen), terminal_size=(100, 24), run_before=settle(ready))
