"""`tix demo` from a cold workspace: wall time, and each stage's wall time, CPU time and peak memory.

Runs `tix demo` as a user does, in a fresh TIX_HOME (so the base model is built, not reused),
then reads every run's `usage` (written by the worker when the run finishes: wall and CPU
seconds, peak RSS of the worker and its largest child) back over `tix sql`. Runs may overlap
(SFT and GRPO share the CPU slots), so the table also gives the largest sum of peak RSS over
runs whose lifetimes overlap, an upper bound on the memory the demo's workers held at once;
the daemon's own RSS is added from its /proc entry before it exits.

Run: `make bench` or `python bench/demo.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USAGE_SQL = """
SELECT r.kind, r.name, epoch(r.started_at) AS t0, epoch(r.finished_at) AS t1, e.payload->>'usage' AS usage
FROM runs r JOIN events e ON e.run_id = r.id AND e.type = 'finished'
WHERE r.experiment = 'tiny-lab' ORDER BY r.started_at"""


def tix(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TIX_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, capture_output=True,
                          text=True)


def daemon_rss_mb(home: Path) -> float | None:
    """Peak RSS (VmHWM) of the running daemon, from the pid in its lock file."""
    try:
        pid = int((home / "daemon.lock").read_text().split()[0])
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError, IndexError):
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
    return int(line.split()[1]) / 1024 if line else None


def max_overlap(stages: list[dict]) -> float:
    """The largest sum of peak RSS over runs alive at the same moment (checked at each start)."""
    best = 0.0
    for s in stages:
        alive = [x for x in stages if x["t0"] <= s["t0"] < x["t1"]]
        best = max(best, sum(x["peak_rss_mb"] for x in alive))
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        start, began = time.perf_counter(), time.time()
        demo = tix(home, "demo")
        wall = time.perf_counter() - start
        if demo.returncode != 0:
            sys.exit(f"tix demo failed ({demo.returncode}): {demo.stderr.strip()[-500:]}")
        daemon = daemon_rss_mb(home)
        out = tix(home, "sql", "--format", "json", USAGE_SQL)
        tix(home, "daemon", "stop")
        if out.returncode != 0:
            sys.exit(f"tix sql failed: {out.stderr.strip()}")
        stages = [{**row, **json.loads(row["usage"])} for row in json.loads(out.stdout)]
    print(demo.stdout.rstrip())
    print(f"\ntix demo, cold workspace: {wall:.0f} s wall")
    print(f"{'stage':<16}{'from s':>8}{'to s':>8}{'wall s':>8}{'cpu s':>8}{'peak RSS MiB':>14}")
    for s in stages:
        stage = f"{s['kind']} {s['name'] or ''}"
        span = f"{s['t0'] - began:>8.1f}{s['t1'] - began:>8.1f}"
        print(f"{stage:<16}{span}{s['wall_s']:>8.1f}{s['cpu_s']:>8.1f}{s['peak_rss_mb']:>14.0f}")
    print("from/to: when the run started and ended, seconds after `tix demo` was started; wall s and cpu s "
          "are the job's own (the worker's start-up and imports before it are not in them)")
    print(f"largest sum of overlapping workers' peak RSS: {max_overlap(stages):.0f} MiB")
    print(f"daemon peak RSS: {daemon:.0f} MiB" if daemon else "daemon peak RSS: unknown")


if __name__ == "__main__":
    main()
