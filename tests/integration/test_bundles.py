"""`tix export` and `tix import bundle` through real daemons: a bundle of the recorded runs,
imported into a second workspace, gives equal tables; importing twice stores nothing twice; a
name clash is one line; the bundle loads with pandas, polars and duckdb as its README says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from engine.client import connect
from engine.workspace import Workspace
from storage.bundles import TABLES
from tests.conftest import stop_everything
from tests.tui.recorded import EXPERIMENT, SPEC, build_workspace

ORDER = {"experiments": "name", "experiment_runs": "run_id", "runs": "id",
         "scores": "run_id, benchmark, metric, t", "samples": 'run_id, "offset"',
         "metrics": "run_id, step, name, t", "shift_results": "run_id, analysis, benchmark, layer, metric",
         "imported_models": "model", "imported_scores": "model, benchmark"}


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Workspace]:
    """A second workspace (a collaborator's), cleaned up like `ws`."""
    ws = Workspace.resolve(str(tmp_path / "other-home"))
    yield ws
    stop_everything(ws)


def experiment_tables(home: Path, experiment: str) -> dict[str, pa.Table]:
    """Each bundled table's rows of `experiment`, through the API, in a fixed order."""
    with connect(home) as db:
        return {table: db.sql(f"SELECT * FROM ({query}) ORDER BY {ORDER[table]}", [experiment]).arrow()
                for table, query in TABLES.items()}


def test_export_then_import_gives_equal_tables(tix, ws: Workspace, other: Workspace, tmp_path: Path) -> None:
    build_workspace(ws, live=False)
    bundle = tmp_path / "bundle"
    done = tix("export", EXPERIMENT, str(bundle))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"exported {EXPERIMENT} to {bundle}: 9 runs, 48 samples, 6 scores, 690 metric")
    names = sorted(p.name for p in bundle.iterdir())
    assert names == sorted([*(f"{t}.parquet" for t in TABLES), "README.md", "bundle.json", "ti.md", "ti.csv",
                            f"{EXPERIMENT}.yaml"])
    assert (bundle / "ti.csv").read_text() == tix("ti", EXPERIMENT, "--format", "csv").stdout
    table, notes = (bundle / "ti.md").read_text().split("\n\n")  # the table as `tix ti` prints it,
    assert table == tix("ti", EXPERIMENT, "--format", "md").stdout.split("\n\n")[0]  # then its notes
    assert "| tiny-lab | sft | base | sft | v2 pooled | 37.5 -> 62.5 |" in table and notes.startswith("UNSTABLE")
    mine = experiment_tables(ws.home, EXPERIMENT)

    first = tix("--home", str(other.home), "import", "bundle", str(bundle))
    assert first.returncode == 0, first.stderr
    assert f"as experiment {EXPERIMENT}: 9 new runs (0 already here), 48 samples, 6 scores" in first.stdout
    theirs = experiment_tables(other.home, EXPERIMENT)
    for table in TABLES:
        assert theirs[table].equals(mine[table]), table
    assert theirs["runs"].num_rows == 9 and theirs["samples"].num_rows == 48

    again = tix("--home", str(other.home), "import", "bundle", str(bundle))
    assert again.returncode == 0 and "0 new runs (9 already here), 0 samples, 0 scores" in again.stdout
    for table, rows in experiment_tables(other.home, EXPERIMENT).items():
        assert rows.equals(mine[table]), table
    ti_here = tix("ti", EXPERIMENT, "--format", "json").stdout
    assert tix("--home", str(other.home), "ti", EXPERIMENT, "--format", "json").stdout == ti_here


