"""The TI and shift screens against a real daemon fed with imported scores and recorded analyse runs.

TI values must equal `tix ti --format json` for each toggle, the drill-down must list the
benchmarks, exports must equal what `tix ti --format` prints, and the shift screen must draw
what the recorded runs hold. Snapshots at 80x24 and 120x36 (`--snapshot-update` after an
intended change of the layout).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select

from engine.workspace import Workspace
from tests.conftest import ROOT
from tests.tui.screen_support import EXPERIMENT, HostApp, drive, seed, settle, until, workspace
from tui.screens.analytics import ShiftScreen, TIDetailScreen, TIScreen
from tui.screens.export import ExportScreen
from tui.widgets.charts import ChartView


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One seeded workspace and daemon for the whole module (seeding takes a couple of seconds)."""
    tmp = tmp_path_factory.mktemp("analytics")
    with workspace(tmp / "home") as ws:
        seed(ws, tmp)
        yield ws


def tix_out(*args: str) -> str:
    """stdout of the CLI (the module's TIX_HOME), asserting success."""
    result = subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def same(a: Any, b: Any) -> bool:
    """Equal JSON-ish values, floats to 1e-9, NaN (screen) equal to null (CLI JSON)."""
    if isinstance(a, float) and math.isnan(a):
        return b is None
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


def row_text(table: DataTable[Any], row: int) -> list[str]:
    return [getattr(c, "plain", str(c)) for c in table.get_row_at(row)]


def ti_screen(pilot: Pilot[Any]) -> TIScreen:
    assert isinstance(pilot.app.screen, TIScreen)
    return pilot.app.screen


async def ti_loaded(pilot: Pilot[Any], count: int = 1) -> TIScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, TIScreen) and pilot.app.screen.loaded >= count)
    return ti_screen(pilot)


def one_decimal(value: float | None) -> str:
    return "nan" if value is None else f"{value:.1f}"


def signed(value: float | None) -> str:
    text = one_decimal(value)
    return text if value is None or value <= 0 else "+" + text


def check_table(screen: TIScreen, cli: list[dict[str, Any]]) -> None:
    """The screen's objects equal the CLI's JSON, and each row shows them rounded, `!` when unstable."""
    assert len(screen.shown) == len(cli) == 2
    for ours, theirs in zip(screen.shown, cli, strict=True):
        assert same(ours, theirs), (ours, theirs)
    table = screen.query_one("#ti-table", DataTable)
    for i, o in enumerate(cli):
        cells = row_text(table, i)
        mark = "!" if o["unstable"] else " "
        assert cells[0] == o["model"]
        assert cells[-2:] == [signed(o["ti_other"]) + mark, signed(o["ti_non"]) + mark]  # the sign written out
        math = o["groups"]["math"]
        arrow = "↑" if math["model"] - math["base"] >= 1 else "↓" if math["model"] - math["base"] <= -1 else ""
        assert cells[2] == f"{math['base']:.1f}→{math['model']:.1f}{arrow}"
    notes = str(screen.query_one("#ti-notes").render())
    assert f"against base model {cli[0]['base_model']}" in notes


def test_ti_screen_shows_what_tix_ti_computes(lab: Workspace) -> None:
    v2 = json.loads(tix_out("ti", EXPERIMENT, "--format", "json"))
    v1 = json.loads(tix_out("ti", EXPERIMENT, "--variant", "v1", "--format", "json"))
    per_model = json.loads(tix_out("ti", EXPERIMENT, "--sigma", "per-model", "--format", "json"))

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await ti_loaded(pilot)
        assert screen.experiment == EXPERIMENT and str(screen.query_one("#ti-mode").render()) == "TI v2 · σ pooled"
        check_table(screen, v2)
        notes = str(screen.query_one("#ti-notes").render())
        assert "! rl: unstable, maths gain 0.35 points < 1" in notes  # rl gains 0.35 maths points
        await pilot.press("v")
        await ti_loaded(pilot, 2)
        check_table(screen, v1)
        await pilot.press("v", "s")  # back to v2, then per-model sigma
        await until(pilot, lambda: screen.loaded >= 4)
        check_table(screen, per_model)
        assert str(screen.query_one("#ti-mode").render()) == "TI v2 · σ per-model"

    drive(lab, TIScreen, scenario)


