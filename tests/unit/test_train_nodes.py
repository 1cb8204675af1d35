"""`train.nodes: N` (multi-node training on Slurm) without a cluster: the schema, the planned
run, its sbatch line, the exact srun / accelerate command and environment for 2 nodes x 8 GPUs,
the worker's srun path with stand-in Slurm commands (rank 0's result, SIGTERM forwarded to the
job's steps and never to srun), and a local daemon refusing the run on one line. The real srun
run is tests/slurm/test_slurm_nodes.py."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.client.connection import Client
from engine.daemon.executors.base import Launch
from engine.daemon.executors.slurm import sbatch_argv
from engine.daemon.settings import SlurmSettings
from engine.experiments.plan import make_run, plan_experiment
from engine.experiments.spec import SpecErrors, load_experiment_text
from engine.jobs import Stop, train_launch
from engine.workspace import Workspace
from tests.conftest import job_context, wait_state

HEAD = "name: x\nbase: {model: org/base}\nmodels:\n"


def train_params(text: str) -> dict:
    """The validated `train:` of variant `v` in a file made of HEAD and `text`."""
    return load_experiment_text(HEAD + text, "x.yaml").data["models"]["v"]["train"]


def error_lines(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load_experiment_text(HEAD + text, "x.yaml")
    return [str(e) for e in caught.value.errors]


def test_nodes_is_optional_and_checked() -> None:
    assert train_params("  v: {train: {method: sft, data: lab/math-train}}\n")["nodes"] is None
    assert train_params("  v: {train: {method: sft, data: lab/math-train, nodes: 2, gpus: 8}}\n")["nodes"] == 2
    one_gpu_each = train_params("  v: {train: {method: sft, data: lab/math-train, nodes: 2, distributed: ddp}}\n")
    assert (one_gpu_each["gpus"], one_gpu_each["distributed"]) == (1, "ddp")  # 2 processes in all
    assert error_lines("  a: {train: {method: sft, data: lab/math-train, nodes: 0}}\n"
                       "  b: {train: {method: sft, data: lab/math-train, nodes: two}}\n"
                       "  c: {train: {method: sft, data: lab/math-train, nodes: 2, lora: {r: 8}}}\n"
                       "  d: {train: {method: sft, data: lab/math-train, nodes: 1, distributed: fsdp}}\n") == [
        "x.yaml:4: models.a.train.nodes: must be >= 1, got 0",
        "x.yaml:5: models.b.train.nodes: expected an integer, got 'two'",
        "x.yaml:6: models.c.train.lora: lora: not supported with nodes > 1 yet (the merged model is saved "
        "from one process); train LoRA on one GPU",
        "x.yaml:7: models.d.train.distributed: distributed: needs gpus: 2 or more"]


def test_planned_run_carries_nodes_only_when_given() -> None:
    def train_run(train: str) -> dict:
        exp = load_experiment_text(HEAD + f"  v: {{train: {{method: sft, data: lab/math-train{train}}}}}\n")
        return next(r for r in plan_experiment(exp) if r["kind"] == "train")

    plain, one, many = train_run(""), train_run(", nodes: 1"), train_run(", nodes: 2, gpus: 8")
    assert "nodes" not in plain["params"] and "gpus" not in plain["params"]  # run ids as before
    assert one["params"]["nodes"] == 1 and one["id"] != plain["id"]
    assert {k: many["params"][k] for k in ("nodes", "gpus", "distributed")} == {
        "nodes": 2, "gpus": 8, "distributed": "zero3"}
    assert many["gpus_needed"] == 8  # per node: --gpus-per-node


def test_sbatch_line_holds_n_nodes_with_one_task_each() -> None:
    s = SlurmSettings(partition="gpu", exclusive=True)
    argv = sbatch_argv(Launch("train-1", Path("/r/train-1"), 1, {}, 8, {}, nodes=2), s)
    at = argv.index("--nodes=2")
    assert argv[at:at + 3] == ["--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=8"]
    assert "--exclusive" in argv and "--partition=gpu" in argv
    assert "--exclusive" not in sbatch_argv(Launch("train-1", Path("/r"), 1, {}, 8, {}, nodes=2), SlurmSettings())
    assert not any(a.startswith(("--nodes", "--ntasks")) for a in sbatch_argv(
        Launch("train-1", Path("/r"), 1, {}, 8), s))  # other runs: as before


def test_check_plan_prints_the_nodes_of_the_sbatch_line(tix, ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(HEAD + "  v: {train: {method: sft, data: lab/math-train, nodes: 2, gpus: 8}}\n")
    out = tix("check", "--plan", "--sbatch", str(path))
    assert out.returncode == 0, out.stderr
    train = next(line for line in out.stdout.splitlines() if line.startswith("train-") and ": sbatch " in line)
    assert "--nodes=2 --ntasks-per-node=1 --gpus-per-node=8" in train


def test_srun_command_and_environment_for_two_nodes_of_eight_gpus() -> None:
    run_dir = Path("/runs/train-x")
    params = {"gpus": 8, "distributed": "zero3", "nodes": 2}
    launcher = train_launch.node_launch_command(params, run_dir, 2, 8, cuda=True, first="node07", port=29500)
    cmd = train_launch.srun_command(launcher, 2)
    config = train_launch.CONFIGS / "zero3.yaml"
    assert cmd == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "bash", "-c",
                   f"exec {sys.executable} -m accelerate.commands.launch --config_file {config} "
                   "--num_processes 16 --num_machines 2 --machine_rank \"$SLURM_NODEID\" "
                   "--main_process_ip node07 --main_process_port 29500 -m engine.jobs.train_rank /runs/train-x"]
    env = train_launch.rank_env({"PATH": "/usr/bin", "SLURM_JOB_ID": "41", "SLURM_JOB_NODELIST": "node[07-08]"})
    assert env == {"PATH": "/usr/bin", "SLURM_JOB_ID": "41", "SLURM_JOB_NODELIST": "node[07-08]",
                   "TIX_TRAIN_RANK": "1", "OMP_NUM_THREADS": "1"}
    assert train_launch.rank_env({"OMP_NUM_THREADS": "6"})["OMP_NUM_THREADS"] == "6"
    per_node = expanded(cmd[-1], node_id="1")  # what node 1's shell runs: its own rank, all else as built
    assert per_node == [*launcher[:launcher.index("--machine_rank") + 1], "1",
                        *launcher[launcher.index("--machine_rank") + 2:]]


def test_cpu_launcher_is_torchrun_with_per_node_processes() -> None:
    launcher = train_launch.node_launch_command({"processes": 2}, Path("/r"), 3, 2, cuda=False,
                                                first="c1", port=7)
    assert expanded(train_launch.srun_command(launcher, 3)[-1], node_id="2")[1:] == [
        "-m", "torch.distributed.run", "--nnodes", "3", "--node_rank", "2", "--master_addr", "c1",
        "--master_port", "7", "--nproc_per_node", "2", "-m", "engine.jobs.train_rank", "/r"]


def expanded(script: str, node_id: str) -> list[str]:
    """The argv bash would exec for `script` on the node with SLURM_NODEID=node_id."""
    show = script.replace("exec ", "exec printf '%s\\n' ", 1)
    out = subprocess.run(["bash", "-c", show], env={"SLURM_NODEID": node_id}, capture_output=True, text=True,
                         check=True)
    return out.stdout.splitlines()


def test_srun_only_with_nodes_and_inside_a_slurm_job() -> None:
    in_job = {"SLURM_JOB_ID": "5", "SLURM_JOB_NUM_NODES": "2"}
    assert train_launch.srun_nodes({}, in_job) == 0
    assert train_launch.srun_nodes({"nodes": 2}, in_job) == 2
    assert train_launch.srun_nodes({"nodes": 1}, {"SLURM_JOB_ID": "5"}) == 1
    assert train_launch.srun_nodes({"nodes": 1}, {}) == 0  # locally, one node is this box
    with pytest.raises(RuntimeError, match=r"^train.nodes: 2 needs executor slurm \(this worker is not a Slurm"):
        train_launch.srun_nodes({"nodes": 2}, {})
    with pytest.raises(RuntimeError, match=r"^train.nodes: 3, but Slurm job 5 holds 2 node\(s\)$"):
        train_launch.srun_nodes({"nodes": 3}, in_job)


FAKE_SRUN = """#!/bin/bash
printf '%s\\n' "$@" > srun.argv
env > srun.env
for i in $(seq 200); do
  if [ -e {stop} ]; then echo '{{"stopped": "stopped by SIGTERM at step 3"}}' > train_result.json; exit 0; fi
  if [ -z "$FAKE_WAIT" ]; then echo '{{"model_path": "/m", "steps": 2}}' > train_result.json; exit 0; fi
  sleep 0.05
