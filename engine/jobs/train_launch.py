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

Several nodes (`nodes: N`, executor slurm; `gpus` is then GPUs per node): the job holds N nodes,
and the worker, on the first, starts one launcher per node with `srun --nodes=N
--ntasks-per-node=1 --kill-on-bad-exit=1 bash -c 'exec accelerate launch --num_machines N
--machine_rank "$SLURM_NODEID" --main_process_ip FIRST ...'` (`--num_processes` counts every
machine's, as accelerate wants); on CPU `torch.distributed.run --nnodes N --node_rank ...`. The
worker expands FIRST (the first host of the job, where it runs and picked the port) itself; each
node's shell expands its own rank. `nodes: 1` given explicitly takes the same path on one node,
which is how the test cluster runs it for real. srun answers a SIGTERM by killing its step, so
the worker never signals srun: it forwards SIGTERM with `scancel --signal=TERM JOB`, which reaches
the step's launchers and ranks (not the batch step) and lets them save a checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.experiments.spec import DISTRIBUTED
from engine.jobs import JobContext, Stop

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
RESULT_FILE = "train_result.json"
RANK_FLAG = "TIX_TRAIN_RANK"
#: Put unquoted into the srun'd shell's command, so that each node expands its own rank.
NODE_RANK = '"$SLURM_NODEID"'


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


def srun_nodes(params: dict[str, Any], environ: Mapping[str, str]) -> int:
    """Nodes to start launchers on with srun: 0 (train on this box) unless `nodes` was given and
    this worker is a Slurm job. More than one node outside Slurm, or more than the job holds, is
    an error rather than a silent one-box run."""
    nodes = int(params.get("nodes") or 0)
    job = environ.get("SLURM_JOB_ID")
    if nodes > 1 and not job:
        raise RuntimeError(f"train.nodes: {nodes} needs executor slurm (this worker is not a Slurm job)")
    held = int(environ.get("SLURM_JOB_NUM_NODES") or 1)
    if job and nodes > held:
        raise RuntimeError(f"train.nodes: {nodes}, but Slurm job {job} holds {held} node(s)")
    return nodes if job else 0


def node_launch_command(params: dict[str, Any], run_dir: Path, nodes: int, per_node: int, cuda: bool,
                        first: str, port: int) -> list[str]:
    """One node's launcher for `nodes` x `per_node` ranks; the machine rank is NODE_RANK, for the
    node's shell to expand. accelerate counts processes over all machines, torchrun per node."""
    rank_entry = ["-m", "engine.jobs.train_rank", str(run_dir)]
    if not cuda:
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes), "--node_rank",
                NODE_RANK, "--master_addr", first, "--master_port", str(port), "--nproc_per_node",
                str(per_node), *rank_entry]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(config_file(params.get("distributed"))), "--num_processes", str(nodes * per_node),
            "--num_machines", str(nodes), "--machine_rank", NODE_RANK, "--main_process_ip", first,
            "--main_process_port", str(port), *rank_entry]


def srun_command(launcher: list[str], nodes: int) -> list[str]:
    """srun with one task per node, each exec'ing `launcher` in a shell that expands NODE_RANK;
    one failed node ends them all (--kill-on-bad-exit) instead of leaving the others waiting."""
    script = " ".join(arg if arg == NODE_RANK else shlex.quote(arg) for arg in launcher)
    return ["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "bash", "-c",
            f"exec {script}"]


def rank_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The launchers' environment: the worker's, marked so the ranks train instead of launching
    again, with one OpenMP thread per rank unless set (N ranks share the node's cores)."""
    return {**environ, RANK_FLAG: "1", "OMP_NUM_THREADS": environ.get("OMP_NUM_THREADS", "1")}


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (`node[07-09]` -> node07): the batch host, rank 0's."""
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    if not out:
        raise RuntimeError(f"scontrol show hostnames {nodelist!r} printed no host")
    return out[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_distributed(ctx: JobContext, n: int, cuda: bool) -> dict[str, Any]:
    """Launch `n` ranks, wait for them, and return rank 0's result."""
    cmd = launch_command(ctx.params, ctx.run_dir, n, cuda, free_port())
    ctx.events.log(f"{n} training processes: {' '.join(cmd[1:4])} ...")
    proc = start_launcher(ctx, cmd)
    return wait_result(ctx, proc, lambda: proc.send_signal(signal.SIGTERM))


def run_on_nodes(ctx: JobContext, nodes: int, per_node: int, cuda: bool) -> dict[str, Any]:
    """Launch `per_node` ranks on each of `nodes` nodes with srun; rank 0's result."""
    first = first_host(os.environ["SLURM_JOB_NODELIST"])
    launcher = node_launch_command(ctx.params, ctx.run_dir, nodes, per_node, cuda, first, free_port())
    cmd = srun_command(launcher, nodes)
    ctx.events.log(f"{nodes} node(s) x {per_node} training processes: {shlex.join(cmd)}")
    proc = start_launcher(ctx, cmd)
    return wait_result(ctx, proc, lambda: term_steps(os.environ["SLURM_JOB_ID"]))


def start_launcher(ctx: JobContext, cmd: list[str]) -> subprocess.Popen[bytes]:
    """Start the launcher(s) in the run folder, after removing an earlier attempt's result so
    that only this attempt's rank 0 can hand one back."""
    (ctx.run_dir / RESULT_FILE).unlink(missing_ok=True)
    return subprocess.Popen(cmd, cwd=ctx.run_dir, env=rank_env(os.environ))


def term_steps(job_id: str) -> None:
    """SIGTERM to the job's steps (every node's launcher and ranks), not to srun: srun would kill
    its step at once, and the ranks could not save."""
    subprocess.run(["scancel", "--signal=TERM", job_id], capture_output=True, timeout=30, check=False)


def wait_result(ctx: JobContext, proc: subprocess.Popen[bytes],
                forward: Callable[[], None]) -> dict[str, Any]:
    """Wait for the launcher with SIGTERM forwarded by `forward`, then read rank 0's result. A
    launcher that got SIGTERM exits non-zero even when the ranks saved and stopped cleanly, so a
    `stopped` result wins over its exit status."""
    terminated: list[bool] = []

    def on_term(*_: object) -> None:
        terminated.append(True)
        forward()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return launcher_result(ctx.run_dir, code, bool(terminated))


def launcher_result(run_dir: Path, code: int, terminated: bool) -> dict[str, Any]:
    """Rank 0's result after the launcher exited with `code`; Stop when the ranks stopped on a
    SIGTERM (or were killed after one before rank 0 could report)."""
    path = run_dir / RESULT_FILE
    result = json.loads(path.read_text()) if path.is_file() else None
    if result is not None and result.get("stopped"):
        raise Stop(result["stopped"])
    if terminated and (code != 0 or result is None):
        raise Stop(f"stopped by SIGTERM; the ranks ended (launcher exit status {code}) before rank 0 "
                   "saved and reported, so `tix resume` continues from the last saved checkpoint")
    if code != 0 or result is None:
        raise RuntimeError(f"distributed training exited with status {code}; the ranks' tracebacks are in "
                           f"{run_dir / 'stderr.log'}")
    return result