def test_ti_drilldown_lists_benchmarks(lab: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "sft.csv"

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await ti_loaded(pilot)
        await pilot.press("enter")  # the first row: sft
        detail = await until(pilot, lambda: isinstance(pilot.app.screen, TIDetailScreen) and pilot.app.screen)
        table = detail.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 6)
        rows = [row_text(table, i) for i in range(table.row_count)]
        sft = screen.shown[0]
        assert [r[0] for r in rows] == ["arith", "chain", "bits", "syllogism", "reverse", "spell"]
        assert rows[0][:5] == ["arith", "math", "40.0", "55.0", "+15.0"]
        assert rows[0][5:7] == ["no items", "-"]  # imported scores: no interval, no test
        assert rows[0][8] == f"{sft['groups']['math']['sigma']:.2f}"  # v2's sigma column
        await export_as(pilot, 0, target)  # the drill-down exports its own rows
        await until(pilot, lambda: pilot.app.screen is detail)
        await pilot.press("escape")
        await until(pilot, lambda: pilot.app.screen is screen)

    drive(lab, TIScreen, scenario)
    cli = tix_out("ti", EXPERIMENT, "--benchmarks", "--format", "csv").splitlines()
    assert target.read_text().splitlines() == [cli[0], *(line for line in cli[1:] if line.split(",")[1] == "sft")]


async def export_as(pilot: Pilot[Any], option: int, path: Path) -> None:
    """e, pick the format, type the path, enter."""
    await pilot.press("e")
    dialog = await until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen) and pilot.app.screen)
    dialog.query_one(OptionList).highlighted = option
    await pilot.press("enter")  # the format: focus moves to the path
    await until(pilot, lambda: dialog.query_one(Input).has_focus)
    dialog.query_one(Input).value = str(path)
    await pilot.press("enter")
    await until(pilot, lambda: path.exists())


def test_ti_export_writes_what_the_cli_prints(lab: Workspace, tmp_path: Path) -> None:
    targets = {"md": tmp_path / "ti.md", "csv": tmp_path / "ti.csv", "latex": tmp_path / "ti.tex"}

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await ti_loaded(pilot)
        await pilot.press("e")
        dialog = await until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen) and pilot.app.screen)
        assert dialog.query_one(Input).value == f"tix-ti-{EXPERIMENT}-v2-pooled.csv"  # the default name
        await pilot.press("down")
        await until(pilot, lambda: dialog.query_one(Input).value == f"tix-ti-{EXPERIMENT}-v2-pooled.md")
        await pilot.press("escape")
        await until(pilot, lambda: pilot.app.screen is screen)
        for option, key in enumerate(("csv", "md", "latex")):
            await export_as(pilot, option, targets[key])

    drive(lab, TIScreen, scenario)
    for fmt, path in targets.items():
        assert path.read_text() == tix_out("ti", EXPERIMENT, "--format", fmt), fmt
    assert "UNSTABLE" in targets["md"].read_text() and "\\toprule" in targets["latex"].read_text()


def shift_screen(pilot: Pilot[Any]) -> ShiftScreen:
    assert isinstance(pilot.app.screen, ShiftScreen)
    return pilot.app.screen


async def plotted(pilot: Pilot[Any], plot_id: str, *expected: str) -> str:
    """The chart's text once it shows every `expected` string."""
    chart = pilot.app.screen.query_one(f"#{plot_id}", ChartView)
    await until(pilot, lambda: chart.chart is not None and all(e in chart.render().plain for e in expected),
                what=f"{plot_id} showing {expected}")
    return chart.render().plain


