"""The real jobs through Slurm (conftest.py's one-node cluster, 2 fake GPUs): a cut-down lab
(build, SFT on a fake GPU, its evaluation, an analysis) gives the database a local daemon gives,
and a training cancelled mid-way ends `cancelled` with a checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.client.connection import Client
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import ROOT, run_state, wait_state, wait_until
from tests.slurm.conftest import job_fields

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TERMINAL = {"succeeded", "failed", "cancelled"}
EXPERIMENT = """\
name: slurm-lab
base:
  model: tiny-lab
  seed: 3
  build: {vocab_size: 512, pretrain_steps: 30, batch_size: 16, corpus_items: 2000}
models:
  sft:
    train:
      method: sft
      data: lab/math-train
      gpus: 1
      args: {max_steps: 4, per_device_train_batch_size: 8, learning_rate: 1.0e-3}
eval:
  suite: lab
  limit: 4
  generation: {max_new_tokens: 8, temperature: 0.0, enable_thinking: false}
analysis:
  pca_shift: {items: 4, max_tokens: 16}
  token_shift: {items: 4}
"""
RESULTS_SQL = """
SELECT r.kind, r.name, s.benchmark, '-' AS analysis, -1 AS layer, s.metric, round(s.value, 6) AS value
FROM scores s JOIN runs r ON r.id = s.run_id
UNION ALL
SELECT 'shift', r.name, coalesce(s.benchmark, s."group", '-'), s.analysis, coalesce(s.layer, -1), s.metric,
       round(s.value, 4)
FROM shift_results s JOIN runs r ON r.id = s.run_id
ORDER BY ALL"""


def cli(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIX_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def lab_results(home: Path) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """The finished lab's scores and shifts, and its runs (kind, name, state, executor)."""
    done = cli(home, "run", str(home / "slurm-lab.yaml"), "--model", "sft", "--wait")  # no base eval
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with Client(Workspace(home)) as client:
        rows = client.request("sql", query=RESULTS_SQL)["rows"]
        runs = client.request("status", experiment="slurm-lab")
    return [tuple(r) for r in rows], runs


@pytest.mark.timeout(900)  # two pipelines of four workers each: about 1 min on a quiet 2-core box
def test_a_cut_down_lab_through_slurm_equals_the_local_one(slurm_ws: Workspace, tmp_path: Path) -> None:
    local = Workspace(tmp_path / "local")
    local.ensure()
    for home in (slurm_ws.home, local.home):
        (home / "slurm-lab.yaml").write_text(EXPERIMENT)
    try:
        on_slurm, slurm_runs = lab_results(slurm_ws.home)
        at_home, local_runs = lab_results(local.home)
    finally:
        cli(local.home, "daemon", "stop", timeout=60)
    assert sorted((r["kind"], r["name"], r["state"], r["executor"]) for r in slurm_runs) == [
        ("analyse", "sft", "succeeded", "slurm"), ("build", "base", "succeeded", "slurm"),
        ("eval", "sft", "succeeded", "slurm"), ("train", "sft", "succeeded", "slurm")]
    assert {r["executor"] for r in local_runs} == {"local"}
    train = next(r for r in slurm_runs if r["kind"] == "train")
    assert job_fields(train["job_id"])["Partition"] == "gpu"  # the GPU run went to the GPU partition
    assert not train["gpus"]  # Slurm chose the GPU, not tix: no local indices shown
    assert len({(r[1], r[2]) for r in on_slurm if r[0] == "eval" and r[5] == "accuracy"}) == 6
    assert any(r[0] == "shift" for r in on_slurm)
    assert on_slurm == at_home


@pytest.mark.timeout(600)
def test_a_training_cancelled_on_slurm_ends_cancelled_with_a_checkpoint(patient_cancel, slurm_ws,
                                                                        slurm_client, tix,
                                                                        tiny_model: Path,
                                                                        tmp_path: Path) -> None:
    data = tmp_path / "math.jsonl"
    data.write_text("".join(f'{{"question": "What is {i} + {i}?", "answer": "{2 * i}"}}\n' for i in range(200)))
    run = make_run("train", "long", "slurm-train", {
        "model": str(tiny_model), "method": "sft", "data": str(data),
        "args": {"max_steps": 2000, "per_device_train_batch_size": 4, "save_steps": 1000}}, [], gpus=1)
    slurm_client.request("submit", experiment=None, runs=[run])
    wait_until(lambda: (run_state(slurm_client, run["id"])["progress"] or 0) > 0, timeout=180)
    cancelled = tix("cancel", run["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    done = wait_state(slurm_client, run["id"], TERMINAL, timeout=120)
    assert done["state"] == "cancelled", done
    checkpoints = list(slurm_ws.run_dir(run["id"]).glob("checkpoint-*/trainer_state.json"))
    assert checkpoints  # saved at the step TERM interrupted, although save_steps is 1000
    events = (slurm_ws.run_dir(run["id"]) / "events.jsonl").read_text()
    assert "stopped by SIGTERM at step" in events
