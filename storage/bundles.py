"""Bundles: one experiment's results as a folder of Parquet files, to share and to import.

A collaborator's results should sit beside one's own without their workspace, their GPUs or
their checkpoints. `export_tables` writes, from one read-only snapshot (ingest may be writing),
the experiment's row, its run links, its runs, and every score, sample, metric and shift result
of those runs, plus its imported models and scores, each table as `<table>.parquet` with
DuckDB's COPY (typed, compressed, streamed: never whole in memory). `import_tables` reads such
a folder back in one transaction:

- run ids are kept (they are content hashes: the same run means the same id everywhere);
- a run already in the workspace is kept as it is, with its rows, and the bundle's copy of it
  (and of its samples, metrics, ...) is skipped, so importing twice stores nothing twice;
- a run that was queued or running when exported arrives `cancelled` (its worker is on
  another machine; this daemon must not try to adopt it);
- the experiment's name must be free, or name the same experiment (equal spec hash): else the
  import is refused with one line, and `name` imports it under another name.

The folder's other files (the experiment file, the TI table, the README, `bundle.json`) are
written by the daemon (engine/daemon/bundle_ops.py); this module owns the tables and the manifest.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.store import INGEST_SCHEMAS, Store

FORMAT = "tix-bundle"
VERSION = 1
MANIFEST = "bundle.json"

_RUNS = "SELECT run_id FROM experiment_runs WHERE experiment = $1"
TABLES: dict[str, str] = {
    "experiments": "SELECT * FROM experiments WHERE name = $1",
    "experiment_runs": "SELECT * FROM experiment_runs WHERE experiment = $1 ORDER BY run_id",
    "runs": f"SELECT * FROM runs WHERE id IN ({_RUNS}) ORDER BY created_at, id",
    "scores": f"SELECT * FROM scores WHERE run_id IN ({_RUNS}) ORDER BY run_id, benchmark, metric, t",
    "samples": f'SELECT * FROM samples WHERE run_id IN ({_RUNS}) ORDER BY run_id, "offset"',
    "metrics": f"SELECT * FROM metrics WHERE run_id IN ({_RUNS}) ORDER BY run_id, step, name, t",
    "shift_results": f"SELECT * FROM shift_results WHERE run_id IN ({_RUNS}) "
                     "ORDER BY run_id, analysis, benchmark, layer, metric, t",
    "imported_models": "SELECT * FROM imported_models WHERE experiment = $1 ORDER BY position, model",
    "imported_scores": "SELECT * FROM imported_scores WHERE experiment = $1 ORDER BY model, benchmark",
}
"""Each bundled table and the rows of it that belong to experiment $1 (stable order)."""

RUN_ROWS = ("scores", "samples", "metrics", "shift_results")
"""Tables whose rows belong to a run: imported only with a run the workspace did not have, and
stored the way ingest stores them (Store._append_arrow: however the schema keeps them)."""

_TERMINAL = "state IN ('succeeded', 'failed', 'cancelled')"


class BundleError(ValueError):
    """A folder that is not a readable bundle, or an import the workspace refuses (one line)."""


def export_tables(cur: duckdb.DuckDBPyConnection, experiment: str, folder: Path) -> dict[str, Any]:
    """Write every table of `experiment` into `folder` (which must exist) from one snapshot.

    Returns {"tables": {table: rows}, "spec": the experiment file's text or None,
    "schema_version": the database's}. Closes nothing: the caller owns `cur`."""
    cur.execute("SET TimeZone = 'UTC'")
    cur.execute("BEGIN TRANSACTION")
    try:
        found = cur.execute("SELECT spec FROM experiments WHERE name = $1", [experiment]).fetchall()
        if not found:
            raise BundleError(f"no experiment named {experiment!r}")
        counts = {name: _copy(cur, query, experiment, folder / f"{name}.parquet")
                  for name, query in TABLES.items()}
        version = cur.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    finally:
        cur.execute("ROLLBACK")
    return {"tables": counts, "spec": found[0][0], "schema_version": version}


def _copy(cur: duckdb.DuckDBPyConnection, query: str, experiment: str, path: Path) -> int:
    written = cur.execute(f"COPY ({query}) TO {_literal(path)} (FORMAT parquet)", [experiment]).fetchall()
    return int(written[0][0]) if written else 0


def _literal(path: Path) -> str:
    """A path as an SQL string literal (COPY and read_parquet take no parameter for it)."""
    return "'" + str(path).replace("'", "''") + "'"


def manifest(experiment: str, exported: dict[str, Any], tix_version: str) -> dict[str, Any]:
    """What `bundle.json` says: the format, where it came from and what each table holds."""
    return {"format": FORMAT, "version": VERSION, "experiment": experiment, "tix": tix_version,
            "schema_version": exported["schema_version"],
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": exported["tables"]}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The bundle's manifest, checked: a folder that is not a bundle is one line."""
    path = folder / MANIFEST
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        message = f"{folder} is not a tix bundle (no {MANIFEST}; make one with `tix export`)"
        raise BundleError(message) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable: {exc}") from None
    if not isinstance(found, dict) or found.get("format") != FORMAT or \
            not isinstance(found.get("experiment"), str):
        raise BundleError(f"{path} is not a tix bundle manifest")
    if not isinstance(found.get("version"), int) or found["version"] > VERSION:
        raise BundleError(f"{path}: bundle format {found.get('version')!r} is newer than this tix reads "
                          f"({VERSION}); upgrade tix")
    missing = [name for name in TABLES if not (folder / f"{name}.parquet").is_file()]
    if missing:
        names = ", ".join(f"{m}.parquet" for m in missing)
        raise BundleError(f"{folder}: incomplete bundle, missing {names}")
    return found


def import_tables(cur: duckdb.DuckDBPyConnection, folder: Path, name: str | None = None) -> dict[str, Any]:
    """Store a bundle's rows in one transaction (see the module's rules); `name` renames the
    experiment. Returns {"experiment", "source", "runs": new, "runs_present": kept, "rows"}."""
    source = read_manifest(folder)["experiment"]
    target = name or source
    files = {table: folder / f"{table}.parquet" for table in TABLES}
    cur.execute("BEGIN TRANSACTION")
    try:
        _check_clash(cur, files["experiments"], target, renamed=name is not None)
        new = _new_runs(cur, files["runs"])
        rows = _insert_all(cur, files, source, target, new)
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            cur.unregister("_tix_new_runs")
    total = cur.execute(f"SELECT count(*) FROM read_parquet({_literal(files['runs'])})").fetchall()[0][0]
    return {"experiment": target, "source": source, "runs": len(new), "runs_present": int(total) - len(new),
            "run_ids": new, "rows": rows}


def _check_clash(cur: duckdb.DuckDBPyConnection, experiments: Path, target: str, renamed: bool) -> None:
    """Refuse an experiment name the workspace uses for a different experiment (other spec)."""
    theirs = cur.execute(f"SELECT spec_hash FROM read_parquet({_literal(experiments)})").fetchall()
    ours = cur.execute("SELECT spec_hash FROM experiments WHERE name = $1", [target]).fetchall()
    if not theirs:
        raise BundleError(f"{experiments}: the bundle holds no experiment row")
    if ours and ours[0][0] != theirs[0][0]:
        hint = "choose another name with --as" if renamed else "import it under another name with --as NAME"
        raise BundleError(f"experiment {target!r} already exists here with a different experiment file "
                          f"(spec hash {_short(ours[0][0])} here, {_short(theirs[0][0])} in the bundle); "
                          f"nothing imported; {hint}")


def _short(spec_hash: str | None) -> str:
    return (spec_hash or "none")[:12]


def _new_runs(cur: duckdb.DuckDBPyConnection, runs: Path) -> list[str]:
    """Ids of the bundle's runs this workspace does not have (registered as `_tix_new_runs`)."""
    ids = [r[0] for r in cur.execute(
        f"SELECT id FROM read_parquet({_literal(runs)}) WHERE id NOT IN (SELECT id FROM runs) ORDER BY id"
    ).fetchall()]
    cur.register("_tix_new_runs", pa.table({"id": pa.array(ids, pa.string())}))
    return ids


def _insert_all(cur: duckdb.DuckDBPyConnection, files: dict[str, Path], source: str, target: str,
                new: list[str]) -> dict[str, int]:
    """Insert every table's new rows (run rows: of the `new` runs only); the experiment renamed
    from `source` to `target`."""
    renamed = f"CASE WHEN experiment = {_text(source)} THEN {_text(target)} ELSE experiment END"
    plans: dict[str, tuple[dict[str, str], str, str]] = {
        "experiments": ({"name": _text(target)}, "", "ON CONFLICT DO NOTHING"),
        "runs": ({"experiment": renamed,
                  "state": f"CASE WHEN {_TERMINAL} THEN state ELSE 'cancelled' END",
                  "error": f"CASE WHEN {_TERMINAL} THEN error "
                           "ELSE 'imported from a bundle while ' || state || ' there' END"},
                 "WHERE id IN (SELECT id FROM _tix_new_runs)", ""),
        "experiment_runs": ({"experiment": _text(target)}, "", "ON CONFLICT DO NOTHING"),
        "imported_models": ({"experiment": _text(target)}, "", "ON CONFLICT DO NOTHING"),
        "imported_scores": ({"experiment": _text(target)}, "", "ON CONFLICT DO NOTHING"),
    }
    done = {table: _insert(cur, table, files[table], *plan) for table, plan in plans.items()}
    return {**done, **{table: _append_run_rows(cur, table, files[table], new) for table in RUN_ROWS}}


def _append_run_rows(cur: duckdb.DuckDBPyConnection, table: str, path: Path, run_ids: list[str]) -> int:
    """The file's rows of `run_ids`, in batches, through ingest's own insert (a bundle's samples
    land wherever ingest puts samples); columns as ingest's schema has them, missing ones null."""
    schema = INGEST_SCHEMAS[table]
    wanted = pa.array(run_ids, pa.string())
    store, done = Store(cur, None), 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
        rows = pa.Table.from_batches([batch])
        rows = rows.filter(pc.is_in(rows.column("run_id"), value_set=wanted))
        if rows.num_rows:
            store._append_arrow(table, _conform(rows, schema))  # ingest's insert, in this transaction
            done += rows.num_rows
    return done


def _conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """`rows` with exactly `schema`'s columns and types (a bundle from another tix version may
    have more or fewer)."""
    columns = [rows.column(f.name).cast(f.type) if f.name in rows.column_names
               else pa.nulls(rows.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _insert(cur: duckdb.DuckDBPyConnection, table: str, path: Path, overrides: dict[str, str],
            where: str, conflict: str) -> int:
    """INSERT the Parquet file's rows into `table` by column name: columns this database lacks
    are dropped and missing ones take their defaults, so bundles cross tix versions."""
    ours = [r[0] for r in cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = $1 "
        "ORDER BY ordinal_position", [table]).fetchall()]
    theirs = {r[0] for r in cur.execute(f"DESCRIBE SELECT * FROM read_parquet({_literal(path)})").fetchall()}
    columns = [c for c in ours if c in theirs]
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(overrides.get(c, f'"{c}"') for c in columns)
    done = cur.execute(f"INSERT INTO {table} ({names}) SELECT {values} FROM read_parquet({_literal(path)}) "
                       f"{where} {conflict}").fetchall()
    return int(done[0][0]) if done else 0
