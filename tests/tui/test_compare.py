"""Issue 25.12, 13 and 16 (multi-select): marking runs, cancel and resume of every marked run,
comparing marked runs (curves overlaid, eval scores with their paired deltas), a run's
configuration and the diff of two.

The marking, the overlay chart and the sizes need no daemon (a FakeSource answers `run_metrics`);
cancel/resume, the eval comparison, the config tab and the diff run against a real daemon on the
recorded workspace (tests/tui/recorded.py), whose numbers the tests read back through the
daemon's own `sql` op (`paired_deltas`) and `run_diff`."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from engine.experiments.plan import make_run
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.fake_source import FakeSource, ScreenHost, metrics_answer
from tests.tui.recorded import NOW_TS, Files, Recorded, add_run, at
from tests.tui.test_numbers import DEMO_RUNS, RunsHost, assert_whole
from tui.screens.compare import CompareScreen, DiffScreen
from tui.screens.run_detail import RunDetailScreen
from tui.screens.runs import RunsScreen
from tui.screentext import screen_text
from tui.widgets.confirm import Confirm
from tui.widgets.overlay_chart import Curve, ema, legend, prepared
from tui.widgets.plotext_view import PlotextView
from tui.widgets.runs_table import MARK, RunsTable

SFT = {"id": "train-587dcc70fe", "experiment": "tiny-lab", "name": "sft", "kind": "train", "state": "succeeded"}
RL = {"id": "train-3fec79d368", "experiment": "tiny-lab", "name": "rl", "kind": "train", "state": "succeeded"}
GRPO_METRICS = ["completions/mean_length", "completions/clipped_ratio", "kl", "loss", "reward", "reward_std",
                "rewards/math/mean", "learning_rate", "grad_norm", "entropy"]


def toasts(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


# -- marking (no daemon) -------------------------------------------------------------------------------
def test_space_marks_runs_and_escape_clears_them() -> None:
    async def main() -> None:
        app = RunsHost(DEMO_RUNS)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            table = screen.query_one(RunsTable)
            table.select("train-0116206162")
            await pilot.press("space")
            table.select("eval-97fd2d963c")
            await pilot.press("space")
            text = screen_text(app)
            assert f"{MARK} 2 marked" in text
            assert f"{MARK}train-0116206162" in text and f"{MARK}eval-97fd2d963c" in text
            await pilot.press("space")  # unmarks the run under the cursor
            assert f"{MARK} 1 marked" in screen_text(app) and f"{MARK}eval-97fd2d963c" not in screen_text(app)
            await pilot.press("slash", *"train", "enter")  # a filter keeps the marks
            await pilot.pause(0.3)
            assert f"{MARK}train-0116206162" in screen_text(app)
            await pilot.press("escape")  # with marks, escape clears them first
            assert f"{MARK}" not in screen_text(app) and screen.filter_text == "train"
            await pilot.press("escape")  # then the filter
            assert screen.filter_text == ""
            await pilot.press("C")
            assert "mark two or more runs" in toasts(app)[-1]
            await pilot.press("d")
            assert "mark exactly two runs" in toasts(app)[-1]

    asyncio.run(main())


# -- the overlay chart (no daemon) ----------------------------------------------------------------------
def spiky(scale: float, spike_at: int | None = None) -> list[tuple[int, float]]:
    points = [(s, scale * (1 + math.sin(s / 20))) for s in range(1, 1001)]
    if spike_at is not None:
        points[spike_at - 1] = (spike_at, 50.0)
    return points


def compare_host(runs: list[dict[str, Any]], series: dict[str, dict[str, list[tuple[int, float]]]],
                 evals: dict[str, Any] | None = None) -> tuple[ScreenHost, FakeSource]:
    source = FakeSource({"run_metrics": lambda args: metrics_answer(series[args["id"]])(args),
                         "compare_evals": evals or {"runs": [], "deltas": []}, "run_diff": DIFF})
    return ScreenHost(lambda: CompareScreen(source, runs), runs, NOW_TS), source  # type: ignore[arg-type]


def grpo_series() -> dict[str, dict[str, list[tuple[int, float]]]]:
    sft = {"loss": spiky(1.0, spike_at=500), "learning_rate": [(s, 5e-4) for s in range(1, 1001)]}
    rl = {name: spiky(0.5 + i / 10) for i, name in enumerate(GRPO_METRICS)}
    rl["loss"] = [(s, 0.02 * math.sin(s / 3)) for s in range(1, 1001)]  # GRPO's loss crosses 0
    return {SFT["id"]: sft, RL["id"]: rl}


async def press(pilot: Pilot[Any], key: str) -> str:
    """Press `key` and return the screen once the plot was drawn again."""
    before = pilot.app.screen.query_one("#overlay", PlotextView).drawn
    await pilot.press(key)
    return await drawn(pilot, before)


async def drawn(pilot: Pilot[Any], before: int) -> str:
    view = pilot.app.screen.query_one("#overlay", PlotextView)
    await until(pilot, lambda: view.drawn > before, what="plot redrawn")
    await pilot.pause(0.05)
    return screen_text(pilot.app)


def test_overlay_chart_legend_ema_log_and_metric_search() -> None:
    """Both runs in the legend (the one without the metric says so), the spike on the y axis, EMA
    and log y change the plot and the note, and the picker's search filters the 10 names to those
    matching, enter picking one."""
    async def main() -> None:
        app, source = compare_host([SFT, RL], grpo_series())
        async with app.run_test(size=(100, 30)) as pilot:
            view = await until(pilot, lambda: app.screen.query("#overlay") and app.screen.query_one(
                "#overlay", PlotextView), what="compare screen")
            await until(pilot, lambda: view.drawn, what="first plot")
            raw = screen_text(app)
            assert "sft train-587dcc70fe" in raw and "rl train-3fec79d368" in raw
            assert f"loss (1/{len(GRPO_METRICS)}) · EMA off · linear y" in raw
            assert any(line.startswith("50┤") for line in raw.splitlines())  # the one-step spike is the top tick
            assert sorted(op for op, _ in source.asked) == ["run_metrics", "run_metrics"]

            smooth = await press(pilot, "e")
            assert "EMA 0.6" in smooth and smooth != raw
            assert "EMA 0.8" in await press(pilot, "E")
            logged = await press(pilot, "y")
            assert "log y (" in logged and "values <= 0 left out)" in logged  # GRPO's loss <= 0 at times
            await pilot.press("e", "y")
            await pilot.pause(0.3)

            await pilot.press("slash", *"rew")
            options = app.screen.query_one("#metric-list", OptionList)
            names = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert names == ["reward", "reward_std", "rewards/math/mean"]
            before = view.drawn
            await pilot.press("down", "enter")
            text = await drawn(pilot, before)
            assert "reward_std (" in text and "(no points)" in text  # sft logged no reward_std
            before = view.drawn
            await pilot.press("m")
            assert "rewards/math/mean (" in await drawn(pilot, before)
            await pilot.press("escape")
            assert isinstance(app.screen, CompareScreen) is False

    asyncio.run(main())


def test_compare_follows_a_running_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compared run that is running gets its new points (asked from its last step on) and the
    plot and legend follow; a finished one is not asked again."""
    monkeypatch.setattr("tui.screens.compare.FOLLOW_S", 0.2)
    series = grpo_series()
    running = {**RL, "state": "running"}

    async def main() -> None:
        app, source = compare_host([SFT, running], series)
        async with app.run_test(size=(100, 30)) as pilot:
            view = await until(pilot, lambda: app.screen.query("#overlay") and app.screen.query_one(
                "#overlay", PlotextView), what="compare screen")
            await until(pilot, lambda: view.drawn, what="first plot")
            assert "@ 1000" in screen_text(app)
            series[RL["id"]]["loss"] += [(s, 0.5) for s in range(1001, 1101)]
            await until(pilot, lambda: "rl train-3fec79d368 0.5 @ 1100" in screen_text(app), what="new points")
            follows = [args for op, args in source.asked if op == "run_metrics" and "since_step" in args]
            assert follows and all(a["id"] == RL["id"] for a in follows) and follows[0]["since_step"] == 1000

    asyncio.run(main())


