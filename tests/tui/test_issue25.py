"""Issue 25, part 1: what a person saw wrong in the TUI, each pressed through with the pilot.

Most of these need no daemon: the screens draw from runs handed to them (tests/tui/test_numbers.py
has the host app). The ones that act on runs (cancel, resume) use the recorded workspace."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select, Static, TabbedContent, TabPane
from textual.widgets.data_table import ColumnKey

from storage.store import unprefixed
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.fake_source import NO_RESULTS, NO_SAMPLES, FakeSource, ScreenHost, log_answer, metrics_answer
from tests.tui.recorded import Recorded
from tests.tui.test_numbers import DEMO_RUNS, NOW, SIZES, RunsHost, assert_whole
from tui.screens.analytics import TIScreen, ti_cell
from tui.screens.experiments import ExperimentsScreen, cpu_box_note, work_summary
from tui.screens.export import ExportScreen
from tui.screens.help import section_rows
from tui.screens.run_detail import RunDetailScreen, envelope
from tui.screens.runs import RunsScreen
from tui.screens.sql import SQLScreen
from tui.screentext import screen_text
from tui.widgets.confirm import Confirm
from tui.widgets.editor import CodeEditor
from tui.widgets.literal import LiteralNotify
from tui.widgets.plotext_view import PlotextView
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


# -- run detail --------------------------------------------------------------------------------------
SPIKE = [(step, 1.0 + 0.001 * (step % 7)) for step in range(1, 1001)]
SPIKE[536] = (537, 9.5)  # one step in a thousand


def detail_app(run: dict[str, Any], **answers: Any) -> tuple[ScreenHost, FakeSource]:
    source = FakeSource({"run_results": {"run_id": run["id"], **NO_RESULTS}, "run_samples": NO_SAMPLES,
                         "run_metrics": metrics_answer({}), "run_log": log_answer({}), **answers})
    return ScreenHost(lambda: RunDetailScreen(source, run["id"]), [run], NOW), source  # type: ignore[arg-type]


def finished(run_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": run_id, "experiment": "tiny-lab", "name": "sft", "kind": run_id.split("-")[0],
            "state": "succeeded", "progress": 1.0, "started_at": "2025-03-14 11:49:00",
            "finished_at": "2025-03-14 11:49:10", **fields}


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_curves_keep_a_one_step_spike(size: tuple[int, int]) -> None:
    """Item 3: a thousand steps drawn in a few dozen cells keep each bucket's min and max, so a
    one-step spike is drawn, and the y ticks run from the lowest to the highest value."""
    app, _ = detail_app(finished("train-1"), run_metrics=metrics_answer({"loss": SPIKE}))

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            plot = await until(pilot, lambda: app.screen.query("#plot") and app.screen.query_one(PlotextView))
            await until(pilot, lambda: plot.drawn, what="curves drawn")
            lines = str(plot.render()).splitlines()
            top = next(i for i, line in enumerate(lines) if line.lstrip().startswith("9.5┤"))
            assert any(0x2800 < ord(ch) <= 0x28FF for ch in lines[top]), "the spike is drawn on the top row"
            bottom = [line for line in lines if "┤" in line][-1]
            assert bottom.lstrip().startswith("1.0┤")  # the real minimum, not a rounded tick above it
            ticks = [line.split("┤")[0].strip() for line in lines if "┤" in line]
            assert len(ticks) >= 2 and len(set(ticks)) == len(ticks)

    asyncio.run(main())


def test_envelope_keeps_extremes_in_step_order() -> None:
    kept = envelope(SPIKE, 40)
    assert (537, 9.5) in kept and kept[-1] == SPIKE[-1] and len(kept) <= 41
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)
    assert min(v for _, v in kept) == min(v for _, v in SPIKE)


def test_a_build_on_the_shipped_base_says_it_was_copied() -> None:
    """Item 10: no `no metrics recorded`, no `(nothing in both yet)`: the curves say the shipped
    base was copied and its files' sha256 checked, the logs show the run's events instead."""
    run = finished("build-ff092554da", name="base", result={
        "model_path": "/home/u/.tix/models/tiny-lab-bb4cb3a56b92", "reused": True, "shipped": True,
        "checked_files": 7, "final_loss": 0.687})
    events = ("07:27:20 started (attempt 1)\n07:27:20 using the shipped base tiny-lab-bb4cb3a56b92: copied, "
              "all 7 files' sha256 checked\n07:27:20 finished\n")
    app, _ = detail_app(run, run_log=log_answer({"events": events}))

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "copied the shipped base" in screen_text(app), what="curves message")
            text = screen_text(app)
            assert "tiny-lab-bb4cb3a56b92" in text and "sha256 checked" in text
            assert "no metrics recorded" not in text
            await pilot.press("l")
            await until(pilot, lambda: "what it did, from its events" in screen_text(app), what="log")
            await until(pilot, lambda: "all 7 files' sha256 checked" in screen_text(app), what="events")
            assert "nothing in both yet" not in screen_text(app)
            await pilot.press("o")
            await until(pilot, lambda: "loss 0.687" in screen_text(app), what="results")
            assert "copied the shipped base" in screen_text(app)

    asyncio.run(main())


SAMPLES = {"rows": [{"offset": 0, "benchmark": "lab_basic_arithmetic", "item_id": "basic_arithmetic-12",
                     "sample_idx": 0, "prompt": "What is 2 + 3?", "completion": "The answer is 5. " * 12,
                     "extracted": "5", "verdict": 0.05555555555555555, "tokens": None, "finish_reason": None,
                     "flags": [], "gold": "5"}], "total": 1, "all": 1, "benchmarks": {"lab_basic_arithmetic": 1}}


def test_samples_detail_numbers_and_widths_follow_a_resize() -> None:
    """Item 11: `verdict 0.0556`, no `None tokens`; the columns are laid out again on a resize."""
    app, _ = detail_app(finished("eval-1"), run_samples=SAMPLES)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("s")
            screen = app.screen
            assert isinstance(screen, RunDetailScreen)
            await until(pilot, lambda: screen.samples, what="samples")
            text = screen_text(app)
            assert "verdict 0.0556" in text and "None" not in text and "0.0555555" not in text
            narrow = screen.sample_cols["completion"]
            await pilot.resize_terminal(160, 40)
            await until(pilot, lambda: screen.sample_cols.get("completion", 0) > narrow, what="relaid out")
            table = screen.query_one("#sample-table", DataTable)
            assert table.columns[ColumnKey("completion")].width == screen.sample_cols["completion"]

    asyncio.run(main())


def test_tabs_a_run_cannot_fill_are_hidden() -> None:
    """Item 11: a training has no samples tab (s does nothing), an eval no curves tab."""
    async def tabs_of(run: dict[str, Any]) -> tuple[list[str], str]:
        app, _ = detail_app(run)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("s", "g")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunDetailScreen)
            tabs = screen.query_one("#detail-tabs", TabbedContent)
            shown = [pane.id for pane in tabs.query(TabPane) if tabs.get_tab(pane.id or "").display]
            return [str(s) for s in shown], screen.active_tab()

    assert asyncio.run(tabs_of(finished("train-1"))) == (["results", "curves", "logs", "config"], "curves")
    assert asyncio.run(tabs_of(finished("eval-1"))) == (["results", "logs", "samples", "config"], "samples")


# -- smaller items (11) ------------------------------------------------------------------------------
class QuitApp(LiteralNotify):
    """An app that shows data literally, with the app's `q` quit key."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("q", "quit", "quit")]


