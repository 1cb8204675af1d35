"""The slurm executor's parts that need no cluster: settings validation, the sbatch command, reading
squeue/scontrol/sacct answers, the status column, and a daemon on a box without sbatch."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from engine.cli import job_cell
from engine.client.connection import Client
from engine.daemon.executors.base import JobStatus, Launch, SubmitError
from engine.daemon.executors.slurm import (
    SlurmExecutor,
    SlurmHandle,
    first_error_line,
    job_settings,
    job_status,
    parse_scontrol,
    parse_squeue,
    sbatch_argv,
    slurm_seconds,
)
from engine.daemon.scheduler import reason_column, worker_params
from engine.daemon.settings import DaemonSettings, SlurmSettings
from engine.experiments.plan import plan_experiment
from engine.experiments.spec import load_experiment
from engine.workspace import Workspace
from tests.conftest import probe, wait_state

CONFIG = """\
executor: slurm
slurm:
  partition: gpu
  cpu_partition: cpu
  account: lab
  qos: high
  time: "1-00:00:00"
  gpus_per_node: 8
  cpus_per_gpu: 4
  mem_per_gpu: 40G
  constraint: h100
  exclusive: true
  extra_args: [--mail-type=END]
  setup: [module load cuda/12, source ~/venv/bin/activate]
  signal_grace: 120
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> DaemonSettings:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    return DaemonSettings.load(config, env or {})


def test_a_full_slurm_config_loads(tmp_path: Path) -> None:
    settings = load(tmp_path, CONFIG)
    assert settings.executor == "slurm"
    s = settings.slurm
    assert (s.partition, s.cpu_partition, s.time, s.gpus_per_node, s.mem_per_gpu) == ("gpu", "cpu", "1-00:00:00", 8, "40G")
    assert s.exclusive is True and s.extra_args == ["--mail-type=END"] and len(s.setup) == 2
    assert (s.signal_grace, s.final_wait) == (120, 30.0)
    assert load(tmp_path, "idle_timeout: 5\n").executor == "local"


def test_tix_executor_overrides_the_file(tmp_path: Path) -> None:
    assert load(tmp_path, CONFIG, {"TIX_EXECUTOR": "local"}).executor == "local"
    assert load(tmp_path, "", {"TIX_EXECUTOR": "slurm"}).executor == "slurm"


@pytest.mark.parametrize(("text", "message"), [
    ("executor: kubernetes\n", "setting executor must be one of local, slurm, got 'kubernetes'"),
    ("slurm: {partitoin: gpu}\n", "unknown setting 'slurm.partitoin' (known: partition, account"),
    ("slurm: {exclusive: 'yes'}\n", "setting slurm.exclusive expects true or false, got 'yes'"),
    ("slurm: {extra_args: --exclusive}\n", "setting slurm.extra_args expects a list of strings, got '--exclusive'"),
    ("slurm: {setup: [{module: cuda}]}\n", "setting slurm.setup expects a list of strings"),
    ("slurm: {gpus_per_node: eight}\n", "setting slurm.gpus_per_node expects a number, got 'eight'"),
    ("slurm: {signal_grace: -5}\n", "setting slurm.signal_grace must not be negative"),
    ("slurm: {partition: ''}\n", "setting slurm.partition expects a non-empty string"),
    ("slurm: gpu\n", "setting slurm expects a mapping of slurm settings, got 'gpu'"),
])
def test_bad_slurm_settings_are_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        load(tmp_path, text)
    error = str(caught.value)
    assert "\n" not in error and error.startswith(f"{tmp_path / 'config.yaml'}: ") and message in error


def test_a_bad_slurm_setting_stops_the_cli_with_one_line(ws: Workspace, tix) -> None:
    ws.ensure()
    ws.config.write_text("executor: slurm\nslurm: {partitoin: gpu}\n")
    result = tix("status")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown setting 'slurm.partitoin'" in lines[0] and str(ws.config) in lines[0]


def launch(gpus: int, run_dir: Path = Path("/home/u/.tix/runs/train-1")) -> Launch:
    return Launch("train-1", run_dir, 1, {"TIX_HOME": "/home/u/.tix"}, gpus)


