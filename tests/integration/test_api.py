"""The Python API (engine.client.connect) through a real daemon: DuckDB's types over Arrow, the
same refusals as `tix sql`, readers while ingest writes, a large result within a memory bound,
the helpers on recorded runs, `tix sql --format parquet|arrow`, and run changes from `watch`."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from engine.analysis.report import clean
from engine.client import connect
from engine.client.connection import Client, RequestFailed
from engine.workspace import Workspace
from tests.conftest import probe, wait_until
from tests.tui.recorded import BENCHMARKS, EXPERIMENT, build_workspace

TYPES = """SELECT 1.25::DECIMAL(10, 2) AS dec, 123456789012345678.5::DECIMAL(38, 1) AS wide,
       TIMESTAMP '2024-01-02 03:04:05.123456' AS ts, TIMESTAMPTZ '2024-01-02 03:04:05+02' AS tstz,
       DATE '2024-02-29' AS day, [1, NULL, 3] AS list, {'a': 1, 'b': 'x'} AS struct,
       NULL AS nothing, 'NaN'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, -0.0::DOUBLE AS negzero,
       true AS flag, 'héllo'::VARCHAR AS text, '\\x00\\xff'::BLOB AS blob, INTERVAL 3 DAY AS span,
       'medium'::ENUM('low', 'medium', 'high') AS level, MAP {'k': 2} AS map, 2::HUGEINT AS huge,
       12::UTINYINT AS small, TIME '12:34:56' AS clock
FROM range(3) t(i)"""


def duckdb_own(query: str) -> pa.Table:
    """DuckDB's own Arrow result in this process (UTC, as the daemon reads)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.sql(query).to_arrow_table()
    finally:
        con.close()


