"""The train job with trl on a real tiny model: SFT and GRPO, events, checkpoints, the final
model, rewards from the evaluation's scorers, and a killed run resumed from its checkpoint."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, job_context, math_train_file, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return math_train_file(tmp_path_factory.mktemp("data") / "math.jsonl", 400)


def events_of(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]


def test_sft_trains_checkpoints_and_saves_a_loadable_model(tmp_path: Path, tiny_model: Path, train_file: Path) -> None:
    from transformers import AutoModelForCausalLM

    from engine.jobs import train

    args = {"max_steps": 8, "per_device_train_batch_size": 8, "learning_rate": 2e-3, "save_steps": 4}
    ctx = job_context(tmp_path, "train", {"model": str(tiny_model), "method": "sft", "data": str(train_file),
                                          "args": args}, run_id="train-sft")
    result = train.run(ctx)
    assert result["steps"] == 8 and result["resumed_from"] is None
    assert (ctx.run_dir / "checkpoint-4").is_dir() and (ctx.run_dir / "checkpoint-8").is_dir()
    final = Path(result["model_path"])
    assert final == tmp_path / "models" / "train-sft"
    AutoModelForCausalLM.from_pretrained(final)
    metrics = [e for e in events_of(ctx.run_dir) if e["type"] == "metric"]
    losses = [m["values"]["loss"] for m in metrics if "loss" in m["values"]]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert {"learning_rate", "grad_norm", "tokens_per_s", "eta_seconds"} <= set().union(*(m["values"] for m in metrics))
    progress = [e for e in events_of(ctx.run_dir) if e["type"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total"] == 8


def test_lora_sft_saves_a_merged_model(tmp_path: Path, tiny_model: Path, train_file: Path) -> None:
    from transformers import AutoModelForCausalLM

    from engine.jobs import train

    params = {"model": str(tiny_model), "method": "sft", "data": str(train_file),
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"},
              "args": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-3}}
    result = train.run(job_context(tmp_path, "train", params, run_id="train-lora"))
    merged = AutoModelForCausalLM.from_pretrained(result["model_path"])
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_grpo_rewards_come_from_the_evaluation_scorers(tmp_path: Path, tiny_model: Path, train_file: Path) -> None:
    from engine.jobs import train

    reward = train.make_reward("math")
    item = json.dumps({"question": "What is 2 + 2?", "answer": "4"})
    completions = [[{"role": "assistant", "content": c}] for c in ["\\boxed{4}", "5", "<think>4", "The answer is $4$."]]
    assert reward(prompts=[None] * 4, completions=completions, item=[item] * 4) == [1.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="unknown reward"):
        train.make_reward("vibes")
    args = {"max_steps": 3, "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8,
            "learning_rate": 1e-5, "save_steps": 3}
    ctx = job_context(tmp_path, "train", {"model": str(tiny_model), "method": "grpo", "data": str(train_file),
                                          "reward": "math", "args": args}, run_id="train-grpo")
    result = train.run(ctx)
    assert result["steps"] == 3 and Path(result["model_path"]).is_dir()
    values = set().union(*(e["values"] for e in events_of(ctx.run_dir) if e["type"] == "metric"))
    assert {"reward", "reward_std", "learning_rate"} <= values


def start_worker(home: Path, run_dir: Path, params: dict) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"run_id": run_dir.name, "kind": "train", "attempt": 1, "home": str(home), "params": params}
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    with (run_dir / "stdout.log").open("ab") as out, (run_dir / "stderr.log").open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "engine.jobs.worker", str(run_dir)], cwd=ROOT,
                                env={**os.environ, "TIX_HOME": str(home)}, stdout=out, stderr=err,
                                start_new_session=True)


def test_killed_training_resumes_from_its_last_checkpoint(tmp_path: Path, tiny_model: Path, train_file: Path) -> None:
    params = {"model": str(tiny_model), "method": "sft", "data": str(train_file),
              "args": {"max_steps": 40, "per_device_train_batch_size": 8, "save_steps": 2, "learning_rate": 1e-3}}
    run_dir = tmp_path / "runs" / "train-resume"
    worker = start_worker(tmp_path, run_dir, params)
    wait_until(lambda: (run_dir / "checkpoint-4" / "trainer_state.json").exists(), timeout=240, every=0.2)
    os.killpg(worker.pid, signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL
    again = start_worker(tmp_path, run_dir, params)
    assert again.wait(timeout=400) == 0
    final = [e for e in events_of(run_dir) if e["type"] == "finished"][-1]["result"]
    assert final["steps"] == 40 and final["resumed_from"].startswith("checkpoint-")
    assert int(final["resumed_from"].split("-")[1]) >= 4
    starts = [e for e in events_of(run_dir) if e["type"] == "log" and "resuming from" in e["message"]]
    assert len(starts) == 1


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path: Path, tiny_model: Path, train_file: Path) -> None:
    params = {"model": str(tiny_model), "method": "sft", "data": str(train_file),
              "args": {"max_steps": 200, "per_device_train_batch_size": 8, "save_steps": 1000}}
    run_dir = tmp_path / "runs" / "train-term"
    worker = start_worker(tmp_path, run_dir, params)
    wait_until(lambda: any(e["type"] == "progress" for e in events_of(run_dir)) if (run_dir / "events.jsonl").exists()
               else False, timeout=240, every=0.2)
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=60) == 1
    failed = events_of(run_dir)[-1]
    assert failed["type"] == "failed" and "stopped by SIGTERM" in failed["error"]
    assert list(run_dir.glob("checkpoint-*/trainer_state.json"))  # saved although save_steps is 1000


def test_two_process_training_has_one_story_and_one_model(tmp_path: Path, tiny_model: Path, train_file: Path) -> None:
    """The distributed path on CPU: two gloo ranks under torch.distributed.run (accelerate runs one
    process without a GPU), rank 0's events only, the result handed back, one saved model."""
    from transformers import AutoModelForCausalLM

    params = {"model": str(tiny_model), "method": "sft", "data": str(train_file), "processes": 2,
              "args": {"max_steps": 4, "per_device_train_batch_size": 4, "save_steps": 2}}
    run_dir = tmp_path / "runs" / "train-ddp"
    worker = start_worker(tmp_path, run_dir, params)
    assert worker.wait(timeout=400) == 0, (run_dir / "events.jsonl").read_text()[-2000:]
    events = events_of(run_dir)
    final = events[-1]
    assert final["type"] == "finished" and final["result"]["steps"] == 4
    assert any(e["type"] == "log" and "2 training processes" in e["message"] for e in events)
    losses = [e["values"]["loss"] for e in events if e["type"] == "metric" and "loss" in e["values"]]
    assert len(losses) == 4  # one line per logging step, not one per rank
    assert sum(e["type"] == "started" for e in events) == 1
    AutoModelForCausalLM.from_pretrained(final["result"]["model_path"])
    assert (run_dir / "checkpoint-4" / "trainer_state.json").exists()
    assert json.loads((run_dir / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4


def rank_pid(run_dir: Path, rank: int) -> int | None:
    """The pid of training rank `rank` of the run in `run_dir` (from /proc), None before it starts."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"engine.jobs.train_rank" in cmdline and str(run_dir).encode() in cmdline \
                and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


def test_a_sigterm_that_reaches_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path, tiny_model: Path,
                                                                           train_file: Path) -> None:
    """A TERM to rank 1 alone (signals reach ranks at different times): both ranks stop after the
    same step and a checkpoint is saved; a rank stopping alone hung the other in its next step."""
    params = {"model": str(tiny_model), "method": "sft", "data": str(train_file), "processes": 2,
              "args": {"max_steps": 1000, "per_device_train_batch_size": 2, "save_steps": 1000}}
    run_dir = tmp_path / "runs" / "train-one-rank"
    worker = start_worker(tmp_path, run_dir, params)
    wait_until(lambda: (run_dir / "events.jsonl").exists() and any(e["type"] == "progress" for e in events_of(run_dir)),
               timeout=300, every=0.2)
    try:
        os.kill(wait_until(lambda: rank_pid(run_dir, 1), timeout=10), signal.SIGTERM)
        assert worker.wait(timeout=120) == 1, (run_dir / "stderr.log").read_text()[-3000:]
    finally:  # hung ranks (the failure this guards against) ignore SIGTERM
        for rank in (0, 1):
            with contextlib.suppress(TypeError, ProcessLookupError):
                os.kill(rank_pid(run_dir, rank), signal.SIGKILL)  # type: ignore[arg-type]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
    failed = events_of(run_dir)[-1]
    assert failed["type"] == "failed" and "stopped by SIGTERM at step" in failed["error"], failed
    step = int(failed["error"].split("at step ")[1].split(";")[0])
    assert json.loads((run_dir / f"checkpoint-{step}" / "trainer_state.json").read_text())["global_step"] == step


def test_launch_commands_and_shipped_configs() -> None:
    """GPU runs go through accelerate with a shipped config, which this accelerate must accept."""
    from accelerate.commands.config.config_args import load_config_from_file

    from engine.jobs import train_launch

    run_dir = Path("/runs/train-x")
    gpu = train_launch.launch_command({"gpus": 8, "distributed": "fsdp"}, run_dir, 8, cuda=True, port=29500)
    assert gpu[1:3] == ["-m", "accelerate.commands.launch"] and gpu[-3:] == ["-m", "engine.jobs.train_rank",
                                                                            str(run_dir)]
    assert gpu[gpu.index("--num_processes") + 1] == "8" and gpu[gpu.index("--config_file") + 1].endswith("fsdp.yaml")
    default = train_launch.launch_command({"gpus": 2}, run_dir, 2, cuda=True, port=1)
    assert default[default.index("--config_file") + 1].endswith("zero3.yaml")
    cpu = train_launch.launch_command({"processes": 2}, run_dir, 2, cuda=False, port=1)
    assert cpu[1:3] == ["-m", "torch.distributed.run"] and cpu[cpu.index("--nproc_per_node") + 1] == "2"
    assert [train_launch.processes(p, devices) for p, devices in (
        ({"gpus": 8}, 8), ({"gpus": 8}, 0), ({"gpus": 8}, 4), ({}, 8), ({"processes": 2}, 0))] == [8, 1, 4, 1, 2]
    with pytest.raises(FileNotFoundError, match="shipped: zero3, fsdp, ddp"):
        train_launch.config_file("/nowhere/x.yaml")
    kinds = {}
    for name in train_launch.DISTRIBUTED:
        config = load_config_from_file(str(train_launch.config_file(name)))
        kinds[name] = (str(config.distributed_type), config.mixed_precision)
    assert kinds == {"zero3": ("DistributedType.DEEPSPEED", "bf16"), "fsdp": ("DistributedType.FSDP", "bf16"),
                     "ddp": ("DistributedType.MULTI_GPU", "bf16")}


def test_final_values_are_the_last_logged_not_trls_mean() -> None:
    from engine.jobs.train import final_values

    history = [{"loss": 2.0, "reward": 0.1, "step": 1}, {"loss": 1.0, "step": 2}, {"reward": 0.5, "step": 3},
               {"train_loss": 1.5, "train_runtime": 9.0}]
    assert final_values(history) == {"loss": 1.0, "reward": 0.5}
    assert final_values([]) == {}


def test_a_cpu_training_follows_the_daemons_share_of_the_cores(tmp_path: Path) -> None:
    import torch

    from engine.events import EventWriter, write_threads
    from engine.jobs import JobContext
    from engine.jobs.train import follow_cores

    events = EventWriter(tmp_path / "events.jsonl")
    ctx = JobContext("train-x", "train", {}, tmp_path, tmp_path, events)
    before = torch.get_num_threads()
    follow = follow_cores(ctx)
    try:
        follow()  # no share given yet: threads unchanged
        assert torch.get_num_threads() == before
        write_threads(tmp_path, 1)
        follow()
        assert torch.get_num_threads() == 1
        write_threads(tmp_path, 2)
        follow()
        assert torch.get_num_threads() == 2
        (tmp_path / "threads").write_text("many\n")  # a torn or odd file changes nothing
        follow()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        events.close()
    logged = (tmp_path / "events.jsonl").read_text()
    assert logged.count("CPU share:") == 2 and "CPU share: 1 thread(s)" in logged
