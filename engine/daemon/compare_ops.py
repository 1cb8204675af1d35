"""Daemon ops for comparing runs (the TUI's compare and config views, `tix diff`).

- `run_config` (args id): a run's configuration as flat dotted keys (engine/analysis/rundiff.py), read
  from its row, its folder's spec.yaml (what the worker was given: dependencies' outputs
  resolved) and environment.json (the code and library versions it ran with, engine/runenv.py).
  Result: {run_id, keys: [[key, value as text], ...], started (whether a spec exists)}.
- `run_diff` (args left, right): the keys whose values differ. Result: {left, right, rows: [[key,
  left, right], ...], same (equal keys)}.
- `compare_evals` (args ids): marked eval runs side by side: each run's scores per benchmark
  (storage.store.run_results, the run detail's numbers) and the `paired_deltas` rows of their
  models (engine/analysis/paired.py fills the table; nothing is recomputed here). The server
  brings `paired_stats` up to date before calling it.

The server reads the run rows on its loop (as `run` does); these functions run in a thread, each
query on a cursor of its own (closed here), as the other read ops do.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from engine import runenv
from engine.analysis.rundiff import config_of, differing, show
from engine.events import SPEC_FILE
from engine.experiments.plan import JOB_VERSIONS
from engine.workspace import Workspace
from storage.store import run_results

DELTA_COLUMNS = ("experiment", "model", "base_model", "method", "benchmark", "group", "n", "delta", "se",
                 "ci_low", "ci_high", "p", "q")


def run_folder(run: dict[str, Any], ws: Workspace) -> Path:
    """Where a stored run's files are: its row's run_dir, else the workspace's folder for its id."""
    return Path(run.get("run_dir") or ws.run_dir(run["id"]))


def read_spec(folder: Path) -> dict[str, Any] | None:
    """The run folder's spec.yaml (None before the run first started, or when unreadable)."""
    try:
        spec = yaml.safe_load((folder / SPEC_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return spec if isinstance(spec, dict) else None


def flat_config(run: dict[str, Any], ws: Workspace) -> tuple[dict[str, Any], bool]:
    """The flat configuration of a stored run (its row) and whether its spec.yaml was found; the
    folder's environment.json adds `code.*` and `env.*` keys (a run older than the file has none)."""
    folder = run_folder(run, ws)
    spec = read_spec(folder)
    environment = runenv.read(folder)
    return config_of(run, spec, JOB_VERSIONS.get(str(run.get("kind"))), environment), spec is not None


def run_config(run: dict[str, Any], ws: Workspace) -> dict[str, Any]:
    config, started = flat_config(run, ws)
    return {"run_id": run["id"], "keys": [[k, show(v)] for k, v in config.items()], "started": started}


def run_diff(left: dict[str, Any], right: dict[str, Any], ws: Workspace) -> dict[str, Any]:
    a, _ = flat_config(left, ws)
    b, _ = flat_config(right, ws)
    rows = differing(a, b)
    same = sum(1 for k in a if k in b and a[k] == b[k])
    return {"left": left["id"], "right": right["id"], "rows": [list(r) for r in rows], "same": same}


def compare_evals(con: Any, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores per benchmark of each run (rows of the runs table), and the paired deltas of their
    models against their bases; `con` is the daemon's connection (a cursor per query, closed)."""
    out = []
    for run in runs:
        found = run_results(con.cursor(), run["id"])["benchmarks"]
        scores = [{k: b.get(k) for k in ("benchmark", "group", "accuracy", "n", "stderr")} for b in found]
        out.append({"id": run["id"], "kind": run.get("kind"), "experiment": run.get("experiment"),
                    "model": run.get("name"), "scores": scores})
    pairs = sorted({(r["experiment"], r["model"]) for r in out if r["experiment"] and r["model"]})
    deltas: list[dict[str, Any]] = []
    if pairs:
        where = " OR ".join("(experiment = ? AND model = ?)" for _ in pairs)
        cur = con.cursor()
        try:
            cols = ", ".join(f'"{c}"' for c in DELTA_COLUMNS)
            cur.execute(f"SELECT {cols} FROM paired_deltas WHERE {where} ORDER BY model, benchmark",
                        [v for pair in pairs for v in pair])
            deltas = [dict(zip(DELTA_COLUMNS, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()
    return {"runs": out, "deltas": deltas}


# -- the ops (engine/daemon/server.py registers them; `server` is the daemon) -------------------------
def stored_run(server: Any, ref: Any) -> dict[str, Any]:
    """The run row of a full id or unique prefix (RequestError `not_found` otherwise)."""
    run = server.store.run(server.resolve_run(str(ref or "")))
    assert run is not None
    return run


async def config_op(server: Any, args: dict[str, Any]) -> dict[str, Any]:
    """`run_config`: args id."""
    return await asyncio.to_thread(run_config, stored_run(server, args.get("id")), server.ws)


async def diff_op(server: Any, args: dict[str, Any]) -> dict[str, Any]:
    """`run_diff`: args left, right (ids or unique prefixes)."""
    left, right = stored_run(server, args.get("left")), stored_run(server, args.get("right"))
    return await asyncio.to_thread(run_diff, left, right, server.ws)


async def evals_op(server: Any, args: dict[str, Any]) -> dict[str, Any]:
    """`compare_evals`: args ids (a list); `paired_stats` is brought up to date first."""
    ids = args.get("ids")
    if not isinstance(ids, list) or not ids:
        raise ValueError("compare_evals needs ids, a list of run ids")
    runs = [stored_run(server, ref) for ref in ids]
    await server.refresh_paired("paired_deltas")
    return await asyncio.to_thread(compare_evals, server.store.con, runs)
