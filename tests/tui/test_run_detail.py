"""Run detail against a real daemon: curves that grow as the worker writes, a log tail that
follows, the event story, and the samples browser with search and verdict filters."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log

from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import Recorded
from tui.screens.run_detail import (
    RunDetailScreen,
    clean_log,
    curve_names,
    item_part,
    parse_search,
    sample_cells,
    sample_text,
    sample_widths,
    step_ticks,
    thin,
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
    thinned = thin(points, 50)
    assert len(thinned) == 50 and thinned[0] == (0, 0.0) and thinned[-1] == (999, 999.0)
    # integer step ticks at round values, never past the last step
    assert step_ticks(1, 150) == [50, 100, 150]
    assert step_ticks(1, 1000) == [250, 500, 750, 1000]
    assert step_ticks(0, 7) == [0, 2, 4, 6]
    assert step_ticks(5, 5) == [5]
