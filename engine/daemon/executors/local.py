"""Local executor: start a worker detached from every terminal, signal it, and tell if it lives.

Each worker is `python -m engine.jobs.worker RUN_DIR` in its own session (so an SSH hang-up or the
daemon's death does not reach it), with stdout and stderr appended to files in its run folder.
The scheduler chooses its GPUs (CUDA_VISIBLE_DEVICES in the launch's env) and CPU slot.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from engine.daemon.executors.base import JobStatus, Launch
from engine.events import STDERR_FILE, STDOUT_FILE


@dataclass
class WorkerHandle:
    """A worker process; `popen` is set only when this daemon started it (so it can be reaped)."""

    pid: int
    started: float
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        """True while the process runs; guards against pid reuse with its start time."""
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            proc = psutil.Process(self.pid)
            same = abs(proc.create_time() - self.started) < 1.0
            return same and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def columns(self) -> dict[str, Any]:
        """Stored with the run: a later daemon finds the process again by pid and start time."""
        return {"pid": self.pid, "pid_started": self.started}

    def signal(self, sig: int) -> None:
        """Signal the worker's whole process group (it leads its own session)."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class LocalExecutor:
    """Workers as detached processes on this box (the default executor)."""

    name = "local"
    assigns_gpus = True
    final_wait = 0.0
    requeues = False

    def submit(self, launch: Launch) -> WorkerHandle:
        return spawn_worker(launch.run_dir, launch.env, launch.attempt)

    def adopt(self, run: dict[str, Any]) -> WorkerHandle:
        return WorkerHandle(int(run["pid"] or 0), float(run["pid_started"] or 0.0))

    def find_submitted(self, run: dict[str, Any]) -> WorkerHandle | None:
        """A local worker's pid is stored before the daemon answers anyone: nothing to look for."""
        return None

    def interruption(self, handle: WorkerHandle, last: JobStatus, ended: JobStatus) -> str:
        return "stopped by SIGTERM"

    def poll(self, handles: Sequence[WorkerHandle]) -> None:
        """Nothing to batch: `status` asks the kernel about one pid."""

    def status(self, handle: WorkerHandle) -> JobStatus:
        return JobStatus(alive=handle.alive())

    def terminate(self, handle: WorkerHandle) -> None:
        terminate(handle)

    def kill(self, handle: WorkerHandle) -> None:
        kill(handle)

    def close(self) -> None:
        """Workers outlive the daemon; nothing to release."""


def spawn_worker(run_dir: Path, extra_env: dict[str, str], attempt: int = 1) -> WorkerHandle:
    """Start the worker for `run_dir`; returns once the process exists."""
    env = dict(os.environ)
    env.update(extra_env)
    with open(run_dir / STDOUT_FILE, "ab") as out, open(run_dir / STDERR_FILE, "ab") as err:
        mark_attempt(out, attempt)
        mark_attempt(err, attempt)
        popen = subprocess.Popen(
            [sys.executable, "-m", "engine.jobs.worker", str(run_dir)],
            cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True, close_fds=True,
        )
    try:
        started = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        started = 0.0
    return WorkerHandle(popen.pid, started, popen)


def mark_attempt(stream: BinaryIO, attempt: int) -> None:
    """Start a retried or resumed attempt's output with a header line.

    The log files are appended to across attempts (a failure's traceback must survive its
    retry), so without a marker the previous attempt's stderr reads as if it were current.
    """
    if attempt > 1 and stream.tell() > 0:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        stream.write(f"\n──── attempt {attempt} · {stamp} UTC ────\n".encode())
        stream.flush()


def terminate(handle: WorkerHandle) -> None:
    handle.signal(signal.SIGTERM)


def kill(handle: WorkerHandle) -> None:
    handle.signal(signal.SIGKILL)
