"""Storage: migrations upgrade old databases, batches are atomic, the SQL console is read-only."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from storage import ReadOnlyQueryError, Store
from storage.migrations import available, current_version
from storage.store import IngestBatch


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in available()]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 2


def test_database_from_an_earlier_schema_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    old = Store.open(db, upto=1)
    old.insert_run({"id": "r1", "kind": "probe", "state": "succeeded", "params": {"x": 1}, "deps": []})
    tables = {r[0] for r in old.con.execute("SHOW TABLES").fetchall()}
    assert "samples" not in tables and current_version(old.con) == 1
    old.close()
    new = Store.open(db)
    assert current_version(new.con) == len(available())
    assert new.run("r1")["params"] == {"x": 1}
    assert new.con.execute("SELECT count(*) FROM samples").fetchone() == (0,)
    new.close()


def test_run_rows_round_trip(tmp_path: Path) -> None:
    store = Store.open(None)
    store.insert_run({"id": "a", "kind": "train", "state": "queued", "params": {"lr": 0.1}, "deps": ["b"]})
    store.update_run("a", state="running", pid=42, result={"model_path": "/m"})
    run = store.run("a")
    assert (run["state"], run["pid"], run["deps"]) == ("running", 42, ["b"])
    assert run["result"] == {"model_path": "/m"}
    with pytest.raises(KeyError):
        store.update_run("a", nonsense=1)


def test_write_batch_moves_rows_and_offset_together() -> None:
    store = Store.open(None)
    batch = IngestBatch("r", "events.jsonl", 120)
    batch.add("metrics", {"run_id": "r", "step": 1, "name": "loss", "value": 2.0, "t": None})
    store.write_batch(batch)
    assert store.ingest_offset("r", "events.jsonl") == 120
    broken = IngestBatch("r", "events.jsonl", 999)
    broken.add("metrics", {"run_id": None, "step": 2, "name": None, "value": 1.0, "t": None})  # NOT NULL
    with pytest.raises(duckdb.Error):
        store.write_batch(broken)
    assert store.ingest_offset("r", "events.jsonl") == 120  # rolled back with the rows
    assert store.con.execute("SELECT count(*) FROM metrics").fetchone() == (1,)


@pytest.mark.parametrize("sql", [
    "DELETE FROM runs", "DROP TABLE runs", "INSERT INTO runs (id, kind, state) VALUES ('x','p','q')",
    "UPDATE runs SET state = 'x'", "CREATE TABLE t (a INT)", "COPY runs TO '/tmp/x.csv'",
    "ATTACH ':memory:' AS other", "SET threads = 1", "CHECKPOINT", "INSTALL httpfs",
    "SELECT 1; DELETE FROM runs", "SELECT 1; SELECT 2", "LOAD httpfs", "PRAGMA table_info('runs')",
    "CALL pragma_version()",
    # writes nested in a query: data-modifying CTEs, and EXPLAIN ANALYZE, which runs its statement
    "WITH x AS (DELETE FROM runs RETURNING *) SELECT * FROM x",
    "with x as (update runs set state = 'x' returning *) select count(*) from x",
    "WITH x AS (INSERT INTO runs (id, kind, state) VALUES ('x','p','q') RETURNING *) SELECT * FROM x",
    "WITH a AS (SELECT 1), x AS (DELETE FROM runs RETURNING id) SELECT * FROM a, x",
    "EXPLAIN ANALYZE DELETE FROM runs", "EXPLAIN ANALYZE WITH x AS (DELETE FROM runs RETURNING *) SELECT * FROM x",
    "EXPLAIN DELETE FROM runs",
])
def test_sql_console_refuses_writes(sql: str) -> None:
    store = Store.open(None)
    store.con.execute("INSERT INTO runs (id, kind, state) VALUES ('keep', 'probe', 'queued')")
    with pytest.raises(ReadOnlyQueryError, match=r"^refused: .*the SQL console is read-only"):
        store.query_readonly(sql)
    assert store.con.execute("SELECT id, state FROM runs").fetchall() == [("keep", "queued")]


@pytest.mark.parametrize("sql", ["SELECT * FROM runs", "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
                                 "EXPLAIN SELECT 1", "EXPLAIN ANALYZE SELECT count(*) FROM runs",
                                 "SELECT 'DELETE FROM runs' AS text", "select * from range(3)"])
def test_sql_console_runs_queries_that_only_read(sql: str) -> None:
    assert Store.open(None).query_readonly(sql)["rows"] is not None


def test_sql_console_reads_and_caps_rows() -> None:
    store = Store.open(None)
    result = store.query_readonly("SELECT range AS i FROM range(25)", max_rows=10)
    assert result["columns"] == ["i"] and len(result["rows"]) == 10 and result["truncated"]
    assert store.query_readonly("EXPLAIN SELECT 1")["rows"]


def test_schema_lists_tables_and_views() -> None:
    tables = {row["table"] for row in Store.open(None).schema()}
    assert {"runs", "events", "metrics", "samples", "scores", "shift_results", "run_summary"} <= tables


def test_run_results_match_the_eval_jobs_arithmetic() -> None:
    """A run's results page: the stored score wins, stderr over items is what the eval job writes
    (samples.stderr), health counts the latest line of each sample, a benchmark still running
    shows its accuracy so far; analyse runs bring their shift summary."""
    from engine.evaluation.samples import stderr
    from storage.store import run_results

    store = Store.open(None)
    store.insert_run({"id": "e", "kind": "eval", "state": "running"})
    verdicts = {"a-0": [1.0, 0.0], "a-1": [1.0, 1.0], "a-2": [0.0, 0.0]}  # two samples per item
    offset = 0
    batch = IngestBatch("e", "samples.jsonl", 1)
    for item, values in verdicts.items():
        for idx, v in enumerate(values):
            offset += 1
            batch.add("samples", {"run_id": "e", "offset": offset, "benchmark": "arith", "item_id": item,
                                  "sample_idx": idx, "prompt": "q", "completion": "<think>x", "extracted": "1",
                                  "verdict": v, "tokens": 3, "finish_reason": "length" if item == "a-2" else "stop",
                                  "flags": [], "extra": '{"group": "math"}'})
    store.write_batch(batch)
    live = run_results(store.con.cursor(), "e")["benchmarks"]
    assert len(live) == 1 and live[0]["accuracy"] is None and live[0]["group"] == "math"
    assert live[0]["live"] == pytest.approx(100 * (0.5 + 1 + 0) / 3) and live[0]["items"] == 3
    assert live[0]["stderr"] == pytest.approx(100 * stderr([0.5, 1.0, 0.0]))
    assert (live[0]["outputs"], live[0]["truncated"], live[0]["unclosed_think"]) == (6, 2, 6)
    store.con.execute("INSERT INTO scores VALUES ('e', 'm', 'arith', 'math', 'accuracy', 50.0, 3, now())")
    done = run_results(store.con.cursor(), "e")["benchmarks"][0]
    assert (done["accuracy"], done["n"]) == (50.0, 3)
    assert run_results(store.con.cursor(), "e")["shift"] == []
