"""Issue 25, part 1: what a person saw wrong in the TUI, each pressed through with the pilot.

Most of these need no daemon: the screens draw from runs handed to them (tests/tui/test_numbers.py
has the host app). The ones that act on runs (cancel, resume) use the recorded workspace."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.pilot import Pilot

from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import Recorded
from tests.tui.test_numbers import DEMO_RUNS, NOW, RunsHost
from tui.screens.experiments import cpu_box_note, work_summary
from tui.screens.runs import RunsScreen
from tui.screentext import screen_text
from tui.widgets.confirm import Confirm
from tui.widgets.runs_table import RunsTable


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_selected_runs_ago_ticks() -> None:
    """Item 6: `(2m58s ago)` on the selected run's line follows the clock, once a second."""

    async def main() -> None:
        app = RunsHost(DEMO_RUNS)
        clock = Clock(NOW)
        app.clock = clock
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen)
            assert "(9m55s ago)" in screen_text(app)
            clock.now += 65
            await pilot.pause(1.3)
            assert "(11m00s ago)" in screen_text(app)

    asyncio.run(main())


def run(**fields: Any) -> dict[str, Any]:
    return {"id": "train-1", "experiment": "lab", "name": "sft", "kind": "train", "state": "queued",
            "created_at": "2025-03-14 11:00:00", **fields}


def toasts(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


def test_enter_never_confirms_a_cancel_and_resume_offers_what_the_cancel_took_down(recorded: Recorded) -> None:
    """Items 7 and 4: a running training is cancelled with `y` only (enter, which opens runs, does
    not answer); its dependants go down with it; `r` on one of them offers to resume the training
    with them (alone it would be cancelled again at once), and `r` on the training offers them."""
    ids = recorded.ids

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        table = app.screen.query_one(RunsTable)
        table.select(ids["rl"])
        await pilot.press("c")
        assert isinstance(app.screen, Confirm)
        assert "2 runs waiting for it will be cancelled too" in app.screen.question
        await pilot.press("enter")
        assert isinstance(app.screen, Confirm) and "enter does not answer" in screen_text(app)
        assert app.runs[ids["rl"]]["state"] == "running"
        await pilot.press("y")
        await until(pilot, lambda: any("stopping " + ids["rl"] in t for t in toasts(app)), what="toast")
        assert "2 runs waiting for it will be cancelled" in toasts(app)[-1]
        for role in ("rl", "eval_rl", "analyse_rl"):
            await until(pilot, lambda role=role: app.runs[ids[role]]["state"] == "cancelled", what=role)
        table.select(ids["eval_rl"])
        await pilot.press("r")
        assert isinstance(app.screen, Confirm)
        text = app.screen.question
        assert f"waits for {ids['rl']}, which is cancelled" in text and "2 runs its end took down" in text
        await pilot.press("n")  # yes would start a real training
        table.select(ids["rl"])
        await pilot.press("r")
        assert isinstance(app.screen, Confirm) and "Its cancel took down 2 runs" in app.screen.question
        assert "y: resume it and those 2" in screen_text(app) and "o: only it" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, Confirm)
        assert app.runs[ids["eval_rl"]]["state"] == "cancelled"

    run_app(make_app(recorded.ws), scenario, size=(100, 30))


def test_a_queued_run_says_why_it_waits() -> None:
    """Item 5: the daemon's reason (a CPU slot), never a dependency that already succeeded; F5's
    question on a box with CPU slots only does not promise GPUs."""
    build = run(id="build-1", kind="build", state="succeeded", finished_at="2025-03-14 11:50:00")
    waiting = run(deps=["build-1"], progress_text="waiting for a CPU slot (2 of 2 in use)")
    old_daemon = run(id="train-2", deps=["build-1"])  # a daemon that does not say why

    async def main() -> None:
        app = RunsHost([build, waiting, old_daemon])
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.pause()
            table = app.screen.query_one(RunsTable)
            table.select("train-1")
            await pilot.pause()
            text = screen_text(app)
            assert "waiting for a CPU slot (2 of 2 in use)" in text and "waiting for build-1" not in text
            table.select("train-2")
            await pilot.pause()
            assert "waiting for build-1" not in screen_text(app)

    asyncio.run(main())
    runs = [{"kind": "build", "gpus_needed": 0}, {"kind": "train", "gpus_needed": 1},
            {"kind": "train", "gpus_needed": 1}]
    assert work_summary(runs, {"gpus": 0, "cpu_slots": 2, "executor": "local"}) == "1 build (CPU), 2 train (CPU)"
    assert cpu_box_note(runs, {"gpus": 0, "cpu_slots": 2}) == \
        "this box has no GPUs: runs that ask for one take a CPU slot (2 here)"
    assert work_summary(runs, {"gpus": 4, "executor": "local"}) == "1 build (CPU), 2 train x 1 GPU"
    assert work_summary(runs, {"gpus": 0, "executor": "slurm"}) == "1 build (CPU), 2 train x 1 GPU"
