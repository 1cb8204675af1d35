"""Multi-process training: the `train` job under `accelerate launch`, one process per GPU.

A variant with `gpus: N` (N > 1) gets N GPUs from the scheduler (CUDA_VISIBLE_DEVICES), and its
worker runs `accelerate launch --config_file configs/accelerate/<distributed>.yaml
--num_processes N -m engine.jobs.train_rank RUN_DIR` instead of training in-process. The ranks
run the same `train_once` as a one-process run: rank 0 writes the events (the others write
none), every rank takes part in saving (ZeRO-3 and FSDP gather shards), and rank 0 hands the
result back through `RUN_DIR/train_result.json`. SIGTERM reaches the launcher, which forwards it
to the ranks, so `tix cancel` still ends with a checkpoint.

Shipped configurations (configs/accelerate/): `zero3` (DeepSpeed ZeRO-3, the default for
several GPUs), `fsdp` (PyTorch FSDP v2) and `ddp` (one full copy per GPU). A path to another
accelerate config file works too.

accelerate runs a single process whenever it has no GPU, so on a CPU box several processes
(`processes: N`, used by the tests) run under `torch.distributed.run` with the gloo backend:
the same ranks, result hand-off and saving, without accelerate's config.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.experiments.spec import DISTRIBUTED
from engine.jobs import JobContext, Stop

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
RESULT_FILE = "train_result.json"
RANK_FLAG = "TIX_TRAIN_RANK"


def processes(params: dict[str, Any], devices: int) -> int:
    """Training processes: `processes` when given (the CPU tests), else one per GPU the variant
    asked for and the scheduler gave (`devices` visible); a CPU box trains in one process."""
    if params.get("processes"):
        return int(params["processes"])
    return max(1, min(int(params.get("gpus") or 1), devices))


def in_launched_rank() -> bool:
    """True inside a rank started by `run_distributed` (so it trains instead of launching again)."""
    return os.environ.get(RANK_FLAG) == "1"


def config_file(distributed: str | None) -> Path:
    """The accelerate config of a `distributed:` name (zero3 when unset), or the path it gives."""
    name = distributed or "zero3"
    path = CONFIGS / f"{name}.yaml" if name in DISTRIBUTED else Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"accelerate config {path} not found (shipped: {', '.join(DISTRIBUTED)})")
    return path


def launch_command(params: dict[str, Any], run_dir: Path, n: int, cuda: bool, port: int) -> list[str]:
    """The launcher's argv for `n` ranks: accelerate with a GPU, torch.distributed.run (gloo) without."""
    rank_entry = ["-m", "engine.jobs.train_rank", str(run_dir)]
    if not cuda:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port",
                str(port), *rank_entry]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(config_file(params.get("distributed"))), "--num_processes", str(n), "--main_process_port",
            str(port), *rank_entry]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_distributed(ctx: JobContext, n: int, cuda: bool) -> dict[str, Any]:
    """Launch `n` ranks, wait for them, and return rank 0's result."""
    result_path = ctx.run_dir / RESULT_FILE
    result_path.unlink(missing_ok=True)
    cmd = launch_command(ctx.params, ctx.run_dir, n, cuda, free_port())
    ctx.events.log(f"{n} training processes: {' '.join(cmd[1:4])} ...")
    env = {**os.environ, RANK_FLAG: "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, cwd=ctx.run_dir, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code != 0 or not result_path.is_file():
        raise RuntimeError(f"distributed training exited with status {code}; the ranks' tracebacks are in "
                           f"{ctx.run_dir / 'stderr.log'}")
    result = json.loads(result_path.read_text())
    if result.get("stopped"):
        raise Stop(result["stopped"])
    return result