def test_ctrl_c_says_how_to_quit_in_plain_words() -> None:
    async def main() -> None:
        app = QuitApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+c")
            await pilot.pause()
            said = toasts(app)
            assert said and " q " in said[-1] + " " and "ctrl+q" in said[-1] and "[b]" not in said[-1]

    asyncio.run(main())


def sql_app(tmp_path: Path) -> ScreenHost:
    schema = [{"table": "runs", "column": "id", "data_type": "VARCHAR", "type": "BASE TABLE"}]
    source = FakeSource({"schema": schema, "sql_total": {"columns": ["one"], "types": ["INTEGER"], "rows": [[1]],
                                                        "truncated": False, "total": 1}})
    source.ws = SimpleNamespace(home=tmp_path)  # type: ignore[attr-defined]
    return ScreenHost(lambda: SQLScreen(source), [], NOW)  # type: ignore[arg-type]


def test_sql_footer_keeps_export_and_ctrl_a_right_after_i_selects_all(tmp_path: Path) -> None:
    async def main() -> None:
        app = sql_app(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, SQLScreen) and app.screen.runs and app.screen)
            assert "^s export" in screen_text(app).splitlines()[-1]
            await pilot.press("i", "ctrl+a", "x")  # sent at once, as a fast typist or a paste does
            await pilot.pause()
            assert screen.editor.text == "x"

    asyncio.run(main())


