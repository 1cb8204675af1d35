"""Run detail against a real daemon: curves that grow as the worker writes, a log tail that
follows, the event story, and the samples browser with search and verdict filters."""

from __future__ import annotations

import subprocess
from typing import Any

import psutil
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log

from engine.experiments.plan import make_run
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import EXPERIMENT, Files, Recorded, add_run, at
from tests.tui.screen_support import shift_events
from tui.screens.run_detail import (
    RunDetailScreen,
    clean_log,
    curve_names,
    envelope,
    item_part,
    parse_search,
    sample_cells,
    sample_text,
    sample_widths,
    step_ticks,
)
from tui.screentext import screen_text
from tui.widgets.plotext_view import PlotextView


def detail(pilot: Pilot[Any]) -> RunDetailScreen:
    screen = pilot.app.screen
    assert isinstance(screen, RunDetailScreen)
    return screen


def log_text(pilot: Pilot[Any]) -> str:
    return "\n".join(detail(pilot).query_one("#log", Log).lines)


async def search(pilot: Pilot[Any], text: str) -> None:
    """`/`, the search text (set at once: typing it key by key only costs time), enter."""
    await pilot.press("slash")
    box = detail(pilot).query_one("#search", Input)
    box.value = text[:-1]
    box.cursor_position = len(box.value)
    await pilot.press(text[-1], "enter")


def test_curves_and_log_follow_a_running_run(recorded: Recorded) -> None:
    run_id = recorded.ids["rl"]

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        app.open_run(run_id)
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and detail(pilot).last_step == 60,
                    what="metrics loaded")
        plot = detail(pilot).query_one("#plot", PlotextView)
        await until(pilot, lambda: plot.drawn, what="curves drawn")
        text = screen_text(app)
        for name in ("loss", "reward", "kl", "learning_rate"):
            assert name in text
        assert "5 metrics, page 1/2" in text
        await pilot.press("m")
        await until(pilot, lambda: "completions/mean_length" in screen_text(app), what="second page")
        await pilot.press("M")  # and back
        await until(pilot, lambda: "page 1/2" in screen_text(app), what="first page again")
        await pilot.press("M")  # wraps to the last page
        await until(pilot, lambda: "page 2/2" in screen_text(app), what="last page by M")
        # the worker goes on: the daemon pushes run_events, the screen fetches only the new steps
        drawn = plot.drawn
        recorded.grow(range(61, 66))
        await until(pilot, lambda: detail(pilot).last_step == 65, what="new steps fetched")
        assert [p[0] for p in detail(pilot).series["reward"][-6:]] == [60, 61, 62, 63, 64, 65]
        await until(pilot, lambda: plot.drawn > drawn, what="curves redrawn")
        # the log tab follows stdout and stderr
        await pilot.press("l")
        await until(pilot, lambda: '"step": 65' in log_text(pilot), what="log followed")
        assert "── stderr ──" in log_text(pilot) and "vLLM not installed" in log_text(pilot)
        recorded.grow(range(66, 67))
        await until(pilot, lambda: '"step": 66' in log_text(pilot), what="log grew")
        for _ in range(3):  # both -> stdout -> stderr -> events: the run's story
            await pilot.press("w")
        await until(pilot, lambda: "progress train 66/100" in log_text(pilot), what="events stream")
        assert "started" in log_text(pilot)

    run_app(make_app(recorded.ws), scenario)


