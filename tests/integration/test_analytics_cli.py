"""`tix import scores`, `tix ti` and the SQL views through a real daemon, on the paper's Table 1."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from engine.analysis.metrics import transferability
from engine.workspace import Workspace
from tests.conftest import SHARED_DATA, sql_json, wait_until

PAPER = SHARED_DATA / "paper_table1_scores.csv"
needs_paper = pytest.mark.skipif(not PAPER.exists(), reason=f"{PAPER} not here (reference data, ../shared/data)")



def paper_ti(variant: str) -> dict[str, tuple[float, float]]:
    """TI straight from the CSV with engine.analysis.metrics, to compare with what the daemon path prints."""
    scores: dict[str, dict[str, float]] = {}
    groups = {}
    with open(PAPER) as f:
        for row in csv.DictReader(f):
            scores.setdefault(row["model"], {})[row["benchmark"]] = float(row["score"])
            groups[row["benchmark"]] = row["group"]
    return {r.model: (r.ti_other, r.ti_non) for r in transferability("Qwen3-14B-Base", scores, groups, variant)}


@needs_paper
def test_paper_table_import_gives_its_ti_table(tix) -> None:
    first = tix("import", "scores", str(PAPER), "--experiment", "paper-table1")
    assert first.returncode == 0 and "imported 4 models, 48 scores" in first.stdout, first.stderr
    again = tix("import", "scores", str(PAPER), "--experiment", "paper-table1")
    assert again.returncode == 0 and "replacing 48 earlier rows" in again.stdout
    assert sql_json(tix, "SELECT count(*) AS n FROM imported_scores") == [{"n": 48}]
    for variant in ("v1", "v2"):
        result = tix("ti", "paper-table1", "--variant", variant, "--format", "json")
        assert result.returncode == 0, result.stderr
        got = {o["model"]: o for o in json.loads(result.stdout)}
        want = paper_ti(variant)
        assert set(got) == set(want) and len(got) == 3
        for model, (other, non) in want.items():
            o = got[model]
            assert {"model", "base_model", "ti_other", "ti_non", "unstable", "groups", "benchmarks"} <= set(o)
            assert (o["ti_other"], o["ti_non"]) == (pytest.approx(other), pytest.approx(non))
            assert o["base_model"] == "Qwen3-14B-Base" and set(o["groups"]["math"]) >= {"base", "model"}
            assert len(o["benchmarks"]) == 12
        view = sql_json(tix, f"SELECT model, ti_other_{variant} AS other FROM ti")
        assert {r["model"]: r["other"] for r in view} == {m: pytest.approx(v[0]) for m, v in want.items()}
    table = tix("ti", "paper-table1")
    assert table.returncode == 0 and "27.6 -> 53.8" in table.stdout and "v2 pooled" in table.stdout


def test_bad_imports_and_flags_are_refused_without_storing(tix, ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("model,base_model,method,benchmark,group,score\nb,,base,m,math,10\nt,b,rl,m,maths,200\n")
    result = tix("import", "scores", str(bad), "--experiment", "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{bad}:3: unknown group 'maths': expected one of math, other, non (did you mean 'math'?)",
        f"{bad}:3: score 200 is outside 0-100 (scores are percentages)",
        f"tix: error: {bad}: 2 problems; nothing imported"]
    assert not ws.socket.exists()  # refused before any daemon was asked
    sigma = tix("ti", "--sigma", "math=1")
    assert sigma.returncode == 2 and sigma.stderr.count("\n") == 1 and "missing other, non" in sigma.stderr
    empty = tix("ti", "--format", "json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    for command in ["ti", "import", "import scores", "import lm-eval", "shift", "flips", "health"]:
        help_text = tix(*command.split(), "--help")
        assert help_text.returncode == 0 and "Usage:" in help_text.stdout, command


def test_intervals_through_the_daemon_and_paired_stats_left_current(tix, ws: Workspace, tmp_path: Path) -> None:
    """Eval runs with items: `tix ti` prints each TI with its interval, `--benchmarks` marks q < 0.05,
    `tix flips` gives McNemar's p, the `paired_deltas` view answers through `tix sql`, and a daemon
    that exits leaves `paired_stats` current for a plain duckdb reader (no tix function needed)."""
    import re

    import duckdb

    from engine.analysis.paired import SIGNATURE_SQL
    from storage import Store
    from tests.unit.test_paired import item_lab

    ws.ensure()
    item_lab(n=100, store=Store.open(ws.db)).close()
    objects = {o["model"]: o for o in json.loads(tix("ti", "exp", "--format", "json").stdout)}
    table = tix("ti", "exp")
    assert table.returncode == 0, table.stderr
    sft = next(line for line in table.stdout.splitlines() if line.split()[1:2] == ["sft"])
    low, high = objects["sft"]["ti_non_ci"]
    assert re.search(rf"{objects['sft']['ti_non']:.1f} \[{low:.0f}, {high:.0f}\]", sft), sft
    detail = tix("ti", "exp", "--benchmarks", "--variant", "v1").stdout.splitlines()
    for model, o in objects.items():
        for bench, d in o["benchmarks"].items():
            line = next(x for x in detail if x.split()[1:2] == [model] and bench in x.split())
            assert (" * " in f"{line} ") == (d["paired"]["q"] < 0.05), line
    flips = {(r["model"], r["benchmark"]): r for r in json.loads(tix("flips", "exp", "--format", "json").stdout)}
    for (model, bench), row in flips.items():
        assert row["mcnemar_p"] == pytest.approx(objects[model]["benchmarks"][bench]["paired"]["mcnemar_p"])
    deltas = sql_json(tix, "SELECT model, benchmark, delta FROM paired_deltas ORDER BY 1, 2")
    assert len(deltas) == 8 and all(d["delta"] == pytest.approx(objects[d["model"]]["benchmarks"][d["benchmark"]]
                                                               ["paired"]["delta"]) for d in deltas)
    other = tmp_path / "other.csv"  # changes what the items depend on: the table is behind until the exit
    other.write_text("model,base_model,method,benchmark,group,score\nb,,base,m,math,10\nt,b,rl,m,math,20\n")
    assert tix("import", "scores", str(other), "--experiment", "other").returncode == 0
    assert tix("daemon", "stop").returncode == 0
    con = wait_until(lambda: opened(duckdb, ws), 30)  # once the exiting daemon has released the file
    try:
        assert con.execute("SELECT signature FROM paired_stats_source").fetchall() == \
            con.execute(SIGNATURE_SQL).fetchall()
        assert con.execute("SELECT count(*) FROM paired_deltas").fetchall() == [(8,)]
    finally:
        con.close()


def opened(duckdb: Any, ws: Workspace) -> Any:
    """A read-only connection to the workspace's database, or None while a daemon still holds it."""
    try:
        return duckdb.connect(str(ws.db), read_only=True)
    except duckdb.IOException:
        return None
