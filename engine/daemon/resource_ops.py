"""The `resources` op: each worker's CPU %, resident memory and threads, and the CPU slots.

The TUI's Resources screen (key 6) asks for it every two seconds beside `gpus`. A worker is
measured with its whole process tree (vLLM engines, sandboxed code), since that is what it costs
the box. The daemon reads /proc through psutil in a thread, never on its event loop.

CPU % is as top shows it: 100 % is one core busy, so a worker with four busy threads reads 400 %.
psutil measures it between two looks at the same process, so `WorkerSampler` keeps each process
it has seen; a process seen for the first time is looked at twice, a fifth of a second apart,
so the first answer already says something true instead of 0 %.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import psutil

from engine.daemon.scheduler import Scheduler
from engine.daemon.settings import DaemonSettings
from storage.store import Store

FIRST_LOOK_S = 0.2
"""Seconds between the two looks at a process seen for the first time."""
BRIEF = ("id", "name", "experiment", "kind", "state", "progress_text")


class WorkerSampler:
    """CPU %, RSS and threads of worker process trees, keeping the psutil handles between calls."""

    def __init__(self, first_look: float = FIRST_LOOK_S) -> None:
        self.first_look = first_look
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()

    def sample(self, pids: dict[str, int]) -> dict[str, dict[str, Any]]:
        """{run id: {cpu_percent, rss, threads, processes}} for each worker pid still alive."""
        with self._lock:
            trees = {run_id: self._tree(pid) for run_id, pid in pids.items()}
            fresh = [p for tree in trees.values() for p in tree if p.pid not in self._procs]
            for p in fresh:
                _cpu(p)  # the first look: psutil's first cpu_percent is always 0
            if fresh:
                time.sleep(self.first_look)
            self._procs = {p.pid: p for tree in trees.values() for p in tree}
            return {run_id: figures for run_id, tree in trees.items() if (figures := _figures(tree))}

    def _tree(self, pid: int) -> list[psutil.Process]:
        """The worker and its descendants, reusing the handle of a process seen before (same start)."""
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        return [self._known(p) for p in tree]

    def _known(self, proc: psutil.Process) -> psutil.Process:
        old = self._procs.get(proc.pid)
        return old if old is not None and old == proc else proc  # psutil compares pid and start time


def _cpu(proc: psutil.Process) -> float | None:
    try:
        return proc.cpu_percent(None)
    except psutil.Error:
        return None


def _figures(tree: list[psutil.Process]) -> dict[str, Any] | None:
    """Sums over a process tree; a process that exits meanwhile is left out."""
    cpu, rss, threads, alive = 0.0, 0, 0, 0
    for proc in tree:
        try:
            with proc.oneshot():
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
                threads += proc.num_threads()
        except psutil.Error:
            continue
        alive += 1
    if not alive:
        return None
    return {"cpu_percent": round(cpu, 1), "rss": rss, "threads": threads, "processes": alive}


SAMPLER = WorkerSampler()
"""The daemon's one sampler (one daemon per process)."""


async def resources(scheduler: Scheduler, store: Store, settings: DaemonSettings,
                    sampler: WorkerSampler = SAMPLER) -> dict[str, Any]:
    """The `resources` op's answer.

    Result: cores (os.cpu_count), cpu_slots (the setting), cpu_slots_used, gpus (the scheduler's),
    executor, workers [{id, name, experiment, kind, state, progress_text, pid, gpus, cpu_slot,
    thread_share, cpu_percent, rss (bytes), threads, processes}] (figures None when the worker is not
    on this box: a Slurm job, or a process that has just exited), waiting [{id, name, experiment,
    kind, state, progress_text}] (queued runs, with the scheduler's reason), asked_at.
    """
    active = dict(scheduler.active)
    rows = {r["id"]: r for r in store.runs(f"id IN ({', '.join('?' for _ in active)})", list(active))} \
        if active else {}
    pids = {run_id: pid for run_id, a in active.items() if (pid := local_pid(a, rows.get(run_id)))}
    figures = await asyncio.to_thread(sampler.sample, pids)
    workers = [worker_row(run_id, a, rows.get(run_id) or {}, pids.get(run_id), figures.get(run_id))
               for run_id, a in sorted(active.items())]
    waiting = [{k: r.get(k) for k in BRIEF} for r in store.runs("state = 'queued'")]
    return {"cores": os.cpu_count(), "cpu_slots": settings.cpu_slot_count,
            "cpu_slots_used": sum(1 for a in active.values() if a.cpu_slot and not a.settled),
            "gpus": scheduler.gpu_total, "executor": settings.executor, "workers": workers,
            "waiting": waiting, "asked_at": time.time()}


def local_pid(active: Any, row: dict[str, Any] | None) -> int | None:
    """The worker's pid when it runs on this box (a Slurm job's does not)."""
    if active.executor.name == "slurm":
        return None
    pid = getattr(active.handle, "pid", None) or (row or {}).get("pid")
    return int(pid) if pid else None


def worker_row(run_id: str, active: Any, row: dict[str, Any], pid: int | None,
               figures: dict[str, Any] | None) -> dict[str, Any]:
    empty = {"cpu_percent": None, "rss": None, "threads": None, "processes": None}
    return {**{k: row.get(k) for k in BRIEF}, "id": run_id, "pid": pid, "gpus": list(active.gpus),
            "cpu_slot": bool(active.cpu_slot), "thread_share": active.threads, **(figures or empty)}
