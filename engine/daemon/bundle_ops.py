"""The daemon's `export_bundle` and `import_bundle` ops: the folder around storage/bundles.py's tables.

`tix export EXPERIMENT DIR` asks the daemon (the only process that opens the database) to write
DIR: the tables as Parquet, the experiment file as it was submitted, the TI table exactly as
`tix ti EXPERIMENT --format md` / `--format csv` prints it (the `ti` op's own result, so the
numbers are the same), a README saying how to load the folder with duckdb, pandas or polars,
and `bundle.json` (the manifest `tix import bundle` checks). Both run in a thread on a cursor
of their own, so ingest and other clients go on meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb

from storage import bundles

README = """# tix bundle: {experiment}

Exported by tix {tix} on {exported_at} (database schema {schema_version}): the experiment's
runs and everything they recorded, as Parquet files, plus its TI table.

| file | rows | what |
| --- | --- | --- |
{rows}
| `ti.md`, `ti.csv` | {ti_rows} | the TI table as `tix ti {experiment}` prints it |
{spec_row}| `bundle.json` | | the manifest `tix import bundle` checks |

## Load it

From inside this folder. With the `duckdb` CLI or Python package, SQL over the files:

```sql
SELECT r.name AS model, s.benchmark, avg(s.verdict) AS accuracy
FROM 'samples.parquet' s JOIN 'runs.parquet' r ON r.id = s.run_id
GROUP BY ALL ORDER BY ALL;
```

With pandas or polars:

```python
import pandas as pd
samples = pd.read_parquet("samples.parquet")
runs = pd.read_parquet("runs.parquet")
named = samples.merge(runs[["id", "name"]], left_on="run_id", right_on="id")
accuracy = named.groupby(["name", "benchmark"]).verdict.mean()

import polars as pl
curves = pl.read_parquet("metrics.parquet").filter(pl.col("name") == "loss")
```

Into a tix workspace, beside your own results (run ids are kept; importing twice stores
nothing twice; `--as NAME` when your workspace already has a different experiment of this name):

```
tix import bundle {folder_name}
tix ti {experiment}
```

What the tables hold is described in tix's README ("The database", "SQL views"). Checkpoints,
models and run logs are not part of a bundle: runs arrive as results only.
"""

DESCRIPTIONS = {
    "experiments": "the experiment (name, submitted spec, spec hash)",
    "experiment_runs": "which runs belong to it",
    "runs": "its runs: id, name (model), kind, state, params, result, times",
    "scores": "per run and benchmark: accuracy and other metrics (percent)",
    "samples": "per scored item: prompt, completion, extracted answer, verdict",
    "metrics": "training curves: run_id, step, name, value",
    "shift_results": "PCA and token shift per layer and benchmark",
    "imported_models": "published models brought in by `tix import`",
    "imported_scores": "their published scores",
}


def prepare_folder(folder: Path) -> bool:
    """Create the bundle folder; True when it was created here (and may be removed on failure)."""
    if not folder.is_absolute():
        raise bundles.BundleError(f"the bundle folder must be an absolute path, got {str(folder)!r}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise bundles.BundleError(f"{folder} exists and is not an empty folder; export into a new one")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    return created


def export(cur: duckdb.DuckDBPyConnection, experiment: str, folder: Path, ti: dict[str, Any],
           tix_version: str) -> dict[str, Any]:
    """Write the whole bundle (see the module docstring); a failure leaves no half folder behind."""
    created = prepare_folder(folder)
    try:
        exported = bundles.export_tables(cur, experiment, folder)
        info = bundles.manifest(experiment, exported, tix_version)
        files = write_files(folder, experiment, exported, ti, info)
    except BaseException:
        _remove(folder, created)
        raise
    finally:
        cur.close()
    return {"experiment": experiment, "path": str(folder), "tables": exported["tables"], "files": files}


def write_files(folder: Path, experiment: str, exported: dict[str, Any], ti: dict[str, Any],
                info: dict[str, Any]) -> list[str]:
    """The experiment file, the TI table, the README and the manifest (last: a folder with a
    manifest is a complete bundle)."""
    md, csv = ti_tables(ti["results"], experiment)
    spec_name = f"{experiment}.yaml" if exported["spec"] else None
    if spec_name:
        (folder / spec_name).write_text(exported["spec"])
    (folder / "ti.md").write_text(md)
    (folder / "ti.csv").write_text(csv)
    (folder / "README.md").write_text(readme(info, folder, spec_name, len(ti["results"])))
    info = {**info, "ti_warnings": ti.get("warnings", [])}
    (folder / bundles.MANIFEST).write_text(json.dumps(info, indent=1))
    return sorted(p.name for p in folder.iterdir())


def ti_tables(results: list[dict[str, Any]], experiment: str) -> tuple[str, str]:
    """The TI table as `tix ti EXPERIMENT --format md` and `--format csv` print it."""
    from engine.analysis import report
    from engine.analysis import ti as ti_mod

    csv = report.render(ti_mod.CSV_COLUMNS, ti_mod.csv_rows(results), "csv", 1)
    if not results:
        return f"no tuned model with scores against its base in {experiment}\n", csv
    md = report.render(ti_mod.HUMAN_COLUMNS, ti_mod.human_rows(results), "md", 1)
    notes = ti_mod.notes(results)
    return md + ("\n\n" + "\n".join(notes) if notes else "") + "\n", csv


def readme(info: dict[str, Any], folder: Path, spec_name: str | None, ti_rows: int) -> str:
    """The bundle's README: its files with their row counts, and how to load them."""
    rows = "\n".join(f"| `{table}.parquet` | {n:,} | {DESCRIPTIONS[table]} |"
                     for table, n in info["tables"].items())
    spec_row = f"| `{spec_name}` | | the experiment file as submitted |\n" if spec_name else ""
    return README.format(experiment=info["experiment"], tix=info["tix"], exported_at=info["exported_at"],
                         schema_version=info["schema_version"], rows=rows, ti_rows=ti_rows,
                         spec_row=spec_row, folder_name=folder.name)


def _remove(folder: Path, created: bool) -> None:
    """Undo a failed export: the folder if this export made it, else the files it wrote."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            path.unlink()


def import_bundle(cur: duckdb.DuckDBPyConnection, folder: Path, name: str | None) -> dict[str, Any]:
    """Store a bundle (storage.bundles.import_tables) on a cursor of its own; closes it."""
    try:
        if not folder.is_absolute():
            raise bundles.BundleError(f"the bundle folder must be an absolute path, got {str(folder)!r}")
        if not folder.is_dir():
            raise bundles.BundleError(f"{folder} is not a folder")
        return bundles.import_tables(cur, folder, name)
    finally:
        cur.close()
