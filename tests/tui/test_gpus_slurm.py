"""The GPU panel (key 6) of a daemon with `executor: slurm`: the cluster's partitions, nodes and
tix's jobs instead of local GPUs. sinfo and squeue are stand-in scripts printing what Slurm prints
(tests/slurm/test_slurm_info.py checks the same panel data against a real cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import NOW, add_run, at
from tui.screens.gpus import GpusScreen, render
from tui.screentext import screen_text

SINFO = """\
a-01|gpu*|up|mix|gpu:a100:4(S:0-1)|gpu:a100:2(IDX:0,2)|32/32/0/64|
a-02|gpu*|up|drain*|gpu:a100:4(S:0-1)|gpu:a100:0(IDX:N/A)|0/0/64/64|
a-01|long|up|mix|gpu:a100:4(S:0-1)|gpu:a100:2(IDX:0,2)|32/32/0/64|
"""


def stand_ins(folder: Path) -> None:
    """`sinfo` printing SINFO and `squeue` saying job 41 runs on a-01."""
    folder.mkdir()
    (folder / "sinfo.txt").write_text(SINFO)
    for name, body in (("sinfo", f"cat {folder}/sinfo.txt"), ("squeue", "echo '41|RUNNING|None|a-01'")):
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)


def slurm_run(ws: Workspace) -> str:
    """A run a previous daemon submitted to Slurm (job 41) and that runs there; this daemon adopts it."""
    plan = make_run("train", "sft", "lab", {"method": "sft"}, [])
    row = {"state": "running", "executor": "slurm", "job_id": "41", "node": "a-01", "gpus_needed": 1,
           "created_at": at(50), "started_at": at(49), "heartbeat_at": NOW, "attempt": 1}
    return add_run(ws, plan, row, lambda files: None, experiment=None)


def test_on_slurm_the_gpu_panel_shows_partitions_nodes_and_tix_jobs(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_ins(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    ws.ensure()
    ws.config.write_text("executor: slurm\nslurm: {poll_interval: 0}\n")
    run_id = slurm_run(ws)

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, GpusScreen) and run_id in screen_text(app),
                    what="tix job listed")
        text = screen_text(app)
        assert "Slurm · 2 partitions · 2 nodes · GPUs 2 free, 2 used of 8 · 1 tix job" in text
        lines = text.splitlines()
        assert any(line.split()[:6] == ["gpu*", "up", "2", "1", "mix,", "1"] and "2/8" in line for line in lines)
        assert any(line.split()[:3] == ["a-02", "gpu", "drain*"] and "0/4" in line for line in lines)
        job = next(line for line in lines if run_id in line)
        assert job.split()[1:4] == ["41", "running", "a-01"] and "lab/sft" in job

    run_app(make_app(ws), scenario, size=(130, 40))


def test_a_failed_sinfo_is_one_red_line_and_the_jobs_still_show() -> None:
    head, body = render({"source": "slurm", "partitions": [], "nodes": [], "error": "sinfo: error: down",
                         "totals": {"nodes": 0, "gpus": 0, "gpus_used": 0, "gpus_free": 0},
                         "jobs": [{"run": "r1", "job_id": "7", "state": "queued", "slurm_state": "PENDING",
                                   "node": None, "reason": "Priority", "experiment": "e", "name": "n"}]},
                        100)
    assert head.plain == " Slurm · 0 partitions · 0 nodes · GPUs 0 free, 0 used of 0 · 1 tix job"
    first = body.renderables[0]
    assert first.plain == "sinfo: error: down" and str(first.style) == "red"