def test_ema_and_log_axis_functions() -> None:
    """TensorBoard's debiased EMA (a constant stays constant from the first point); a log axis
    drops values <= 0 and counts them; the envelope keeps a one-step spike."""
    assert ema([(1, 2.0), (2, 2.0), (3, 2.0)], 0.9) == pytest.approx([(1, 2.0), (2, 2.0), (3, 2.0)])
    assert ema([(1, 0.0), (2, 1.0)], 0.5)[1][1] == pytest.approx(2 / 3)
    curves = [Curve("a", [(1, -1.0), (2, 0.0), (3, 10.0), (4, 100.0)])]
    drawn_points, dropped = prepared(curves, 0.0, True, 40)
    assert dropped == 2 and drawn_points == [[(3, 1.0), (4, 2.0)]]
    spike = [Curve("s", spiky(1.0, spike_at=777))]
    assert max(v for _, v in prepared(spike, 0.0, False, 30)[0][0]) == 50.0
    assert "(no points)" in legend([Curve("a", []), Curve("b", [(1, 1.0)])], 80).plain


@pytest.mark.parametrize("size", [(60, 18), (80, 24), (160, 48)], ids=["60x18", "80x24", "160x48"])
def test_compare_sizes_never_cut_a_number(size: tuple[int, int]) -> None:
    evals = eval_answer()

    async def main() -> None:
        runs = [SFT, RL, EVAL_BASE, EVAL_SFT]
        app, _ = compare_host(runs, grpo_series(), evals)
        async with app.run_test(size=size) as pilot:
            view = await until(pilot, lambda: app.screen.query("#overlay") and app.screen.query_one(
                "#overlay", PlotextView), what="compare screen")
            await until(pilot, lambda: view.drawn, what="first plot")
            await pilot.pause(0.1)
            curves = screen_text(app)
            assert_whole(curves)
            assert "rl train-3fec79d368" in curves or size[0] < 80
            await pilot.press("o")
            await pilot.pause(0.2)
            scores = screen_text(app)
            assert_whole(scores)
            assert "62.5" in scores
            app.screen.query_one("#scores-scroll").scroll_end(animate=False)
            await pilot.pause(0.2)
            deltas = screen_text(app)
            assert_whole(deltas)
            assert "+37.5    [-5.8, +80.8]   8" in deltas  # a narrow terminal leaves out q and p, never a digit
            await app.push_screen(DiffScreen(app.screen.source, SFT["id"], RL["id"]))  # type: ignore[attr-defined]
            await until(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.found, what="diff")
            await pilot.pause(0.1)
            diff = screen_text(app)
            assert_whole(diff)
            for key, left, right in DIFF["rows"][:3]:  # the rows a 60x18 terminal shows
                assert key in diff.replace("\n", "") or size[0] < 80
                assert left in diff and right in diff

    asyncio.run(main())


