"""Issue 25, item 2: a number is never cut. Where a figure does not fit, a shorter whole form of
it shows, or it is left out with a visible `…`, or the table scrolls; checked at every size a
person uses (60x18, 80x24, 120x40, 160x48) with the figures `tix demo` really produces.

These tests need no daemon: the screens draw from runs and results handed to them."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from textual.app import App

from tui.format import result_forms
from tui.screens.runs import RunsScreen
from tui.screentext import screen_text

SIZES = [(60, 18), (80, 24), (120, 40), (160, 48)]
CUT_NUMBER = re.compile(r"\d[.,]?…|\d\.…")
"""A digit (or a decimal point) right before an ellipsis: a number cut through."""

#: What `tix demo` stores for its runs (seed 0), as the daemon sends them.
DEMO_RUNS = [
    {"id": "analyse-4363ca9bce", "experiment": "tiny-lab", "name": "rl", "kind": "analyse", "state": "succeeded",
     "progress": 1.0, "created_at": "2025-03-14 11:50:00", "started_at": "2025-03-14 11:50:00",
     "finished_at": "2025-03-14 11:50:05", "gpus": None,
     "result": {"pca_shift": {"d": {"math": 0.02613, "other": 0.03351, "non": 0.01562}},
                "token_shift": {"kl": {"math": 0.1042, "other": 0.0021, "non": 0.00727}}}},
    {"id": "analyse-00f76f7220", "experiment": "tiny-lab", "name": "sft", "kind": "analyse", "state": "succeeded",
     "progress": 1.0, "created_at": "2025-03-14 11:49:00", "started_at": "2025-03-14 11:49:00",
     "finished_at": "2025-03-14 11:49:10",
     "result": {"pca_shift": {"d": {"math": 0.4941, "other": 0.2042, "non": 0.2101}},
                "token_shift": {"kl": {"math": 0.18, "other": 0.027, "non": 0.426}}}},
    {"id": "eval-97fd2d963c", "experiment": "tiny-lab", "name": "rl", "kind": "eval", "state": "succeeded",
     "progress": 1.0, "created_at": "2025-03-14 11:48:00", "started_at": "2025-03-14 11:48:00",
     "finished_at": "2025-03-14 11:48:05",
     "result": {"scores": {"lab_basic_arithmetic": {"metrics": {"accuracy": 52.0}}}, "groups": {"math": 58.5}}},
    {"id": "train-0116206162", "experiment": "tiny-lab", "name": "rl", "kind": "train", "state": "succeeded",
     "progress": 1.0, "created_at": "2025-03-14 11:45:00", "started_at": "2025-03-14 11:45:00",
     "finished_at": "2025-03-14 11:47:58", "result": {"final": {"reward": 0.2917, "loss": 0.0012}, "steps": 300}},
    {"id": "train-9ed71398ca", "experiment": "tiny-lab", "name": "sft", "kind": "train", "state": "succeeded",
     "progress": 1.0, "created_at": "2025-03-14 11:44:00", "started_at": "2025-03-14 11:44:00",
     "finished_at": "2025-03-14 11:44:22", "result": {"final": {"loss": 0.1353}, "steps": 150}},
]
NOW = 1741953600.0  # 2025-03-14 12:00:00 UTC


class RunsHost(App[None]):
    """The dashboard on fixed runs, with no daemon (it only draws `app.runs`)."""

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.runs = {r["id"]: r for r in runs}
        self.clock = lambda: NOW

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(source=None))  # type: ignore[arg-type]


def assert_whole(text: str) -> None:
    cut = [line for line in text.splitlines() if CUT_NUMBER.search(line)]
    assert not cut, "numbers cut:\n" + "\n".join(cut)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_runs_table_never_cuts_a_result(size: tuple[int, int]) -> None:
    """Each run's result shows as one of its whole forms (`d 0.0261/0.0335/0.0156`, `d .0261/...`,
    `d 0.0261 …`, `rwd 0.292`), and the selected run's line drops whole facts, never digits."""

    async def main() -> None:
        app = RunsHost(DEMO_RUNS)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            text = screen_text(app)
            assert_whole(text)
            table = text.split("\n", 3)[3]
            for run in DEMO_RUNS:
                row = next(line for line in table.splitlines() if line.startswith(f" {run['id']}"))
                assert any(form in row for form in result_forms(run)) or " … " in row + " ", row
            if size[0] >= 120:  # wide enough: every figure in full
                assert "d 0.0261/0.0335/0.0156" in text and "reward 0.292" in text
            for run_id in app.runs:  # every selected run's summary line
                app.screen.query_one("RunsTable").select(run_id)  # type: ignore[attr-defined]
                await pilot.pause()
                assert_whole(screen_text(app))

    asyncio.run(main())


EVAL_RESULTS = {"benchmarks": [
    {"benchmark": "lab_basic_arithmetic", "group": "math", "accuracy": 62.5, "n": 600, "live": None, "items": 600,
     "stderr": 1.97, "outputs": 600, "no_answer": 12, "truncated": 0, "unclosed_think": 0},
    {"benchmark": "lab_word_sequence_reversal", "group": "non", "accuracy": 49.0, "n": 600, "live": None,
     "items": 600, "stderr": 2.04, "outputs": 600, "no_answer": 0, "truncated": 3, "unclosed_think": 0}],
    "shift": []}