def test_samples_browser_search_and_verdicts(recorded: Recorded) -> None:
    run_id = recorded.ids["eval_sft"]

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        app.open_run(run_id)
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="detail")
        await pilot.press("s")
        table = detail(pilot).query_one("#sample-table", DataTable)
        await until(pilot, lambda: table.row_count == 24, what="samples loaded")
        assert "What is 12 + 30?" in screen_text(app)  # the first sample, whole, under the table
        await search(pilot, "is:wrong")
        await until(pilot, lambda: detail(pilot).sample_total == 7, what="wrong answers")
        assert all(s["verdict"] == 0.0 for s in detail(pilot).samples)
        first = detail(pilot).samples[0]
        assert first["gold"] != first["extracted"]
        row = [getattr(c, "plain", str(c)) for c in table.get_row_at(0)]
        assert row[3:5] == [first["extracted"], first["gold"]]  # answer, then the expected one
        assert f"gold answer\n{first['gold']}" in sample_text(first).plain
        await search(pilot, "spell bench:lab_spell_backward")
        await until(pilot, lambda: detail(pilot).sample_total == 8, what="text search")
        await pilot.press("down")
        assert "Spell 'word1' backwards." in screen_text(app)
        await search(pilot, "flag:no_answer")
        await until(pilot, lambda: detail(pilot).sample_total == 2, what="flag search")
        assert "no_answer" in screen_text(app)
        await pilot.press("escape")  # out of the table: back to the dashboard
        await until(pilot, lambda: not isinstance(app.screen, RunDetailScreen), what="back")

    run_app(make_app(recorded.ws), scenario)


def test_sample_item_ids_keep_what_tells_them_apart() -> None:
    assert item_part("basic_arithmetic-12", "lab_basic_arithmetic") == "12"  # the lab's ids
    assert item_part("lab_chain_sum-003", "lab_chain_sum") == "003"
    assert item_part("acp_app/17", "acpbench") == "acp_app/17"  # nothing to drop: the whole id
    assert item_part("test/precalculus/807.json", "math500") == "test/precalculus/807.json"
    narrow, wide = sample_widths(80), sample_widths(160)
    assert narrow["item"] == 8 and wide["item"] > narrow["item"]
    cells = sample_cells({"benchmark": "lab_basic_arithmetic", "item_id": "basic_arithmetic-12", "verdict": 1.0,
                          "extracted": "42", "gold": "42", "flags": [], "completion": "42"}, narrow)
    assert cells[2] == "12"


def test_helpers() -> None:
    assert curve_names(["seq", "kl", "eta_seconds", "loss", "grad_norm"]) == ["loss", "kl", "grad_norm", "seq"]
    assert parse_search("is:wrong bench:lab_x two words flag:no_answer") == {
        "verdict": "wrong", "benchmark": "lab_x", "flag": "no_answer", "query": "two words"}
    assert clean_log(" 10%|#\r 20%|##\r\ndone\n") == " 20%|##\ndone\n"
    points = [(i, float(i)) for i in range(1000)]
    thinned = envelope(points, 50)
    assert len(thinned) <= 51 and thinned[0] == (0, 0.0) and thinned[-1] == (999, 999.0)
    # integer step ticks at round values, never past the last step
    assert step_ticks(1, 150) == [50, 100, 150]
    assert step_ticks(1, 1000) == [250, 500, 750, 1000]
    assert step_ticks(0, 7) == [0, 2, 4, 6]
    assert step_ticks(5, 5) == [5]


def results_text(pilot: Pilot[Any]) -> str:
    return screen_text(pilot.app)


