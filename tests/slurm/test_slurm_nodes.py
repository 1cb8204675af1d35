"""`train.nodes` for real, on the one-node test cluster (conftest.py): a train run with `nodes: 1`
goes through the daemon with executor slurm as a `--nodes=1 --ntasks-per-node=1` job whose worker
srun's one launcher per node (torch.distributed.run with two gloo ranks on CPU: the fake GPUs are
not CUDA devices), and the tiny model it trains is saved; a SIGTERM to the worker alone (Slurm's
`--signal=B:TERM` before a time limit) reaches the ranks through the job's steps and they save a
checkpoint. Several nodes are covered by the generated command only (tests/unit/test_train_nodes.py):
this cluster has one node."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import TINY_BUILD, build_lab_model, math_train_file, run_state, wait_state, wait_until
from tests.slurm.conftest import job_fields

pytestmark = pytest.mark.slurm

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-lab model barely pretrained (about a third of `tiny_model`'s build time): the test
    needs a model that trains and saves, not one that answers."""
    return build_lab_model(tmp_path_factory.mktemp("nodes-home"),
                           {**TINY_BUILD, "pretrain_steps": 2, "corpus_items": 200})


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return math_train_file(tmp_path_factory.mktemp("data") / "math.jsonl", 64)


def events_of(ws: Workspace, run_id: str) -> list[dict]:
    return [json.loads(x) for x in (ws.run_dir(run_id) / "events.jsonl").read_text().splitlines()]


def test_a_one_node_run_trains_through_srun_with_two_processes(slurm_ws, slurm_client, small_model: Path,
                                                               train_file: Path) -> None:
    params = {"model": str(small_model), "method": "sft", "data": str(train_file), "nodes": 1, "processes": 2,
              "args": {"max_steps": 2, "per_device_train_batch_size": 2, "save_steps": 2}}
    run = make_run("train", "nodes1", "nodes", params, [], gpus=0)
    asked = time.time()
    slurm_client.request("submit", experiment=None, runs=[run])
    done = wait_state(slurm_client, run["id"], TERMINAL, timeout=600)
    assert done["state"] == "succeeded", (done, (slurm_ws.run_dir(run["id"]) / "stderr.log").read_text()[-3000:])

    script = (slurm_ws.run_dir(run["id"]) / "job.sh").read_text()
    assert "--nodes=1 --ntasks-per-node=1 --gpus-per-node=0" in script
    job = wait_until(lambda: (f := job_fields(done["job_id"]))["JobState"] == "COMPLETED" and f, timeout=60)
    assert (job["NumNodes"], job["NtasksPerN:B:S:C"][:2], job["Partition"]) == ("1", "1:", "cpu")
    events = events_of(slurm_ws, run["id"])
    launched = [e["message"] for e in events if e["type"] == "log" and "training processes: srun" in e["message"]]
    assert len(launched) == 1, [e for e in events if e["type"] == "log"]
    assert launched[0].startswith("1 node(s) x 2 training processes: srun --nodes=1 --ntasks-per-node=1 "
                                  "--kill-on-bad-exit=1 bash -c ")
    assert ("torch.distributed.run --nnodes 1 --node_rank \"$SLURM_NODEID\" --master_addr localhost "
            in launched[0])  # the first host of the job, expanded by the worker
    assert sum(e["type"] == "started" for e in events) == 1  # rank 0 adds no second story
    losses = [e for e in events if e["type"] == "metric" and "loss" in e["values"]]
    assert len(losses) == 2
    result = done["result"]
    assert result["steps"] == 2 and (slurm_ws.run_dir(run["id"]) / "train_result.json").is_file()  # from rank 0
    model = Path(result["model_path"])
    assert model == slurm_ws.home / "models" / run["id"] and (model / "config.json").is_file()
    assert list(model.glob("*.safetensors"))
    print(f"\nmeasured: submit -> succeeded {time.time() - asked:.1f}s (srun, 2 gloo ranks, 2 steps)")


def test_tix_cancel_of_a_run_on_nodes_ends_cancelled_with_a_checkpoint(patient_cancel, slurm_ws, slurm_client,
                                                                      small_model: Path,
                                                                      train_file: Path) -> None:
    """srun kills its step when it gets SIGTERM itself, so the cancel TERMs the worker alone
    (`scancel --signal=TERM --batch`, as Slurm's `--signal=B:TERM` before a time limit does) and the
    worker forwards it with `scancel --signal=TERM JOB` (the steps, not the batch step where srun runs)."""
    params = {"model": str(small_model), "method": "sft", "data": str(train_file), "nodes": 1, "processes": 2,
              "args": {"max_steps": 1000, "per_device_train_batch_size": 2, "save_steps": 1000}}
    run = make_run("train", "nodes-term", "nodes", params, [], gpus=0)
    slurm_client.request("submit", experiment=None, runs=[run])
    wait_until(lambda: (run_state(slurm_client, run["id"])["progress"] or 0) > 0, timeout=300, every=0.5)
    slurm_client.request("cancel", target=run["id"])
    done = wait_state(slurm_client, run["id"], TERMINAL, timeout=120)
    assert done["state"] == "cancelled", done
    events = (slurm_ws.run_dir(run["id"]) / "events.jsonl").read_text()
    assert "stopped by SIGTERM at step" in events
    assert list(slurm_ws.run_dir(run["id"]).glob("checkpoint-*/trainer_state.json"))  # save_steps is 1000
