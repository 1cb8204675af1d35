"""The `probe` job: a light, real worker for checking the daemon, the scheduler and a box.

It imports nothing heavy, reports progress and metrics like a training job, records the
environment it was given (CUDA_VISIBLE_DEVICES), and on request sleeps, writes samples or a
line to stderr, ignores SIGTERM, or fails (always, or on its first attempts). tix uses it in
its integration tests and benchmarks; users can use it to check that a box schedules work.

Run: `python -m engine.jobs.worker RUN_DIR` with `kind: probe` in `RUN_DIR/spec.yaml`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from engine.jobs import JobContext

VERSION = "1"


def run(ctx: JobContext) -> dict[str, Any]:
    """Step `steps` times, sleeping `sleep` s each; optionally write samples or fail at the end."""
    if ctx.params.get("stderr_message"):
        print(ctx.params["stderr_message"], file=sys.stderr, flush=True)
    if ctx.params.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    steps = int(ctx.params.get("steps", 5))
    for step in range(1, steps + 1):
        time.sleep(float(ctx.params.get("sleep", 0.0)))
        ctx.events.metric(step, loss=1.0 / step, seq=step)
        ctx.events.progress(step, steps, "probe")
        for i in range(int(ctx.params.get("samples_per_step", 0))):
            ctx.samples.write({"benchmark": "probe", "item_id": f"{step}-{i}", "sample_idx": 0,
                               "completion": f"answer {step}", "verdict": float(i % 2)})
    if ctx.attempt <= int(ctx.params.get("fail_attempts", 0)):
        raise RuntimeError(f"failing attempt {ctx.attempt} on purpose")
    if ctx.params.get("fail"):
        raise RuntimeError(str(ctx.params["fail"]))
    return {"steps": steps, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "model_path": ctx.params.get("model_path")}
