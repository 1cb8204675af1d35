"""Runs that Slurm stops and starts again, on the real test cluster (conftest.py): a requeued job
continues in the same attempt, a job stopped before its time limit is retried and continues, and
a job submitted by a daemon that died before storing its id is adopted, not submitted twice.

The runs are `resumable` probes: they keep their last step in the run folder as a training keeps
its checkpoints (the train job's own resume is tested in tests/unit/test_train_job.py, and a real
training cancelled under Slurm in test_slurm_lab.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import pytest

from engine.client.connection import Client
from engine.daemon.executors.base import Launch, worker_env
from engine.daemon.executors.slurm import job_settings, run_sbatch, sbatch_argv, write_script
from engine.daemon.settings import SlurmSettings
from engine.events import SPEC_FILE
from engine.workspace import Workspace
from storage.store import Store, utcnow
from tests.conftest import probe, run_state, wait_state, wait_until
from tests.slurm.conftest import SLURM_SETTINGS, job_fields, slurm, workspace_jobs

pytestmark = pytest.mark.slurm

TERMINAL = {"succeeded", "failed", "cancelled"}


def events(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (ws.run_dir(run_id) / "events.jsonl").read_text().splitlines()]


def seq_counts(client: Client, run_id: str) -> list[list[int]]:
    return client.request("sql", query=f"SELECT count(*), count(DISTINCT value) FROM metrics "
                                       f"WHERE run_id = '{run_id}' AND name = 'seq'")["rows"]


def test_a_requeued_job_continues_in_the_same_attempt(slurm_ws, slurm_client) -> None:
    run = probe("requeued", steps=40, sleep=0.25, resumable=True)
    slurm_client.request("submit", experiment=None, runs=[run])
    job = wait_until(lambda: (r := run_state(slurm_client, run["id"]))["progress"] and r["job_id"], timeout=60)
    wait_until(lambda: (run_state(slurm_client, run["id"])["progress"] or 0) >= 0.2, timeout=60)
    slurm("scontrol", "requeue", job)
    wait_until(lambda: run_state(slurm_client, run["id"])["progress_text"] == "requeued by Slurm"
               or any(e.get("slurm_restarts") for e in events(slurm_ws, run["id"])), timeout=30)
    done = wait_state(slurm_client, run["id"], TERMINAL, timeout=120)
    assert done["state"] == "succeeded", done
    assert (done["job_id"], done["attempt"]) == (job, 1)  # Slurm ran it again; tix submitted nothing
    assert job_fields(job)["Restarts"] == "1"
    story = events(slurm_ws, run["id"])
    assert [e["type"] for e in story].count("started") == 2
    assert next(e for e in story if e["type"] == "failed")["interrupted"] is True
    logs = [e["message"] for e in story if e["type"] == "log"]
    assert any(f"Slurm restarted job {job} (restart 1" in m for m in logs), logs
    resumed = done["result"]["resumed_from"]
    assert resumed and any(f"resuming from step {resumed}" in m for m in logs)
    assert seq_counts(slurm_client, run["id"]) == [[40, 40]]  # every step once, across both runs


@pytest.mark.timeout(600)  # Slurm's time limit: at least a minute per attempt
def test_a_job_stopped_before_its_time_limit_is_retried_and_continues(slurm_ws, slurm_client) -> None:
    """--time=1 and --signal=B:TERM@30: Slurm's TERM comes 0-30 s early (its limit checks run every
    30 s; measured here 11-29 s after the start), the first attempt stops with its step kept and says
    why, and a retry finishes the rest (a budget of 3, as a retry may be stopped early too)."""
    run = probe("timed", steps=70, sleep=0.5, resumable=True, slurm={"time": "1"})
    run["max_retries"] = 3
    slurm_client.request("submit", experiment=None, runs=[run])
    retrying = wait_until(lambda: (r := run_state(slurm_client, run["id"]))["attempt"] == 2 and r, timeout=150)
    assert retrying["error"].startswith("attempt 1 failed: Terminated: terminated by signal 15 (Slurm's time "
                                        "limit was near (--signal=B:TERM@30;"), retrying["error"]
    done = wait_state(slurm_client, run["id"], TERMINAL, timeout=150)
    assert (done["state"], done["error"]) == ("succeeded", None), done
    failed = [e for e in events(slurm_ws, run["id"]) if e["type"] == "failed"]
    assert len(failed) == done["attempt"] - 1 and all(e["interrupted"] for e in failed)
    starts = slurm_client.request("sql", query=f"SELECT payload FROM events WHERE run_id = '{run['id']}' "
                                               "AND type = 'started' ORDER BY t")["rows"]
    assert [json.loads(p)["attempt"] for (p,) in starts] == list(range(1, done["attempt"] + 1))
    assert 0 < done["result"]["resumed_from"] < 70
    assert seq_counts(slurm_client, run["id"]) == [[70, 70]]
    print(f"\nmeasured: {done['attempt']} attempts, the last resumed from step {done['result']['resumed_from']} of 70")


def test_a_job_submitted_by_a_daemon_that_died_before_storing_its_id_is_adopted(slurm_ws: Workspace) -> None:
    """The daemon stores a run's attempt, then submits, then stores the job id: a daemon killed
    between the last two leaves a row without a job id. Played by hand: the row as that daemon left
    it and the job it submitted, then a new daemon, which must find the job by its name and comment."""
    run = probe("orphan", steps=8, sleep=0.2)
    run_dir = slurm_ws.run_dir(run["id"])
    run_dir.mkdir(parents=True)
    spec = {"run_id": run["id"], "kind": "probe", "experiment": None, "name": run["name"], "attempt": 1,
            "home": str(slurm_ws.home), "params": run["params"], "inputs": {}}
    (run_dir / SPEC_FILE).write_text(json.dumps(spec))
    store = Store.open(slurm_ws.db)  # the daemon is not running: nobody else holds the database
    try:
        store.insert_run({**run, "state": "queued", "created_at": utcnow()})
        store.update_run(run["id"], attempt=1, executor="slurm", run_dir=str(run_dir))
    finally:
        store.close()
    launch = Launch(run["id"], run_dir, 1, worker_env(slurm_ws.home, ""), 0)
    settings = job_settings(launch, SlurmSettings(**SLURM_SETTINGS))
    argv = sbatch_argv(launch, settings)
    job = run_sbatch([*argv, str(write_script(launch, settings, argv, sys.executable))], None)
    with Client(slurm_ws) as client:
        done = wait_state(client, run["id"], TERMINAL, timeout=60)
        assert done["state"] == "succeeded", done
        assert (done["job_id"], done["attempt"]) == (job, 1)
        assert workspace_jobs(slurm_ws, ended_too=True) == [job]  # one job, not a second submission
    assert "adopting job" in slurm_ws.log.read_text()


def test_a_job_stopped_while_no_daemon_ran_is_retried_by_the_next_daemon(slurm_ws: Workspace) -> None:
    """Slurm's TERM (`--batch`, as its `--signal=B:TERM` before a time limit) reaches the worker
    while the daemon is down; the next daemon reads the `interrupted` failure, sees the job ended,
    and retries the run, which continues from its kept step."""
    run = probe("unwatched", steps=60, sleep=0.25, resumable=True)
    run["max_retries"] = 1
    with Client(slurm_ws) as client:
        client.request("submit", experiment=None, runs=[run])
        job = wait_until(lambda: (r := run_state(client, run["id"]))["progress"] and r["job_id"], timeout=60)
    os.kill(int(slurm_ws.lock.read_text()), signal.SIGKILL)
    slurm("scancel", "--signal=TERM", "--batch", job)
    wait_until(lambda: job not in workspace_jobs(slurm_ws), timeout=60)
    with Client(slurm_ws) as client:  # a new daemon
        done = wait_state(client, run["id"], TERMINAL, timeout=120)
        assert (done["state"], done["attempt"]) == ("succeeded", 2), done
        assert 0 < done["result"]["resumed_from"] < 60
        assert seq_counts(client, run["id"]) == [[60, 60]]
