"""The tiny lab over several seeds: which of its conclusions hold, and how far they move.

For each seed s the lab experiment (`experiments/tiny-lab.yaml`) runs as `tiny-lab-seed<s>`
with the base built from seed s (seed 0 with default parameters is the shipped base: it is copied,
not trained) and both trainings seeded with s (trl's `seed`), in one fresh workspace. Then, per
variant and group: the mean ± sd over seeds of the accuracy change from the base (points), of
TI v1 and v2 (pooled sigma), and the share of seeds in which the variant gains >= 5 maths points.
Printed with the machine (torch CPU capability, cores), the build precision and the mean wall
time of each stage.

Run: `python bench/lab.py [--seeds 3] [--precision auto|bf16|fp32] [--home DIR] [--name PREFIX]`.
`--precision` sets the base build's (`base.build.precision`); the trainings run in fp32 on CPU
either way. `--name` names the experiments PREFIX<s> (default `tiny-lab-seed`), so that labs of
several precisions share one `--home` (whose identical runs are reused) without mixing results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("math", "other", "non")
GAIN = 5.0  # maths points a variant must gain in every seed (issue 14)

SCORES_SQL = """
SELECT r.name AS model, s."group", avg(s.value) AS mean
FROM scores s JOIN runs r ON r.id = s.run_id JOIN experiment_runs e ON e.run_id = r.id
WHERE e.experiment = ? AND r.kind = 'eval' AND r.state = 'succeeded' AND s.metric = 'accuracy'
GROUP BY ALL"""
STAGES_SQL = """
SELECT r.kind, r.name, epoch(r.finished_at) - epoch(r.started_at) AS seconds
FROM runs r JOIN experiment_runs e ON e.run_id = r.id WHERE e.experiment = ? AND r.state = 'succeeded'"""


def experiment_text(seed: int, precision: str, name: str | None = None) -> str:
    """The lab's file for one seed: its own name, the base's seed (and build precision), and the
    trainings' seed."""
    text = (ROOT / "experiments" / "tiny-lab.yaml").read_text()
    text = text.replace("name: tiny-lab\n", f"name: {name or f'tiny-lab-seed{seed}'}\n", 1)
    build = f"\n  build: {{precision: {precision}}}" if precision != "auto" else ""
    text = text.replace("  model: tiny-lab\n  seed: 0\n", f"  model: tiny-lab\n  seed: {seed}{build}\n", 1)
    return text.replace("      args:\n", f"      args:\n        seed: {seed}\n")


def tix(home: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "TIX_HOME": str(home)}
    result = subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, capture_output=True,
                            text=True, cwd=ROOT)
    if check and result.returncode != 0:
        said = (result.stderr or result.stdout).strip()[-800:]
        raise SystemExit(f"tix {' '.join(args[:2])} failed: {said}")
    return result.stdout


def sql(home: Path, query: str, *params: str) -> list[dict[str, Any]]:
    for value in params:  # `tix sql` takes no parameters: inline the (trusted) experiment name
        query = query.replace("?", f"'{value}'", 1)
    return json.loads(tix(home, "sql", query, "--format", "json"))


def run_seed(home: Path, seed: int, precision: str, prefix: str) -> dict[str, Any]:
    """One seed's lab: group means per model, TI v1/v2 per variant, wall seconds per stage."""
    name = f"{prefix}{seed}"
    path = home / f"{name}.yaml"
    path.write_text(experiment_text(seed, precision, name))
    started = time.time()
    tix(home, "run", str(path), "--wait")
    means: dict[str, dict[str, float]] = {}
    for row in sql(home, SCORES_SQL, name):
        means.setdefault(row["model"], {})[row["group"]] = row["mean"]
    ti = {variant: {o["model"]: o for o in json.loads(tix(home, "ti", name, "--variant", variant,
                                                           "--format", "json"))}
          for variant in ("v1", "v2")}
    stages = {f"{r['kind']} {r['name']}": r["seconds"] for r in sql(home, STAGES_SQL, name)}
    return {"seed": seed, "means": means, "ti": ti, "stages": stages, "wall": time.time() - started}


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.1f} ± {sd:.1f}"


def summary(results: list[dict[str, Any]]) -> list[str]:
    """Per variant: accuracy change per group, TI v1/v2, and the share of seeds gaining GAIN."""
    variants = sorted({m for r in results for m in r["means"] if m != "base"})
    lines = [f"{'variant':8} {'group':6} {'Δ accuracy (pts)':>17} {'TI v1':>15} {'TI v2':>15}"]
    for variant in variants:
        for group in GROUPS:
            deltas = [r["means"][variant][group] - r["means"]["base"][group] for r in results
                      if group in r["means"].get(variant, {})]
            tis = ["-" if group == "math" else mean_sd([r["ti"][v][variant][f"ti_{group}"] for r in results
                                                         if r["ti"][v].get(variant, {}).get(f"ti_{group}")
                                                         is not None]) for v in ("v1", "v2")]
            lines.append(f"{variant:8} {group:6} {mean_sd(deltas):>17} {tis[0]:>15} {tis[1]:>15}")
        gains = [r["means"][variant]["math"] - r["means"]["base"]["math"] for r in results]
        held = sum(g >= GAIN for g in gains)
        lines.append(f"{variant:8} maths gain >= {GAIN:.0f} pts in {held}/{len(gains)} seeds "
                     f"({', '.join(f'{g:+.1f}' for g in gains)})")
    return lines


def machine(precision: str) -> str:
    import torch

    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    chosen = precision if precision != "auto" else ("bf16" if native else "fp32")
    return (f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
            f"native bf16 {'yes' if native else 'no'}; base build precision {chosen}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--home", help="workspace (default: a fresh temporary one)")
    parser.add_argument("--name", default="tiny-lab-seed", help="experiment name prefix (PREFIX<seed>)")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="tix-lab-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for seed in range(args.seeds):
            results.append(run_seed(home, seed, args.precision, args.name))
            print(f"seed {seed}: {results[-1]['wall']:.0f} s", flush=True)
    finally:
        tix(home, "daemon", "stop", check=False)
    print(f"lab: {args.seeds} seeds; {machine(args.precision)}")
    print("\n".join(summary(results)))
    stages = sorted({s for r in results for s in r["stages"]})
    print("wall s per stage (mean over seeds): " + ", ".join(
        f"{s} {statistics.fmean(r['stages'][s] for r in results if s in r['stages']):.0f}" for s in stages))
    print(json.dumps({"precision": args.precision, "results": results}))


if __name__ == "__main__":
    main()
