"""The runs dashboard against a real daemon fed by recorded run folders: rows, live pushes,
filter, sort, cancel (with its question) and resume/retry, at 80x24 with keys only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import Recorded
from tui.screens.runs import RunsScreen
from tui.screentext import screen_text
from tui.widgets.confirm import Confirm
from tui.widgets.runs_table import RunsTable


def table(pilot: Pilot[Any]) -> RunsTable:
    return pilot.app.screen.query_one(RunsTable)


async def select(pilot: Pilot[Any], run_id: str) -> None:
    table(pilot).select(run_id)
    await pilot.pause()
    assert table(pilot).selected_id() == run_id


def test_rows_live_progress_filter_and_sort(recorded: Recorded) -> None:
    ids = recorded.ids

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        text = screen_text(app)
        assert "10 runs" in text and "1 running" in text and "2 failed" in text
        assert ids["rl"] in text and "60%" in text and "52m" in text and "1h18m" in text  # progress, ETA, time
        assert table(pilot).row_count == 10
        # live: the worker writes ten more steps; the daemon ingests and pushes; the row is patched
        recorded.grow(range(61, 71))
        await until(pilot, lambda: "70%" in screen_text(app), what="pushed progress")
        assert app.runs[ids["rl"]]["progress_text"] == "train 70/100"
        # filter: words that must all appear
        await pilot.press("slash", *"eval", "enter")
        await until(pilot, lambda: table(pilot).row_count == 4, what="filter eval")
        await pilot.press("slash", *" sft", "enter")
        await until(pilot, lambda: table(pilot).row_count == 1, what="filter eval sft")
        assert "“eval sft”: 1 of 10 runs" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: table(pilot).row_count == 10, what="filter cleared")
        # sort: s cycles the column (created -> state), S flips the order
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("s")
        assert screen.sort_by == "state" and table(pilot).selected_id() is not None
        first = table(pilot).coordinate_to_cell_key((0, 0)).row_key.value
        assert first == ids["rl"]  # running first
        await pilot.press("S")
        last = table(pilot).coordinate_to_cell_key((0, 0)).row_key.value
        assert app.runs[last]["state"] == "succeeded"

    run_app(make_app(recorded.ws), scenario)


def test_cancel_asks_first_and_resume_retries_a_failed_run(recorded: Recorded) -> None:
    ids = recorded.ids

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await select(pilot, ids["analyse_rl"])
        await pilot.press("c")
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")  # no: nothing happens
        assert app.runs[ids["analyse_rl"]]["state"] == "queued"
        await pilot.press("c", "y")
        await until(pilot, lambda: app.runs[ids["analyse_rl"]]["state"] == "cancelled", what="cancelled push")
        # a failed run: r retries it for real (a light probe worker), and the pushes show it succeed
        await select(pilot, ids["probe"])
        await pilot.press("r")
        await until(pilot, lambda: app.runs[ids["probe"]]["state"] == "succeeded", timeout=30,
                    what="retried run succeeded")
        assert app.runs[ids["probe"]]["attempt"] == 2
        row = screen_text(app).splitlines()
        assert any(ids["probe"] in line and "succeeded" in line for line in row)
        # c on a finished run does nothing but say why
        await pilot.press("c")
        assert not isinstance(app.screen, Confirm)

    run_app(make_app(recorded.ws), scenario)


def test_enter_opens_the_detail_and_escape_returns(recorded: Recorded) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await select(pilot, recorded.ids["sft"])
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "RunDetailScreen", what="detail open")
        await until(pilot, lambda: "learning_rate" in screen_text(app), what="curves drawn")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back on the dashboard")
        assert table(pilot).selected_id() == recorded.ids["sft"]

    run_app(make_app(recorded.ws), scenario)


def test_home_end_and_an_eta_only_once_it_means_something(recorded: Recorded) -> None:
    from tui.format import eta_seconds

    now = 10_000.0

    def running(progress: float, seconds: float) -> dict[str, Any]:
        started = datetime.fromtimestamp(now - seconds, UTC).isoformat()
        return {"state": "running", "progress": progress, "started_at": started}

    assert eta_seconds(running(0.06, 20), now) is None  # a model load at 6 % is not a rate yet
    assert eta_seconds(running(0.10, 60), now) == pytest.approx(540)
    assert eta_seconds(running(0.03, 300), now) == pytest.approx(9700)  # long runs: from 2 % after 2 min
    assert eta_seconds(running(0.01, 300), now) is None

    async def scenario(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        grid = table(pilot)
        grid.focus()
        await pilot.press("end")
        assert grid.cursor_row == grid.row_count - 1
        await pilot.press("home")
        assert grid.cursor_row == 0

    run_app(make_app(recorded.ws), scenario)


def test_finished_runs_show_what_they_found(recorded: Recorded) -> None:
    """A result column (wide) or the progress column (narrow) and the summary under the table say
    what a finished run found: an eval's mean accuracy and group means, a training's final loss."""

    def row_of(pilot: Pilot[Any], role: str) -> str:
        return next(x for x in screen_text(pilot.app).splitlines() if recorded.ids[role] in x)

    async def wide(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        assert "result" in screen_text(pilot.app).splitlines()[2]  # the header row
        assert "acc 70.8" in row_of(pilot, "eval_sft")  # (62.5 + 75 + 75) / 3
        assert "loss 1.12" in row_of(pilot, "build")
        await select(pilot, recorded.ids["eval_sft"])
        await until(pilot, lambda: "acc 70.8 · math 62.5 · other 75 · non 75" in screen_text(pilot.app),
                    what="the selected run's result under the table")

    async def narrow(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        assert "prog/resu" in screen_text(pilot.app)
        assert "acc 70.8" in row_of(pilot, "eval_sft")
        assert "%" in row_of(pilot, "rl")  # a running run keeps its progress bar

    run_app(make_app(recorded.ws), wide, size=(120, 30))
    run_app(make_app(recorded.ws), narrow, size=(80, 24))