#: What `run_diff` answered for the recorded sft and rl trainings (with trl args, as a real one).
DIFF = {"left": SFT["id"], "right": RL["id"], "same": 9, "rows": [
    ["run.name", "sft", "rl"], ["params.method", "sft", "grpo"],
    ["params.args.learning_rate", "0.0005", "5e-05"], ["params.args.per_device_train_batch_size", "16", "48"],
    ["params.args.num_generations", "—", "8"], ["params.reward", "null", "math"],
    ["code.run_hash", "587dcc70fe", "3fec79d368"], ["outputs.model_path", "models/sft", "models/rl"]]}


EVAL_BASE = {"id": "eval-f48f8c8387", "experiment": "tiny-lab", "name": "base", "kind": "eval",
             "state": "succeeded"}
EVAL_SFT = {"id": "eval-cfd55109de", "experiment": "tiny-lab", "name": "sft", "kind": "eval", "state": "succeeded"}


def eval_answer() -> dict[str, Any]:
    """What `compare_evals` answered on the recorded workspace."""
    def scores(values: list[float]) -> list[dict[str, Any]]:
        return [{"benchmark": b, "group": g, "accuracy": v, "n": 8, "stderr": 17.0} for (b, g), v in zip(
            [("lab_basic_arithmetic", "math"), ("lab_spell_backward", "non"), ("lab_syllogism", "other")],
            values, strict=True)]

    def delta(bench: str, group: str, d: float, low: float, high: float, p: float) -> dict[str, Any]:
        return {"experiment": "tiny-lab", "model": "sft", "base_model": "base", "method": "sft",
                "benchmark": bench, "group": group, "n": 8, "delta": d, "se": 16.4, "ci_low": low,
                "ci_high": high, "p": p, "q": 0.170}

    return {"runs": [{**EVAL_BASE, "model": "base", "scores": scores([37.5, 37.5, 50.0])},
                     {**EVAL_SFT, "model": "sft", "scores": scores([62.5, 75.0, 75.0])}],
            "deltas": [delta("lab_basic_arithmetic", "math", 25.0, -13.7, 63.7, 0.17),
                       delta("lab_spell_backward", "non", 37.5, -5.8, 80.8, 0.08),
                       delta("lab_syllogism", "other", 25.0, -13.7, 63.7, 0.17)]}