def same(a: pa.Table, b: pa.Table) -> bool:
    """Equal schemas and values, NaN equal to NaN (Arrow's equals says NaN != NaN)."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    return all(_nan_free(a[n]).equals(_nan_free(b[n])) for n in a.column_names)


def _nan_free(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_floating(column.type):
        return pc.if_else(pc.is_nan(column), pa.scalar(-1.5e300, column.type), column)
    return column


def test_duckdb_types_survive_the_wire(ws: Workspace) -> None:
    with connect(ws.home) as db:
        got = db.sql(TYPES).arrow()
        rows = db.sql(TYPES).fetchall()
        frame = db.sql(TYPES).df()
        no_interval = TYPES.replace(" INTERVAL 3 DAY AS span,", "")  # polars reads no Arrow interval
        polars_frame = db.sql(no_interval).pl() if _has_polars() else None
    want = duckdb_own(TYPES)
    assert same(got, want) and not got.equals(want)  # only NaN != NaN tells them apart
    assert str(got.schema.field("dec").type) == "decimal128(10, 2)"
    assert got.schema.field("ts").type == pa.timestamp("us") and got.schema.field("tstz").type.tz == "UTC"
    assert pa.types.is_date32(got.schema.field("day").type) and pa.types.is_null(got.schema.field("nothing").type)
    assert pa.types.is_dictionary(got.schema.field("level").type)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    own_rows = con.execute(TYPES).fetchall()
    con.close()
    assert [r[:3] + r[4:8] for r in rows] == [r[:3] + r[4:8] for r in own_rows]  # tz-aware: compared below
    assert rows[0][3].utcoffset().total_seconds() == 0 and rows[0][3] == own_rows[0][3]
    assert all(r[8] != r[8] for r in rows) and rows[0][9] == float("inf")  # NaN stays NaN
    assert frame.shape == (3, got.num_columns) and str(frame["ts"].dtype).startswith("datetime64")
    if polars_frame is not None:
        assert polars_frame.shape == (3, got.num_columns - 1) and polars_frame["nan"].is_nan().all()


def _has_polars() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True


def test_polars_and_pandas_missing_are_one_clear_error(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    with connect(ws.home) as db:
        monkeypatch.setitem(sys.modules, "polars", None)
        with pytest.raises(ImportError, match=r"^polars is not installed: pip install polars"):
            db.sql("SELECT 1").pl()
        monkeypatch.setitem(sys.modules, "pandas", None)
        with pytest.raises(ImportError, match=r"^pandas is not installed"):
            db.sql("SELECT 1").df()
        assert db.sql("SELECT 1 AS one").fetchall() == [(1,)]


BAD_QUERIES = [
    "DELETE FROM runs",
    "SELECT 1; SELECT 2",
    "WITH gone AS (DELETE FROM runs RETURNING *) SELECT * FROM gone",
    "EXPLAIN ANALYZE DELETE FROM runs",
    "COPY runs TO '/tmp/x.csv'",
    "ATTACH ':memory:' AS other",
    "SET threads = 1",
    "SELECT nope FROM runs",
    "SELEC 1",
    "SELECT 'x'::INTEGER",
    "",
]


def test_refusals_are_those_of_tix_sql(tix, ws: Workspace) -> None:
    with connect(ws.home) as db:
        for query in BAD_QUERIES:
            with pytest.raises(RequestFailed) as caught:
                db.sql(query).arrow()
            shell = tix("sql", query)
            assert shell.returncode == 2, (query, shell.stderr)
            assert shell.stderr == f"tix: error: {caught.value}\n", query
            assert caught.value.code in ("refused", "query_error")
        assert db.sql("SELECT count(*) AS n FROM runs").fetchall() == [(0,)]  # the connection still works


def test_three_clients_read_while_ingest_writes(ws: Workspace) -> None:
    rec = build_workspace(ws)  # the rl run is running: its "worker" keeps writing metrics below
    try:
        run_id = rec.ids["rl"]
        with connect(ws.home) as db:
            start = db.sql("SELECT max(step) FROM metrics WHERE run_id = ?", [run_id]).fetchall()[0][0]
        seen: dict[int, list[int]] = {i: [] for i in range(3)}
        errors: list[BaseException] = []
        stop = threading.Event()

        def reader(i: int) -> None:
            try:
                with connect(ws.home) as db:
                    while not stop.is_set():
                        curve = db.curves(run_id, metric="reward").arrow()
                        steps = curve.column("step").to_pylist()
                        assert steps == sorted(steps) and len(set(steps)) == len(steps)
                        seen[i].append(len(steps))
                        assert db.sql("SELECT count(*) FROM samples").fetchall()[0][0] == 48
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for chunk in range(start + 1, start + 41, 5):
            rec.grow(range(chunk, chunk + 5))
            time.sleep(0.15)
        with connect(ws.home) as db:
            wait_until(lambda: db.sql("SELECT max(step) FROM metrics WHERE run_id = ?",
                                      [run_id]).fetchall()[0][0] == start + 40, timeout=20)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        for counts in seen.values():
            assert counts == sorted(counts) and counts[0] >= start and counts[-1] == start + 40
            assert len(counts) >= 3  # each kept reading while ingest wrote
    finally:
        rec.stop_worker()


def hwm_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_large_result_streams_within_a_memory_bound(ws: Workspace) -> None:
    query = "SELECT i, i * 0.5 AS half, 'row ' || (i % 1000) AS label FROM range(8000000) t(i)"
    with connect(ws.home) as db:
        pid = db.client.request("ping")["pid"]
        before = hwm_mib(pid)
        rows = size = batches = 0
        for batch in db.sql(query).reader():
            rows, size, batches = rows + batch.num_rows, size + batch.nbytes, batches + 1
        peak = hwm_mib(pid)
        assert rows == 8_000_000 and batches > 30
        assert size / 2**20 > 200  # the whole result would be this big ...
        assert peak - before < 120, (before, peak)  # ... the daemon never held it
        assert db.sql("SELECT 42 AS answer").fetchall() == [(42,)]


def test_an_unfinished_result_does_not_confuse_the_next_query(ws: Workspace) -> None:
    with connect(ws.home) as db:
        reader = db.sql("SELECT * FROM range(2000000)").reader(batch_rows=1000)
        assert reader.read_next_batch().num_rows == 1000
        assert db.sql("SELECT 7 AS seven").fetchall() == [(7,)]
        again = db.sql("SELECT * FROM range(300000)").arrow()
        assert again.num_rows == 300_000
        with pytest.raises(ValueError, match=r"answers with an Arrow stream: use Client\.stream"):
            db.client.request("sql_arrow", query="SELECT 1")
    with Client(ws) as pushed:
        pushed.subscribe()
        with pytest.raises(RequestFailed, match="this connection gets pushes; stream on a connection of its own"):
            pushed.stream("sql_arrow", query="SELECT 1")
        assert pushed.request("sql", query="SELECT 1")["rows"] == [[1]]


def test_a_query_failing_halfway_says_why_and_the_connection_goes_on(tix, ws: Workspace, tmp_path: Path) -> None:
    # far into the result: DuckDB runs ahead of a streaming reader only by a few batches, so the
    # first ones come before the failure, whatever order its threads take the rows in
    query = "SELECT CASE WHEN i < 1500000 THEN i ELSE error('boom') END AS i FROM range(2000000) t(i)"
    with connect(ws.home) as db:
        reader = db.sql(query).reader()
        assert reader.read_next_batch().num_rows > 0  # rows came before the failure
        with pytest.raises(RequestFailed, match=r"^Invalid Input Error: boom$") as caught:
            reader.read_all()
        assert caught.value.code == "query_error"
        assert db.sql("SELECT 2 AS two").fetchall() == [(2,)]
    out = tmp_path / "half.arrow"
    shell = tix("sql", query, "--format", "arrow", "-o", str(out))
    assert shell.returncode == 2 and shell.stderr == "tix: error: Invalid Input Error: boom\n"
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_helpers_on_recorded_runs(tix, ws: Workspace) -> None:
    rec = build_workspace(ws, live=False)
    with connect(ws.home) as db:
        runs = db.runs(EXPERIMENT).arrow()
        assert set(runs.column("id").to_pylist()) == {v for k, v in rec.ids.items() if k != "probe"}
        assert runs.schema.field("created_at").type == pa.timestamp("us")
        failed = db.runs(state=["failed"]).fetchall()
        assert {r[0] for r in failed} == {rec.ids["analyse_sft"], rec.ids["probe"]}
        scores = db.scores(EXPERIMENT).df()
        assert set(scores["model"]) == {"base", "sft"} and len(scores) == 6
        samples = db.samples(EXPERIMENT).df()
        assert len(samples) == 48 and set(samples["group"]) == {"math", "other", "non"}
        by_model = samples.groupby("model").verdict.mean().to_dict()
        assert by_model == pytest.approx({"base": 0.4166666, "sft": 0.7083333}, abs=1e-6)
        one = db.samples(rec.ids["eval_sft"][:9], benchmark="lab_syllogism").arrow()
        assert one.num_rows == 8 and set(one.column("model").to_pylist()) == {"sft"}
        assert db.samples(EXPERIMENT, model="base").arrow().num_rows == 24
        loss = db.curves(EXPERIMENT, metric="loss").arrow()
        assert set(loss.column("model").to_pylist()) == {"base", "sft", "rl"}
        assert loss.filter(pc.equal(loss["model"], "sft")).num_rows == 40
        ti = db.ti(EXPERIMENT)
        shell = json.loads(tix("ti", EXPERIMENT, "--format", "json").stdout)
        assert clean(ti.results) == shell and ti.warnings == []
        row = ti.arrow().to_pylist()[0]
        assert row["model"] == "sft" and row["groups_math_base"] == 37.5 and row["groups_math_model"] == 62.5
        detail = ti.benchmarks().to_pylist()
        assert {d["benchmark"] for d in detail} == {b for b, _ in BENCHMARKS}
        assert all(d["model"] == "sft" and d["score"] - d["base_score"] == pytest.approx(d["gain"]) for d in detail)
        with pytest.raises(RequestFailed, match=r"no experiment named 'tiny-lob' \(experiments: tiny-lab\)"):
            db.scores("tiny-lob")
        with pytest.raises(RequestFailed, match="no experiment or run matches 'nothing'"):
            db.samples("nothing")


def test_sql_writes_parquet_and_arrow_files(tix, ws: Workspace, tmp_path: Path) -> None:
    query = "SELECT 1.25::DECIMAL(10, 2) AS dec, TIMESTAMP '2024-01-02 03:04:05' AS ts, i FROM range(250000) t(i)"
    arrow, parquet = tmp_path / "out.arrow", tmp_path / "out.parquet"
    done = tix("sql", query, "--format", "arrow", "-o", str(arrow))
    assert done.returncode == 0 and done.stdout == f"250000 rows written to {arrow}\n", done.stderr
    done = tix("sql", query, "--format", "parquet", "-o", str(parquet))
    assert done.returncode == 0, done.stderr
    want = duckdb_own(query)
    assert ipc.open_file(str(arrow)).read_all().equals(want)
    written = pq.read_table(parquet)  # DuckDB's Parquet marks constant columns not null
    assert written.schema.types == want.schema.types and written.to_pydict() == want.to_pydict()
    missing = tix("sql", "SELECT 1", "--format", "arrow")
    assert missing.returncode == 2 and missing.stderr == "tix: error: --format arrow writes a file: add -o FILE\n"
    refused = tix("sql", "DELETE FROM runs", "--format", "arrow", "-o", str(tmp_path / "no.arrow"))
    assert refused.returncode == 2 and not (tmp_path / "no.arrow").exists()
    assert not list(tmp_path.glob(".*partial"))
    text = tix("sql", "SELECT 42 AS answer", "--format", "csv", "-o", str(tmp_path / "a.csv"))
    assert text.returncode == 0 and (tmp_path / "a.csv").read_text() == "answer\n42\n"


def test_watch_yields_run_changes(ws: Workspace) -> None:
    with connect(ws.home) as db, Client(ws) as client:
        changes = db.watch(timeout=30)
        run = probe("watched", steps=2)
        client.request("submit", experiment={"name": "probe-exp"}, runs=[run])
        states = []
        for change in changes:
            if change["id"] == run["id"]:
                states.append(change["state"])
                if change["state"] in ("succeeded", "failed", "cancelled"):
                    break
        assert states[-1] == "succeeded" and "running" in states
