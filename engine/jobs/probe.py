"""The `probe` job: a light, real worker for checking the daemon, the scheduler and a box.

It imports nothing heavy, reports progress and metrics like a training job, records the
environment it was given (CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS) and the core shares the daemon
sent it while it ran, and on request sleeps, writes samples or a line to stderr, holds GPU memory
(`cuda_mib`, importing torch only then: NVML lists it as the run's process), ignores SIGTERM,
fails (always, or on its first attempts), or keeps its step in the run folder and continues
from it when run again (`resumable`, a training's checkpoint in miniature: the Slurm tests of
time limits and requeues use it). tix uses it in its integration tests and benchmarks; users can
use it to check that a box schedules work.

Run: `python -m engine.jobs.worker RUN_DIR` with `kind: probe` in `RUN_DIR/spec.yaml`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from engine.events import ThreadShare, write_atomic
from engine.jobs import JobContext

VERSION = "1"
STATE_FILE = "probe_step"


def run(ctx: JobContext) -> dict[str, Any]:
    """Step `steps` times, sleeping `sleep` s each; optionally write samples or fail at the end."""
    if ctx.params.get("stderr_message"):
        print(ctx.params["stderr_message"], file=sys.stderr, flush=True)
    if ctx.params.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    steps = int(ctx.params.get("steps", 5))
    held = hold_cuda(float(ctx.params.get("cuda_mib") or 0))
    done = resume_step(ctx) if ctx.params.get("resumable") else 0
    share, shares = ThreadShare(ctx.run_dir), []
    for step in range(done + 1, steps + 1):
        time.sleep(float(ctx.params.get("sleep", 0.0)))
        if (threads := share.changed()) is not None:
            shares.append(threads)  # what a training would set its threads to, step by step
        ctx.events.metric(step, loss=1.0 / step, seq=step)
        ctx.events.progress(step, steps, "probe")
        if ctx.params.get("resumable"):
            write_atomic(ctx.run_dir / STATE_FILE, str(step))  # a TERM mid-write left it empty
        for i in range(int(ctx.params.get("samples_per_step", 0))):
            ctx.samples.write({"benchmark": "probe", "item_id": f"{step}-{i}", "sample_idx": 0,
                               "completion": f"answer {step}", "verdict": float(i % 2)})
    if ctx.attempt <= int(ctx.params.get("fail_attempts", 0)):
        raise RuntimeError(f"failing attempt {ctx.attempt} on purpose")
    if ctx.params.get("fail"):
        raise RuntimeError(str(ctx.params["fail"]))
    del held
    return {"steps": steps, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "thread_shares": shares,
            "model_path": ctx.params.get("model_path"), "resumed_from": done or None}


def resume_step(ctx: JobContext) -> int:
    """The last step an earlier run of this probe finished (0 when none)."""
    path = ctx.run_dir / STATE_FILE
    done = int(path.read_text()) if path.exists() else 0
    if done:
        ctx.events.log(f"resuming from step {done}")
    return done


def hold_cuda(mib: float) -> object | None:
    """`mib` MiB allocated on the run's GPU for as long as the probe runs (torch imported only then)."""
    if mib <= 0:
        return None
    import torch

    return torch.empty(int(mib * (1 << 20)), dtype=torch.uint8, device="cuda")