def test_compare_snapshot(snap_compare: Any) -> None:
    """The compare screen at 80x24: two trainings' loss overlaid, legend and note under it."""
    pytest.importorskip("pytest_textual_snapshot")
    app, _ = compare_host([SFT, RL], grpo_series())

    async def ready(pilot: Pilot[Any]) -> None:
        view = await until(pilot, lambda: app.screen.query("#overlay") and app.screen.query_one(
            "#overlay", PlotextView), what="compare screen")
        await until(pilot, lambda: view.drawn, what="first plot")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


# -- against the daemon -----------------------------------------------------------------------------------
def add_failed_probe(rec: Recorded, label: str) -> str:
    """One more light failed probe run (resuming it for real starts the probe worker only)."""
    plan = make_run("probe", label, "probe-exp", {"label": label, "steps": 1}, [])
    row = {"state": "failed", "created_at": at(50), "started_at": at(50), "finished_at": at(49),
           "error": "failing on purpose", "attempt": 1, "host": "lab-box"}

    def write(f: Files) -> None:
        f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
        f.event(1, "failed", error="failing on purpose")

    return add_run(rec.ws, plan, row, write, experiment=None)


def test_cancel_and_resume_every_marked_run(recorded: Recorded) -> None:
    """c on a running training, a queued eval and a finished build: one question (y only), and the
    toast counts a stop, a cancel and one already ended; r on two failed probes and a finished
    build resumes both probes and says the build was not down; r on a dependant whose dependency is
    down offers that dependency first."""
    ids = recorded.ids
    second = add_failed_probe(recorded, "probe-2")

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        table = app.screen.query_one(RunsTable)
        for role in ("rl", "eval_rl", "build"):
            table.select(ids[role])
            await pilot.press("space")
        await pilot.press("c")
        assert isinstance(app.screen, Confirm)
        question = app.screen.question
        assert f"Cancel 2 marked runs: {ids['rl']}, {ids['eval_rl']}?" in question
        assert "1 running: stopped with SIGTERM." in question and "1 marked already ended" in question
        assert f"1 run waiting for them will be cancelled too: {ids['analyse_rl']}" in question
        await pilot.press("enter")
        assert isinstance(app.screen, Confirm)  # enter does not answer
        await pilot.press("y")
        await until(pilot, lambda: any(t.startswith("cancelled 1") for t in toasts(app)), what="toast")
        # The run-end toasts (tui/notify.py) of runs that end meanwhile may come after it: pick it out.
        assert [t for t in toasts(app) if t.startswith("cancelled 1")][-1] == ("cancelled 1, stopping 1 (SIGTERM sent), 1 already ended, "
                                   "1 waiting for them will be cancelled")
        for role in ("rl", "eval_rl", "analyse_rl"):
            await until(pilot, lambda role=role: app.runs[ids[role]]["state"] == "cancelled", what=role)

        await pilot.press("escape")  # clears the marks
        table.select(ids["eval_rl"])
        await pilot.press("space")
        await pilot.press("r")
        assert isinstance(app.screen, Confirm)
        assert f"Resume 1 run: {ids['rl']}?" in app.screen.question and "it goes first" in app.screen.question
        await pilot.press("n")  # yes would start a real training

        await pilot.press("escape")
        for run_id in (ids["probe"], second, ids["build"]):
            table.select(run_id)
            await pilot.press("space")
        await pilot.press("r")
        assert isinstance(app.screen, Confirm)
        assert "Resume 2 runs" in app.screen.question and "1 marked not failed or cancelled" in app.screen.question
        await pilot.press("y")
        await until(pilot, lambda: any(t.startswith("resumed") for t in toasts(app)), what="resume toast")
        assert [t for t in toasts(app) if t.startswith("resumed")][-1] == \
            "resumed 2 (queued again), 1 not failed or cancelled"
        for run_id in (ids["probe"], second):
            await until(pilot, lambda run_id=run_id: app.runs[run_id]["state"] not in ("failed", "cancelled"),
                        what=f"{run_id} queued again")

    run_app(make_app(recorded.ws), scenario, size=(100, 30))


