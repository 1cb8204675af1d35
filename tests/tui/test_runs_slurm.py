"""Runs on a Slurm cluster (`executor: slurm`) in the runs dashboard and the run detail: the node a
job runs on, its job id, and for a job waiting in Slurm's queue why it waits, as the screen shows
them. A previous daemon submitted the jobs; this one adopts them and asks a stand-in `squeue`,
which says job 41 runs on a-01, job 42 waits for Resources and job 43 (requeued) for BeginTime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import NOW, add_run, at
from tui.app import TixApp
from tui.screens.run_detail import RunDetailScreen
from tui.screens.runs import RunsScreen, describe
from tui.screentext import screen_text
from tui.widgets.runs_table import RunsTable

#: What squeue prints for `-o '%i|%T|%r|%N|%L'` (id, state, reason, nodes, time left).
SQUEUE = "41|RUNNING|None|a-01|59:00\n42|PENDING|Resources||1:00:00\n43|PENDING|BeginTime||1:00:00\n"


def stand_in_squeue(folder: Path) -> None:
    folder.mkdir()
    (folder / "squeue.txt").write_text(SQUEUE)
    (folder / "squeue").write_text(f"#!/bin/sh\ncat {folder}/squeue.txt\n")
    (folder / "squeue").chmod(0o755)


def slurm_runs(ws: Workspace) -> dict[str, str]:
    """A running job (41), a pending one Slurm has not given a reason for yet (42: the reason
    arrives with this daemon's first squeue) and a requeued one (43); ids by role."""
    common = {"executor": "slurm", "attempt": 1, "host": "login1", "created_at": at(50)}
    rows = {
        "running": (make_run("train", "sft", "lab", {"method": "sft"}, []),
                    {"state": "running", "job_id": "41", "node": "a-01", "started_at": at(49),
                     "heartbeat_at": NOW, "progress": 0.12, "progress_text": "train 12/100"}),
        "pending": (make_run("eval", "sft-eval", "lab", {"benchmarks": ["arith"]}, []),
                    {"state": "queued", "job_id": "42"}),
        "requeued": (make_run("train", "rl", "lab", {"method": "rl"}, []),
                     {"state": "queued", "job_id": "43", "reason": "BeginTime",
                      "progress_text": "requeued by Slurm"}),
    }
    return {role: add_run(ws, plan, {**common, **row}, lambda files: None, experiment=None)
            for role, (plan, row) in rows.items()}


@pytest.fixture
def cluster(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    stand_in_squeue(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    ws.ensure()
    ws.config.write_text("executor: slurm\nslurm: {poll_interval: 0}\n")
    return slurm_runs(ws)


def row_line(app: TixApp, run_id: str) -> str:
    return next(line for line in screen_text(app).splitlines() if run_id in line)


async def select(pilot: Pilot[Any], run_id: str) -> str:
    """Put the cursor on the run; the two lines under the table, about it."""
    pilot.app.screen.query_one(RunsTable).select(run_id)
    await pilot.pause()
    return "\n".join(screen_text(pilot.app).splitlines()[-3:-1])


def test_the_dashboard_shows_nodes_and_why_a_job_waits(ws: Workspace, cluster: dict[str, str]) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        pending = cluster["pending"]
        await until(pilot, lambda: "(Resources)" in row_line(app, pending), what="squeue's reason pushed")
        header = next(line for line in screen_text(app).splitlines() if line.lstrip().startswith("id"))
        assert header.split()[-2:] == ["node", "time"]  # Slurm chose the GPUs: the column says where
        assert row_line(app, pending).split()[-2:] == ["queued", "(Resources)"]
        running = row_line(app, cluster["running"])
        assert running.split()[-2:] == ["a-01", "49m00s"] and "12%" in running
        assert row_line(app, cluster["requeued"]).split()[-2:] == ["queued", "(BeginTime)"]

        below = await select(pilot, pending)
        assert "slurm job 42" in below and "waiting in Slurm's queue: Resources" in below
        below = await select(pilot, cluster["running"])
        assert "slurm job 41 on a-01" in below
        below = await select(pilot, cluster["requeued"])
        assert "requeued by Slurm · waiting in Slurm's queue: BeginTime" in below

        await pilot.resize_terminal(160, 30)  # room for the whole story in the progress column
        await until(pilot, lambda: "pending: Resources" in row_line(app, pending), what="wide rebuild")
        assert row_line(app, pending).split()[-3:] == ["queued", "pending:", "Resources"]

    run_app(make_app(ws), scenario, size=(80, 24))


def test_run_detail_says_where_the_job_is_and_why_it_waits(ws: Workspace, cluster: dict[str, str]) -> None:
    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await until(pilot, lambda: app.runs[cluster["pending"]]["reason"] == "Resources", what="reason pushed")
        for run_id, first, second in (
                (cluster["pending"], "slurm job 42", "waiting in Slurm's queue: Resources · submitted from login1"),
                (cluster["requeued"], "slurm job 43", "requeued by Slurm · waiting in Slurm's queue: BeginTime · submitted"),
                (cluster["running"], "slurm job 41 on a-01", "train 12/100 · submitted from login1")):
            await select(pilot, run_id)
            await pilot.press("enter")
            await until(pilot, lambda job=first: isinstance(app.screen, RunDetailScreen) and job in screen_text(app),
                        what="detail open")
            head = screen_text(app).splitlines()[1:3]
            assert head[0].startswith(f" {run_id}") and first in head[0], head
            assert head[1].lstrip().startswith(second), head
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="back on the runs")

    run_app(make_app(ws), scenario, size=(100, 30))


def test_a_job_slurm_ended_says_how_and_a_local_run_names_no_job() -> None:
    """The selected run's lines (the same helpers fill the detail's head)."""
    ended = {"id": "train-1", "experiment": "lab", "name": "sft", "kind": "train", "state": "failed",
             "executor": "slurm", "job_id": "12", "node": "node7", "reason": "TIMEOUT (TimeLimit)",
             "error": "slurm job 12 TIMEOUT, Reason=TimeLimit"}
    lines = describe(ended, 0).plain.splitlines()
    assert lines == ["train-1  lab/sft  train  slurm job 12 on node7, ended TIMEOUT (TimeLimit)",
                     "slurm job 12 TIMEOUT, Reason=TimeLimit"]
    local = {**ended, "executor": "local", "job_id": None, "node": None, "reason": None, "state": "queued",
             "error": None}
    assert describe(local, 0).plain.splitlines() == ["train-1  lab/sft  train"]