def test_shift_screen_draws_the_recorded_results(lab: Workspace) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, ShiftScreen) and pilot.app.screen.loaded)
        screen = shift_screen(pilot)
        assert (screen.experiment, screen.model, screen.benchmark) == (EXPERIMENT, "rl", "arith")
        assert screen.benchmarks() == ["arith", "chain", "bits", "syllogism", "reverse", "spell"]
        await plotted(pilot, "plot-pca", "arith: layers L0..L4", "o base", "x tuned", "PC1", "L0", "L4")
        await plotted(pilot, "plot-layers", "distance per layer", "L0", "L4")
        runs = screen.runs[(EXPERIMENT, "rl")]
        assert len(runs) == 2 and screen.run_id == runs[0][0]  # the newest of rl's two analyse runs
        await pilot.press("d")
        # rl's maths d 0.25 * 1.5; its benchmarks' d 0.25 * (i + 1) in BENCHMARKS order
        await plotted(pilot, "plot-d", "0.375", "math", "other", "non")
        await plotted(pilot, "plot-d", "d per benchmark", "arith", "0.25", "spell", "1.5")
        screen.query_one("#shift-run", Select).value = runs[1][0]  # the older run, at scale 0.5
        await until(pilot, lambda: screen.loaded >= 2)
        await plotted(pilot, "plot-d", "0.75")
        await plotted(pilot, "plot-d", "reverse     3")  # reverse, 0.5 * 6
        screen.query_one("#shift-model", Select).value = "sft"
        await until(pilot, lambda: screen.loaded >= 3)
        assert screen.run_id == screen.runs[(EXPERIMENT, "sft")][0][0]
        await plotted(pilot, "plot-d", "1.5", "2.5", "3.5")  # sft's d per group
        model_select = screen.query_one("#shift-model", Select)
        model_select.clear()  # what picking the prompt line with the keyboard does
        await until(pilot, lambda: model_select.value == "sft")
        assert screen.model == "sft" and screen.loaded == 3
        await pilot.press("k")
        await plotted(pilot, "plot-kl", "token KL(tuned ‖ base) per benchmark", "syllogism 0.3", "spell     0.5")
        await pilot.press("b")
        await plotted(pilot, "plot-ranks", "80%", "rank 2-3")  # arith's rank-1 share; the legend
        await pilot.press("t")
        tokens = screen.query_one("#shift-tokens", DataTable)
        assert [row_text(tokens, i) for i in range(tokens.row_count)] == [
            ["1", "10", "2.00", "' tok00'"], ["2", "9", "3.00", "' tok01'"], ["3", "8", "4.00", "' tok02'"]]
        await pilot.press("g")  # the group's most-shifted tokens
        assert [row_text(tokens, i) for i in range(tokens.row_count)] == [
            ["1", "20", "5.00", "' grp00'"], ["2", "19", "6.00", "' grp01'"]]
        await pilot.press("g")
        screen.query_one("#shift-benchmark", Select).value = "spell"
        await until(pilot, lambda: tokens.row_count == 3 and "tok40" in row_text(tokens, 0)[3])

    drive(lab, ShiftScreen, scenario)


# -- snapshots ---------------------------------------------------------------------------------------
SIZES = [(80, 24), (120, 36)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_ti_snapshot(lab: Workspace, snap_compare: Any, size: tuple[int, int]) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, TIScreen) and pilot.app.screen.loaded)

    assert snap_compare(HostApp(lab, TIScreen), terminal_size=size, run_before=settle(ready))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_shift_snapshot(lab: Workspace, snap_compare: Any, size: tuple[int, int],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.screens.analytics as analytics

    # the run selector shows each run's creation time: fixed here so the picture does not move
    monkeypatch.setattr(analytics, "run_label", lambda row: f"11-23 11:00 {row['run_id'][-4:]}")

    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, ShiftScreen) and pilot.app.screen.loaded)
        await plotted(pilot, "plot-pca")

    assert snap_compare(HostApp(lab, ShiftScreen), terminal_size=size, run_before=settle(ready))