def test_eval_compare_config_tab_and_diff(recorded: Recorded) -> None:
    """C on two eval runs shows each model's scores and the paired deltas and CIs exactly as the
    daemon's paired_deltas view holds them; p on a run's detail shows its configuration; d on two
    marked trainings shows only the keys run_diff says differ."""
    ids = recorded.ids

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        table = app.screen.query_one(RunsTable)
        for role in ("eval_base", "eval_sft"):
            table.select(ids[role])
            await pilot.press("space")
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and "paired difference"
                    in screen_text(app) and "sft − base" in screen_text(app), what="eval compare")
        text = screen_text(app)
        view = await app.source.request(
            "sql", query="SELECT benchmark, delta, ci_low, ci_high, n FROM paired_deltas "
                         "WHERE experiment = 'tiny-lab' AND model = 'sft' ORDER BY benchmark")
        assert len(view["rows"]) == 3
        deltas = text.split("sft − base", 1)[1].splitlines()
        for bench, delta, low, high, n in view["rows"]:
            line = next(line for line in deltas if line.split()[:1] == [bench])
            assert line.split()[1:5] == [f"{delta:+.1f}", f"[{low:+.1f},", f"{high:+.1f}]", str(n)]
        results = await app.source.request("run_results", id=ids["eval_sft"])
        for b in results["benchmarks"]:
            line = next(line for line in text.splitlines() if line.split()[:1] == [b["benchmark"]])
            assert f"{b['accuracy']:.1f}" in line.split()
        await pilot.press("escape", "escape")

        app.open_run(ids["sft"])
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="detail")
        await pilot.press("p")
        await until(pilot, lambda: "params.method" in screen_text(app), what="config tab")
        config = screen_text(app)
        assert "params.data" in config and "lab/math-train" in config and "code.run_hash" in config
        await pilot.press("escape")

        for role in ("sft", "rl"):
            table.select(ids[role])
            await pilot.press("space")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.found, what="diff")
        found = app.screen.found
        text = screen_text(app)
        assert f"{len(found['rows'])} differing keys, {found['same']} equal" in text
        keys = [line.split()[0] for line in text.splitlines()[3:] if line.strip().startswith(("run.", "params.",
                                                                                                "code.", "outputs."))]
        assert keys == [row[0] for row in found["rows"]] and "params.method" in keys
        assert "params.data" not in keys and "run.kind" not in keys

    run_app(make_app(recorded.ws), scenario, size=(100, 30))


def test_data_in_compare_and_diff_is_shown_literally() -> None:
    """A run name, a metric name and a config value holding ESC, CR and Rich markup reach the
    screen as visible characters, never as terminal commands or styles."""
    evil = "\x1b[2J[red]x[/red]\r"
    runs = [{**SFT, "name": evil}, RL]
    series = {SFT["id"]: {f"m{evil}": [(1, 1.0), (2, 2.0)]}, RL["id"]: {f"m{evil}": [(1, 3.0)]}}
    diff = {"left": SFT["id"], "right": RL["id"], "same": 0, "rows": [[f"params.{evil}", evil, "ok"]]}

    async def main() -> None:
        app, source = compare_host(runs, series)
        source.answers["run_diff"] = diff
        async with app.run_test(size=(100, 30)) as pilot:
            view = await until(pilot, lambda: app.screen.query("#overlay") and app.screen.query_one(
                "#overlay", PlotextView), what="compare screen")
            await until(pilot, lambda: view.drawn, what="first plot")
            await pilot.pause(0.1)
            text = screen_text(app)
            assert "␛[2J[red]x[/red]␍ train-587dcc70fe" in text and "m␛[2J[red]x[/red]␍ (1/1)" in text
            await app.push_screen(DiffScreen(source, SFT["id"], RL["id"]))  # type: ignore[arg-type]
            await until(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.found, what="diff")
            await pilot.pause(0.1)
            text = screen_text(app)
            assert "params.␛[2J[red]x[/red]␍" in text and "\x1b" not in text and "\r" not in text
            evals = eval_answer()
            evals["runs"][1]["model"] = evals["deltas"][0]["model"] = evil
            source.answers["compare_evals"] = evals
            await app.push_screen(CompareScreen(source, [EVAL_BASE, EVAL_SFT]))  # type: ignore[arg-type]
            await until(pilot, lambda: "paired difference" in screen_text(app), what="scores")
            text = screen_text(app)
            assert "␛[2J[red]x[/red]␍: eval-cfd55109de" in text and "␛[2J[red]x[/red]␍ − base" in text
            assert "\x1b" not in text and "\r" not in text

    asyncio.run(main())