def test_a_name_clash_is_one_line_and_as_imports_beside(tix, ws: Workspace, other: Workspace,
                                                       tmp_path: Path) -> None:
    build_workspace(ws, live=False)
    bundle = tmp_path / "bundle"
    assert tix("export", EXPERIMENT, str(bundle)).returncode == 0
    scores = tmp_path / "scores.csv"
    scores.write_text("model,base_model,method,benchmark,group,score\nb,,base,x,math,10\nt,b,rl,x,math,20\n")
    mine = tix("--home", str(other.home), "import", "scores", str(scores), "--experiment", EXPERIMENT)
    assert mine.returncode == 0, mine.stderr
    clash = tix("--home", str(other.home), "import", "bundle", str(bundle))
    assert clash.returncode == 2 and clash.stdout == ""
    assert clash.stderr.count("\n") == 1 and clash.stderr.startswith(
        f"tix: error: experiment '{EXPERIMENT}' already exists here with a different experiment file")
    assert "nothing imported; import it under another name with --as NAME" in clash.stderr
    with connect(other.home) as db:
        assert db.sql("SELECT count(*) FROM runs").fetchall() == [(0,)]
    beside = tix("--home", str(other.home), "import", "bundle", str(bundle), "--as", "alice-lab")
    assert beside.returncode == 0 and "as experiment alice-lab: 9 new runs" in beside.stdout
    with connect(other.home) as db:
        experiments = db.sql("SELECT name FROM experiments ORDER BY 1").fetchall()
        assert experiments == [("alice-lab",), (EXPERIMENT,)]
        assert {r[0] for r in db.sql("SELECT DISTINCT experiment FROM model_scores").fetchall()} == \
            {"alice-lab", EXPERIMENT}
        assert len(db.ti("alice-lab").results) == 1


def test_refusals_are_one_line(tix, ws: Workspace, tmp_path: Path) -> None:
    build_workspace(ws, live=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    cases = [
        (("export", "nope", str(tmp_path / "b")), "tix: error: no experiment named 'nope' (experiments: tiny-lab)"),
        (("export", EXPERIMENT, str(tmp_path / "full")),
         f"tix: error: {tmp_path / 'full'} exists and is not an empty folder; export into a new one"),
        (("import", "bundle", str(tmp_path / "full")),
         f"tix: error: {tmp_path / 'full'} is not a tix bundle (no bundle.json; make one with `tix export`)"),
        (("import", "bundle", str(tmp_path / "none")), f"tix: error: {tmp_path / 'none'} is not a folder"),
        (("import", "bundle", str(tmp_path), "--as", "bad name"),
         "tix: error: bad experiment name 'bad name': use letters, digits, '.', '_', '-'"),
    ]
    for args, line in cases:
        result = tix(*args)
        assert result.returncode == 2 and result.stderr == line + "\n", (args, result.stderr)
    assert (tmp_path / "full" / "x").read_text() == "mine" and not (tmp_path / "b").exists()
    bundle = tmp_path / "bundle"
    assert tix("export", EXPERIMENT, str(bundle)).returncode == 0
    (bundle / "samples.parquet").unlink()
    broken = tix("import", "bundle", str(bundle))
    assert broken.returncode == 2 and broken.stderr == f"tix: error: {bundle}: incomplete bundle, missing samples.parquet\n"


def test_the_bundle_loads_as_its_readme_says(tix, ws: Workspace, tmp_path: Path, monkeypatch) -> None:
    build_workspace(ws, live=False)
    bundle = tmp_path / "bundle"
    assert tix("export", EXPERIMENT, str(bundle)).returncode == 0
    readme = (bundle / "README.md").read_text()
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["format"] == "tix-bundle" and manifest["tables"]["samples"] == 48
    assert "| `samples.parquet` | 48 |" in readme and f"tix import bundle {bundle.name}" in readme
    monkeypatch.chdir(bundle)
    sql = readme.split("```sql\n")[1].split("```")[0]
    by_duckdb = duckdb.sql(sql).fetchall()
    assert len(by_duckdb) == 6 and {r[0] for r in by_duckdb} == {"base", "sft"}
    python = readme.split("```python\n")[1].split("```")[0]
    scope: dict = {}
    exec(python, scope)
    assert scope["accuracy"].to_dict() == pytest.approx({(m, b): v for m, b, v in by_duckdb})
    losses = duckdb.sql("SELECT count(*) FROM 'metrics.parquet' WHERE name = 'loss'").fetchall()[0][0]
    assert scope["curves"].height == losses > 0 and len(pd.read_parquet("samples.parquet")) == 48
    assert (bundle / f"{EXPERIMENT}.yaml").read_text() == SPEC.read_text()
