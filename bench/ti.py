"""`tix ti` latency over 100 tuned models x 12 benchmarks, through the daemon, with and without items.

Three experiments of the same size: `imported` (a 1,212-line scores CSV loaded with
`tix import scores`, which is timed too), `runs` (100 eval runs plus the base's, their `accuracy`
scores written straight into a fresh database before the daemon starts) and `items` (the same with
1,000 binary items per benchmark each: 1.2 million samples, so `tix ti` computes the paired
statistics and the 2,000-replicate bootstrap intervals). For each it times the whole
`tix ti EXPERIMENT --format json` command as a user runs it (process start, connect, the daemon's
`ti` op, JSON print), the `ti` request alone over an open connection, and a SQL view. For `items`
the very first request is timed once (the daemon aggregates every run's samples into `run_items`),
and the first command after the items changed apart ("cold": the daemon pairs the items again, fills
`paired_stats` and resamples; later calls reuse the items and the replicates): a one-line import
into another experiment changes what the items depend on before each cold call.

Run: `make bench` or `python bench/ti.py [--models N] [--items N]`.
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

import numpy as np
import pyarrow as pa
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


def add_eval_run(store: Store, experiment: str, name: str) -> str:
    run_id = f"eval-{experiment}-{name}"
    store.insert_run({"id": run_id, "experiment": experiment, "name": name, "kind": "eval",
                      "state": "succeeded", "params": {}, "deps": []})
    store.link_runs(experiment, [run_id])
    return run_id


def write_scores(store: Store, run_id: str, name: str, values: dict[str, float], n: int) -> None:
    batch = IngestBatch(run_id, "events.jsonl", 1)
    for b, g in BENCHMARKS:
        batch.add("scores", {"run_id": run_id, "model": name, "benchmark": b, "group": g,
                             "metric": "accuracy", "value": values[b], "n": n, "t": None})
    store.write_batch(batch)


def fill_runs(store: Store, n: int, rng: random.Random) -> None:
    """Eval runs of experiment `runs` with their accuracy scores, as ingest would store them."""
    store.ensure_experiment("runs")
    base = {b: score(rng) for b, _ in BENCHMARKS}
    for name in ["base", *(f"m{i:03d}" for i in range(n))]:
        values = base if name == "base" else {b: score(rng, base[b]) for b, _ in BENCHMARKS}
        write_scores(store, add_eval_run(store, "runs", name), name, values, 100)


def fill_items(store: Store, n: int, items: int, seed: int = 0) -> None:
    """Experiment `items`: a base and n tuned models, each with one binary sample per item of every
    benchmark (a tuned model answers like the base on 70% of the items) and its accuracy score."""
    rng = np.random.default_rng(seed)
    store.ensure_experiment("items")
    latent = {b: rng.uniform(size=items) for b, _ in BENCHMARKS}
    chance = {b: rng.uniform(0.1, 0.8) for b, _ in BENCHMARKS}
    ids = [f"{i:05d}" for i in range(items)]
    for name in ["base", *(f"m{i:03d}" for i in range(n))]:
        run_id = add_eval_run(store, "items", name)
        verdicts = []
        for b, _ in BENCHMARKS:
            same = rng.uniform(size=items) < 0.7
            u = latent[b] if name == "base" else np.where(same, latent[b], rng.uniform(size=items))
            p = chance[b] if name == "base" else min(0.95, max(0.02, chance[b] + rng.uniform(-0.15, 0.25)))
            verdicts.append((u < p).astype(float))
        write_samples(store, run_id, ids, verdicts)
        means = {b: 100 * float(v.mean()) for (b, _), v in zip(BENCHMARKS, verdicts, strict=True)}
        write_scores(store, run_id, name, means, items)


def write_samples(store: Store, run_id: str, ids: list[str], verdicts: list[np.ndarray]) -> None:
    """One run's samples in one Arrow insert (a Python dict per sample would take minutes here)."""
    rows = len(ids) * len(verdicts)
    table = pa.table({"run_id": [run_id] * rows, "offset": np.arange(rows),
                      "benchmark": [b for b, _ in BENCHMARKS for _ in ids], "item_id": ids * len(verdicts),
                      "sample_idx": np.zeros(rows, np.int32), "verdict": np.concatenate(verdicts)})
    store._append_arrow("samples", table)  # the Store's write path: samples are a view since 0007


