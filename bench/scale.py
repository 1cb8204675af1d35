"""Paper scale: a workspace the size of a 24-model study, built through the real paths, then timed.

Per model the paper's suite makes 34,201 answers (AIME 24/25 30 items x avg@10 each, MATH-500,
OlympiadBench, GPQA 198 x avg@3, LiveCodeBench, ACPBench, CoQA, IFEval, HaluEval 30,000) and
12,184 log-likelihood items (HEAD-QA, MC-TACO). Reasoning answers are as long as thinking traces
(lognormal, median 4k tokens, capped at 32,768), the rest short (median 100 tokens). Besides:
48 training runs x 5,000 steps x 20 metrics. `--fraction F` scales the items and steps.

Each run gets a run folder with `samples.jsonl` / `events.jsonl` as a worker writes them (scores
and shift results as events); a child process stores them with the daemon's ingest
(`ingest_until_drained`, which its peak RSS measures) and checkpoints, on a connection with the
daemon's database settings (TIX_DB_MEMORY, TIX_DB_THREADS). Then the daemon starts, the script
waits for its background refresh of the paired and flip caches (engine/daemon/refresher.py; it
prints how long that took, as a daemon does it after a bulk ingest goes quiet) and times what a
user waits for: `tix ti`, `tix flips`, `tix health` as commands, and
the requests behind the TUI's first paint of each view (runs, a run's samples tab, TI, shift, the
SQL console's first page of `select * from samples`), a search in one run's samples and a
1,000-row page. The TUI's own render cost on top is what bench/tui.py measures.

Run: `python bench/scale.py [--fraction F] [--keep DIR]` (full size: 2-3 GB of JSONL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.client.connection import Client
from engine.daemon.server import PAIRED_SNAPSHOT
from engine.workspace import Workspace
from storage import Store

#: (benchmark, group, items, samples per item, reasoning-length answers)
SUITE = [("aime24", "math", 30, 10, True), ("aime25", "math", 30, 10, True),
         ("math500", "math", 500, 1, True), ("olympiadbench", "math", 675, 1, True),
         ("gpqa", "science", 198, 3, True), ("livecodebench", "code", 511, 1, True),
         ("acpbench", "planning", 280, 1, False), ("coqa", "reading", 500, 1, False),
         ("ifeval", "instructions", 541, 1, False), ("halueval", "hallucination", 30_000, 1, False)]
LOGLIK = [("headqa", "knowledge", 2_742), ("mctaco", "knowledge", 9_442)]
MODELS, TRAIN_RUNS, STEPS, METRICS = 24, 48, 5_000, 20
EXPERIMENT = "scale"
WORDS = ("so", "we", "need", "the", "sum", "of", "x", "y", "=", "+", "2", "7", "\\frac{1}{2}", "wait",
         "let", "me", "check", "because", "integer", "prime", "square", "root", "therefore", "hmm",
         "answer", "is", "case", "consider", "modulo", "term", "\n")


def text_pool(rng: np.random.Generator, size: int = 8 << 20) -> str:
    """Varied text to slice answers from (a slice at a random start: no two answers alike)."""
    words = rng.choice(np.array(WORDS, dtype=object), size=size // 4)
    return " ".join(words)[:size]


def lengths(rng: np.random.Generator, n: int, reasoning: bool) -> np.ndarray:
    """Answer lengths in tokens: thinking traces (median 4k, tail to 32k) or short answers."""
    median, cap = (4_000, 32_768) if reasoning else (100, 2_048)
    return np.minimum(rng.lognormal(np.log(median), 0.8, n), cap).astype(int) + 1


def write_eval_run(run_dir: Path, model: str, fraction: float, pool: str, seed: int) -> int:
    """One model's samples.jsonl and events.jsonl (scores, shift results); returns samples written."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True)
    written = 0
    with (run_dir / "samples.jsonl").open("w") as f, (run_dir / "events.jsonl").open("w") as ev:
        for bench, group, items, k, reasoning in SUITE:
            n_items = max(1, round(items * fraction))
            toks = lengths(rng, n_items * k, reasoning)
            skill = rng.uniform(0.2, 0.8)
            verdicts = rng.uniform(size=n_items * k) < skill
            for j in range(n_items * k):
                item, idx = divmod(j, k)
                start = int(rng.integers(0, len(pool) - 4 * int(toks[j]) - 1))
                text = pool[start : start + 4 * int(toks[j])]
                record = sample(bench, group, item, idx, text, int(toks[j]), bool(verdicts[j]))
                f.write(json.dumps(record) + "\n")
            written += n_items * k
            ev.write(json.dumps({"type": "score", "model": model, "benchmark": bench, "group": group,
                                 "metric": "accuracy", "value": 100 * float(verdicts.mean()),
                                 "n": n_items}) + "\n")
            for metric in ("d", "kl"):
                ev.write(json.dumps({"type": "shift", "analysis": "pca", "benchmark": bench, "group": group,
                                     "layer": 20, "metric": metric, "value": float(rng.uniform())}) + "\n")
        for bench, group, items in LOGLIK:
            n_items = max(1, round(items * fraction))
            for item, ok in enumerate(rng.uniform(size=n_items) < 0.5):
                f.write(json.dumps(sample(bench, group, item, 0, "B", 1, bool(ok))) + "\n")
            written += n_items
        ev.write(json.dumps({"type": "finished", "result": {"samples": written}}) + "\n")
    return written


