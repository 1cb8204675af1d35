"""`tix ti` latency over 100 tuned models x 12 benchmarks, through the daemon.

Two experiments of the same size: `imported` (a 1,212-line scores CSV loaded with
`tix import scores`, which is timed too) and `runs` (100 eval runs plus the base's, their
`accuracy` scores written straight into a fresh database before the daemon starts). For each it
times the whole `tix ti EXPERIMENT --format json` command as a user runs it (process start,
connect, the daemon's `ti` op: the model_scores query and TI with engine.analysis.metrics, JSON print), the
`ti` request alone over an open connection, and `SELECT * FROM ti` (v1 and pooled v2 in SQL).

Run: `make bench` or `python bench/ti.py [--models N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import timed  # bench/common.py (scripts run as `python bench/NAME.py`)

from engine.client.connection import Client
from engine.workspace import Workspace
from storage import Store
from storage.store import IngestBatch

BENCHMARKS = [(f"math{i}", "math") for i in range(4)] + [(f"other{i}", "other") for i in range(4)] + \
             [(f"non{i}", "non") for i in range(4)]


def score(rng: random.Random, base: float | None = None) -> float:
    return round(rng.uniform(5, 80) if base is None else min(100.0, max(0.0, base + rng.uniform(-15, 25))), 1)


def write_csv(path: Path, n: int, rng: random.Random) -> None:
    base = {b: score(rng) for b, _ in BENCHMARKS}
    lines = ["model,base_model,method,benchmark,group,score"]
    lines += [f"base,,base,{b},{g},{base[b]}" for b, g in BENCHMARKS]
    lines += [f"m{i:03d},base,{'rl' if i % 2 else 'sft'},{b},{g},{score(rng, base[b])}"
              for i in range(n) for b, g in BENCHMARKS]
    path.write_text("\n".join(lines) + "\n")


def fill_runs(ws: Workspace, n: int, rng: random.Random) -> None:
    """Eval runs of experiment `runs` with their accuracy scores, as ingest would store them."""
    store = Store.open(ws.db)
    store.ensure_experiment("runs")
    base = {b: score(rng) for b, _ in BENCHMARKS}
    for name in ["base", *(f"m{i:03d}" for i in range(n))]:
        run_id = f"eval-{name}"
        store.insert_run({"id": run_id, "experiment": "runs", "name": name, "kind": "eval",
                          "state": "succeeded", "params": {}, "deps": []})
        store.link_runs("runs", [run_id])
        batch = IngestBatch(run_id, "events.jsonl", 1)
        for b, g in BENCHMARKS:
            value = base[b] if name == "base" else score(rng, base[b])
            batch.add("scores", {"run_id": run_id, "model": name, "benchmark": b, "group": g,
                                 "metric": "accuracy", "value": value, "n": 100, "t": None})
        store.write_batch(batch)
    store.close()



def ti_request(client: Client, experiment: str) -> int:
    return len(client.request("ti", experiment=experiment)["results"])


def view(client: Client, experiment: str) -> object:
    return client.request("sql", query="SELECT * FROM ti WHERE experiment = ?", params=[experiment])


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "engine.cli", *args]
    return subprocess.run(cmd, env=env, check=True, capture_output=True)


def summary(label: str, ms: list[float]) -> str:
    return f"{label}: median {statistics.median(ms):6.1f} ms, max {max(ms):6.1f} ms ({len(ms)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    n = parser.parse_args().models
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.resolve(Path(tmp) / "home").ensure()
        fill_runs(ws, n, rng)
        csv_path = Path(tmp) / "scores.csv"
        write_csv(csv_path, n, rng)
        env = {**os.environ, "TIX_HOME": str(ws.home)}
        os.environ["TIX_HOME"] = str(ws.home)
        lines = [f"{n} tuned models + base x {len(BENCHMARKS)} benchmarks per experiment"]
        import_cmd = ("import", "scores", str(csv_path), "-e", "imported")
        with Client(ws) as client:
            lines.append(summary("`tix import scores` (1 CSV, process start included)  ",
                                 timed(lambda: cli(env, *import_cmd), 5)))
            for experiment in ("imported", "runs"):
                assert ti_request(client, experiment) == n
                lines.append(summary(f"[{experiment:8}] `tix ti --format json` command       ",
                                     timed(lambda e=experiment: cli(env, "ti", e, "--format", "json"), 10)))
                lines.append(summary(f"[{experiment:8}] `ti` request over the socket        ",
                                     timed(lambda e=experiment: ti_request(client, e), 30)))
                lines.append(summary(f"[{experiment:8}] `SELECT * FROM ti` over the socket  ",
                                     timed(lambda e=experiment: view(client, e), 30)))
            client.request("shutdown")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