def ti_request(client: Client, experiment: str, **args: object) -> int:
    return len(client.request("ti", experiment=experiment, **args)["results"])


def view(client: Client, experiment: str, name: str = "ti") -> object:
    return client.request("sql", query=f"SELECT * FROM {name} WHERE experiment = ?", params=[experiment])


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "engine.cli", *args]
    return subprocess.run(cmd, env=env, check=True, capture_output=True)


def summary(label: str, ms: list[float]) -> str:
    return f"{label}: median {statistics.median(ms):7.1f} ms, max {max(ms):7.1f} ms ({len(ms)} runs)"


def cold_calls(env: dict[str, str], tmp: str, repeat: int) -> list[float]:
    """`tix ti items` right after the items' signature changed (an import elsewhere), `repeat` times."""
    out = []
    for k in range(repeat):
        path = Path(tmp) / f"touch{k}.csv"
        path.write_text(f"model,base_model,method,benchmark,group,score\nb,,base,x,math,{k}\nt,b,rl,x,math,1\n")
        cli(env, "import", "scores", str(path), "-e", "touch")
        out += timed(lambda: cli(env, "ti", "items", "--format", "json"), 1)
    return out


def items_lines(env: dict[str, str], client: Client, tmp: str) -> list[str]:
    """Experiment `items`: cold and warm commands, the request alone, and the paired_deltas view."""
    json_cmd = ("ti", "items", "--format", "json")
    return [
        summary("[items   ] `tix ti --format json`, items changed   ", cold_calls(env, tmp, 5)),
        summary("[items   ] `tix ti --format json` command         ", timed(lambda: cli(env, *json_cmd), 10)),
        summary("[items   ] `tix ti --boot 0` (no intervals)         ",
                timed(lambda: cli(env, *json_cmd, "--boot", "0"), 10)),
        summary("[items   ] `ti` request over the socket          ",
                timed(lambda: ti_request(client, "items"), 10)),
        summary("[items   ] `tix ti --variant v1` (replicates reused)",
                timed(lambda: cli(env, *json_cmd, "--variant", "v1"), 5)),
        summary("[items   ] `SELECT * FROM paired_deltas` (socket) ",
                timed(lambda: view(client, "items", "paired_deltas"), 10))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--items", type=int, default=1000, help="items per benchmark of experiment `items`")
    args = parser.parse_args()
    n = args.models
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.resolve(Path(tmp) / "home").ensure()
        store = Store.open(ws.db)
        fill_runs(store, n, rng)
        fill_items(store, n, args.items)
        store.close()
        csv_path = Path(tmp) / "scores.csv"
        write_csv(csv_path, n, rng)
        env = {**os.environ, "TIX_HOME": str(ws.home)}
        os.environ["TIX_HOME"] = str(ws.home)
        samples = (n + 1) * len(BENCHMARKS) * args.items
        lines = [f"{n} tuned models + base x {len(BENCHMARKS)} benchmarks per experiment; `items`: "
                 f"{args.items:,} binary items per benchmark ({samples:,} samples), 2,000 bootstrap "
                 f"replicates; {os.cpu_count()} cores"]
        import_cmd = ("import", "scores", str(csv_path), "-e", "imported")
        with Client(ws) as client:
            lines.append(summary("[items   ] first `ti` request (run_items built)    ",
                                 timed(lambda: ti_request(client, "items"), 1)))
            lines.append(summary("`tix import scores` (1 CSV, process start included)    ",
                                 timed(lambda: cli(env, *import_cmd), 5)))
            for experiment in ("imported", "runs"):
                assert ti_request(client, experiment) == n
                lines.append(summary(f"[{experiment:8}] `tix ti --format json` command         ",
                                     timed(lambda e=experiment: cli(env, "ti", e, "--format", "json"), 10)))
                lines.append(summary(f"[{experiment:8}] `ti` request over the socket          ",
                                     timed(lambda e=experiment: ti_request(client, e), 30)))
                lines.append(summary(f"[{experiment:8}] `SELECT * FROM ti` over the socket    ",
                                     timed(lambda e=experiment: view(client, e), 30)))
            lines += items_lines(env, client, tmp)
            client.request("shutdown")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
