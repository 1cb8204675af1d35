"""`bench/scale.py --fraction 0.01` builds a small paper-scale workspace through the real ingest and
the daemon, and prints its figures (no timing asserts: the box is shared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_bench_smoke(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "bench/scale.py", "--fraction", "0.01", "--keep", str(tmp_path / "home")],
                         cwd=ROOT, check=True, capture_output=True, text=True, timeout=600).stdout
    assert "11,448 samples, 48,000 metrics, 240 scores, 480 shift_results" in out
    for wait in ("TUI TI view", "search in one run's samples", "tix health", "database after CHECKPOINT"):
        assert wait in out