def test_a_new_line_at_the_end_of_the_editor_is_in_view() -> None:
    """Enter at the end of a long file: the new line is shown, not left under the scrollbar."""
    text = "\n".join(f"key{i}: {'x' * 90}" for i in range(60))

    class EditorApp(App[None]):
        def compose(self) -> ComposeResult:
            yield CodeEditor.code_editor(text, language="yaml")

    async def main() -> None:
        app = EditorApp()
        async with app.run_test(size=(60, 20)) as pilot:
            editor = app.query_one(CodeEditor)
            editor.focus()
            await pilot.press(*["pagedown"] * 6, "end", "enter", "enter")
            await pilot.pause()
            row = editor.cursor_location[0]
            top, height = int(editor.scroll_y), editor.scrollable_content_region.height
            assert top <= row < top + height, (row, top, height)

    asyncio.run(main())


def test_help_lists_enter() -> None:
    rows = section_rows("tui.screens.runs:RunsScreen") or []
    assert any(key == "enter" and "open the selected run" in what for key, what in rows)


def test_a_query_error_quotes_the_users_query_with_its_caret() -> None:
    """Item 11: DuckDB's message about the planned `EXPLAIN (FORMAT JSON) query` reads as about
    the user's query (`tix sql` and the console, before the daemon joins its lines)."""
    message = ('Binder Error: Referenced column "idd" not found in FROM clause!\n\nLINE 1: EXPLAIN (FORMAT JSON) '
               "SELECT idd FROM runs\n" + " " * 37 + "^^^")
    assert unprefixed(message).splitlines()[-2:] == ["LINE 1: SELECT idd FROM runs", " " * 15 + "^^^"]


# -- TI (2, 8, 9) ------------------------------------------------------------------------------------
TI_GROUPS = {"arith": "math", "chain": "math", "syl": "other", "bits": "other", "spell": "non", "rev": "non"}
TI_SCORES = {
    "small": {"base": dict(arith=4, chain=6, syl=5, bits=3, spell=5, rev=5),
              "flat": dict(arith=5, chain=7, syl=5, bits=3, spell=4, rev=4)},  # the same maths gain twice
    "tiny-lab": {"base": dict(arith=35, chain=62, syl=55, bits=29, spell=53.2, rev=51),
                 "sft": dict(arith=62, chain=63, syl=55, bits=24, spell=34, rev=37),
                 "rl": dict(arith=52, chain=65, syl=55, bits=28, spell=53, rev=49)}}


def ti_answer(args: dict[str, Any]) -> dict[str, Any]:
    """What the daemon's `ti` op sends, computed by engine.analysis as it does (with intervals)."""
    from engine.analysis import ti
    from engine.analysis.metrics import transferability

    variant, sigma = args.get("variant") or "v2", args.get("sigma") or "pooled"
    results = []
    for experiment, models in TI_SCORES.items():
        for r in transferability("base", models, TI_GROUPS, variant, sigma):
            o = ti.to_object(experiment, r.model, sigma, r)
            if experiment == "tiny-lab":  # items to resample: 95% intervals
                o["ti_other_ci"], o["ti_non_ci"] = [o["ti_other"] - 50, o["ti_other"] + 30], [o["ti_non"] - 99, 6.5]
            results.append(o)
    return {"results": results, "warnings": []}


def ti_app() -> tuple[ScreenHost, FakeSource]:
    source = FakeSource({"ti": ti_answer})
    return ScreenHost(lambda: TIScreen(source), [], NOW), source  # type: ignore[arg-type]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_ti_figures_whole_and_on_screen_after_switching_experiments(size: tuple[int, int]) -> None:
    """Item 2: after switching experiments (wider cells, with intervals) no TI figure is cut, and
    TI_other and TI_non are on screen at every size (at 60x18 they come right after the model)."""
    app, _ = ti_app()

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, TIScreen) and app.screen.loaded and app.screen)
            assert screen.experiment == "small"
            screen.query_one("#ti-experiment", Select).value = "tiny-lab"
            await until(pilot, lambda: "sft" in screen_text(app), what="tiny-lab shown")
            text = screen_text(app)
            assert_whole(text)
            for o in screen.shown:
                for value, interval in ((o["ti_other"], o["ti_other_ci"]), (o["ti_non"], o["ti_non_ci"])):
                    shown = ti_cell(value, o["unstable"], interval).plain.strip()
                    assert shown in text, (shown, text)
            header = next(line for line in text.splitlines() if "model" in line)
            assert "TI_other" in header and "TI_non" in header

    asyncio.run(main())


