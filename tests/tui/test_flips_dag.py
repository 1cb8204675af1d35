"""Issue 25.14 and 25.16: the flips view (a tuned model against its base, item by item) and an
experiment's runs as a DAG, against a real daemon on the recorded workspace.

The workspace gets one more tuned model, `evil`, whose eval run gains some items and loses others
against the base, with completions that hold ESC, CR and BEL: the flips summary must equal what
`tix flips --format json` prints, enter on an item must show the prompt once and both completions
with their controls visible, and the DAG must show every run of the experiment with its state
and why it waits, and open a run on enter. Snapshots at 80x24; layouts checked at 60x18 and 160x48.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList

from engine.analysis.ti import p_text
from engine.client.connection import Client, RequestFailed
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import ROOT
from tests.tui.conftest import connected, make_app
from tests.tui.recorded import (
    BENCHMARKS,
    EXPERIMENT,
    Files,
    Recorded,
    _sample,
    add_run,
    at,
)
from tests.tui.screen_support import drive, recorded_home, until
from tests.tui.test_numbers import assert_whole
from tui.format import CONTROLS as CONTROLS_RE
from tui.screens.analytics import TIScreen
from tui.screens.dag import DagScreen, node_lines
from tui.screens.experiments import ExperimentsScreen
from tui.screens.flips import ALL, FlipItemScreen, FlipsScreen
from tui.screens.run_detail import RunDetailScreen
from tui.screentext import screen_text

CONTROLS = "\x1b[2J\rEVIL\x07"
"""What the evil model writes into every completion: clear the screen, return, ring the bell."""
SnapCompare = Callable[..., bool]


def evil_right(i: int) -> bool:
    return i % 2 == 0


def write_evil(f: Files) -> None:
    """An eval run of `evil`: even items right, odd ones wrong (so it gains some of the base's
    misses and loses some of its hits), every completion laced with control characters and six
    lines long (a pane at 60x18 must scroll)."""
    f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
    for b, (bench, group) in enumerate(BENCHMARKS):
        for i in range(8):
            sample = _sample(bench, group, i, evil_right(i))
            working = "".join(f"\nstep {k}: still working" for k in range(1, 7))
            f.sample(**{**sample, "completion": f"{CONTROLS} {sample['completion']}{working}"})
        right = sum(evil_right(i) for i in range(8))
        f.event(30 + b * 30, "score", benchmark=bench, group=group, metric="accuracy",
                value=round(100 * right / 8, 1), n=8)
    f.event(100, "finished", result={})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The recorded workspace plus the evil model's eval run; one daemon for the module."""
    with recorded_home(tmp_path_factory.mktemp("flips") / "tix-home", add_evil) as rec:
        yield rec


def add_evil(rec: Recorded) -> None:
    """The evil model's eval run, after the build run it evaluates."""
    plan = make_run("eval", "evil", EXPERIMENT, {"suite": "lab", "label": "evil"}, [rec.ids["build"]])
    row = {"state": "succeeded", "created_at": at(60), "started_at": at(59), "finished_at": at(58),
           "progress": 1.0, "attempt": 1, "host": "lab-box"}
    rec.ids["eval_evil"] = add_run(rec.ws, plan, row, write_evil)


