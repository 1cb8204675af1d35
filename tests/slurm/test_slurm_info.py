"""The cluster view against the real one-node Slurm (conftest.py): with a GPU run of tix's running,
the `gpus` op and `tix daemon status` show the partitions gpu (default) and cpu, the node once,
at least 1 of its 2 GPUs used, and the run's job. Another session may share the cluster, so the
checks hold whatever else runs there (its jobs may hold the other GPU)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.daemon.executors.slurm_info import cluster
from tests.conftest import probe, run_state, wait_until

pytestmark = pytest.mark.slurm


def gpu_run(name: str) -> dict[str, Any]:
    run = probe(name, steps=200, sleep=0.2)
    run["gpus_needed"] = 1
    return run


def test_the_gpus_op_and_daemon_status_show_the_cluster_and_tix_job(slurm_ws, slurm_client, tix) -> None:
    run = gpu_run("panel")
    slurm_client.request("submit", experiment={"name": "panel"}, runs=[run])
    started = wait_until(lambda: (r := run_state(slurm_client, run["id"]))["node"] and r, timeout=120, every=0.5)
    info = slurm_client.request("gpus")  # the first ask: sinfo runs now, after the job started
    assert info["source"] == "slurm" and info["error"] is None, info
    parts = {p["name"]: p for p in info["partitions"]}
    assert set(parts) >= {"gpu", "cpu"} and parts["gpu"]["default"] and not parts["cpu"]["default"]
    assert all(parts[p]["avail"] == "up" and parts[p]["nodes"] == 1 and parts[p]["gpus"] == 2 for p in ("gpu", "cpu"))
    assert info["totals"]["nodes"] == 1 and info["totals"]["gpus"] == 2  # the node once, though in two partitions
    assert 1 <= info["totals"]["gpus_used"] <= 2 and info["totals"]["gpus_free"] == 2 - info["totals"]["gpus_used"]
    node = info["nodes"][0]
    assert (node["name"], node["partitions"], node["cpus_total"]) == ("localhost", ["gpu", "cpu"], 4)
    job = next(j for j in info["jobs"] if j["run"] == run["id"])
    assert (job["job_id"], job["node"], job["slurm_state"]) == (started["job_id"], "localhost", "RUNNING")

    status = tix("daemon", "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "workers on slurm" in lines[0]
    gpu = next(line.split() for line in lines if line.startswith("gpu*"))
    assert gpu[:3] == ["gpu*", "up", "1"] and gpu[-1] in ("1/2", "0/2")
    assert any(line.split()[:3] == ["cpu", "up", "1"] for line in lines)
    assert f"cluster: 1 node(s), {info['totals']['gpus_used']} of 2 GPU(s) used" in status.stdout
    mine = next(line.split() for line in lines if line.startswith(run["id"]))
    assert mine == [run["id"], started["job_id"], "running", "localhost"]
    slurm_client.request("cancel", target=run["id"])


def test_sinfo_read_directly_agrees_with_the_cluster(slurm_ws) -> None:
    """`cluster()` outside the daemon: the two partitions, the node in both, no error."""
    found = cluster()
    assert found["error"] is None
    assert [p["name"] for p in found["partitions"]][:2] == ["gpu", "cpu"]
    assert [(n["name"], n["gpus"]) for n in found["nodes"]] == [("localhost", 2)]
