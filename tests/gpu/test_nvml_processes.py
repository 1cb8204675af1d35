"""Real NVML on a CUDA box: a process holding GPU memory is in the daemon's process list (the
watcher's snapshot) with its memory, user and command, and the scheduler's rule calls it foreign.
Skipped without CUDA; the same code runs on CPU against the NVML stand-in (tests/unit and
tests/integration test_gpu_sharing.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from engine.daemon.gpus import GpuWatcher, RealNvml, blocked_gpus, proc_info  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
HOLD = ("import sys, torch; x = torch.empty(1536 << 20, dtype=torch.uint8, device='cuda'); "
        "torch.cuda.synchronize(); print('ready', flush=True); sys.stdin.read()")


def test_nvml_lists_a_process_holding_gpu_memory_and_the_rule_blocks_its_gpu() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    watcher = GpuWatcher(0.2, RealNvml.open)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        watcher.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            snap = watcher.latest
            if snap is not None and any(p.gpu == 0 and (p.used or 0) >= 1536 << 20 for p in snap.processes):
                break
            time.sleep(0.1)
        assert snap is not None and snap.source == "nvml" and snap.error is None, snap
        on_zero = [p for p in snap.processes if p.gpu == 0]
        big = [p for p in on_zero if (p.used or 0) >= 1536 << 20]
        assert big, on_zero
        mine = [p for p in on_zero if p.pid == holder.pid]
        if mine:  # same PID namespace as the driver: user and command from /proc
            assert mine[0].user == proc_info(os.getpid()).user and "torch.empty" in mine[0].command
        assert 0 in blocked_gpus(snap, {os.getpid()}, 1024)  # not tix's: over 1 GiB blocks GPU 0
        assert 0 not in blocked_gpus(snap, {p.pid for p in on_zero}, 1024)  # tix's own: never blocks
    finally:
        watcher.close()
        holder.kill()
        holder.wait(timeout=10)