def sample(bench: str, group: str, item: int, idx: int, text: str, tokens: int, ok: bool) -> dict:
    """A samples.jsonl record shaped like engine/evaluation/samples.py's `sample_record`."""
    truncated = tokens >= 32_768
    return {"benchmark": bench, "group": group, "item_id": f"{bench}/{item}", "sample_idx": idx,
            "prompt": f"Problem {item} of {bench}: " + "solve the following carefully. " * 20,
            "completion": text, "extracted": None if truncated else str(item % 97),
            "verdict": float(ok), "tokens": tokens, "finish_reason": "length" if truncated else "stop",
            "flags": ["truncated"] if truncated else [], "metrics": {"accuracy": float(ok)},
            "detail": None, "scorer": "math", "scorer_version": "1", "gold": str(item % 97)}


def write_train_run(run_dir: Path, fraction: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True)
    names = [f"train/metric_{i:02d}" for i in range(METRICS)]
    steps = max(1, round(STEPS * fraction))
    values = rng.normal(size=(steps, METRICS))
    with (run_dir / "events.jsonl").open("w") as f:
        for step in range(steps):
            f.write(json.dumps({"t": 1.7e9 + step, "type": "metric", "step": step,
                                "values": dict(zip(names, values[step].tolist(), strict=True))}) + "\n")


def build(ws: Workspace, fraction: float) -> list[str]:
    """Run rows (before any daemon runs, as bench/ti.py) and their folders; returns the run ids."""
    store = Store.open(ws.db)
    store.ensure_experiment(EXPERIMENT)
    pool, ids = text_pool(np.random.default_rng(0)), []
    for m in range(MODELS):
        name = "base" if m == 0 else f"m{m:03d}"
        run_id = f"eval-{name}"
        write_eval_run(ws.run_dir(run_id), name, fraction, pool, seed=m)
        ids.append(add_run(store, run_id, name, "eval", ws))
    for r in range(TRAIN_RUNS):
        run_id = f"train-{r:02d}"
        write_train_run(ws.run_dir(run_id), fraction, seed=1000 + r)
        ids.append(add_run(store, run_id, f"m{r % (MODELS - 1) + 1:03d}", "train", ws))
    store.close()
    return ids


def add_run(store: Store, run_id: str, name: str, kind: str, ws: Workspace) -> str:
    store.insert_run({"id": run_id, "experiment": EXPERIMENT, "name": name, "kind": kind,
                      "state": "succeeded", "params": {}, "deps": [], "run_dir": str(ws.run_dir(run_id))})
    store.link_runs(EXPERIMENT, [run_id])
    return run_id


INGEST_CHILD = """
import json, sys, time
from pathlib import Path
from engine.daemon.ingest import ingest_until_drained
from engine.daemon.settings import DaemonSettings
from storage import Store
store = Store.open(sys.argv[1])
for statement in DaemonSettings.load().database_settings():  # as the daemon opens it
    store.con.execute(statement)
t0 = time.perf_counter()
for run_id, run_dir in zip(sys.argv[2::2], sys.argv[3::2]):
    ingest_until_drained(store, run_id, Path(run_dir))
ingest_s = time.perf_counter() - t0
store.con.execute("CHECKPOINT")
checkpoint_s = time.perf_counter() - t0 - ingest_s
counts = {t: store.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
          for t in ("samples", "metrics", "scores", "shift_results")}
print(json.dumps({"ingest_s": ingest_s, "checkpoint_s": checkpoint_s, "counts": counts}))
"""


