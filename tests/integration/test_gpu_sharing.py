"""A shared GPU box through the real daemon, on a CPU box: NVML's stand-in (TIX_FAKE_NVML, a JSON
file the test edits while the daemon runs) lists `sleep` processes the test starts as other users'
GPU jobs, so the daemon's /proc lookups are real. The scheduler's decisions, the waiting reason,
the `gpus` op and `tix daemon status` are the daemon's own; only NVML is replaced.
The same scenario on a real GPU, with a process that holds CUDA memory: bench/device_check.sh."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.client.connection import Client
from engine.workspace import Workspace
from tests.conftest import probe, run_state, wait_state, wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}
OTHER = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
"""The user of the 'other user's' processes: `nobody` where the tests may start one as such."""


class FakeBox:
    """GPUs as the NVML stand-in reads them, and the 'other users' processes' the test started."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self.gpus: list[dict[str, Any]] = [{"name": "NVIDIA H100 80GB HBM3", "mem_total_mib": 81559, "util": 0,
                                            "temperature": 35, "processes": []} for _ in range(count)]
        self.started: list[subprocess.Popen[bytes]] = []
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"gpus": self.gpus}))
        tmp.replace(self.path)  # whole: the daemon's thread never reads half a file

    def foreign(self, gpu: int, mib: float) -> subprocess.Popen[bytes]:
        """Another user's job holding `mib` MiB on `gpu` (a real process, so /proc knows it)."""
        kwargs: dict[str, Any] = {"user": OTHER} if os.getuid() == 0 else {}
        proc = subprocess.Popen(["sleep", "600"], **kwargs)
        self.started.append(proc)
        self.list_pid(gpu, proc.pid, mib)
        return proc

    def list_pid(self, gpu: int, pid: int, mib: float) -> None:
        self.gpus[gpu]["processes"].append({"pid": pid, "used_mib": mib})
        self.write()

    def stop(self) -> None:
        for proc in self.started:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def box(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBox]:
    """Two stand-in GPUs, detected (no TIX_GPUS), asked about every 0.1 s."""
    fake = FakeBox(tmp_path / "nvml.json", 2)
    monkeypatch.setenv("TIX_FAKE_NVML", str(fake.path))
    monkeypatch.delenv("TIX_GPUS")
    monkeypatch.setenv("TIX_GPU_POLL", "0.1")
    yield fake
    fake.stop()


def gpu_probe(name: str, **params: Any) -> dict[str, Any]:
    run = probe(name, **params)
    run["gpus_needed"] = 1
    return run


def test_a_gpu_another_user_fills_is_not_handed_out_until_the_process_exits(ws: Workspace, box: FakeBox,
                                                                           tix) -> None:
    alice = box.foreign(0, 62464)  # 61 GiB on GPU 0
    first, second = gpu_probe("first", steps=200, sleep=0.05), gpu_probe("second", steps=1)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[first])
        assert wait_state(client, first["id"], {"running"})["gpus"] == "1"  # GPU 0 is taken
        client.request("submit", experiment=None, runs=[second])
        waiting = wait_until(lambda: (r := run_state(client, second["id"]))["progress_text"] and r)
        assert waiting["state"] == "queued"
        assert waiting["progress_text"] == (f"waiting: GPU 0 used by {OTHER} (pid {alice.pid}, 61 GiB); "
                                            "GPU 1 held by tix runs")
        listed = tix("status").stdout
        line = next(line for line in listed.splitlines() if line.startswith(second["id"]))
        assert line.split()[4:9] == ["queued", "waiting:", "GPU", "0", "used"]  # `tix status` says why
        assert f"{OTHER} (pid {alice.pid}, 61 GiB)" in line
        alice.kill()  # the other job ends: NVML no longer lists it, and the run starts on its GPU
        alice.wait(timeout=5)
        started = wait_state(client, second["id"], {"running", "succeeded"})
        assert started["gpus"] == "0" and run_state(client, first["id"])["state"] == "running"
        done = wait_state(client, second["id"], TERMINAL)
        assert done["state"] == "succeeded" and done["result"]["cuda_visible_devices"] == "0"
        assert done["progress_text"] is None or not done["progress_text"].startswith("waiting")
        client.request("cancel", target=first["id"])
        wait_state(client, first["id"], TERMINAL)


