"""The shared GPU box, without a GPU: the NVML stand-in (TIX_FAKE_NVML) lists real processes that
the tests start, so the /proc lookups (user, command, lineage) are real; the snapshot, the foreign
process rule, the waiting reason and the `gpus` setting are the daemon's own code."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.daemon import gpus
from engine.daemon.gpus import (
    MIB,
    FakeNvml,
    GpuProcess,
    GpuSnapshot,
    GpuWatcher,
    blocked_gpus,
    foreign_processes,
    held_bytes,
    proc_info,
    take_snapshot,
    waiting_text,
)
from engine.daemon.settings import DaemonSettings

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait(timeout=5)


def sleeper(started: list[subprocess.Popen[bytes]], **kwargs: object) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "300"], **kwargs)  # type: ignore[call-overload]
    started.append(proc)
    return proc


def write_box(path: Path, *gpu_procs: list[tuple[int, float | None]]) -> Path:
    path.write_text(json.dumps({"gpus": [
        {"name": f"Stand-in H100 {i}", "mem_total_mib": 81559, "util": 7, "temperature": 40,
         "processes": [{"pid": pid, "used_mib": mib} for pid, mib in listed]}
        for i, listed in enumerate(gpu_procs)]}))
    return path


def proc(gpu: int, pid: int, gib: float | None, user: str = "alice") -> GpuProcess:
    return GpuProcess(gpu, pid, None if gib is None else int(gib * (1 << 30)), user, "python train.py",
                      frozenset({pid}))


def test_the_stand_in_lists_live_processes_with_their_user_command_and_memory(tmp_path: Path, procs) -> None:
    a, b = sleeper(procs), sleeper(procs)
    box = write_box(tmp_path / "nvml.json", [(a.pid, 61440)], [(b.pid, None), (999_999_999, 5)])
    snap = take_snapshot(FakeNvml(box))
    assert snap.source == "stand-in" and snap.error is None
    assert [d["name"] for d in snap.devices] == ["Stand-in H100 0", "Stand-in H100 1"]
    assert snap.devices[0]["mem_used"] == 61440 * MIB and snap.devices[0]["mem_total"] == 81559 * MIB
    by_pid = {p.pid: p for p in snap.processes}
    assert set(by_pid) == {a.pid, b.pid}  # a pid with no /proc entry has exited: NVML drops it
    assert by_pid[a.pid].used == 61440 * MIB and by_pid[b.pid].used is None
    assert by_pid[a.pid].user == ME and by_pid[a.pid].command == "sleep 300"
    assert by_pid[a.pid].gpu == 0 and by_pid[b.pid].gpu == 1


@pytest.mark.skipif(os.getuid() != 0, reason="starting a process as another user needs root")
def test_a_process_of_another_user_is_named_by_its_login(procs) -> None:
    other = sleeper(procs, user="nobody")
    assert proc_info(other.pid).user == "nobody"


def test_lineage_recognises_a_workers_children_by_parent_and_session(procs) -> None:
    """A worker leads its own session; what it starts (accelerate ranks, vLLM engine cores) is its
    own, even a grandchild, and a process of another session is not."""
    script = "import subprocess, sys; p = subprocess.Popen(['sleep', '300']); print(p.pid, flush=True); p.wait()"
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    procs.append(worker)
    child = int(worker.stdout.readline())  # type: ignore[union-attr]
    try:
        info = proc_info(child)
        assert worker.pid in info.lineage and child in info.lineage
        stranger = sleeper(procs)
        assert worker.pid not in proc_info(stranger.pid).lineage
    finally:
        os.kill(child, 9)


def test_a_pid_without_proc_entry_is_unknown_but_still_counted() -> None:
    info = proc_info(999_999_999)
    assert info.user == "?" and info.command == "" and info.lineage == {999_999_999}


def test_foreign_processes_and_the_memory_limit() -> None:
    snap = GpuSnapshot(0.0, "stand-in", ({"index": 0, "mem_used": 70 << 30}, {"index": 1, "mem_used": 3 << 30}),
                       (proc(0, 10, 2.0), proc(0, 11, 60.0), proc(1, 12, 1.0), proc(1, 13, 1.5, "bob")))
    assert [p.pid for p in foreign_processes(snap, {10})[0]] == [11]  # tix's pid 10 is not foreign
    assert set(blocked_gpus(snap, set(), 2048)) == {0, 1}  # 2.5 GiB on GPU 1 is over 2048 MiB
    assert set(blocked_gpus(snap, {13}, 2048)) == {0}  # 1 GiB left on GPU 1
    assert blocked_gpus(snap, {10, 11, 12, 13}, 2048) == {}
    # memory the driver does not report counts as the GPU's whole used memory (the worst case)
    assert held_bytes([proc(1, 14, None)], 3 << 30) == 3 << 30


def test_the_waiting_reason_names_user_pid_and_memory() -> None:
    assert waiting_text({3: [proc(3, 4242, 61.0)]}, []) == "waiting: GPU 3 used by alice (pid 4242, 61 GiB)"
    text = waiting_text({1: [proc(1, 7, 30.0), proc(1, 8, 2.5, "bob"), proc(1, 9, 0.5, "carol")]}, [0, 2])
    assert text == ("waiting: GPU 1 used by alice (pid 7, 30 GiB), bob (pid 8, 2.5 GiB) and 1 more; "
                    "GPUs 0, 2 held by tix runs")


def test_the_watcher_refreshes_in_its_thread_and_reports_a_broken_answer(tmp_path: Path, procs) -> None:
    a = sleeper(procs)
    box = write_box(tmp_path / "nvml.json", [])
    watcher = GpuWatcher(0.05, lambda: FakeNvml(box))
    watcher.start()
    try:
        deadline = time.time() + 10
        while watcher.latest is None and time.time() < deadline:
            time.sleep(0.02)
        assert watcher.latest is not None and watcher.latest.processes == ()
        write_box(box, [(a.pid, 4096)])
        while not watcher.latest.processes and time.time() < deadline:
            time.sleep(0.02)
        assert [p.pid for p in watcher.latest.processes] == [a.pid]
        box.write_text("{not json")
        while not watcher.latest.error and time.time() < deadline:
            time.sleep(0.02)
        assert "JSONDecodeError" in str(watcher.latest.error)
    finally:
        watcher.close()
    assert not watcher._thread.is_alive()


def test_open_nvml_takes_the_stand_in_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpus.FAKE_NVML_ENV, str(write_box(tmp_path / "nvml.json", [], [], [])))
    assert gpus.gpu_count() == 3 and gpus.schedulable(None) == [0, 1, 2]
    assert gpus.schedulable(2) == [0, 1] and gpus.schedulable([3, 1]) == [1, 3]
    rows, source = gpus.gpu_stats()
    assert source == "stand-in" and [r["index"] for r in rows] == [0, 1, 2]


@pytest.mark.parametrize(("raw", "expected"), [("4", 4), ("0,1,3", [0, 1, 3]), ("3,", [3]), ("", None)])
def test_the_gpus_setting_is_a_count_or_an_allowlist_from_the_environment(raw: str, expected: object) -> None:
    assert DaemonSettings.load(None, {"TIX_GPUS": raw}).gpus == expected


def test_the_gpus_setting_and_the_foreign_limit_in_config_yaml(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("gpus: [0, 1, 2, 3]\nforeign_gpu_mib: 4096\ngpu_poll: 1\n")
    settings = DaemonSettings.load(config, {})
    assert settings.gpus == [0, 1, 2, 3] and settings.foreign_gpu_mib == 4096 and settings.gpu_poll == 1
    assert DaemonSettings.load(None, {}).foreign_gpu_mib == 2048
    assert DaemonSettings.load(None, {"TIX_FOREIGN_GPU_MIB": ""}).foreign_gpu_mib == 2048
    for bad, message in (("gpus: [0, x]", "a number or a list of GPU indices"), ("gpus: [1, 1]", "lists a GPU twice"),
                         ("gpus: [true]", "a number or a list"), ("foreign_gpu_mib: -1", "must not be negative")):
        config.write_text(bad + "\n")
        with pytest.raises(ValueError, match=message):
            DaemonSettings.load(config, {})