done
exit 1
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """scontrol, srun and scancel stand-ins on PATH, inside a pretend two-node job 41."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stop = tmp_path / "scancel.argv"
    scripts = {"scontrol": "#!/bin/bash\n[ \"$*\" = 'show hostnames node[07-08]' ] && printf 'node07\\nnode08\\n'\n",
               "scancel": f"#!/bin/bash\nprintf '%s\\n' \"$@\" > {stop}\n",
               "srun": FAKE_SRUN.format(stop=stop)}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for key, value in {"SLURM_JOB_ID": "41", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "node[07-08]"}.items():
        monkeypatch.setenv(key, value)
    return stop


def test_the_worker_sruns_on_the_first_host_and_reads_rank_0s_result(tmp_path: Path, fake_slurm: Path) -> None:
    ctx = job_context(tmp_path, "train", {"processes": 2, "nodes": 2}, run_id="train-n")
    assert train_launch.run_on_nodes(ctx, 2, 2, cuda=False) == {"model_path": "/m", "steps": 2}
    argv = (ctx.run_dir / "srun.argv").read_text().splitlines()
    assert argv[:5] == ["--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "bash", "-c"]
    assert "--master_addr node07 " in argv[5] and '--node_rank "$SLURM_NODEID"' in argv[5]
    assert "TIX_TRAIN_RANK=1" in (ctx.run_dir / "srun.env").read_text().splitlines()
    assert "2 node(s) x 2 training processes: srun --nodes=2" in (ctx.run_dir / "events.jsonl").read_text()


def test_sigterm_goes_to_the_jobs_steps_not_to_srun(tmp_path: Path, fake_slurm: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """srun kills its step on SIGTERM, so the worker asks Slurm to TERM the steps' tasks instead;
    the ranks save and hand back `stopped`, which ends the run as a stop."""
    monkeypatch.setenv("FAKE_WAIT", "1")
    ctx = job_context(tmp_path, "train", {"processes": 2, "nodes": 2}, run_id="train-t")
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(Stop, match="stopped by SIGTERM at step 3"):
            train_launch.run_on_nodes(ctx, 2, 2, cuda=False)
    finally:
        timer.cancel()
    assert fake_slurm.read_text().splitlines() == ["--signal=TERM", "41"]  # no --full, no --batch: the steps


def test_a_local_daemon_fails_a_multi_node_run_on_one_line(ws: Workspace, monkeypatch) -> None:
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)  # before the daemon starts: its workers inherit its environment
    run = make_run("train", "v", "x", {"model": "m", "method": "sft", "data": "d", "nodes": 2, "gpus": 8,
                                       "distributed": "zero3"}, [], gpus=8)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[run])
        done = wait_state(client, run["id"], {"succeeded", "failed", "cancelled"}, timeout=60)
    assert (done["state"], done["error"]) == (
        "failed", "RuntimeError: train.nodes: 2 needs executor slurm (this worker is not a Slurm job)")