def test_a_running_run_is_not_disturbed_small_use_is_allowed_and_the_allowlist_holds(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gpus: 1,2` on a 3-GPU box: GPU 0 is never used. 1 GiB of another user's on GPU 1 is under
    the 2048 MiB limit; 70 GiB arriving there later leaves the running run alone and sends the
    next run to GPU 2."""
    box = FakeBox(tmp_path / "nvml.json", 3)
    monkeypatch.setenv("TIX_FAKE_NVML", str(box.path))
    monkeypatch.setenv("TIX_GPUS", "1,2")
    monkeypatch.setenv("TIX_GPU_POLL", "0.1")
    try:
        box.foreign(1, 1024)
        runs = [gpu_probe("holds", steps=40, sleep=0.05), gpu_probe("next", steps=40, sleep=0.05)]
        with Client(ws) as client:
            client.request("submit", experiment=None, runs=runs[:1])
            assert wait_state(client, runs[0]["id"], {"running"})["gpus"] == "1"
            big = box.foreign(1, 71680)
            gpus = wait_until(lambda: (g := client.request("gpus")["gpus"]) and g[1]["blocked"] and g)
            assert [g["index"] for g in gpus] == [0, 1, 2] and [g["scheduled"] for g in gpus] == [False, True, True]
            client.request("submit", experiment=None, runs=runs[1:])
            assert wait_state(client, runs[1]["id"], {"running", "succeeded"})["gpus"] == "2"
            done = [wait_state(client, r["id"], TERMINAL) for r in runs]
            assert [r["state"] for r in done] == ["succeeded", "succeeded"]
            assert done[0]["result"]["steps"] == 40 and big.poll() is None
    finally:
        box.stop()


def test_the_gpus_op_and_daemon_status_list_tix_runs_then_other_users(ws: Workspace, box: FakeBox, tix) -> None:
    """The worker's own pid on GPU 0 is tix's run (found through its lineage); the rest are others'."""
    run = gpu_probe("lister", steps=600, sleep=0.05)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[run])
        pid = wait_until(lambda: run_state(client, run["id"])["pid"])
        box.list_pid(0, pid, 3072)
        bob = box.foreign(0, 512)
        alice = box.foreign(1, 40960)
        # the stand-in's file is rewritten once per process listed: wait for a poll that saw all three
        gpus = wait_until(lambda: (g := client.request("gpus")) and len(g["gpus"][0]["processes"]) == 2
                          and len(g["gpus"][1]["processes"]) == 1 and g)
        assert gpus["source"] == "stand-in" and gpus["foreign_gpu_mib"] == 2048 and gpus["processes_age"] < 5
        zero, one = gpus["gpus"]
        assert [(p["pid"], p["run"], p["used"]) for p in zero["processes"]] == [
            (pid, run["id"], 3072 << 20), (bob.pid, None, 512 << 20)]
        assert zero["processes"][1]["user"] == OTHER and zero["processes"][1]["command"] == "sleep 600"
        assert zero["runs"][0]["pid"] == pid and zero["foreign_used"] == 512 << 20 and not zero["blocked"]
        assert one["blocked"] and one["foreign_used"] == 40960 << 20 and one["runs"] == []
        status = tix("daemon", "status")
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        row = next(i for i, line in enumerate(lines) if line.startswith("0 ") and "NVIDIA H100" in line)
        assert lines[row + 1].split()[:4] == [str(pid), "tix", "3072", "MiB"] and run["id"] in lines[row + 1]
        assert lines[row + 2].split() == [str(bob.pid), OTHER, "512", "MiB", "sleep", "600"]
        assert next(line for line in lines if str(alice.pid) in line).split()[1:4] == [OTHER, "40960", "MiB"]
        assert "not handed out: GPU 1 (other users hold more than foreign_gpu_mib = 2048 MiB)" in status.stdout
        as_json = json.loads(tix("daemon", "status", "--json").stdout)
        assert as_json["gpus"] == 2 and len(as_json["gpu_processes"]["gpus"]) == 2
        client.request("cancel", target=run["id"])
        wait_state(client, run["id"], TERMINAL)
