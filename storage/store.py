"""The Store: every read and write of tix's DuckDB database goes through these typed methods.

Bulk writes (events, metrics, samples, scores, shift results) go through Arrow tables in one
transaction together with the ingest offset they cover, so a row is stored exactly once even
when the daemon is killed halfway.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from storage.migrations import migrate

RUN_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
#: Statement types `tix sql` may run; anything else would change data or settings.
READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})
#: Plan operators that change data or files. A SELECT may hold one in a data-modifying CTE
#: (`WITH x AS (DELETE ... RETURNING *) SELECT ...`), so the plan is searched, not only the
#: statement's type.
WRITE_OPERATORS = re.compile(r"INSERT|UPDATE|DELETE|MERGE|COPY|CREATE|DROP|ALTER|ATTACH|DETACH|VACUUM|EXPORT")
EXPLAIN_ANALYZE = re.compile(r"^\s*EXPLAIN\s+(?:\([^)]*\)\s*)?ANALY[SZ]E\b", re.IGNORECASE)
READ_ONLY = "the SQL console is read-only (one SELECT or EXPLAIN)"

RUN_COLUMNS = (
    "id", "experiment", "name", "kind", "state", "params", "deps", "gpus_needed", "gpus", "pid",
    "pid_started", "host", "run_dir", "created_at", "started_at", "finished_at", "heartbeat_at",
    "progress", "progress_text", "error", "result", "attempt", "max_retries", "cancel_requested",
    "executor", "job_id", "node", "reason",
)
_JSON_COLUMNS = ("params", "result")
_TIME_COLUMNS = ("created_at", "started_at", "finished_at", "heartbeat_at")

# Arrow schemas of the ingested tables, column order as in the migrations.
INGEST_SCHEMAS: dict[str, pa.Schema] = {
    "events": pa.schema([("run_id", pa.string()), ("offset", pa.int64()), ("t", pa.timestamp("us")),
                         ("type", pa.string()), ("payload", pa.string())]),
    "metrics": pa.schema([("run_id", pa.string()), ("step", pa.int64()), ("name", pa.string()),
                          ("value", pa.float64()), ("t", pa.timestamp("us"))]),
    "samples": pa.schema([("run_id", pa.string()), ("offset", pa.int64()), ("benchmark", pa.string()),
                          ("item_id", pa.string()), ("sample_idx", pa.int32()), ("prompt", pa.string()),
                          ("completion", pa.string()), ("extracted", pa.string()),
                          ("verdict", pa.float64()), ("tokens", pa.int32()),
                          ("finish_reason", pa.string()), ("flags", pa.list_(pa.string())),
                          ("extra", pa.string())]),
    "scores": pa.schema([("run_id", pa.string()), ("model", pa.string()), ("benchmark", pa.string()),
                         ("group", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
                         ("n", pa.int32()), ("t", pa.timestamp("us"))]),
    "shift_results": pa.schema([("run_id", pa.string()), ("analysis", pa.string()),
                                ("benchmark", pa.string()), ("group", pa.string()),
                                ("layer", pa.int32()), ("metric", pa.string()),
                                ("value", pa.float64()), ("payload", pa.string()),
                                ("t", pa.timestamp("us"))]),
}


#: A think block left open (a <think> after the last </think>), as migration 0007 stores it.
THINK_OPEN = ("contains(completion, '<think>') AND "
              "contains(list_last(string_split(completion, '</think>')), '<think>')")


class ReadOnlyQueryError(ValueError):
    """A `tix sql` statement that would change data or settings."""


@dataclass
class IngestBatch:
    """Rows parsed from one run file, column-wise, plus the byte offset they end at.

    Column lists turn into Arrow arrays without a Python object per row; `t` columns hold Unix
    seconds and become timestamps in Arrow (`None` = now).
    """

    run_id: str
    file: str
    offset: int
    bad_lines: int = 0
    columns: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    tables: dict[str, list[pa.Table]] = field(default_factory=dict)
    """Rows a bulk reader parsed already as Arrow (the ingest's fast path), stored as they are."""

    def add(self, table: str, row: dict[str, Any]) -> None:
        cols = self.columns.get(table)
        if cols is None:
            cols = self.columns[table] = {name: [] for name in INGEST_SCHEMAS[table].names}
        for name, values in cols.items():
            values.append(row.get(name))

    def extend(self, table: str, data: pa.Table) -> None:
        """Add rows already in Arrow form (columns as in `INGEST_SCHEMAS[table]`)."""
        if data.num_rows:
            self.tables.setdefault(table, []).append(data.select(INGEST_SCHEMAS[table].names))

    def count(self) -> int:
        return (sum(len(next(iter(c.values()))) for c in self.columns.values())
                + sum(t.num_rows for ts in self.tables.values() for t in ts))

    def arrow(self, table: str) -> pa.Table:
        schema = INGEST_SCHEMAS[table]
        arrays = [_epoch_array(values) if name == "t" else pa.array(values, schema.field(name).type)
                  for name, values in self.columns[table].items()]
        return pa.Table.from_arrays(arrays, schema=schema)


def _epoch_array(seconds: list[float | None]) -> pa.Array:
    now = datetime.now(UTC).timestamp()
    micros = pa.array([now if s is None else s for s in seconds], pa.float64())
    return pc.cast(pc.multiply(micros, 1e6), pa.int64(), safe=False).cast(pa.timestamp("us"))


def utcnow() -> datetime:
    """Naive UTC, the convention of every TIMESTAMP column (clients get it to the millisecond: runs
    submitted together still sort in submission order)."""
    return datetime.now(UTC).replace(tzinfo=None)


def from_epoch(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(float(t), UTC).replace(tzinfo=None)


def _jsonable(value: Any) -> Any:
    return value.isoformat(sep=" ", timespec="milliseconds") if isinstance(value, datetime) else value


class Store:
    """One read-write DuckDB connection, owned by the daemon."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self.con = con
        self.path = path
        self._split: bool | None = None

    @classmethod
    def open(cls, path: str | Path | None, upto: int | None = None) -> Store:
        """Open (creating if needed) and migrate; `upto` stops at a schema version (tests)."""
        con = duckdb.connect(str(path) if path else ":memory:")
        con.execute("SET TimeZone = 'UTC'")
        # Ingest commits a window (up to 8 MiB of samples, 32 MiB of events) at a time; at
        # DuckDB's default 16 MB threshold it checkpointed every other window and rewrote the
        # growing row groups each time, which at paper scale cost a third of the file
        # (bench/scale.py: 314 vs 236 MB at --fraction 0.1).
        con.execute("SET checkpoint_threshold = '256MB'")
        migrate(con, upto)
        return cls(con, Path(path) if path else None)

    def close(self) -> None:
        self.con.close()

    # -- experiments -------------------------------------------------------------------------
    def upsert_experiment(self, name: str, path: str, spec: str, spec_hash: str) -> None:
        self.con.execute(
            """INSERT INTO experiments (name, path, spec, spec_hash, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET
               path = excluded.path, spec = excluded.spec, spec_hash = excluded.spec_hash,
               updated_at = excluded.updated_at""",
            [name, path, spec, spec_hash, utcnow(), utcnow()],
        )

    def ensure_experiment(self, name: str) -> None:
        self.con.execute("INSERT INTO experiments (name, created_at, updated_at) VALUES (?, ?, ?) "
                         "ON CONFLICT DO NOTHING", [name, utcnow(), utcnow()])

    def experiment_names(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT name FROM experiments ORDER BY name").fetchall()]

    def link_runs(self, experiment: str, run_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(run_ids))
        if ids:
            links = pa.table({"experiment": [experiment] * len(ids), "run_id": ids})
            self.con.register("_tix_links", links)
            try:
                self.con.execute(
                    "INSERT INTO experiment_runs SELECT * FROM _tix_links ON CONFLICT DO NOTHING")
            finally:
                self.con.unregister("_tix_links")

    # -- runs --------------------------------------------------------------------------------
    def insert_run(self, run: dict[str, Any]) -> None:
        """Insert a new queued run; `run` holds id, experiment, name, kind, params, deps, ..."""
        cols = [c for c in RUN_COLUMNS if c in run]
        values = [json.dumps(run[c]) if c in _JSON_COLUMNS else run[c] for c in cols]
        placeholders = ", ".join("?" for _ in cols)
        self.con.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({placeholders})", values)

    def update_run(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise KeyError(f"unknown run columns: {sorted(unknown)}")
        sets = ", ".join(f"{c} = ?" for c in fields)
        values = [json.dumps(v) if c in _JSON_COLUMNS and v is not None else v for c, v in fields.items()]
        self.con.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*values, run_id])

    def runs(self, where: str = "", params: Sequence[Any] = (), order: str = "created_at, id",
             limit: int | None = None) -> list[dict[str, Any]]:
        """Runs as JSON-friendly dicts; `where` is a trusted SQL fragment with `?` parameters."""
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._run_row(r) for r in self.con.execute(sql, list(params)).fetchall()]

    def run(self, run_id: str) -> dict[str, Any] | None:
        found = self.runs("id = ?", [run_id])
        return found[0] if found else None

    def runs_in(self, states: Iterable[str]) -> list[dict[str, Any]]:
        states = list(states)
        return self.runs(f"state IN ({', '.join('?' for _ in states)})", states)

    def experiment_run_ids(self, experiment: str) -> list[str]:
        rows = self.con.execute(
            "SELECT run_id FROM experiment_runs WHERE experiment = ? ORDER BY run_id", [experiment]
        ).fetchall()
        return [r[0] for r in rows]

    def count_runs(self) -> dict[str, int]:
        rows = self.con.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    @staticmethod
    def _run_row(values: Sequence[Any]) -> dict[str, Any]:
        row = dict(zip(RUN_COLUMNS, values, strict=True))
        for c in _JSON_COLUMNS:
            row[c] = json.loads(row[c]) if row[c] else None
        for c in _TIME_COLUMNS:
            row[c] = _jsonable(row[c])
        row["deps"] = list(row["deps"] or [])
        return row

    # -- ingest ------------------------------------------------------------------------------
    def ingest_offset(self, run_id: str, file: str) -> int:
        row = self.con.execute(
            'SELECT "offset" FROM ingest_offsets WHERE run_id = ? AND file = ?', [run_id, file]
        ).fetchone()
        return int(row[0]) if row else 0

    def write_batch(self, batch: IngestBatch) -> None:
        """Insert the batch's rows and move the file's offset, atomically."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table in batch.columns:
                self._append_arrow(table, batch.arrow(table))
            for table, parts in batch.tables.items():
                for part in parts:
                    self._append_arrow(table, part)
            self.con.execute(
                """INSERT INTO ingest_offsets VALUES (?, ?, ?, ?) ON CONFLICT (run_id, file)
                   DO UPDATE SET "offset" = excluded."offset",
                   bad_lines = ingest_offsets.bad_lines + excluded.bad_lines""",
                [batch.run_id, batch.file, batch.offset, batch.bad_lines],
            )
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def _append_arrow(self, table: str, data: pa.Table) -> None:
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        self.con.register("_tix_batch", data)
        try:
            if table == "samples" and self._prompts_apart():
                self._append_samples(data.column_names)
            else:
                self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _tix_batch")
        finally:
            self.con.unregister("_tix_batch")

    def _prompts_apart(self) -> bool:
        """Whether migration 0007 made `samples` a view over `sample_rows` and `prompts`."""
        if self._split is None:
            query = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'sample_rows'"
            self._split = bool(self.con.execute(query).fetchone()[0])
        return self._split

    def _append_samples(self, names: list[str]) -> None:
        """Samples of `_tix_batch`: a prompt not stored yet goes to `prompts`, the rows keep its hash."""
        self.con.execute("""INSERT INTO prompts SELECT DISTINCT md5_number(prompt), prompt FROM _tix_batch b
                            WHERE prompt IS NOT NULL
                              AND md5_number(prompt) NOT IN (SELECT hash FROM prompts)""")
        cols = [c for c in names if c != "prompt"]
        quoted = ", ".join(f'"{c}"' for c in cols)
        targets, values = [quoted], [quoted]
        if "prompt" in names:
            targets.append("prompt_hash")
            values.append("md5_number(prompt)")
        if "completion" in names:
            targets.append("think_open")
            values.append(THINK_OPEN)
        self.con.execute(f"INSERT INTO sample_rows ({', '.join(targets)}) SELECT {', '.join(values)} "
                         "FROM _tix_batch")

    # -- imported results -------------------------------------------------------------------
    def replace_imports(self, experiment: str, source: str, models: list[dict[str, Any]],
                        scores: list[dict[str, Any]], whole_experiment: bool) -> dict[str, int]:
        """Store imported models and scores in one transaction, replacing earlier imports.

        `whole_experiment` replaces every imported row of the experiment (a CSV is the
        experiment's whole table); otherwise only the imported models' rows (an lm-eval file
        adds one model). Either way importing the same file twice stores it once.
        """
        names = [m["model"] for m in models]
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.ensure_experiment(experiment)
            replaced = self._delete_imports(experiment, None if whole_experiment else names)
            now = utcnow()
            self.con.executemany(
                "INSERT INTO imported_models VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[experiment, m["model"], m.get("base_model"), m.get("method"), source, m.get("position"),
                  now] for m in models])
            self._append_arrow("imported_scores", _imported_scores_table(experiment, scores))
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        return {"models": len(models), "scores": len(scores), "replaced": replaced}

    def _delete_imports(self, experiment: str, models: list[str] | None) -> int:
        """Delete imported rows of the experiment (of `models` only, when given); rows deleted."""
        where, params = "experiment = ?", [experiment]
        if models is not None:
            where += f" AND model IN ({', '.join('?' for _ in models)})"
            params += models
        before = self.con.execute(f"SELECT count(*) FROM imported_scores WHERE {where}", params).fetchone()
        self.con.execute(f"DELETE FROM imported_scores WHERE {where}", params)
        self.con.execute(f"DELETE FROM imported_models WHERE {where}", params)
        return int(before[0]) if before else 0

    def experiment_models(self, experiment: str) -> list[str]:
        """Models of an experiment that have scores (runs or imports), for import checks."""
        rows = self.con.execute("SELECT DISTINCT model FROM model_scores WHERE experiment = ? ORDER BY 1",
                                [experiment]).fetchall()
        return [r[0] for r in rows]

    # -- read-only SQL console --------------------------------------------------------------
    def query_readonly(self, sql: str, max_rows: int = 10_000, params: Sequence[Any] = ()) -> dict[str, Any]:
        """Run a read-only statement (see `readonly_query`) on a fresh cursor."""
        return readonly_query(self.con.cursor(), sql, max_rows, params)

    def schema(self) -> list[dict[str, str]]:
        """Tables, views and columns, for `tix sql --schema` and the TUI's schema browser."""
        rows = self.con.execute(
            """SELECT c.table_name, t.table_type, c.column_name, c.data_type
               FROM information_schema.columns c JOIN information_schema.tables t
               USING (table_catalog, table_schema, table_name)
               WHERE c.table_schema = 'main' ORDER BY c.table_name, c.ordinal_position"""
        ).fetchall()
        return [{"table": t, "type": k, "column": c, "data_type": d} for t, k, c, d in rows]


def readonly_query(cur: duckdb.DuckDBPyConnection, sql: str, max_rows: int = 10_000,
                   params: Sequence[Any] = ()) -> dict[str, Any]:
    """Run one SELECT/EXPLAIN on `cur` inside a transaction that is rolled back, then close `cur`.

    `cur` must be a cursor of its own (DuckDB connections are not shared between threads), so the
    daemon can run this in a thread while it keeps ingesting. `params` fill `?` placeholders, so
    clients need not quote values into the text. Returns columns, their DuckDB types (so a grid
    can align a DECIMAL sent as text), at most `max_rows` rows, and whether more rows exist.
    """
    with read_only_transaction(cur, sql, params):
        cur.execute(sql, list(params) or None)
        description = cur.description or []
        rows = cur.fetchmany(max_rows + 1)
    return {"columns": [d[0] for d in description], "types": [str(d[1]) for d in description],
            "rows": [[_cell(v) for v in r] for r in rows[:max_rows]], "truncated": len(rows) > max_rows}


@contextmanager
def read_only_transaction(cur: duckdb.DuckDBPyConnection, sql: str,
                          params: Sequence[Any] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
    """Check that `sql` only reads, open a transaction in UTC on `cur`, roll it back, close `cur`.

    The one guard every client-supplied query passes through (the `sql` op, the TUI's grid and its
    COPY export): even a statement that slipped past the check could not change stored data.
    """
    try:
        check_read_only(cur, sql, params)
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute("BEGIN TRANSACTION")
        yield cur
        cur.execute("ROLLBACK")
    finally:
        cur.close()


_PASSED: dict[tuple[str, str], None] = {}
"""Queries (with their parameters) check_read_only passed, the latest 256: a notebook or the TUI
runs the same query again, and the check plans it (0.6 ms of a 2M-row result's 25 through the
API). Whether a statement writes depends on its text and parameters only."""
_PASSED_LOCK = threading.Lock()


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> None:
    """Refuse anything but one SELECT/EXPLAIN that writes nowhere, however deep; a parse or
    binder error surfaces as DuckDB's own message. The same words for `tix sql` and the TUI."""
    key = (sql, repr(list(params)))
    with _PASSED_LOCK:
        if key in _PASSED:
            return
    _check_read_only(con, sql, params)
    with _PASSED_LOCK:
        _PASSED[key] = None
        if len(_PASSED) > 256:
            del _PASSED[next(iter(_PASSED))]


def _check_read_only(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> None:
    statements = con.extract_statements(sql)
    if not statements:
        raise ReadOnlyQueryError("empty query")
    for st in statements:
        kind = str(st.type).rsplit(".", 1)[-1]
        if kind not in READ_ONLY_STATEMENTS:
            raise ReadOnlyQueryError(f"refused: {kind} is not a query; {READ_ONLY}")
    if len(statements) > 1:
        raise ReadOnlyQueryError(f"refused: one statement at a time; {READ_ONLY}")
    query = statements[0].query
    analyzed = EXPLAIN_ANALYZE.match(query)
    if analyzed:  # EXPLAIN ANALYZE runs its statement: check what it would run
        _check_read_only(con, query[analyzed.end():], params)
        return
    writes = sorted(set(written_operators(con, query, params)))
    if writes:
        raise ReadOnlyQueryError(f"refused: the query holds {', '.join(writes)}, which writes; {READ_ONLY}")


def written_operators(con: duckdb.DuckDBPyConnection, query: str, params: Sequence[Any]) -> list[str]:
    """Names of the operators in `query`'s plan that write (EXPLAIN only plans: nothing runs)."""
    if query.lstrip()[:7].upper() == "EXPLAIN":  # plan what it explains (ANALYZE was checked before)
        query = re.sub(r"^\s*EXPLAIN\s+(?:\([^)]*\)\s*)?", "", query, flags=re.IGNORECASE)
    try:
        rows = con.execute(f"{PLAN_PREFIX}{query}", list(params) or None).fetchall()
    except duckdb.Error as exc:  # DuckDB quotes the statement it was given: quote the user's instead
        raise type(exc)(unprefixed(str(exc))) from None
    names: list[str] = []
    for row in rows:
        collect_names(json.loads(row[-1]), names)
    return [name for name in names if WRITE_OPERATORS.search(name)]


PLAN_PREFIX = "EXPLAIN (FORMAT JSON) "
"""What written_operators puts before the user's query to plan it."""


def unprefixed(message: str) -> str:
    """DuckDB's message about the planned query, as if about the user's own: `LINE 1: EXPLAIN
    (FORMAT JSON) SELECT idd ...` loses the prefix, and the caret line under it moves left."""
    out: list[str] = []
    cut: int | None = None  # where the prefix was in the LINE line above
    for line in message.split("\n"):
        head, found, rest = line.partition(PLAN_PREFIX)
        if found and head.startswith("LINE "):
            out.append(head + rest)
            cut = len(head)
        elif cut is not None and "^" in line and not line.strip(" ^"):
            out.append(line[:cut] + line[cut + len(PLAN_PREFIX):])
            cut = None
        else:
            out.append(line)
    return "\n".join(out)


def collect_names(node: Any, out: list[str]) -> None:
    """Every operator `name` in an EXPLAIN (FORMAT JSON) tree."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str):
            out.append(node["name"])
        for value in node.values():
            collect_names(value, out)
    elif isinstance(node, list):
        for value in node:
            collect_names(value, out)


def _imported_scores_table(experiment: str, scores: list[dict[str, Any]]) -> pa.Table:
    return pa.table({
        "experiment": pa.array([experiment] * len(scores), pa.string()),
        "model": pa.array([s["model"] for s in scores], pa.string()),
        "benchmark": pa.array([s["benchmark"] for s in scores], pa.string()),
        "group": pa.array([s["group"] for s in scores], pa.string()),
        "value": pa.array([float(s["value"]) for s in scores], pa.float64()),
        "metric": pa.array([s.get("metric") for s in scores], pa.string()),
        "line": pa.array([s.get("line") for s in scores], pa.int32()),
    })


def _cell(value: Any) -> Any:
    """A JSON-friendly cell: timestamps as ISO text, other non-JSON types as their text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    return str(value)


# -- run detail (the TUI's curves and samples browser) ---------------------------------------------
def run_metrics(cur: duckdb.DuckDBPyConnection, run_id: str, since_step: int | None = None,
                names: Sequence[str] = (), max_rows: int = 200_000) -> dict[str, Any]:
    """A run's metric points as [step, name, value] in step order, on a cursor of its own (closed).

    `since_step` keeps steps >= it: the last step a client saw may have gained values since (a
    trainer logs train and eval metrics at one step), so the client replaces from there. Rows
    without a step come only in a full read. `names` lists every metric name of the run, so a
    client can offer the ones it did not ask for.
    """
    where, params = ["run_id = ?"], [run_id]
    if since_step is not None:
        where.append("step >= ?")
        params.append(int(since_step))
    if names:
        where.append(f"name IN ({', '.join('?' for _ in names)})")
        params.extend(names)
    try:
        cur.execute(f"SELECT step, name, value FROM metrics WHERE {' AND '.join(where)} "
                    f"ORDER BY step NULLS FIRST, name LIMIT {int(max_rows) + 1}", params)
        rows = cur.fetchall()
        cur.execute("SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name", [run_id])
        all_names = [r[0] for r in cur.fetchall()]
    finally:
        cur.close()
    steps = [r[0] for r in rows[:max_rows] if r[0] is not None]
    return {"run_id": run_id, "names": all_names, "rows": [list(r) for r in rows[:max_rows]],
            "last_step": max(steps) if steps else since_step, "truncated": len(rows) > max_rows}


#: Per benchmark of one run: the stored score (the scorer's aggregate, once the benchmark is
#: done), and from its samples so far the live accuracy, the standard error over items (sample
#: sd of per-item means / sqrt(n), as the eval job computes it) and the output health.
_RUN_RESULTS_SQL = """
WITH s AS (
    SELECT benchmark, item_id, verdict, flags, extracted, finish_reason, completion, extra->>'group' AS grp
    FROM samples WHERE run_id = $run
    QUALIFY row_number() OVER (PARTITION BY benchmark, item_id, sample_idx ORDER BY "offset" DESC) = 1
), items AS (
    SELECT benchmark, item_id, avg(verdict) AS m FROM s WHERE verdict IS NOT NULL GROUP BY benchmark, item_id
), spread AS (
    SELECT benchmark, count(*) AS items, 100 * avg(m) AS live, 100 * stddev_samp(m) / sqrt(count(*)) AS stderr
    FROM items GROUP BY benchmark
), health AS (
    SELECT benchmark, any_value(grp) AS grp, count(*) AS outputs,
           count(*) FILTER (WHERE list_contains(coalesce(flags, []), 'no_answer') OR extracted IS NULL
                                  OR trim(extracted) = '') AS no_answer,
           count(*) FILTER (WHERE finish_reason = 'length'
                                  OR list_contains(coalesce(flags, []), 'truncated')) AS truncated,
           count(*) FILTER (WHERE list_contains(coalesce(flags, []), 'unclosed_think')
                                  OR contains(list_last(string_split(coalesce(completion, ''), '</think>')),
                                              '<think>')) AS unclosed_think
    FROM s GROUP BY ALL
), scored AS (
    SELECT benchmark, arg_max("group", t) AS "group", arg_max(value, t) AS value, arg_max(n, t) AS n
    FROM scores WHERE run_id = $run AND metric = 'accuracy' GROUP BY ALL
)
SELECT coalesce(sc.benchmark, h.benchmark) AS benchmark, coalesce(sc."group", h.grp),
       sc.value AS accuracy, sc.n, sp.live, sp.items, sp.stderr,
       h.outputs, h.no_answer, h.truncated, h.unclosed_think
FROM scored sc FULL JOIN health h ON h.benchmark = sc.benchmark
LEFT JOIN spread sp ON sp.benchmark = coalesce(sc.benchmark, h.benchmark)
ORDER BY benchmark
"""
RESULT_COLUMNS = ("benchmark", "group", "accuracy", "n", "live", "items", "stderr", "outputs", "no_answer",
                  "truncated", "unclosed_think")
SHIFT_COLUMNS = ("scope", "benchmark", "group", "pca_d", "kl", "rank_shift", "logp_diff", "tokens")


def run_results(cur: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """What an eval or analyse run found, for its run-detail page: per benchmark the accuracy
    (stored score, or live from the samples while it runs) with stderr, n and output health;
    and the shift summary (PCA d, KL, rank shift per group and benchmark). On its own cursor."""
    try:
        cur.execute(_RUN_RESULTS_SQL, {"run": run_id})
        benchmarks = [dict(zip(RESULT_COLUMNS, r, strict=True)) for r in cur.fetchall()]
        cur.execute('SELECT DISTINCT scope, benchmark, "group", pca_d, kl, rank_shift, logp_diff, tokens '
                    'FROM shift_summary WHERE run_id = ? ORDER BY scope DESC, "group", benchmark', [run_id])
        shift = [dict(zip(SHIFT_COLUMNS, r, strict=True)) for r in cur.fetchall()]
    finally:
        cur.close()
    return {"run_id": run_id, "benchmarks": benchmarks, "shift": shift}


SAMPLE_COLUMNS = ("offset", "benchmark", "item_id", "sample_idx", "prompt", "completion", "extracted",
                  "verdict", "tokens", "finish_reason", "flags")


def run_samples(cur: duckdb.DuckDBPyConnection, run_id: str, text: str | None = None,
                benchmark: str | None = None, verdict: str | None = None, flag: str | None = None,
                limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """One page of a run's samples in file order, filtered, with the matching and total counts.

    `text` matches (case-insensitively, no wildcards) the prompt, completion, extracted answer,
    item id, benchmark or a flag; `verdict` is `correct` (score >= 0.5), `wrong` (< 0.5) or
    `unscored`; `flag` keeps samples carrying that flag. Runs on a cursor of its own (closed).
    """
    where, params = _sample_filter(run_id, text, benchmark, verdict, flag)
    cols = ", ".join(f'"{c}"' for c in SAMPLE_COLUMNS)
    page = f'ORDER BY "offset" LIMIT {max(0, int(limit))} OFFSET {max(0, int(offset))}'
    try:
        if text:
            cur.execute(f"SELECT {cols}, extra->>'gold' FROM samples WHERE {where} {page}", params)
        else:  # the page's offsets first: DuckDB's top-N would read every completion of the run
            keys = [o for (o,) in cur.execute(f'SELECT "offset" FROM sample_rows WHERE {where} {page}',
                                              params).fetchall()]
            cur.execute(f"SELECT {cols}, extra->>'gold' FROM samples WHERE run_id = ? "
                        'AND "offset" BETWEEN ? AND ? AND list_contains(?, "offset") ORDER BY "offset"',
                        [run_id, keys[0] if keys else 0, keys[-1] if keys else -1, keys])
        rows = [dict(zip((*SAMPLE_COLUMNS, "gold"), r, strict=True)) for r in cur.fetchall()]
        cur.execute(f"SELECT count(*) FROM {'samples' if text else 'sample_rows'} WHERE {where}", params)
        matching = int(cur.fetchone()[0])
        cur.execute("SELECT benchmark, count(*) FROM sample_rows WHERE run_id = ? GROUP BY 1 ORDER BY 1",
                    [run_id])
        benchmarks = {str(b): int(n) for b, n in cur.fetchall()}
    finally:
        cur.close()
    for row in rows:
        row["flags"] = list(row["flags"] or [])
    return {"run_id": run_id, "rows": rows, "total": matching, "all": sum(benchmarks.values()),
            "benchmarks": benchmarks, "offset": max(0, int(offset))}


_VERDICTS = {"correct": "verdict >= 0.5", "wrong": "verdict < 0.5", "unscored": "verdict IS NULL"}


def _sample_filter(run_id: str, text: str | None, benchmark: str | None, verdict: str | None,
                   flag: str | None) -> tuple[str, list[Any]]:
    where, params = ["run_id = ?"], [run_id]
    if text:
        fields = ("prompt", "completion", "extracted", "item_id", "benchmark",
                  "array_to_string(flags, ' ')")
        where.append("(" + " OR ".join(f"contains(lower(coalesce({f}, '')), ?)" for f in fields) + ")")
        params.extend([text.lower()] * len(fields))
    if benchmark:
        where.append("benchmark = ?")
        params.append(benchmark)
    if verdict:
        if verdict not in _VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(_VERDICTS)}, got {verdict!r}")
        where.append(_VERDICTS[verdict])
    if flag:
        where.append("list_contains(flags, ?)")
        params.append(flag)
    return " AND ".join(where), params