def ingest(ws: Workspace, ids: list[str]) -> dict:
    """Ingest every run in a child process: its times, row counts, peak RSS and the database size."""
    args = [a for run_id in ids for a in (run_id, str(ws.run_dir(run_id)))]
    out = subprocess.run([sys.executable, "-c", INGEST_CHILD, str(ws.db), *args], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["rss_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (1 << 20)
    result["db_mb"] = ws.db.stat().st_size / 1e6
    result["jsonl_mb"] = jsonl_bytes(ws, ids) / 1e6  # before `incremental` appends to a run
    return result


def jsonl_bytes(ws: Workspace, ids: list[str]) -> int:
    return sum(p.stat().st_size for run_id in ids for p in ws.run_dir(run_id).glob("*.jsonl"))


def timed_ms(fn: object, repeat: int = 3) -> tuple[float, float]:
    """(first call, median of the later calls) in milliseconds: a view's first paint is the first."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out[0], statistics.median(out[1:] or out)


def measure(ws: Workspace) -> list[tuple[str, float, float, float]]:
    """(what, first ms, median ms of the repeats, target ms) for each user-facing wait."""
    env = {**os.environ, "TIX_HOME": str(ws.home)}
    cli = [sys.executable, "-m", "engine.cli"]

    def command(*args: str) -> object:
        return lambda: subprocess.run([*cli, *args], env=env, check=True, capture_output=True)

    rows = []
    with Client(ws) as client:
        warmed = warmed_ms(client)
        rows.append(("background refresh after the daemon's start", warmed, float("nan"), float("nan")))

        def req(op: str, **args: object) -> object:
            return lambda: client.request(op, **args)

        checks = [
            ("TUI runs view (status)", req("status"), 500),
            ("TUI run detail: samples first page", req("run_samples", id="eval-m001", limit=100), 500),
            ("TUI TI view (ti)", req("ti", experiment=EXPERIMENT), 500),
            ("TUI shift view (shift_summary)",
             req("sql", query="SELECT * FROM shift_summary WHERE experiment = ?", params=[EXPERIMENT]), 500),
            ("TUI SQL console: select * from samples", req("sql_total", query="select * from samples"), 500),
            ("search in one run's samples",
             req("run_samples", id="eval-m001", query="modulo prime wait"), 1000),
            ("1,000-row page of samples", req("run_samples", id="eval-m001", limit=1000, offset=5000), 200),
            ("tix ti", command("ti", EXPERIMENT, "--format", "json"), 1000),
            ("tix flips", command("flips", EXPERIMENT, "--format", "json"), 1000),
            ("tix health", command("health", EXPERIMENT, "--format", "json"), 1000),
        ]
        for what, fn, target in checks:
            rows.append((what, *timed_ms(fn), float(target)))
        client.request("shutdown")
    return rows


def warmed_ms(client: Client, timeout: float = 300.0) -> float:
    """Wait for the daemon's background refresh of its caches (engine/daemon/refresher.py), which
    starts `QUIET_S` after it does, as it would after a bulk ingest: a user's first `ti` or
    `flips` comes later than that. Milliseconds from now until it is done."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        state = client.request("refresh_state")
        if state["refreshes"] and not state["pending"] and not state["running"]:
            return (time.perf_counter() - t0) * 1000
        time.sleep(0.05)
    raise SystemExit(f"the daemon's background refresh did not finish in {timeout:.0f} s: {state}")


INCREMENTAL_CHILD = """
import json, sys, threading, time
from pathlib import Path
from engine.analysis.paired import PairedCache
from engine.daemon.ingest import ingest_until_drained
from engine.daemon.refresher import refresh_all
from engine.daemon.server import refresh_for, run_ti
from engine.daemon.settings import DaemonSettings
from storage import Store
db, run_id, run_dir, experiment = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
store = Store.open(db)
for statement in DaemonSettings.load().database_settings():
    store.con.execute(statement)
out = {}
def timed(name, fn):
    t0 = time.perf_counter()
    fn()
    out[name] = (time.perf_counter() - t0) * 1000
restarted = PairedCache(snapshot=Path(sys.argv[5]))  # what a new daemon has: the last one's snapshot
timed("ti_restart", lambda: run_ti(store.con.cursor(), {"experiment": experiment}, restarted))
cache = PairedCache()  # no snapshot: every item read, as after a bulk ingest
ti = lambda: run_ti(store.con.cursor(), {"experiment": experiment}, cache)
query = "SELECT * FROM flip_summary WHERE experiment = ?"
flips = lambda: (refresh_for(cache, store.con.cursor(), query),
                 store.con.execute(query, [experiment]).fetchall())
timed("ti", ti)
timed("flips", flips)
def rescore():  # the run rescored: each of 2,000 samples gets a new last record
    lines = (run_dir / "samples.jsonl").open().readlines()[:2000]
    with (run_dir / "samples.jsonl").open("a") as f:
        for line in lines:
            record = json.loads(line)
            record["verdict"] = 1.0 - record["verdict"]
            f.write(json.dumps(record) + "\\n")
    ingest_until_drained(store, run_id, run_dir)
rescore()
timed("ti_new", ti)
timed("flips_new", flips)
rescore()  # again, then the daemon's background refresh before the requests
timed("background_new", lambda: refresh_all(cache, store.con.cursor(), threading.Event()))
timed("ti_bg", ti)
timed("flips_bg", flips)
print(json.dumps(out))
"""


def incremental(ws: Workspace) -> list[tuple[str, float, float, float]]:
    """The daemon's code in a child process (the daemon has exited): `ti` as a new daemon's first call
    makes it (from the snapshot the last daemon left, engine.analysis.paired_snapshot), then `ti` and
    the flips' refresh and query with every item read (what a call waits for while the background
    refresh after a bulk ingest runs), then again after 2,000 new sample records of one run (only
    that model's segments read again)."""
    run_id = "eval-m001"
    args = [str(ws.db), run_id, str(ws.run_dir(run_id)), EXPERIMENT, str(ws.cache / PAIRED_SNAPSHOT)]
    out = subprocess.run([sys.executable, "-c", INCREMENTAL_CHILD, *args], check=True, capture_output=True,
                         text=True).stdout
    ms = json.loads(out.strip().splitlines()[-1])
    return [("ti op, a new daemon's first call (snapshot)", ms["ti_restart"], float("nan"), 500),
            ("ti op, every item read (in-process)", ms["ti"], float("nan"), float("nan")),
            ("flips, a daemon's first call (in-process)", ms["flips"], float("nan"), 1000),
            ("ti op after 2,000 new samples of one run", ms["ti_new"], float("nan"), 500),
            ("flips after 2,000 new samples of one run", ms["flips_new"], float("nan"), 1000),
            ("background refresh after 2,000 more", ms["background_new"], float("nan"), float("nan")),
            ("ti op after it", ms["ti_bg"], float("nan"), 500),
            ("flips after it", ms["flips_bg"], float("nan"), 1000)]


def report(fraction: float, ws: Workspace, ids: list[str], build_s: float, ingested: dict,
           rows: list[tuple[str, float, float, float]]) -> None:
    jsonl_mb, db_mb, ingest_s = ingested["jsonl_mb"], ingested["db_mb"], ingested["ingest_s"]
    print(f"fraction {fraction}: {MODELS} models, {TRAIN_RUNS} training runs; "
          + ", ".join(f"{n:,} {t}" for t, n in ingested["counts"].items()))
    print(f"JSONL written: {jsonl_mb:,.0f} MB in {build_s:.0f} s")
    print(f"ingest (daemon path): {ingest_s:.1f} s = {jsonl_mb / ingest_s:.0f} MB/s; "
          f"+ CHECKPOINT {ingested['checkpoint_s']:.1f} s; "
          f"peak RSS {ingested['rss_gib']:.2f} GiB (target <= 1)")
    print(f"database after CHECKPOINT: {db_mb:,.0f} MB = {db_mb / jsonl_mb:.2f} x the JSONL (target <= 1)")
    print(f"{'wait':44} {'first ms':>9} {'median ms':>10} {'target':>7}")
    for what, first, median, target in rows:
        once = median != median  # NaN: measured once
        mark = "" if target != target or max(first, 0 if once else median) <= target else "  MISSES"
        goal = "-" if target != target else f"{target:.0f}"  # NaN: no target (the background refresh)
        print(f"{what:44} {first:9.0f} {'-' if once else f'{median:.0f}':>10} {goal:>7}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--keep", type=Path, help="Build the workspace here and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        home = args.keep or Path(tmp) / "home"
        ws = Workspace.resolve(home).ensure()
        os.environ["TIX_HOME"] = str(ws.home)
        t0 = time.perf_counter()
        ids = build(ws, args.fraction)
        build_s = time.perf_counter() - t0
        ingested = ingest(ws, ids)
        rows = measure(ws)
        rows += incremental(ws)
        report(args.fraction, ws, ids, build_s, ingested, rows)


if __name__ == "__main__":
    main()
