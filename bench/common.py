"""Shared by the benchmark scripts: a tiny-lab model built in a throw-away workspace, a timer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.events import EventWriter
from engine.jobs import JobContext, build


def tiny_model(home: Path, pretrain_steps: int) -> str:
    """Build (and pre-train for `pretrain_steps`) a tiny-lab model under `home`; its folder."""
    run_dir = home / "runs" / "build"
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {"model": "tiny-lab", "seed": 0, "pretrain_steps": pretrain_steps, "corpus_items": 4000}
    ctx = JobContext("build", "build", params, run_dir, home, EventWriter(run_dir / "events.jsonl"))
    return build.run(ctx)["model_path"]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of each of `repeat` calls of `fn`."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out
