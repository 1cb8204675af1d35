"""tix's results in Python: `connect()`, then SQL or helpers whose results come back as Arrow.

    from engine.client import connect
    db = connect()                                     # TIX_HOME, else ~/.tix; connect(home=...)
    t = db.sql("SELECT * FROM scores WHERE benchmark = ?", ["math500"]).arrow()   # pyarrow.Table
    df = db.samples("tiny-lab").df()                   # pandas.DataFrame
    pl = db.curves("tiny-lab", metric="loss").pl()     # polars.DataFrame
    rows = db.runs(state="running").fetchall()         # list of tuples

While any run goes on, the daemon holds DuckDB's lock on `tix.duckdb`, so a notebook cannot open
the file; it asks the daemon instead, like `tix sql`. Queries are read-only and refused exactly
as `tix sql` refuses them (RequestFailed with the same one line). Results travel as Arrow IPC
record batches, so DuckDB's types arrive intact (DECIMAL, TIMESTAMP, DATE, LIST, STRUCT, NULL, NaN):
`.arrow()` and the frames built on it read them in place from shared memory the daemon wrote them
to (engine/client/arena.py); `.reader()` receives them one at a time over the socket, for a
result bigger than memory (engine/daemon/arrow_stream.py says why both). A 2M-row
`.arrow()` takes 1.4-1.6x the time of DuckDB's own in-process `to_arrow_table()` on an idle
2-core box: the same conversion plus one copy (bench/api.py; README "Arrow over the wire").
Each query runs on its own snapshot in a daemon thread, so notebooks read while workers run and
ingest writes, and many clients read at once.

A `Result` runs its query each time it is read (as a DuckDB relation does): `db.runs()` is cheap
to make, and reading it again shows the runs as they are now.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.client.connection import Client, RequestFailed
from engine.workspace import Workspace

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow as pa

__all__ = ["Database", "RequestFailed", "Result", "TIResult", "connect"]


def connect(home: str | Path | None = None, autostart: bool = True) -> Database:
    """A connection to the workspace's daemon (started if none runs, unless `autostart` is False).

    `home` is the workspace folder; default TIX_HOME, else ~/.tix. Requests wait as long as the
    daemon takes (a big query may run for minutes); Ctrl-C abandons one."""
    return Database(Client(Workspace.resolve(str(home) if home else None), autostart=autostart, timeout=None))


class _Frames:
    """The other shapes of a result, all made from its `arrow()` table."""

    def arrow(self) -> pa.Table:
        raise NotImplementedError

    def df(self) -> pandas.DataFrame:
        """The whole result as a pandas DataFrame (pyarrow's conversion: DECIMAL as Python
        Decimal objects, TIMESTAMP as datetime64, LIST as arrays, NULL as None)."""
        _need("pandas", "pip install pandas")
        return self.arrow().to_pandas()

    def pl(self) -> polars.DataFrame:
        """The whole result as a polars DataFrame (polars is optional: ImportError says so)."""
        polars = _need("polars", "pip install polars (or use .arrow() or .df())")
        return polars.from_arrow(self.arrow())

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row as a tuple of Python values (Decimal, datetime, list, dict, None), as
        DuckDB's own `fetchall()` gives them."""
        table = self.arrow()
        columns = [column.to_pylist() for column in table.columns]
        return list(zip(*columns, strict=True)) if columns else []


