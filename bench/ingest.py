"""Ingest throughput: 1M metric rows through the daemon's ingest path vs a raw DuckDB Arrow insert.

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
import statistics
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


def time_ingest(tmp: Path, run_dir: Path, i: int) -> tuple[float, int]:
    store = Store.open(tmp / f"ingest{i}.duckdb")
    t0 = time.perf_counter()
    ingest_until_drained(store, "bench", run_dir)
    seconds = time.perf_counter() - t0
    stored = store.con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    store.close()
    return seconds, stored


def time_raw(tmp: Path, table: pa.Table, i: int) -> float:
    raw = Store.open(tmp / f"raw{i}.duckdb")
    t0 = time.perf_counter()
    raw.con.register("bench_rows", table)
    raw.con.execute("INSERT INTO metrics SELECT * FROM bench_rows")
    seconds = time.perf_counter() - t0
    raw.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lines = args.rows // len(METRICS)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run_dir = tmp / "run"
        run_dir.mkdir()
        write_events(run_dir / "events.jsonl", lines)
        size_mb = (run_dir / "events.jsonl").stat().st_size / 1e6
        timed = [time_ingest(tmp, run_dir, i) for i in range(args.repeat)]
        table = arrow_rows(lines)
        raw_s = statistics.median(time_raw(tmp, table, i) for i in range(args.repeat))
    ingest_s, stored = statistics.median(t for t, _ in timed), timed[0][1]
    print(f"rows: {stored:,} from {lines:,} event lines ({size_mb:.0f} MB of JSON); "
          f"median of {args.repeat} runs each, fresh database each time")
    print(f"daemon ingest path: {ingest_s:.2f} s = {stored / ingest_s:,.0f} rows/s")
    print(f"raw Arrow insert:   {raw_s:.2f} s = {stored / raw_s:,.0f} rows/s")
    print(f"ratio (ingest / raw time): {ingest_s / raw_s:.1f}x")


if __name__ == "__main__":
    main()