def test_sbatch_command_of_a_gpu_run_and_a_cpu_run() -> None:
    s = SlurmSettings.from_values({"partition": "gpu", "cpu_partition": "cpu", "account": "lab", "qos": "high",
                                   "time": "60", "cpus_per_gpu": 4, "mem_per_gpu": "40G", "constraint": "h100",
                                   "exclusive": True, "extra_args": ["--nice=10"]}, "test")
    gpu = sbatch_argv(launch(2), s)
    assert gpu[:2] == ["sbatch", "--parsable"] and gpu[-1] == "--nice=10"
    assert {"--job-name=tix-train-1", "--comment=tix-attempt-1", "--chdir=/home/u/.tix/runs/train-1",
            "--output=/home/u/.tix/runs/train-1/stdout.log", "--error=/home/u/.tix/runs/train-1/stderr.log",
            "--open-mode=append", "--signal=B:TERM@300", "--requeue", "--gpus-per-node=2", "--partition=gpu",
            "--account=lab", "--qos=high", "--time=60", "--cpus-per-gpu=4", "--mem-per-gpu=40G",
            "--constraint=h100", "--exclusive"} == set(gpu[2:-1])
    cpu = sbatch_argv(launch(0), s)
    assert "--gpus-per-node=0" in cpu and "--partition=cpu" in cpu
    assert not any(a.startswith(("--cpus-per-gpu", "--mem-per-gpu")) for a in cpu)
    assert "--partition=gpu" in sbatch_argv(launch(0), SlurmSettings(partition="gpu"))  # no cpu_partition
    odd = sbatch_argv(launch(0, Path("/data/100%/runs/x")), SlurmSettings())
    assert "--output=/data/100%%/runs/x/stdout.log" in odd  # sbatch expands %j and friends


def test_squeue_scontrol_and_sacct_answers_map_to_job_states() -> None:
    found = parse_squeue("11|PENDING|Resources||1:00\n12|RUNNING|None|localhost|1-02:03:04\n"
                         "13|TIMEOUT|TimeLimit|localhost|0:00\n14|CANCELLED|None|localhost|UNLIMITED\n"
                         "15|COMPLETED|None|localhost|NOT_SET\n")
    pending, running, timeout, cancelled, completed = (found[str(i)] for i in range(11, 16))
    assert (pending.alive, pending.started, pending.reason, pending.node) == (True, False, "Resources", None)
    assert (running.alive, running.started, running.reason, running.node) == (True, True, None, "localhost")
    assert running.time_left == 86400 + 2 * 3600 + 3 * 60 + 4
    assert not timeout.alive and timeout.error == "slurm job 13 TIMEOUT, Reason=TimeLimit"
    assert cancelled.cancelled and not completed.cancelled and completed.error == "slurm job 15 COMPLETED"
    assert (reason_column(pending), reason_column(running)) == ("Resources", None)
    assert (reason_column(timeout), reason_column(completed)) == ("TIMEOUT (TimeLimit)", "COMPLETED")
    line = ("JobId=37 JobName=job.sh UserId=root(0) JobState=COMPLETED Reason=None Requeue=1 Restarts=0 "
            "ExitCode=0:0 Partition=cpu NodeList=localhost StdOut=/tmp/x/stdout.log")
    fields = parse_scontrol(line)
    assert (fields["JobState"], fields["NodeList"], fields["ExitCode"]) == ("COMPLETED", "localhost", "0:0")
    assert job_status("9", "CANCELLED by 0", "None", "n1").cancelled  # sacct's wording
    assert job_status("9", "OUT_OF_MEMORY", "OutOfMemory", "n1").error == "slurm job 9 OUT_OF_MEMORY, Reason=OutOfMemory"
    assert first_error_line("sbatch: error: invalid partition specified: nosuch\n"
                            "sbatch: error: Batch job submission failed: Invalid partition name specified\n") \
        == "sbatch: error: invalid partition specified: nosuch"


def test_slurm_durations_and_why_slurm_stopped_a_worker() -> None:
    assert [slurm_seconds(t) for t in ("59:30", "1:00:00", "2-00:00:10", "UNLIMITED", "INVALID", "", "1-x:00")] \
        == [3570, 3600, 172810, None, None, None, None]
    executor = SlurmExecutor(SlurmSettings(signal_grace=300, poll_interval=5))
    try:
        handle = SlurmHandle(job_id="7", grace=120)
        near = JobStatus(alive=True, time_left=150.0)
        far = JobStatus(alive=True, time_left=3600.0)
        ended = JobStatus(alive=False, state="FAILED")
        assert executor.interruption(handle, near, ended).startswith(
            "Slurm's time limit was near (--signal=B:TERM@120; 150 s left")
        assert executor.interruption(handle, far, ended) == \
            "SIGTERM from Slurm or scancel (job 7 then ended FAILED)"
        assert executor.interruption(handle, far, JobStatus(alive=False, state="TIMEOUT")) == \
            "Slurm's time limit (job 7 TIMEOUT)"
        assert executor.interruption(handle, far, JobStatus(alive=False, state="PREEMPTED")) == \
            "Slurm preempted job 7"
        assert "TERM@300" in executor.interruption(SlurmHandle(job_id="8"), near, ended)  # adopted: settings
    finally:
        executor.close()


def test_status_column_says_why_a_cluster_run_waits() -> None:
    assert job_cell({"job_id": "12", "state": "queued", "reason": "Resources"}) == "12 pending (Reason=Resources)"
    assert job_cell({"job_id": "12", "state": "running", "reason": None, "node": "gpu7"}) == "12 on gpu7"
    assert job_cell({"job_id": "12", "state": "failed", "reason": "TIMEOUT (TimeLimit)"}) == "12 TIMEOUT (TimeLimit)"
    assert job_cell({"job_id": None, "state": "running"}) == ""


