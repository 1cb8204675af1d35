"""Fixtures for the Slurm tests: one throw-away one-node Slurm per session (tests/slurm/cluster.sh,
2 fake GPUs, partitions `gpu` and `cpu`) and a workspace whose daemon submits its runs there.

The cluster is real (slurmctld, slurmd, munged started from nothing under a tmp folder, torn
down by pid at the end); the tests are skipped only when Slurm's binaries are not installed
(tests/slurm/install.sh installs them; CI runs it first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.client.connection import Client
from engine.workspace import Workspace

CLUSTER_SH = Path(__file__).with_name("cluster.sh")
BINARIES = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "slurmctld", "slurmd", "munged")
#: The daemon settings of every Slurm test; a test may override `slurm:` keys (`slurm_config`).
SLURM_SETTINGS: dict[str, Any] = {"partition": "gpu", "cpu_partition": "cpu", "final_wait": 2,
                                  "signal_grace": 30, "poll_interval": 0}


def missing_binaries() -> list[str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [b for b in BINARIES if shutil.which(b, path=path) is None]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running one-node cluster for the whole session; yields its slurm.conf. With
    TIX_TEST_SLURM_CONF set, the cluster of that slurm.conf (started by cluster.sh) is used and left
    running: several test sessions can then share one cluster (two cannot run side by side, they
    share the Slurm cgroup tree)."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm is not installed (no {', '.join(missing)}); run tests/slurm/install.sh")
    if os.environ.get("TIX_TEST_SLURM_CONF"):
        yield Path(os.environ["TIX_TEST_SLURM_CONF"])
        return
    folder = tmp_path_factory.mktemp("slurm-cluster")
    started = subprocess.run([str(CLUSTER_SH), "start", str(folder)], capture_output=True, text=True,
                             timeout=120)
    if started.returncode != 0:
        pytest.fail(f"tests/slurm/cluster.sh start failed:\n{started.stderr[-4000:]}")
    try:
        yield folder / "slurm.conf"
    finally:
        subprocess.run([str(CLUSTER_SH), "stop", str(folder)], capture_output=True, timeout=120)


@pytest.fixture
def slurm_ws(ws: Workspace, slurm_cluster: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """The `ws` workspace with `executor: slurm` in its config.yaml; the daemon (started later by
    the test's first client) inherits SLURM_CONF. Afterwards every job of this workspace still in
    the cluster is killed and the test waits until none is completing (a completing job holds back
    new ones); other sessions' jobs on a shared cluster are left alone."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster))
    slurm_config(ws)
    yield ws
    jobs = workspace_jobs(ws)
    if jobs:
        subprocess.run(["scancel", "--signal=KILL", "--full", *jobs], capture_output=True, timeout=30)
        subprocess.run(["scancel", *jobs], capture_output=True, timeout=30)
    deadline = time.time() + 30
    while workspace_jobs(ws) and time.time() < deadline:
        time.sleep(0.2)


def workspace_jobs(ws: Workspace, ended_too: bool = False) -> list[str]:
    """Ids of the cluster's jobs whose folder is in this workspace: waiting, running or completing
    ones, and with `ended_too` those that ended within MinJobAge as well."""
    states = ["-t", "all"] if ended_too else []
    out = slurm("squeue", "-h", *states, "-o", "%i|%Z")
    rows = [line.split("|", 1) for line in out.splitlines() if "|" in line]
    return [job for job, folder in rows if folder.startswith(str(ws.home))]


def slurm_config(ws: Workspace, **slurm_settings: Any) -> None:
    """Write the workspace's config.yaml: executor slurm, SLURM_SETTINGS updated by the arguments."""
    ws.ensure()
    ws.config.write_text(yaml.safe_dump({"executor": "slurm", "slurm": {**SLURM_SETTINGS, **slurm_settings}}))


def slurm(*argv: str) -> str:
    """A Slurm client command against the test cluster (SLURM_CONF is in the environment)."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=True).stdout


def job_fields(job_id: str) -> dict[str, str]:
    """`scontrol show job -o ID` as a dict."""
    out = slurm("scontrol", "show", "job", "-o", job_id)
    return dict(token.split("=", 1) for token in out.split() if "=" in token)


@pytest.fixture
def slurm_client(slurm_ws: Workspace) -> Iterator[Client]:
    """A client of the Slurm workspace's daemon (started here, after the config was written)."""
    with Client(slurm_ws) as client:
        yield client