@pytest.mark.parametrize("size", [(60, 18), (80, 24), (160, 48)], ids=["60x18", "80x24", "160x48"])
def test_shift_d_snapshot(lab: Workspace, snap_compare: Any, size: tuple[int, int],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The d tab: every benchmark's bar beside its name, whole names where they fit."""
    import tui.screens.analytics as analytics

    monkeypatch.setattr(analytics, "run_label", lambda row: f"11-23 11:00 {row['run_id'][-4:]}")

    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, ShiftScreen) and pilot.app.screen.loaded)
        await pilot.press("d")
        text = await plotted(pilot, "plot-d", "d per benchmark")
        for name in ("arith", "chain", "bits", "syllogism", "reverse", "spell"):  # label, value, bar: one line
            assert any(line.startswith(name) and "█" in line for line in text.splitlines()), (name, text)

    assert snap_compare(HostApp(lab, ShiftScreen), terminal_size=size, run_before=settle(ready))


HYGIENE = """
import sys
import tui.screens.analytics as a, tui.screens.sql, tui.screens.experiments as e
points = [{"layer": i, "base_pc1": i, "base_pc2": 0.5, "tuned_pc1": i, "tuned_pc2": 1.0} for i in range(3)]
a.trajectory_chart(points, "b")(60, 15)
a.bucket_chart(["b"], [[0.8], [0.15], [0.05]])(60, 10)
text = e.template_text("x")
assert e.check_text(text, "x.yaml") == []
e.plan_text(text, __import__("pathlib").Path("x.yaml"))
heavy = ("torch", "transformers", "trl", "vllm", "duckdb", "numpy", "pyarrow")
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_screens_import_nothing_heavy() -> None:
    """The screens, their plots, validation and planning load no torch, duckdb, numpy (or pyarrow:
    only a Parquet export loads it, in its thread)."""
    result = subprocess.run([sys.executable, "-c", HYGIENE], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_bars_stay_beside_their_labels_at_every_width() -> None:
    """Each bar is one line holding its label, value and bar; labels take the width there is and
    are cut (with …) only when the bar would get fewer than MIN_BAR cells."""
    from tui.widgets.charts import MIN_BAR, Bar, bars_text

    names = ["lab_basic_arithmetic", "lab_chain_sum", "lab_word_sequence_reversal"]
    bars = [Bar(n, v, f"{v:.3g}") for n, v in zip(names, [0.119, -0.0876, 0.002], strict=True)]
    for width in (30, 60, 80, 160):
        lines = bars_text(bars, width, "d").plain.splitlines()
        assert lines[0] == "d" and len(lines) == 4
        for line, name, value in zip(lines[1:], names, ("0.119", "-0.0876", "0.002"), strict=True):
            label = line.split(" ")[0]
            assert name.startswith(label.rstrip("…")) and value in line and len(line) <= width
            if width >= len(names[2]) + 8 + MIN_BAR:
                assert label == name  # room for whole names: never cut
        cells = [sum(c in "█▏▎▍▌▋▊▉" for c in line) for line in lines[1:]]
        assert cells[0] > cells[1] > cells[2]  # lengths follow |d|
    assert "█" * 5 in bars_text(bars, 80).plain.splitlines()[1]


def test_ti_notes_name_the_base_or_count_several() -> None:
    """A model zoo (released pairs with their own bases) gets a base column and says so under the table."""
    screen = TIScreen(None)  # type: ignore[arg-type] - the notes need no daemon
    screen.experiment, screen.warnings = "zoo", []
    rows = [{"model": "a1", "base_model": "a", "unstable": False}, {"model": "b1", "base_model": "b", "unstable": False}]
    assert screen._notes(rows).plain.startswith("2 base models (column base) · ")
    assert screen._notes(rows[:1]).plain.startswith("against base model a · ")
    markup = [{"model": "m", "base_model": "[red]x[/] :fire:", "unstable": False}]
    assert screen._notes(markup).plain.startswith("against base model [red]x[/] :fire: · ")  # data, literally