def test_an_eval_run_opens_on_its_scores_and_they_follow_it_live(recorded: Recorded) -> None:
    """A finished eval opens on accuracy ± stderr, n, health and group means; a running one shows
    what its samples say so far and updates as more are scored."""
    worker = subprocess.Popen(["sleep", "600"], start_new_session=True)
    plan = make_run("eval", "live", EXPERIMENT, {"suite": "lab", "n": 1}, [])
    row = {"state": "running", "created_at": at(10), "started_at": at(9), "heartbeat_at": at(0), "attempt": 1,
           "pid": worker.pid, "pid_started": psutil.Process(worker.pid).create_time(), "_pid": worker.pid,
           "progress": 0.1}
    live_dir = recorded.ws.run_dir(plan["id"])

    def write(f: Files) -> None:
        f.event(0, "started", pid=worker.pid, host="lab-box", attempt=1)
        for i in range(4):
            f.sample(benchmark="lab_basic_arithmetic", group="math", item_id=f"a-{i}", sample_idx=0, prompt="q",
                     completion="c", extracted="1", verdict=float(i < 1), tokens=3, finish_reason="stop",
                     flags=[])

    live_id = add_run(recorded.ws, plan, row, write)

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        app.open_run(recorded.ids["eval_sft"])
        await until(pilot, lambda: "group means" in results_text(pilot), what="scores shown")
        assert detail(pilot).active_tab() == "results"
        text = results_text(pilot)
        assert "acc" in text and "±se" in text and "no ans" in text
        line = next(x for x in text.splitlines() if "lab_basic_arithmetic" in x)
        assert line.split()[1:5] == ["math", "62.5", "18.3", "8"]  # 5/8, sd of 0/1 items / sqrt 8
        assert "25%" in next(x for x in text.splitlines() if "lab_spell_backward" in x)  # 2 of 8: no answer
        assert "math 62.5   other 75.0   non 75.0" in text
        await pilot.press("escape")
        app.open_run(live_id)
        await until(pilot, lambda: "25.0" in results_text(pilot), what="live accuracy (1 of 4)")
        assert "accuracy so far, from" in results_text(pilot)
        f = Files(live_dir, row)
        for i in range(4, 8):
            f.sample(benchmark="lab_basic_arithmetic", group="math", item_id=f"a-{i}", sample_idx=0, prompt="q",
                     completion="c", extracted="1", verdict=1.0, tokens=3, finish_reason="stop", flags=[])
        await until(pilot, lambda: "62.5" in results_text(pilot), what="live accuracy (5 of 8)")
        f.event(30, "score", benchmark="lab_basic_arithmetic", group="math", metric="accuracy", value=62.5, n=8)
        await until(pilot, lambda: "accuracy so far, from" not in results_text(pilot),
                    what="stored score replaces the live one")

    try:
        run_app(make_app(recorded.ws), scenario, size=(120, 30))
    finally:
        worker.kill()
        worker.wait()


def test_an_analyse_run_opens_on_its_shift_summary(recorded: Recorded) -> None:
    plan = make_run("analyse", "sft", EXPERIMENT, {"pca_shift": {}, "token_shift": {}}, [])
    row = {"state": "succeeded", "created_at": at(20), "started_at": at(19), "finished_at": at(18), "attempt": 1,
           "progress": 1.0}

    def write(f: Files) -> None:
        f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
        for event in shift_events(1.0):
            f.event(1, event.pop("type"), **{k: v for k, v in event.items() if k != "t"})
        f.event(2, "finished", result={"pca_shift": {"d": {"math": 1.5}}})

    run_id = add_run(recorded.ws, plan, row, write)

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        app.open_run(run_id)
        def first_math_row() -> str | None:  # the header can be drawn a frame before the rows
            text = screen_text(app)
            rows = [x for x in text.splitlines() if x.strip().startswith("math")] if "PCA d" in text else []
            return rows[0] if rows else None

        math_row = await until(pilot, first_math_row, what="shift summary")
        text = screen_text(app)
        assert detail(pilot).active_tab() == "results"
        assert "KL" in text and "rank shift" in text
        assert "1.5" in math_row  # the group's d (scale * 1.5)
        await pilot.press("g")  # an analyse run records no curves: no such tab (issue 25.11)
        await pilot.pause()
        assert detail(pilot).active_tab() == "results" and "g curves" not in screen_text(app)

    run_app(make_app(recorded.ws), scenario, size=(120, 30))


def test_a_finished_train_run_says_it_is_loading_before_its_curves_arrive(recorded: Recorded) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        app.open_run(recorded.ids["sft"])
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.query("#plot"),
                    what="detail")
        seen = screen_text(app)
        assert detail(pilot).active_tab() == "curves"
        assert "no metrics" not in seen  # never claims none while they load
        await until(pilot, lambda: detail(pilot).query_one("#plot", PlotextView).drawn, what="curves drawn")

    run_app(make_app(recorded.ws), scenario)