def tix_json(*args: str) -> Any:
    result = subprocess.run([sys.executable, "-m", "engine.cli", *args, "--format", "json"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_full(ws: Workspace, scenario: Callable[[Pilot[Any]], Awaitable[None]],
             size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        app = make_app(ws)
        async with app.run_test(size=size) as pilot:
            await connected(pilot)
            await scenario(pilot)
            await app.source.close()
    asyncio.run(main())


async def flips_loaded(pilot: Pilot[Any]) -> FlipsScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, FlipsScreen) and pilot.app.screen.loaded,
                what="flips loaded")
    assert isinstance(pilot.app.screen, FlipsScreen)
    return pilot.app.screen


def cells(table: DataTable[Any], row: int) -> list[str]:
    return [c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(row)]


# -- flips --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["evil", "sft"])
def test_flips_summary_equals_tix_flips(lab: Recorded, model: str) -> None:
    """Each benchmark's items, gained, lost, net and McNemar p, and each flipped item, as `tix flips` prints."""
    summary = tix_json("flips", EXPERIMENT, "--model", model)
    items = tix_json("flips", EXPERIMENT, "--model", model, "--items")
    assert summary and items, "the workspace must have flips to compare"
    if model == "evil":
        assert sum(r["lost"] for r in summary) > 0 and sum(r["gained"] for r in summary) > 0

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await flips_loaded(pilot)
        table = screen.query_one("#flips-summary", DataTable)
        assert table.row_count == len(summary) + 1  # and the `all` row
        for i, row in enumerate(summary):
            expected = [row["benchmark"], str(row["items"]), str(row["gained"]), str(row["lost"]),
                        f"{row['net']:+d}" if row["net"] else "0", p_text(row["mcnemar_p"])]
            assert cells(table, i) == expected
            got = screen.benchmarks[i]
            assert got["mcnemar_p"] == pytest.approx(row["mcnemar_p"], rel=1e-12)
            shown = [(t["item_id"], t["change"]) for t in screen.data["items"] if t["benchmark"] == row["benchmark"]]
            assert sorted(shown) == sorted([(x, "gained") for x in row["gained_items"] or []]
                                           + [(x, "lost") for x in row["lost_items"] or []])
        assert cells(table, len(summary))[:5] == [ALL, *(str(sum(r[k] for r in summary))
                                                         for k in ("items", "gained", "lost")),
                                                  f"{sum(r['net'] for r in summary):+d}"]
        table.move_cursor(row=len(summary))  # all: every flipped item of every benchmark
        await pilot.pause(0.1)
        assert len(screen.shown_items) == len(items)
        assert screen.query_one("#flips-items", DataTable).row_count == len(items)

    drive(lab.ws, lambda s: FlipsScreen(s, EXPERIMENT, model), scenario)


@pytest.mark.parametrize("size", [(60, 18), (160, 48)], ids=["60x18", "160x48"])
def test_flips_numbers_whole_at_every_size(lab: Recorded, size: tuple[int, int]) -> None:
    """Every benchmark's counts and p are on screen whole, beside its name, at 60x18 as at 160x48."""

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await flips_loaded(pilot)
        await pilot.pause(0.1)
        text = screen_text(pilot.app)
        assert_whole(text)
        for row in screen.benchmarks:
            figures = [str(row["items"]), str(row["gained"]), str(row["lost"]), f"{row['net']:+d}" if row["net"]
                       else "0", p_text(row["mcnemar_p"])]
            line = next(x for x in text.splitlines() if x.startswith(f" {row['benchmark']} "))
            assert line.split()[1:] == figures, line

    drive(lab.ws, lambda s: FlipsScreen(s, EXPERIMENT, "evil"), scenario, size)


def test_a_long_item_list_is_capped_and_says_so(lab: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of flipped items (paper scale) fill at most MAX_ITEMS rows; the head line says so."""
    monkeypatch.setattr("tui.screens.flips.MAX_ITEMS", 3)

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await flips_loaded(pilot)
        total = len(screen.data["items"]) if screen.data else 0
        assert total > 3
        screen.query_one("#flips-summary", DataTable).move_cursor(row=len(screen.benchmarks))  # all
        await pilot.pause(0.1)
        assert screen.query_one("#flips-items", DataTable).row_count == 3
        assert f"{total} flipped items of every benchmark, the first 3 shown" in screen_text(pilot.app)

    drive(lab.ws, lambda s: FlipsScreen(s, EXPERIMENT, "evil"), scenario, (160, 48))


def test_f_on_ti_opens_the_selected_models_flips(lab: Recorded) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(pilot.app.screen, TIScreen) and pilot.app.screen.loaded, what="TI")
        ti = pilot.app.screen
        assert isinstance(ti, TIScreen)
        ti.query_one("#ti-table", DataTable).move_cursor(row=[o["model"] for o in ti.shown].index("evil"))
        await pilot.press("f")
        screen = await flips_loaded(pilot)
        assert (screen.experiment, screen.model) == (EXPERIMENT, "evil")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, TIScreen), what="back to TI")

    run_full(lab.ws, scenario)


@pytest.mark.parametrize("size", [(60, 18), (80, 24), (160, 48)], ids=["60x18", "80x24", "160x48"])
def test_enter_shows_both_completions_with_controls_visible(lab: Recorded, size: tuple[int, int]) -> None:
    """The prompt once, then base | tuned, each with its verdict and answer; ESC, CR and BEL shown
    as ␛ ␍ ␇, never sent; at 60x18 the pane scrolls to the end of the longer completion."""

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await flips_loaded(pilot)
        screen.query_one("#flips-summary", DataTable).move_cursor(row=len(screen.benchmarks))  # all
        await pilot.pause(0.1)
        lost = next(i for i, t in enumerate(screen.shown_items) if t["change"] == "lost")
        items = screen.query_one("#flips-items", DataTable)
        items.focus()
        items.move_cursor(row=lost)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, FlipItemScreen) and pilot.app.screen.pair,
                    what="item loaded")
        pair_screen = pilot.app.screen
        assert isinstance(pair_screen, FlipItemScreen)
        await pilot.pause(0.2)
        pair = pair_screen.pair
        assert pair is not None
        assert pair["base"]["correct"] and not pair["model"]["correct"]  # lost: base right, tuned wrong
        text = screen_text(pilot.app)
        assert "\x1b" not in text and "\r" not in text and "\x07" not in text
        assert "␛[2J␍EVIL␇" in text
        assert text.count(pair["prompt"]) == 1  # the prompt once, not per side
        assert "base: base" in text and "tuned: evil" in text
        assert "right · verdict 1" in text and "wrong · verdict 0" in text
        scroll = pair_screen.query_one("#pair-scroll")
        await pilot.press("end")
        await pilot.pause(0.1)
        if size == (60, 18):
            assert scroll.scroll_y > 0, "a narrow pane scrolls"
        assert "step 6: still working" in screen_text(pilot.app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, FlipsScreen), what="back to flips")

    drive(lab.ws, lambda s: FlipsScreen(s, EXPERIMENT, "evil"), scenario, size)


def test_flips_of_a_base_model_say_why(lab: Recorded) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        screen = pilot.app.screen
        await until(pilot, lambda: "cannot load the flips" in screen_text(pilot.app), what="refusal")
        assert "'base' is a base model" in screen_text(pilot.app)
        assert isinstance(screen, FlipsScreen) and screen.data is None

    drive(lab.ws, lambda s: FlipsScreen(s, EXPERIMENT, "base"), scenario)


def test_flip_item_op_by_run_equals_by_lookup_and_refuses_others(lab: Recorded) -> None:
    """The runs a `flips` row names give the same answer as the newest-run lookup; a run of another
    model is not_found, a missing argument a one-line bad request."""
    with Client(lab.ws) as client:
        row = client.request("flips", experiment=EXPERIMENT, model="evil")["items"][0]
        key = {"experiment": EXPERIMENT, "model": "evil", "benchmark": row["benchmark"], "item_id": row["item_id"]}
        looked_up = client.request("flip_item", **key)
        by_run = client.request("flip_item", **key, model_run=row["model_run"], base_run=row["base_run"])
        assert by_run == looked_up
        assert (by_run["model"]["verdict"], by_run["base"]["verdict"]) == (row["model_verdict"], row["base_verdict"])
        with pytest.raises(RequestFailed) as refused:
            client.request("flip_item", **key, model_run=row["base_run"], base_run=row["base_run"])
        assert refused.value.code == "not_found" and "is not an eval or score run of 'evil'" in str(refused.value)
        with pytest.raises(RequestFailed) as bad:
            client.request("flip_item", experiment=EXPERIMENT, model="evil")
        assert bad.value.code == "bad_request" and "benchmark must be a name" in str(bad.value)


# -- DAG ----------------------------------------------------------------------------------------------
async def open_dag_from_experiments(pilot: Pilot[Any]) -> DagScreen:
    await pilot.press("2")
    await until(pilot, lambda: isinstance(pilot.app.screen, ExperimentsScreen) and pilot.app.screen.entries,
                what="experiments listed")
    exps = pilot.app.screen
    assert isinstance(exps, ExperimentsScreen)
    exps.query_one("#exp-list", OptionList).highlighted = [e.name for e in exps.entries].index(EXPERIMENT)
    await pilot.press("D")
    return await dag_loaded(pilot)


async def dag_loaded(pilot: Pilot[Any]) -> DagScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, DagScreen) and pilot.app.screen.loaded,
                what="DAG loaded")
    assert isinstance(pilot.app.screen, DagScreen)
    await pilot.pause(0.1)
    return pilot.app.screen


def node_text(screen: DagScreen, run_id: str) -> str:
    table = screen.query_one("#dag", DataTable)
    at = next(c for c, found in screen.cells.items() if found == run_id)
    return " ".join(table.get_cell_at(at).plain.split())  # one line, whatever the wrapping


@pytest.mark.parametrize("size", [(60, 18), (160, 48)], ids=["60x18", "160x48"])
def test_dag_shows_every_run_with_state_and_why(lab: Recorded, size: tuple[int, int]) -> None:
    """Every run of the experiment is a node with its state in words, what it needs, and why it waits."""
    members = {k: v for k, v in lab.ids.items() if k != "probe"}

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await open_dag_from_experiments(pilot)
        assert sorted(screen.cells.values()) == sorted(members.values())
        runs = pilot.app.runs  # type: ignore[attr-defined]
        for run_id in members.values():
            text = node_text(screen, run_id)
            assert run_id in text
            assert runs[run_id]["state"] in text
        waiting = node_text(screen, lab.ids["eval_rl"])
        assert f"waiting for {lab.ids['rl']} (running)" in waiting  # the daemon's reason
        assert "← train rl ◐" in waiting
        assert "CUDA out of memory" in node_text(screen, lab.ids["analyse_sft"])
        assert screen.columns == (4 if size[0] >= 160 else 1)
        if size == (60, 18):  # the stacked list scrolls down to the last node
            last = max(screen.cells)
            screen.query_one("#dag", DataTable).move_cursor(row=last[0], column=last[1])
            await pilot.pause(0.2)
            assert screen.query_one("#dag", DataTable).scroll_y > 0
            assert "analyse" in screen_text(pilot.app)
        else:  # the stages side by side, each column header on screen
            assert all(f"{s} (" in screen_text(pilot.app) for s in ("build", "train", "eval", "analyse"))

    run_full(lab.ws, scenario, size)


def test_dag_from_runs_list_f_and_enter(lab: Recorded) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        runs_screen = pilot.app.screen
        for _ in range(20):  # down to a run of the experiment (the probe run belongs to another)
            run = runs_screen.selected_run()  # type: ignore[attr-defined]
            if run and run.get("experiment") == EXPERIMENT:
                break
            await pilot.press("down")
        await pilot.press("D")
        screen = await dag_loaded(pilot)
        assert screen.experiment == EXPERIMENT
        assert screen.select(lab.ids["eval_sft"])
        await pilot.press("f")  # an eval run: its model's flips
        flips = await flips_loaded(pilot)
        assert (flips.experiment, flips.model) == (EXPERIMENT, "sft")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, DagScreen), what="back to the DAG")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunDetailScreen), what="run detail")
        assert pilot.app.screen.run_id == lab.ids["eval_sft"]  # type: ignore[attr-defined]

    run_full(lab.ws, scenario)


# -- snapshots ------------------------------------------------------------------------------------------
def test_snapshot_flips(snap_compare: SnapCompare, lab: Recorded) -> None:
    pytest.importorskip("pytest_textual_snapshot")

    async def before(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        pilot.app.push_screen(FlipsScreen(pilot.app.source, EXPERIMENT, "evil"))  # type: ignore[attr-defined]
        screen = await flips_loaded(pilot)
        screen.query_one("#flips-summary", DataTable).move_cursor(row=1)
        await pilot.pause(0.2)

    assert snap_compare(make_app(lab.ws), terminal_size=(80, 24), run_before=before)


def test_snapshot_flip_item(snap_compare: SnapCompare, lab: Recorded) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        pilot.app.push_screen(FlipsScreen(pilot.app.source, EXPERIMENT, "evil"))  # type: ignore[attr-defined]
        screen = await flips_loaded(pilot)
        screen.open_item(screen.shown_items[0])
        await until(pilot, lambda: isinstance(pilot.app.screen, FlipItemScreen) and pilot.app.screen.pair,
                    what="item loaded")
        await pilot.pause(0.2)

    assert snap_compare(make_app(lab.ws), terminal_size=(80, 24), run_before=before)


def test_snapshot_dag(snap_compare: SnapCompare, lab: Recorded) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        await open_dag_from_experiments(pilot)
        await pilot.pause(0.2)

    assert snap_compare(make_app(lab.ws), terminal_size=(80, 24), run_before=before)


def test_dag_node_shows_controls_visibly() -> None:
    """A run name, dependency id and error from data reach a node with their controls shown."""
    run = {"id": "eval-1", "kind": "eval", "name": "evil\x1b[2J", "state": "failed", "deps": ["dep\r1"],
           "error": "Traceback\nboom \x1b]52;c;QUJD\x07 done"}
    text = node_lines(run, {}, 40, Console()).plain
    assert all(CONTROLS_RE.search(line) is None for line in text.split("\n"))  # newlines: the node's lines
    assert "evil␛[2J" in text and "dep␍1" in text and "␛]52;c;QUJD␇" in text
