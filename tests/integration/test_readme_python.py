"""README "Analysing results in Python": its notebook blocks run as written, on the recorded tiny-lab
workspace (plus an eval of the rl variant, so both tuned models have a TI) served by a real daemon."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import ROOT
from tests.tui.recorded import EXPERIMENT, _done, _write_eval, add_run, build_workspace, eval_result


def notebook_blocks() -> list[str]:
    """The ```python blocks of the README's "### In a notebook" subsection, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### In a notebook\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_readme_notebook_runs(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    rec = build_workspace(ws, live=False)
    row = _done(60, 58, result=eval_result(0.8))
    plan = make_run("eval", "rl", EXPERIMENT, {"suite": "lab", "seed": 1}, [rec.ids["rl"]])
    add_run(ws, plan, row, lambda files: _write_eval(0.8)(files.dir, row))
    monkeypatch.chdir(tmp_path)
    blocks = notebook_blocks()
    assert len(blocks) == 3
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    out = capsys.readouterr().out
    accuracy = scope["accuracy"]
    assert list(accuracy.index) == ["base", "rl", "sft"] and list(accuracy.columns) == ["math", "non", "other"]
    assert accuracy.loc["sft", "math"] == pytest.approx(0.625)
    assert (tmp_path / "loss.png").stat().st_size > 10_000
    assert [line.get_label().split()[0] for line in scope["ax"].get_lines()] == ["sft", "rl"]
    table = scope["table"].set_index("model")
    assert set(table.index) == {"sft", "rl"}
    for model in ("sft", "rl"):  # v2 with pooled sigma: both indices and their intervals are numbers
        low, value, high = (table.loc[model, k] for k in ("ti_other_ci_low", "ti_other", "ti_other_ci_high"))
        assert not any(math.isnan(v) for v in (low, value, high)) and low <= high
    assert "ti_other_ci_low" in out and "paired_ci_low" in out and " lab_syllogism " in out
    assert len(scope["detail"]) == 6