def test_sigma_in_v1_changes_nothing_and_sigma_zero_says_why() -> None:
    """Item 9: per-model σ of equal maths gains is 0: the reason says so (not `maths index <= 0`);
    `s` in v1 says σ only changes v2 and changes nothing."""
    app, source = ti_app()

    async def main() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, TIScreen) and app.screen.loaded and app.screen)
            await pilot.press("s")  # v2 per-model
            await until(pilot, lambda: screen.loaded >= 2)
            notes = str(screen.query_one("#ti-notes").render())
            assert "σ_math is 0" in notes and "<= 0" not in notes
            await pilot.press("v")  # v1
            await until(pilot, lambda: screen.loaded >= 3)
            asked = len(source.asked)
            await pilot.press("s")
            await pilot.pause(0.2)
            assert len(source.asked) == asked and screen.sigma == "per-model"  # nothing reloaded or changed
            assert "σ only changes v2" in toasts(app)[-1]
            assert str(screen.query_one("#ti-mode").render()) == "TI v1"

    asyncio.run(main())


def test_ti_exports_name_the_variant_and_ask_before_overwriting(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 8: v1 then v2 to Markdown are two files; writing over one asks first (n keeps it)."""
    monkeypatch.chdir(tmp_path)
    app, _ = ti_app()

    async def export_md(pilot: Pilot[Any]) -> ExportScreen:
        await pilot.press("e")
        dialog = await until(pilot, lambda: isinstance(app.screen, ExportScreen) and app.screen)
        await pilot.press("down", "enter")  # Markdown; focus moves to the path
        await until(pilot, lambda: dialog.query_one("#export-path", Input).has_focus)
        await pilot.press("enter")
        return dialog

    async def main() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, TIScreen) and app.screen.loaded and app.screen)
            await export_md(pilot)
            await until(pilot, lambda: (tmp_path / "tix-ti-small-v2-pooled.md").exists(), what="v2 written")
            await pilot.press("v")
            await until(pilot, lambda: screen.loaded >= 2)
            await export_md(pilot)
            await until(pilot, lambda: (tmp_path / "tix-ti-small-v1.md").exists(), what="v1 written")
            v1 = (tmp_path / "tix-ti-small-v1.md").read_text()
            (tmp_path / "tix-ti-small-v1.md").write_text("mine")
            dialog = await export_md(pilot)  # the same name again
            confirm = await until(pilot, lambda: isinstance(app.screen, Confirm) and app.screen)
            assert "exists already. Overwrite it?" in confirm.question
            await pilot.press("n")
            await until(pilot, lambda: app.screen is dialog, what="back in the dialog")
            assert (tmp_path / "tix-ti-small-v1.md").read_text() == "mine"
            await pilot.press("enter", "y")
            await until(pilot, lambda: (tmp_path / "tix-ti-small-v1.md").read_text() == v1, what="overwritten")

    asyncio.run(main())


def test_a_refused_launch_says_so_above_its_errors_not_in_a_toast_over_them(tmp_path: Path) -> None:
    """Item 11: F5 on an invalid file: the check's lines under the editor start with why nothing
    was launched, and no toast covers them."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "broken.yaml").write_text("name: broken\nbase: {model: tiny-lab}\nmodles:\n  sft: {}\n")
    source = FakeSource({"sql": {"columns": ["name", "path", "spec"], "rows": [], "truncated": False}})
    source.ws = SimpleNamespace(home=tmp_path / "home")  # type: ignore[attr-defined]
    app = ScreenHost(lambda: ExperimentsScreen(source, [folder]), [], NOW)  # type: ignore[arg-type]

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, ExperimentsScreen) and app.screen.entries
                                 and app.screen)
            screen.query_one("#exp-list", OptionList).focus()
            await pilot.press("enter")
            await until(pilot, lambda: screen.errors, what="checked")
            before = len(toasts(app))
            await pilot.press("f5")
            check = screen.query_one("#exp-check", Static)
            await until(pilot, lambda: str(check.render()).startswith("F5: not launched; fix"), what="said")
            assert "modles" in str(check.render()) and len(toasts(app)) == before
            # A typing pause's re-check of the same text landing after F5 (seen under load) keeps the line.
            generation = screen._generation
            screen.validate_now()
            await until(pilot, lambda: screen._generation > generation and not screen.workers, what="re-checked")
            await pilot.pause()
            assert str(check.render()).startswith("F5: not launched; fix"), str(check.render())

    asyncio.run(main())
