"""Snapshots of the dashboard and the run detail at 80x24 and 120x36 (pytest-textual-snapshot).

The recorded workspace has fixed ids, times and values and the app a fixed clock, so the SVGs
are the same on every machine. After an intended change of the look, review and accept with
`pytest tests/tui/test_snapshots.py --snapshot-update`; a failure writes a side-by-side report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import connected, make_app, until
from tests.tui.recorded import Recorded
from tests.tui.screen_support import recorded_home
from tui.screens.run_detail import RunDetailScreen
from tui.widgets.plotext_view import PlotextView

pytest.importorskip("pytest_textual_snapshot")

SnapCompare = Callable[..., bool]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """One recorded workspace and daemon for every snapshot (none of them changes anything)."""
    with recorded_home(tmp_path_factory.mktemp("snap") / "tix-home") as rec:
        yield rec


def dashboard_ready() -> Callable[[Pilot[Any]], Any]:
    async def wait(pilot: Pilot[Any]) -> None:
        await connected(pilot)

    return wait


def detail_ready(run_id: str, tab: str) -> Callable[[Pilot[Any]], Any]:
    async def wait(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        app.open_run(run_id)
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="detail")
        screen = app.screen
        assert isinstance(screen, RunDetailScreen)
        await until(pilot, lambda: screen.load_metrics.runs and screen.load_samples.runs
                    and screen.load_log.runs, what="detail loaded")
        if tab == "curves":
            plot = screen.query_one("#plot", PlotextView)
            await until(pilot, lambda: plot.drawn, what="curves drawn")
        else:
            await pilot.press(tab[0])
        await pilot.pause(0.2)

    return wait


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_dashboard(snap_compare: SnapCompare, shared: Recorded, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(shared.ws), terminal_size=size, run_before=dashboard_ready())


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_run_detail_curves(snap_compare: SnapCompare, shared: Recorded, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(shared.ws), terminal_size=size,
                        run_before=detail_ready(shared.ids["rl"], "curves"))


def test_run_detail_samples(snap_compare: SnapCompare, shared: Recorded) -> None:
    assert snap_compare(make_app(shared.ws), terminal_size=(120, 36),
                        run_before=detail_ready(shared.ids["eval_sft"], "samples"))


def test_snapshots_are_committed() -> None:
    """A missing SVG would make the tests above pass vacuously only with --snapshot-update."""
    folder = Path(__file__).parent / "__snapshots__" / "test_snapshots"
    if os.environ.get("TIX_SNAPSHOT_BOOTSTRAP"):
        pytest.skip("bootstrapping snapshots")
    assert len(list(folder.glob("*.svg"))) >= 5