def test_without_sbatch_a_run_fails_on_one_line_and_the_daemon_goes_on(ws: Workspace, monkeypatch) -> None:
    ws.ensure()
    ws.config.write_text("executor: slurm\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    run = probe("nobatch", steps=1)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[run])
        failed = wait_state(client, run["id"], {"failed"}, timeout=30)
        assert failed["error"] == ("could not submit to Slurm: sbatch not found on PATH "
                                   "(executor slurm needs Slurm's commands)")
        assert client.request("ping")["executor"] == "slurm"
    assert "Traceback" not in ws.log.read_text()


# -- per-experiment `slurm:` overrides ---------------------------------------------------------
EXPERIMENT = """\
name: override
base: {model: tiny-lab}
slurm: {partition: big, time: 60, setup: [module load cuda]}
models:
  s:
    train:
      method: sft
      data: lab/math-train
      slurm: {partition: a100, exclusive: true, extra_args: [--nice=5]}
"""


def test_the_experiment_file_can_override_only_per_run_settings() -> None:
    from engine.daemon.settings import PER_EXPERIMENT
    from engine.experiments.spec import _SLURM, _SLURM_DAEMON

    assert set(_SLURM) == set(PER_EXPERIMENT)
    assert set(PER_EXPERIMENT) | set(_SLURM_DAEMON) == {f.name for f in fields(SlurmSettings)}


def test_overrides_merge_over_the_daemon_settings_later_wins(tmp_path: Path) -> None:
    daemon = SlurmSettings.from_values({"partition": "gpu", "cpu_partition": "cpu", "account": "lab",
                                        "setup": ["source venv"], "extra_args": ["--nice=1"]}, "test")
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT)
    runs = {(r["kind"], r["name"]): r for r in plan_experiment(load_experiment(path))}
    train, build = runs[("train", "s")], runs[("build", "base")]
    s = job_settings(Launch(train["id"], tmp_path, 1, {}, 1, train["params"]["slurm"]), daemon)
    assert (s.partition, s.account, s.time, s.exclusive) == ("a100", "lab", "60", True)
    assert (s.setup, s.extra_args) == (["module load cuda"], ["--nice=5"])  # lists are replaced, not added
    cpu = sbatch_argv(launch := Launch(build["id"], tmp_path, 1, {}, 0, build["params"]["slurm"]),
                      job_settings(launch, daemon))
    assert "--partition=cpu" in cpu and "--time=60" in cpu and "--exclusive" not in cpu  # cpu_partition wins
    assert job_settings(launch, daemon).setup == ["module load cuda"]


def test_a_stored_override_that_is_not_valid_refuses_the_run_on_one_line() -> None:
    for bad, message in [({"gpus_per_node": 2}, "'slurm.gpus_per_node' cannot be set in an experiment file"),
                         ({"exclusive": "yes"}, "setting slurm.exclusive expects true or false")]:
        with pytest.raises(SubmitError) as refused:
            job_settings(Launch("train-1", Path("/r"), 1, {}, 1, bad), SlurmSettings())
        assert str(refused.value).startswith("run train-1: ") and message in str(refused.value)
    assert worker_params({"model": "m", "slurm": {"partition": "a"}}) == {"model": "m"}


def test_check_plan_prints_each_sbatch_line_without_slurm(tix, ws: Workspace, tmp_path: Path,
                                                         monkeypatch) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT)
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch: the lines are only built
    ws.ensure()
    ws.config.write_text("executor: local\n")
    assert "sbatch" not in tix("check", "--plan", str(path)).stdout
    ws.config.write_text(CONFIG)
    for out in (tix("check", "--plan", str(path)), tix("check", "--plan", "--sbatch", str(path))):
        assert out.returncode == 0, out.stderr
        lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in out.stdout.splitlines()
                 if line.startswith(("build-", "train-", "eval-", "analyse-")) and ": sbatch " in line}
        assert len(lines) == 5
        train = next(v for k, v in lines.items() if k.startswith("train-"))
        run_id = next(k for k in lines if k.startswith("train-"))
        assert train.startswith(f"sbatch --parsable --job-name=tix-{run_id} --comment=tix-attempt-1 "
                                f"--chdir={ws.run_dir(run_id)} ")
        assert train.endswith("--gpus-per-node=1 --partition=a100 --account=lab --qos=high --time=60 "
                              "--constraint=h100 --cpus-per-gpu=4 --mem-per-gpu=40G --exclusive --nice=5 "
                              f"{ws.run_dir(run_id)}/job.sh")  # the variant's extra_args replace the daemon's
        build = next(v for k, v in lines.items() if k.startswith("build-"))
        assert build.endswith("--gpus-per-node=0 --partition=cpu --account=lab --qos=high --time=60 "
                              "--constraint=h100 --exclusive --mail-type=END "
                              f"{ws.run_dir(build.split('tix-')[1].split()[0])}/job.sh")
