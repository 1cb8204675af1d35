"""Defects found walking through issue 25 Part 2's views in tmux at 60x18, 80x24 and 160x48, as a
new user would (compare, config, diff, DAG, flips, SQL, logs, Resources, help), each pinned by a
pilot test that failed before its fix:

- a chart drawn for one height and shown at another (the compare picker opened under it, the
  terminal resized) kept the first height's tick count: ticks fell on the same row and their
  labels overwrote each other (`0.00.16` for 0.16 over 0.00065; `-0.010` on the 0.000 row);
- at 60 columns the tab line read `6 …`: the Resources screen's name did not fit;
- help's `Config diff (d on two marked runs)` title folded after `two` (its table was as narrow as
  its one key);
- the SQL status line beside the schema at 60 columns was cut through a part (`... of 2,500 · 2`)."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from tests.tui.conftest import connected, make_app
from tests.tui.fake_source import NO_RESULTS, NO_SAMPLES, FakeSource, ScreenHost, log_answer, metrics_answer
from tests.tui.recorded import NOW_TS, Recorded
from tests.tui.screen_support import until
from tests.tui.test_numbers import DEMO_RUNS, RunsHost
from tui.screens.analytics import TIDetailScreen, TIScreen
from tui.screens.compare import CompareScreen
from tui.screens.run_detail import RunDetailScreen
from tui.screentext import screen_text
from tui.widgets.chrome import tabs_text
from tui.widgets.plotext_view import PlotextView

SFT = {"id": "train-587dcc70fe", "experiment": "tiny-lab", "name": "sft", "kind": "train", "state": "succeeded"}
RL = {"id": "train-3fec79d368", "experiment": "tiny-lab", "name": "rl", "kind": "train", "state": "succeeded",
      "progress": 1.0, "started_at": "2025-03-14 11:49:00", "finished_at": "2025-03-14 11:49:10"}
LABEL = re.compile(r"[^\s│]*$")
NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?(e[-+]?\d+)?")
"""A tick label as the drawers write it; two labels overwriting each other read `02.6`, `0.00.16`."""


def y_axes(text: str) -> list[tuple[int, list[str]]]:
    """Each chart in `text`: its inner rows (between the frame's corners) and the labels of its y
    ticks, top to bottom, read left of each `┤`."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        for corner in re.finditer("┌", line):
            col, rows, labels = corner.start(), 0, []
            for below in lines[i + 1:]:
                mark = below[col] if col < len(below) else " "
                if mark != "┤" and mark != "│":
                    break
                rows += 1
                if mark == "┤":
                    labels.append(LABEL.search(below[:col]).group())  # type: ignore[union-attr]
            found.append((rows, labels))
    return found


def assert_ticks_readable(text: str) -> None:
    """Every tick label a number, top to bottom decreasing, and no more ticks than the chart's rows
    leave room for (one every two rows, as the drawers ask): two ticks on one row overwrite."""
    axes = y_axes(text)
    assert axes, text
    for rows, labels in axes:
        assert all(NUMBER.fullmatch(label) for label in labels), (labels, text)
        values = [float(label) for label in labels]
        assert values == sorted(values, reverse=True) and len(set(values)) == len(values), (labels, text)
        assert len(labels) <= max(2, min(5, rows // 2 + 1)), (rows, labels, text)


def series() -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Two trainings with eight metrics (the picker lists them all: it takes most of 80x24)."""
    wave = [(s, 0.02 * math.sin(s / 3) + 0.021) for s in range(1, 101)]
    more = {f"metric_{i}": [(s, float(s * i)) for s in range(1, 41)] for i in range(1, 8)}
    return {SFT["id"]: {"loss": [(s, 2.6 / s) for s in range(1, 41)], **more}, RL["id"]: {"loss": wave}}


def test_compare_ticks_follow_the_chart_when_the_picker_opens() -> None:
    data = series()
    source = FakeSource({"run_metrics": lambda args: metrics_answer(data[args["id"]])(args),
                         "compare_evals": {"runs": [], "deltas": []}})
    app = ScreenHost(lambda: CompareScreen(source, [SFT, RL]), [SFT, RL], NOW_TS)  # type: ignore[arg-type]

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            view = await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query(
                "#overlay") and app.screen.query_one("#overlay", PlotextView), what="compare screen")
            await until(pilot, lambda: view.drawn, what="first plot")
            for key in ("y", "slash"):  # log y, then the picker takes most of the height
                before = view.drawn
                await pilot.press(key)
                await until(pilot, lambda b=before: view.drawn > b, what=f"plot after {key}")
                await pilot.pause(0.2)
                assert_ticks_readable(str(view.render()))

    asyncio.run(main())


def test_run_detail_ticks_follow_a_smaller_terminal() -> None:
    wave = [(s, 0.02 * math.sin(s / 3) + 0.005) for s in range(1, 101)]
    metrics = {"loss": wave, "reward": [(s, 0.2 + s / 250) for s in range(1, 101)],
               "kl": [(s, s / 1600) for s in range(1, 101)], "learning_rate": [(s, 1e-6) for s in range(1, 101)]}
    source = FakeSource({"run_results": {"run_id": RL["id"], **NO_RESULTS}, "run_samples": NO_SAMPLES,
                         "run_metrics": metrics_answer(metrics), "run_log": log_answer({})})
    app = ScreenHost(lambda: RunDetailScreen(source, RL["id"]), [RL], NOW_TS)  # type: ignore[arg-type]

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            plot = await until(pilot, lambda: app.screen.query("#plot") and app.screen.query_one(PlotextView))
            await until(pilot, lambda: plot.drawn, what="curves drawn")
            assert_ticks_readable(str(plot.render()))
            before = plot.drawn
            await pilot.resize_terminal(80, 24)
            await until(pilot, lambda: plot.drawn > before, what="curves redrawn")
            await pilot.pause(0.2)
            assert_ticks_readable(str(plot.render()))

    asyncio.run(main())


def test_the_tab_line_names_every_screen_at_60_columns() -> None:
    """At 60 columns the line read `... 5 SQL   6 …`; now short titles (`6 Res`) fit, and the line
    follows a resize back to full titles."""
    assert tabs_text("gpus", 60).cell_len <= 60 and tabs_text("gpus", 59).cell_len <= 59
    assert "6 Resources" in tabs_text("gpus", 80).plain and "2 Experiments" in tabs_text("gpus", 80).plain
    app = RunsHost(DEMO_RUNS)

    async def main() -> None:
        async with app.run_test(size=(60, 18)) as pilot:
            await pilot.pause(0.2)
            top = screen_text(app).splitlines()[0]
            assert "6 Res" in top and "2 Exps" in top and "? help" in top and "…" not in top, top
            await pilot.resize_terminal(80, 24)
            await pilot.pause(0.2)
            top = screen_text(app).splitlines()[0]
            assert "2 Experiments" in top and "6 Resources" in top and "? help" in top, top

    asyncio.run(main())


def test_help_section_titles_are_one_line() -> None:
    """A section with only short keys (`Config diff (d on two marked runs)`: esc) made its table as
    narrow as `esc back`, and the title folded onto a second line."""
    from rich.console import Console

    from tui.screens.help import SECTIONS, bindings_table, section_rows

    console = Console(width=78, record=True)
    for title, target in SECTIONS:
        with console.capture() as captured:
            console.print(bindings_table(title, section_rows(target) or [("", "(not available)")]))
        assert captured.get().splitlines()[0].strip() == title, captured.get()


def test_the_sql_status_line_drops_whole_parts_at_60_columns(tmp_path: Any) -> None:
    """At 60x18 the line beside the schema read `rows 1,001–2,000 of 2,500 · 2` (columns' count
    without its word, the time gone, no marker); it now keeps whole parts and ends in `…`."""
    from types import SimpleNamespace

    from textual.widgets import Static

    from tui.screens.sql import SQLScreen

    rows = [[i, i * 1.5] for i in range(2500)]

    def page(args: dict[str, Any]) -> dict[str, Any]:
        offset, limit = args.get("offset", 0), args.get("limit", 1000)
        return {"columns": ["n", "x"], "types": ["BIGINT", "DOUBLE"], "rows": rows[offset:offset + limit],
                "offset": offset, "truncated": offset + limit < len(rows), "sort": None, "descending": False,
                "pageable": True}

    total = {"columns": ["n", "x"], "types": ["BIGINT", "DOUBLE"], "rows": rows[:1], "truncated": True,
             "total": len(rows)}
    source = FakeSource({"schema": [], "sql_page": page, "sql_total": total})
    source.ws = SimpleNamespace(home=tmp_path)  # type: ignore[attr-defined]
    app = ScreenHost(lambda: SQLScreen(source, "SELECT n, x FROM t"), [], NOW_TS)  # type: ignore[arg-type]

    def status() -> str:
        return str(app.screen.query_one("#sql-status", Static).render())

    async def main() -> None:
        async with app.run_test(size=(60, 18)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, SQLScreen) and "of 2,500" in status(),
                        what="first page counted")
            app.screen.query_one("#sql-grid").focus()
            await pilot.press("right_square_bracket")
            await until(pilot, lambda: "rows 1,001–2,000" in status(), what="second page")
            width = app.screen.query_one("#sql-status", Static).content_size.width
            shown = status().strip()
            full = ["rows 1,001–2,000 of 2,500", "2 columns"]
            assert len(shown) <= width and shown.endswith("…"), shown
            assert all(part in full for part in shown.split(" · ")[:-1]), shown
            await pilot.resize_terminal(160, 48)
            await until(pilot, lambda: status().strip().endswith(" ms"), what="the whole line at 160")

    asyncio.run(main())


def test_results_and_config_keys_leave_the_samples_tab() -> None:
    """On the samples tab `o` and `p` did nothing: hiding the focused samples table made Textual
    focus its visible sibling (the search box), and that focus showed the samples pane again."""
    run = {"id": "eval-cfd55109de", "experiment": "tiny-lab", "name": "sft", "kind": "eval",
           "state": "succeeded", "started_at": "2025-03-14 11:49:00", "finished_at": "2025-03-14 11:49:10"}
    sample = {"benchmark": "b", "group": "math", "item_id": "0", "sample_idx": 0, "prompt": "p", "completion": "c",
              "extracted": "1", "gold": "1", "verdict": 1.0, "tokens": 3, "finish_reason": "stop", "flags": []}
    source = FakeSource({"run_results": {"run_id": run["id"], **NO_RESULTS}, "run_log": log_answer({}),
                         "run_samples": {"rows": [sample], "total": 1, "all": 1, "benchmarks": {}},
                         "run_metrics": metrics_answer({}), "run_config": {"started": True, "keys": []}})
    app = ScreenHost(lambda: RunDetailScreen(source, run["id"]), [run], NOW_TS)  # type: ignore[arg-type]

    async def main() -> None:
        async with app.run_test(size=(60, 18)) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen)
            for key, tab in (("o", "results"), ("p", "config")):
                await pilot.press("s")
                await until(pilot, lambda: screen.active_tab() == "samples", what="samples tab")
                await pilot.pause(0.1)
                await pilot.press(key)
                await pilot.pause(0.3)
                assert screen.active_tab() == tab, (key, screen.active_tab())

    asyncio.run(main())


def test_ti_drilldown_intervals_are_never_cut_at_60_columns(recorded: Recorded) -> None:
    """At 60x18 the drill-down's 95% CI column read `[-14, +6` at the pane's edge (a plain table
    cut it with no marker); its edge column is now blanked and marked `›` until scrolled to."""
    async def scenario(pilot: Any) -> None:
        app = await connected(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TIScreen) and app.screen.loaded and app.screen.shown,
                    what="TI rows")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TIDetailScreen), what="drill-down")
        await pilot.pause(0.3)
        lines = [line.rstrip(" █▌▐") for line in screen_text(app).splitlines()]
        rows = [line for line in lines if line.lstrip("█ ").startswith("lab_")]
        assert rows, lines
        for line in rows:
            assert line.endswith("›") or line.count("[") == line.count("]"), line
        await app.source.close()

    async def main() -> None:
        async with make_app(recorded.ws).run_test(size=(60, 18)) as pilot:
            await scenario(pilot)

    asyncio.run(main())


def test_a_column_wider_than_the_grid_shows_what_fits() -> None:
    """`select name, error from runs` at 60x18 showed an empty grid of `›`: each column (a name
    holding a long escape sequence) was wider than the pane, so the edge blanked all of it. Now a
    column wider than the view shows what fits, with `›` at the edge to say more is there."""
    from textual.app import App, ComposeResult

    from tui.widgets.grid import MORE_RIGHT, WholeColumnTable

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield WholeColumnTable(id="grid")

        def on_mount(self) -> None:
            grid = self.query_one(WholeColumnTable)
            grid.add_columns("name", "error")
            grid.add_row("n" * 70, "e" * 90)
            grid.focus()

    async def main() -> None:
        async with Host().run_test(size=(60, 18)) as pilot:
            await pilot.pause(0.2)
            lines = screen_text(pilot.app).splitlines()
            assert lines[0].lstrip().startswith("name"), lines[:2]
            row = lines[1].rstrip()
            assert row.lstrip().startswith("nnnn") and row.endswith(MORE_RIGHT), row
            await pilot.press("right")
            await pilot.pause(0.2)
            row = screen_text(pilot.app).splitlines()[1].rstrip()
            assert "eeee" in row and row.endswith(MORE_RIGHT), row

    asyncio.run(main())


def test_the_runs_table_never_cuts_a_column_below_80_columns() -> None:
    """At 60 columns the progress column ran one cell past the pane (`100%` read `100`, the table
    scrolls sideways below 80); between 61 and 79 the ETA, GPU or time column was cut the same way.
    Now the progress column narrows its bar to end at the edge, and a column the edge would cut
    shows as `›`."""
    running = {"id": "train-0000000042", "experiment": "tiny-lab", "name": "rl", "kind": "train",
               "state": "running", "progress": 0.42, "created_at": "2025-03-14 11:59:00",
               "started_at": "2025-03-14 11:59:00", "gpus": "0"}

    async def main() -> None:
        app = RunsHost([*DEMO_RUNS, running])
        async with app.run_test(size=(60, 18)) as pilot:
            for width in (60, 64, 70, 75, 79):
                await pilot.resize_terminal(width, 18)
                await pilot.pause(0.2)
                rows = [line for line in screen_text(app).splitlines() if line.startswith(" train-0000000042")]
                assert rows and " 42%" in rows[0], (width, rows)
                table = [line.rstrip(" ▁▂▃▄▅▆▇█▉▊▋▌▍▎▏") for line in screen_text(app).splitlines()[3:9]]
                for line in table:  # the last cell shown is whole, or the marker of one that is not
                    assert not re.search(r"\d[a-z]?$", line) or re.search(r"(\d+%|\d+s|\b\d+)$", line), line
                if 60 < width < 79:  # at 79 every column fits
                    assert all(line.endswith("›") for line in table if line), (width, table)

    asyncio.run(main())