SHIFT_RESULTS = {"benchmarks": [], "shift": [
    {"scope": "group", "benchmark": None, "group": "math", "pca_d": 6.236e-05, "kl": 0.1042, "rank_shift": 0.0123,
     "logp_diff": -0.00327, "tokens": 5120.0},
    {"scope": "benchmark", "benchmark": "lab_word_sequence_reversal", "group": "non", "pca_d": 0.0261,
     "kl": 0.00727, "rank_shift": 0.0031, "logp_diff": -1.5e-06, "tokens": 2560.0}]}


def result_numbers(rows: list[dict[str, Any]], keys: dict[str, str]) -> dict[str, list[str]]:
    """Each column's numbers as the results view writes them."""
    from tui.screens.run_detail import readable

    out: dict[str, list[str]] = {}
    for column, key in keys.items():
        out[column] = [readable(r[key]) if "pca" in key or key in ("kl", "rank_shift", "logp_diff", "tokens")
                       else f"{r[key]:.1f}" if key in ("accuracy", "stderr") else str(r[key]) for r in rows]
    return out


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("kind", ["eval", "analyse"])
def test_run_results_never_cut_a_number(size: tuple[int, int], kind: str) -> None:
    """An eval's accuracy, ±se and n, an analyse run's d, KL and Δ log p with their exponents: each
    whole, or its column left out and named under the table."""
    from tests.tui.fake_source import NO_SAMPLES, FakeSource, ScreenHost, log_answer, metrics_answer
    from tui.screens.run_detail import RunDetailScreen

    run_id = f"{kind}-00f76f7220"
    results = EVAL_RESULTS if kind == "eval" else SHIFT_RESULTS
    source = FakeSource({"run_results": {"run_id": run_id, **results}, "run_samples": NO_SAMPLES,
                         "run_metrics": metrics_answer({}), "run_log": log_answer({})})
    run = {"id": run_id, "experiment": "tiny-lab", "name": "sft", "kind": kind, "state": "succeeded",
           "progress": 1.0, "started_at": "2025-03-14 11:49:00", "finished_at": "2025-03-14 11:49:10",
           "host": "lab-box", "attempt": 1, "gpus": "0"}  # the head lines too: a time is never cut
    keys = ({"acc": "accuracy", "±se": "stderr", "n": "n"} if kind == "eval" else
            {"PCA d": "pca_d", "KL": "kl", "Δ log p": "logp_diff", "tokens": "tokens"})
    rows = results["benchmarks"] if kind == "eval" else results["shift"]

    async def main() -> None:
        app = ScreenHost(lambda: RunDetailScreen(source, run_id), [run], NOW)  # type: ignore[arg-type]
        async with app.run_test(size=size) as pilot:
            for _ in range(40):
                await pilot.pause(0.05)
                if "loading results" not in screen_text(app):
                    break
            text = screen_text(app)
            assert_whole(text)
            hidden = next((line for line in text.splitlines() if "not shown at this width" in line), "")
            for column, numbers in result_numbers(rows, keys).items():
                assert all(n in text for n in numbers) or f" {column}" in hidden or f"› {column}" in hidden, \
                    (column, numbers, text)
            if size[0] >= 120:
                assert not hidden

    asyncio.run(main())


SQL_RESULT = {"columns": ["model", "benchmark", "score", "third", "more", "less"],
              "types": ["VARCHAR", "VARCHAR", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE"],
              "rows": [[m, b, s, s / 3, s * 1.5, s - 1] for m, b, s in (
                  ("rl", "lab_syllogism", 55.0), ("sft", "lab_basic_arithmetic", 48.1667),
                  ("base", "lab_word_sequence_reversal", 51.0))],
              "truncated": False, "total": 3}


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_sql_grid_never_cuts_a_number(size: tuple[int, int], tmp_path: Any) -> None:
    """Beside the schema browser the grid scrolls sideways; a column its edge cuts is blanked and
    marked `›` (or `‹`), so `48.1667` never reads `48.16`. Scrolled to the end, every value shows."""
    from types import SimpleNamespace

    from tests.tui.fake_source import FakeSource, ScreenHost
    from tui.screens.sql import SQLScreen, grid_rows

    schema = [{"table": "model_scores", "column": "score", "data_type": "DOUBLE", "type": "VIEW"}]
    source = FakeSource({"schema": schema, "sql_total": SQL_RESULT})
    source.ws = SimpleNamespace(home=tmp_path)  # type: ignore[attr-defined]
    shown = {cell.plain for row in grid_rows(SQL_RESULT) for cell in row}
    number = re.compile(r"-?\d+(?:\.\d+)?")

    def grid_numbers(text: str) -> list[str]:
        lines = [line.split("│", 1)[-1] for line in text.splitlines() if "lab_" in line or "‹" in line]
        return [n for line in lines for n in number.findall(line)]

    async def main() -> None:
        app = ScreenHost(lambda: SQLScreen(source), [], NOW)  # type: ignore[arg-type]
        async with app.run_test(size=size) as pilot:
            screen = app.screen
            for _ in range(40):
                await pilot.pause(0.05)
                if getattr(app.screen, "runs", 0):
                    break
            screen = app.screen
            assert isinstance(screen, SQLScreen)
            seen = set()
            screen.query_one("#sql-grid").focus()
            for _ in range(8):  # the cursor to the right, a column at a time: the grid follows it
                await pilot.pause()
                found = grid_numbers(screen_text(app))
                assert all(n in shown for n in found), (found, screen_text(app))
                seen.update(found)
                await pilot.press("right")
            assert {c.plain for c in grid_rows(SQL_RESULT)[1][2:]} <= seen

    asyncio.run(main())