class Result(_Frames):
    """A read-only query, fetched when asked for, in the form asked for."""

    def __init__(self, db: Database, query: str, params: Sequence[Any] = ()) -> None:
        self.db = db
        self.query = query
        self.params = list(params)

    def __repr__(self) -> str:
        return f"<tix Result: {' '.join(self.query.split())[:80]}; .arrow(), .df(), .pl(), .fetchall()>"

    def reader(self, batch_rows: int | None = None) -> pa.RecordBatchReader:
        """The rows as Arrow record batches, received as they are read (read it to the end before
        the next query on this connection; `batch_rows` caps a batch, default 122,880)."""
        args: dict[str, Any] = {"query": self.query, "params": self.params}
        if batch_rows is not None:
            args["batch_rows"] = batch_rows
        return self.db.client.stream("sql_arrow", **args)

    def arrow(self) -> pa.Table:
        """The whole result as a pyarrow Table, with DuckDB's types (its batches in shared memory
        the daemon wrote them to, where it can: engine/client/arena.py)."""
        return self.db.client.table("sql_arrow", query=self.query, params=self.params)


class TIResult(_Frames):
    """`tix ti`'s numbers: the daemon's `ti` op, passed through untouched.

    `results` holds one JSON object per tuned model exactly as `tix ti --format json` prints it
    (groups, benchmarks, and the intervals where the daemon computes them); `warnings` what
    `tix ti` prints on stderr. `arrow()`/`df()`/`pl()` flatten each model to one row: nested
    objects become `<key>_<subkey>` columns (`groups_math_base`, ...), an interval `<key>_ci`
    becomes `<key>_ci_low`/`<key>_ci_high`; `benchmarks()` has one row per model and benchmark."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.results: list[dict[str, Any]] = list(answer.get("results") or [])
        self.warnings: list[str] = list(answer.get("warnings") or [])

    def __repr__(self) -> str:
        return f"<tix TIResult: {len(self.results)} tuned model(s); .arrow(), .df(), .pl(), .results>"

    def arrow(self) -> pa.Table:
        """One row per tuned model, nested values flattened (per-benchmark detail left out)."""
        return _table([_flat({k: v for k, v in o.items() if k != "benchmarks"}) for o in self.results])

    def benchmarks(self) -> pa.Table:
        """One row per tuned model and benchmark: the per-benchmark scores, gains and tests."""
        rows = [{**{k: o.get(k) for k in ("experiment", "model", "base_model")}, "benchmark": name,
                 **_flat({DETAIL_NAMES.get(k, k): v for k, v in detail.items()})}
                for o in self.results for name, detail in (o.get("benchmarks") or {}).items()]
        return _table(rows)


DETAIL_NAMES = {"base": "base_score", "model": "score"}
"""A benchmark's scores in the `ti` op's detail, renamed as `tix ti --benchmarks` heads them."""


class Database:
    """One workspace's results, read through its daemon (see the module docstring). It is one
    connection: threads that query at the same time each `connect()` their own."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tix Database {self.client.ws.home}>"

    def close(self) -> None:
        """Close the connection (the daemon keeps running while runs go on)."""
        self.client.close()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> Result:
        """A read-only query (one SELECT or EXPLAIN) with `?` placeholders filled from `params`.
        Nothing runs until the result is read; a refused or wrong query raises RequestFailed then."""
        return Result(self, query, params or ())

    def runs(self, experiment: str | None = None, state: str | Sequence[str] | None = None) -> Result:
        """Runs (every column of the `runs` table), oldest first; only the experiment's, only in
        `state` (one or several of queued, running, succeeded, failed, cancelled)."""
        where, params = [], []
        if experiment is not None:
            self._check_experiment(experiment)
            where.append("id IN (SELECT run_id FROM experiment_runs WHERE experiment = ?)")
            params.append(experiment)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(states)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self.sql(f"SELECT * FROM runs{clause} ORDER BY created_at, id", params)

    def scores(self, experiment: str | None = None) -> Result:
        """One accuracy (percent) per experiment, model and benchmark, as `tix ti` uses them (the
        `model_scores` view: imported scores, else the model's latest eval run's); every metric of
        every run is in `db.sql("SELECT * FROM scores")`."""
        if experiment is None:
            return self.sql('SELECT * FROM model_scores ORDER BY experiment, model, "group", benchmark')
        self._check_experiment(experiment)
        return self.sql('SELECT * FROM model_scores WHERE experiment = ? ORDER BY model, "group", benchmark',
                        [experiment])

    def samples(self, run_or_experiment: str, benchmark: str | None = None,
                model: str | None = None) -> Result:
        """Scored items of one run (an id or unique prefix) or of an experiment's eval and score
        runs: experiment, model, run_id, benchmark, group, item_id, sample_idx, prompt, completion,
        extracted, verdict, tokens, finish_reason, flags, extra. A resumed run's item counts once
        (its last record), as in the SQL views."""
        scope = self._scope(run_or_experiment)
        where = ["r.kind IN ('eval', 'score')"] if scope.experiment else []
        params: list[Any] = [scope.value]
        for column, wanted in (("s.benchmark", benchmark), ("r.name", model)):
            if wanted is not None:
                where.append(f"{column} = ?")
                params.append(wanted)
        return self.sql(SAMPLES_SQL.format(**scope.sql(where)), params)

    def curves(self, run_or_experiment: str, metric: str | None = None) -> Result:
        """Training curves (long format) of one run or of an experiment's runs: experiment, model,
        run_id, kind, step, metric, value, t. Steps a resumed training logged twice keep their
        latest value (the one that led to the final model)."""
        scope = self._scope(run_or_experiment)
        where, params = [], [scope.value]
        if metric is not None:
            where.append("m.name = ?")
            params.append(metric)
        return self.sql(CURVES_SQL.format(**scope.sql(where)), params)

    def ti(self, experiment: str | None = None, variant: str | None = None,
           sigma: str | dict[str, float] | None = None) -> TIResult:
        """The Transferability Index of every tuned model, the very numbers `tix ti` prints (the
        daemon's `ti` op): `variant` v1 or v2 (default: the experiment file's, else v2); `sigma`
        pooled, per-model or {"math": ..., "other": ..., "non": ...}."""
        return TIResult(self.client.request("ti", experiment=experiment, variant=variant, sigma=sigma))

    def watch(self, experiment: str | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Run changes as the daemon pushes them: one dict per change (the keys of
        `tix status --json`), only the experiment's runs when given. Ends when `timeout` seconds
        pass without a change, or when the daemon stops. Uses a connection of its own."""
        ids = None if experiment is None else set(self.runs(experiment).arrow().column("id").to_pylist())
        pushes = Client(self.client.ws, timeout=None)
        pushes.subscribe()  # now, not at the first next(): no change between the two is lost
        return _changes(pushes, ids, experiment, timeout)

    def export(self, experiment: str, folder: str | Path) -> dict[str, Any]:
        """Write the experiment's bundle (Parquet tables, experiment file, TI table, README) into
        `folder`, new or empty, as `tix export` does; the tables' row counts."""
        return self.client.request("export_bundle", experiment=experiment, path=str(Path(folder).resolve()))

    def import_bundle(self, folder: str | Path, name: str | None = None) -> dict[str, Any]:
        """Bring a bundle into this workspace, as `tix import bundle` does (`name`: store the
        experiment under another name); what was stored."""
        return self.client.request("import_bundle", path=str(Path(folder).resolve()), name=name)

    # -- helpers ---------------------------------------------------------------------------------
    def _check_experiment(self, name: str) -> None:
        """A misspelt experiment is an error naming the real ones, not an empty table."""
        names = [r[0] for r in self.client.request("sql", query="SELECT name FROM experiments ORDER BY 1",
                                                   max_rows=1_000_000)["rows"]]
        if name not in names:
            known = ", ".join(names) or "none yet"
            raise RequestFailed(f"no experiment named {name!r} (experiments: {known})", "not_found")

    def _scope(self, ref: str) -> _Scope:
        """An experiment name, else a run id or unique prefix."""
        found = self.client.request("sql", query="SELECT count(*) FROM experiments WHERE name = ?",
                                    params=[ref])
        if found["rows"][0][0]:
            return _Scope(True, ref)
        try:
            return _Scope(False, self.client.request("run", id=ref)["id"])
        except RequestFailed as exc:
            if exc.code != "not_found":
                raise
            message = f"no experiment or run matches {ref!r} (see `tix status`)"
            raise RequestFailed(message, "not_found") from None


class _Scope:
    """What `samples` and `curves` read: an experiment's runs (through experiment_runs, since a
    reused run belongs to several) or one run (filed under the experiment that first asked)."""

    def __init__(self, experiment: bool, value: str) -> None:
        self.experiment = experiment
        self.value = value

    def sql(self, where: list[str]) -> dict[str, str]:
        """The experiment column, the join to the scope and the WHERE terms; `?` is the value."""
        if self.experiment:
            return {"experiment": "e.experiment", "where": " AND ".join(["TRUE", *where]),
                    "join": "JOIN experiment_runs e ON e.run_id = r.id AND e.experiment = ?"}
        return {"experiment": "r.experiment", "join": "", "where": " AND ".join(["r.id = ?", *where])}


SAMPLES_SQL = """
WITH latest AS (
    SELECT * FROM samples
    QUALIFY row_number() OVER (PARTITION BY run_id, benchmark, item_id, sample_idx ORDER BY "offset" DESC) = 1
), groups AS (
    SELECT DISTINCT run_id, benchmark, "group" FROM scores
)
SELECT {experiment} AS experiment, r.name AS model, s.run_id, s.benchmark, g."group",
       s.item_id, s.sample_idx, s.prompt, s.completion, s.extracted, s.verdict, s.tokens, s.finish_reason,
       s.flags, s.extra
FROM latest s JOIN runs r ON r.id = s.run_id {join}
LEFT JOIN groups g ON g.run_id = s.run_id AND g.benchmark = s.benchmark
WHERE {where}
ORDER BY experiment, model, s.run_id, s.benchmark, s.item_id, s.sample_idx
"""

CURVES_SQL = """
SELECT {experiment} AS experiment, r.name AS model, m.run_id, r.kind, m.step, m.name AS metric, m.value, m.t
FROM metrics m JOIN runs r ON r.id = m.run_id {join}
WHERE {where}
QUALIFY row_number() OVER (PARTITION BY m.run_id, m.name, m.step ORDER BY m.t DESC) = 1
ORDER BY experiment, model, m.run_id, metric, m.step
"""


def _changes(pushes: Client, ids: set[str] | None, experiment: str | None,
             timeout: float | None) -> Iterator[dict[str, Any]]:
    """`watch`'s iterator over a subscribed connection of its own (closed when it ends)."""
    try:
        for message in pushes.pushes(timeout=timeout):
            if message.get("push") == "stopping":
                return
            run = message.get("run")
            if run and (ids is None or run["id"] in ids or run.get("experiment") == experiment):
                yield run
    finally:
        pushes.close()


def _need(module: str, how: str) -> Any:
    """Import an optional library, or say in one line how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module} is not installed: {how}") from None


def _flat(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as `a_b` keys; an interval (`..._ci`: [low, high], or null where none could
    be computed) as `<key>_low`/`<key>_high`, so the columns are there whatever the rows hold."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}_"))
        elif (key == "ci" or key.endswith("_ci")) and _interval(value):
            out[f"{name}_low"], out[f"{name}_high"] = value or (None, None)
        else:
            out[name] = value
    return out


def _interval(value: Any) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value))


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows with possibly different keys as one table (a missing key is null; ints that meet
    floats become floats, NaN stays NaN)."""
    import pyarrow as pa

    names = list(dict.fromkeys(k for row in rows for k in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if any(isinstance(v, float) for v in values) and all(_number(v) for v in values):
            values = [None if v is None else float(v) for v in values]
        columns[name] = pa.array(values)
    return pa.table(columns) if names else pa.table({})

