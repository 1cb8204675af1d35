"""Ingest throughput: the daemon's ingest path beside DuckDB's own `read_json` of the same file.

Two workloads: 1M metric rows (events.jsonl) and realistic samples lines (2-6 KB of varied
text each, samples.jsonl), reported in rows/s and MB/s of JSONL. The baselines are DuckDB's
`read_json` inserting the same file into the same table (what "DuckDB's own speed" means in
issue 27) and, for metrics, a raw insert of the rows already in memory as Arrow.

The ingest path is the daemon's own code (`engine.daemon.ingest.ingest_until_drained`: read complete
lines, parse JSON, build Arrow tables, insert and move the offset in one transaction per 8 MiB
window). The baseline inserts the same rows, already in memory as an Arrow table, with one
`INSERT ... SELECT` in the same process. Rows are written as a trainer logs them: one line per
step with four metrics, so 1M rows = 250k lines.

Run: `make bench` or `python bench/ingest.py [--rows N]`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from engine.daemon.ingest import ingest_until_drained
from storage import Store
from storage.store import INGEST_SCHEMAS

METRICS = ("loss", "learning_rate", "grad_norm", "reward")


def write_events(path: Path, lines: int) -> None:
    with path.open("w") as f:
        for step in range(lines):
            values = {name: step * 0.001 + i for i, name in enumerate(METRICS)}
            f.write(json.dumps({"t": 1.7e9 + step, "type": "metric", "step": step, "values": values}) + "\n")


def arrow_rows(lines: int) -> pa.Table:
    n = lines * len(METRICS)
    steps = [s for s in range(lines) for _ in METRICS]
    return pa.table({
        "run_id": ["bench"] * n, "step": steps, "name": list(METRICS) * lines,
        "value": [s * 0.001 + i for s in range(lines) for i in range(len(METRICS))],
        "t": [datetime.fromtimestamp(1.7e9 + s) for s in steps],
    }, schema=INGEST_SCHEMAS["metrics"])


WORDS = ("the", "let", "so", "we", "sum", "thus", "x", "y", "=", "+", "\\frac{1}{2}", "answer", "wait",
         "because", "integer", "prime", "square", "root", "éé", "therefore", "\\boxed{7}", "\n")


def sample_line(rng: random.Random, item: int, k: int) -> dict:
    """One samples.jsonl record as the eval job writes it, with 2-6 KB of varied text."""
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(300, 950)))
    return {"benchmark": "math500", "group": "math", "item_id": f"test/{item}", "sample_idx": k,
            "prompt": f"Problem {item}: find x such that ...", "completion": text,
            "extracted": str(rng.randint(0, 99)), "verdict": float(rng.random() < 0.6),
            "tokens": len(text) // 4, "finish_reason": "stop", "flags": [],
            "metrics": {"accuracy": 1.0}, "detail": None, "scorer": "math", "scorer_version": "1",
            "gold": "7"}


def write_samples(path: Path, lines: int) -> None:
    rng = random.Random(0)
    with path.open("w") as f:
        for n in range(lines):
            f.write(json.dumps(sample_line(rng, n // 4, n % 4)) + "\n")


def time_ingest(tmp: Path, run_dir: Path, i: int, table: str = "metrics") -> tuple[float, int]:
    store = Store.open(tmp / f"ingest{i}.duckdb")
    t0 = time.perf_counter()
    ingest_until_drained(store, "bench", run_dir)
    seconds = time.perf_counter() - t0
    stored = store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    store.close()
    return seconds, stored


METRICS_SQL = """INSERT INTO metrics SELECT 'bench', step, unnest(map_keys(v)), unnest(map_values(v)),
    make_timestamp((t * 1e6)::BIGINT)
    FROM (SELECT step, t, values::MAP(VARCHAR, DOUBLE) AS v
          FROM read_json(?, format = 'newline_delimited',
                         columns = {type: 'VARCHAR', t: 'DOUBLE', step: 'BIGINT', "values": 'JSON'}))"""
SAMPLES_SQL = """INSERT INTO sample_rows SELECT 'bench', 0, benchmark, item_id, sample_idx,
    md5_number(prompt),
    completion, extracted, verdict, tokens, finish_reason, flags, NULL, NULL
    FROM read_json(?, format = 'newline_delimited')"""


def time_read_json(tmp: Path, path: Path, sql: str, i: int) -> float:
    """DuckDB's own `read_json` of the same file into the same table (the issue's yardstick)."""
    store = Store.open(tmp / f"readjson{i}.duckdb")
    t0 = time.perf_counter()
    store.con.execute(sql, [str(path)])
    seconds = time.perf_counter() - t0
    store.close()
    return seconds


def time_raw(tmp: Path, table: pa.Table, i: int) -> float:
    raw = Store.open(tmp / f"raw{i}.duckdb")
    t0 = time.perf_counter()
    raw.con.register("bench_rows", table)
    raw.con.execute("INSERT INTO metrics SELECT * FROM bench_rows")
    seconds = time.perf_counter() - t0
    raw.close()
    return seconds


def bench_metrics(tmp: Path, rows: int, repeat: int) -> None:
    lines = rows // len(METRICS)
    run_dir = tmp / "run"
    run_dir.mkdir()
    path = run_dir / "events.jsonl"
    write_events(path, lines)
    size_mb = path.stat().st_size / 1e6
    timed = [time_ingest(tmp, run_dir, i) for i in range(repeat)]
    read_json_s = min(time_read_json(tmp, path, METRICS_SQL, i) for i in range(repeat))
    table = arrow_rows(lines)
    raw_s = min(time_raw(tmp, table, i) for i in range(repeat))
    ingest_s, stored = min(t for t, _ in timed), timed[0][1]
    print(f"metrics: {stored:,} rows from {lines:,} event lines ({size_mb:.0f} MB of JSONL); "
          f"best of {repeat} runs each (the box is shared), fresh database each time")
    print(f"  daemon ingest path:   {ingest_s:.2f} s = {stored / ingest_s:,.0f} rows/s, "
          f"{size_mb / ingest_s:.0f} MB/s")
    print(f"  DuckDB read_json:     {read_json_s:.2f} s = {stored / read_json_s:,.0f} rows/s, "
          f"{size_mb / read_json_s:.0f} MB/s")
    print(f"  raw Arrow insert:     {raw_s:.2f} s (rows already in memory)")
    print(f"  ratio ingest / read_json: {ingest_s / read_json_s:.2f}x (target <= 1.5x)")


def bench_samples(tmp: Path, lines: int, repeat: int) -> None:
    run_dir = tmp / "samples_run"
    run_dir.mkdir()
    path = run_dir / "samples.jsonl"
    write_samples(path, lines)
    size_mb = path.stat().st_size / 1e6
    timed = [time_ingest(tmp, run_dir, 100 + i, "samples") for i in range(repeat)]
    read_json_s = min(time_read_json(tmp, path, SAMPLES_SQL, 100 + i) for i in range(repeat))
    ingest_s, stored = min(t for t, _ in timed), timed[0][1]
    print(f"samples: {stored:,} lines ({size_mb:.0f} MB of JSONL, {size_mb * 1e3 / lines:.1f} KB a line)")
    print(f"  daemon ingest path:   {ingest_s:.2f} s = {size_mb / ingest_s:.0f} MB/s (target >= 50 MB/s)")
    print(f"  DuckDB read_json:     {read_json_s:.2f} s = {size_mb / read_json_s:.0f} MB/s")
    print(f"  ratio ingest / read_json: {ingest_s / read_json_s:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="metric rows")
    parser.add_argument("--samples", type=int, default=40_000, help="samples lines")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        bench_metrics(Path(tmp_name), args.rows, args.repeat)
        bench_samples(Path(tmp_name), args.samples, args.repeat)


if __name__ == "__main__":
    main()
