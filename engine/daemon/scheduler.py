"""The scheduler: the daemon's run state machine.

Every tick it (1) asks each executor about its jobs (one batched query), (2) ingests what running
workers wrote, (3) notices workers that died, (4) escalates cancellations from SIGTERM to SIGKILL,
(5) cancels runs whose dependencies failed, and (6) starts queued runs whose dependencies
succeeded: locally on free GPU sets or CPU slots, on Slurm by submitting them (Slurm queues what
does not fit; such a run stays `queued`, with its job id and Slurm's reason, until it starts).
Locally a GPU is free when no run of tix holds it and other users' processes on it (NVML, asked in
a thread by `GpuWatcher`) hold at most `foreign_gpu_mib`; a run that waits for GPUs says why in its
progress text (`waiting: GPU 3 used by alice (pid 4242, 61 GiB)`).
States: queued -> running -> succeeded | failed | cancelled (failed may go back to queued when
the run asks for retries).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.daemon.executors.base import Executor, Handle, JobStatus, Launch, SubmitError, worker_env
from engine.daemon.executors.local import LocalExecutor
from engine.daemon.gpus import (
    MIB,
    GpuProcess,
    GpuSnapshot,
    GpuWatcher,
    blocked_gpus,
    held_bytes,
    waiting_text,
)
from engine.daemon.ingest import EventSummary, ingest_run, ingest_until_drained
from engine.daemon.settings import DaemonSettings
from engine.events import SPEC_FILE, STDERR_FILE, THREADS_FILE, tail_text, write_threads
from engine.workspace import Workspace
from storage.store import TERMINAL_STATES, Store, utcnow

log = logging.getLogger("tix.daemon")


#: progress_text of a run whose worker a signal stopped while its job's fate is not known yet.
INTERRUPTED = "interrupted: waiting for Slurm to requeue or end the job"
#: Columns that point a run at its job; cleared when the run goes back to the queue.
JOB_COLUMNS = {"job_id": None, "node": None, "reason": None}


@dataclass
class Active:
    """A worker this daemon watches, and the resources it holds until it ends."""

    handle: Handle
    executor: Executor
    gpus: list[int] = field(default_factory=list)
    cpu_slot: bool = True
    kill_at: float | None = None
    stored: dict[str, Any] = field(default_factory=dict)
    """The executor's columns (pid or job id, node, reason) as last written to the run's row."""
    running: bool = True
    """The row says `running`; a job waiting in Slurm's queue turns running when it starts."""
    settled: bool = False
    """A final event gave the run its outcome; the job ending afterwards changes nothing."""
    ended_at: float | None = None
    """When the executor first said the job ended without a final event (see `final_wait`)."""
    interrupted: dict[str, Any] | None = None
    """A signal stopped the worker (its `failed` event says `interrupted`) on a backend that may run
    the job again: the event waits for the job's fate (requeued: the run goes on; ended: it fails)."""
    last: JobStatus = field(default_factory=lambda: JobStatus(alive=True, started=False))
    """The executor's previous answer (a time limit shows in the time left before the signal)."""
    threads: int | None = None
    """The CPU-slot worker's share of the cores as last given (its OMP_NUM_THREADS, then `threads`)."""


def make_executor(name: str, settings: DaemonSettings) -> Executor:
    """The executor called `name` (config `executor:`, or the one stored with an adopted run)."""
    if name == "slurm":
        from engine.daemon.executors.slurm import SlurmExecutor

        return SlurmExecutor(settings.slurm)
    return LocalExecutor()


class Scheduler:
    """Owns run state transitions; the server calls `tick`, `submit` and `cancel`."""

    def __init__(self, store: Store, ws: Workspace, settings: DaemonSettings, gpu_ids: list[int]) -> None:
        self.store = store
        self.ws = ws
        self.settings = settings
        self.gpu_ids = gpu_ids
        """The GPU indices this scheduler hands out (all detected, the first N, or the allowlist)."""
        self.active: dict[str, Active] = {}
        self.changed: set[str] = set()
        #: What ingest stored per run since the daemon last looked (for run_events pushes).
        self.ingested: dict[str, EventSummary] = {}
        self.host = socket.gethostname()
        self.executors: dict[str, Executor] = {}
        self.executor = self.executor_named(settings.executor)
        self.gpu_watch: GpuWatcher | None = None
        """NVML's view of the GPUs' processes, refreshed in a thread (local executor with GPUs only)."""
        if self.executor.assigns_gpus and gpu_ids:
            self.gpu_watch = GpuWatcher(settings.gpu_poll)
            self.gpu_watch.start()
        self._worker_pids: dict[int, str] = {}
        self._retired: dict[int, tuple[str, float]] = {}
        self._blocked: dict[int, list[GpuProcess]] | None = None

    @property
    def gpu_total(self) -> int:
        return len(self.gpu_ids)

    def executor_named(self, name: str) -> Executor:
        if name not in self.executors:
            self.executors[name] = make_executor(name, self.settings)
        return self.executors[name]

    def close(self) -> None:
        if self.gpu_watch is not None:
            self.gpu_watch.close()
        for executor in self.executors.values():
            executor.close()

    # -- recovery and status -----------------------------------------------------------------
    def recover(self) -> None:
        """Adopt workers a previous daemon left (they kept going without it): running ones, and
        cluster jobs still waiting in the cluster's queue."""
        for run in self.store.runs("state = 'running' OR (state = 'queued' AND attempt > 0)"):
            executor = self.executor_named(run["executor"] or "local")
            handle = executor.adopt(run) if run["state"] == "running" or run["job_id"] else None
            if handle is None and not retry_waiting(run):
                handle = executor.find_submitted(run)
                if handle is not None:
                    log.info("run %s: adopting job %s, submitted before the last daemon stopped",
                             run["id"], handle.columns())
            if handle is None:
                continue
            gpus = [int(g) for g in (run["gpus"] or "").split(",") if g] if executor.assigns_gpus else []
            active = Active(handle, executor, gpus, cpu_slot=executor.assigns_gpus and not gpus,
                            stored={**handle.columns(), "job_id": run["job_id"], "node": run["node"],
                                    "reason": run["reason"]}, running=run["state"] == "running")
            self.active[run["id"]] = active
            if run["state"] == "running" and run["progress_text"] == INTERRUPTED:
                active.interrupted = self._last_failure(run["id"])  # still waiting for its job's fate
            if run["cancel_requested"]:
                active.kill_at = time.time() + self.settings.cancel_grace

    def busy(self) -> bool:
        return bool(self.active) or bool(self.store.count_runs().get("queued"))

    # -- the tick ----------------------------------------------------------------------------
    def tick(self) -> set[str]:
        """One pass; returns the ids of runs whose row changed."""
        for executor in self.executors.values():
            executor.poll([a.handle for a in self.active.values() if a.executor is executor])
        for run_id in list(self.active):
            self._watch(run_id)
        self._escalate_cancels()
        self._start_runnable()
        self._share_cores()
        changed, self.changed = self.changed, set()
        return changed

    def _watch(self, run_id: str) -> None:
        active = self.active[run_id]
        status = active.executor.status(active.handle)
        summary = self._ingest(run_id, status)
        wrote = summary is not None and bool(summary.lines or summary.sample_lines)
        self._record(run_id, active, status, wrote)
        if summary is not None:
            self._apply(run_id, summary)
            if wrote:
                self.ingested[run_id] = summary
        if active.interrupted is not None:
            self._follow_interrupted(run_id, active, status, summary)
        if not status.alive:
            self._exited(run_id, status)
        active.last = status

    def _ingest(self, run_id: str, status: JobStatus) -> EventSummary | None:
        """Read what the worker wrote; everything left on disk once it ended; nothing if it never ran.

        A job still waiting in a cluster's queue is read too (cheap: nothing new on disk), so that a
        short job shows up as soon as its lines do, not only when the next squeue says RUNNING."""
        if not status.alive and not status.started:
            return None
        run_dir = self.ws.run_dir(run_id)
        if status.alive:
            return ingest_run(self.store, run_id, run_dir)
        return ingest_until_drained(self.store, run_id, run_dir)

    def _record(self, run_id: str, active: Active, status: JobStatus, wrote: bool) -> None:
        """Store what changed of the job (id, node, reason), and `running` once a queued job started
        (the executor says so, or its worker wrote lines)."""
        fields = dict(active.handle.columns())
        if status.state is not None:
            fields.update(node=status.node, reason=reason_column(status))
        fields = {k: v for k, v in fields.items() if k not in active.stored or active.stored[k] != v}
        active.stored.update(fields)
        if (status.started or wrote) and not active.running and not active.settled:
            active.running = True
            fields.update(state="running", started_at=utcnow(), heartbeat_at=utcnow())
        if fields:
            self._update(run_id, **fields)

    def _apply(self, run_id: str, summary: EventSummary) -> None:
        fields: dict[str, Any] = {}
        if summary.heartbeat:
            fields["heartbeat_at"] = utcnow()
        if summary.progress:
            step, total, desc = summary.progress
            fields["progress"] = min(1.0, step / total) if total else None
            fields["progress_text"] = f"{desc} {step}/{total}".strip() if total else f"{desc} {step}".strip()
        if fields:
            self._update(run_id, **fields)
        if summary.final:
            self._finalise(run_id, summary.final)

    def _finalise(self, run_id: str, final: dict[str, Any]) -> None:
        run = self.store.run(run_id)
        active = self.active.get(run_id)
        if active is not None and self._may_come_back(active, final, run):
            active.interrupted = final
            self._update(run_id, progress_text=INTERRUPTED)
            return
        if active is not None:
            active.settled = True
        if run is None or run["state"] != "running":
            return
        if final["type"] == "finished":
            self._update(run_id, state="succeeded", result=final.get("result"), progress=1.0,
                         finished_at=utcnow(), error=None)
        elif run["cancel_requested"]:
            self._update(run_id, state="cancelled", finished_at=utcnow(), error="cancelled")
        else:
            self._fail(run, str(final.get("error") or "failed"))

    def _last_failure(self, run_id: str) -> dict[str, Any]:
        """The run's last `failed` event as ingested (the worker's own words for a later error)."""
        rows = self.store.query_readonly("SELECT payload FROM events WHERE run_id = ? AND type = 'failed' "
                                         "ORDER BY \"offset\" DESC LIMIT 1", params=[run_id])["rows"]
        payload = json.loads(rows[0][0]) if rows else {}
        return {"type": "failed", "interrupted": True, "error": payload.get("error") or "interrupted"}

    @staticmethod
    def _may_come_back(active: Active, final: dict[str, Any], run: dict[str, Any] | None) -> bool:
        """A signal stopped the worker, not tix's cancel, on a backend that may rerun the job."""
        return (active.executor.requeues and final.get("type") == "failed" and bool(final.get("interrupted"))
                and run is not None and run["state"] == "running" and not run["cancel_requested"])

    def _follow_interrupted(self, run_id: str, active: Active, status: JobStatus,
                            summary: EventSummary | None) -> None:
        """The fate of a job whose worker a signal stopped: a new `started` line or the job waiting
        in the queue again means Slurm requeued it (the same attempt goes on); the job ending means
        the attempt failed (and is retried within the run's `retries:`), saying why."""
        restarted = summary is not None and summary.started is not None and summary.final is None
        if restarted or (status.alive and not status.started):
            active.interrupted = None
            log.info("run %s: Slurm requeued job %s", run_id, active.handle.columns().get("job_id"))
            if not restarted:
                active.running = False
                self._update(run_id, state="queued", progress_text="requeued by Slurm")
            return
        if status.alive:
            return
        final, active.interrupted = active.interrupted, None
        active.settled = True
        run = self.store.run(run_id)
        if run is None or run["state"] not in ("running", "queued"):
            return
        if run["cancel_requested"]:
            self._update(run_id, state="cancelled", finished_at=utcnow(), error="cancelled")
            return
        why = active.executor.interruption(active.handle, active.last, status)
        self._fail(run, f"{final.get('error') or 'interrupted'} ({why})")

    def _exited(self, run_id: str, status: JobStatus) -> None:
        """The worker is gone: free its resources and settle a state it did not write."""
        active = self.active[run_id]
        run = self.store.run(run_id)
        if run is None or active.settled or run["state"] in TERMINAL_STATES:
            self.active.pop(run_id, None)
            return
        if self._awaiting_final_line(active, status, run):
            return
        self.active.pop(run_id, None)
        if run["cancel_requested"] or status.cancelled:
            error = "cancelled" if run["cancel_requested"] else f"{status.error} (cancelled outside tix)"
            self._update(run_id, state="cancelled", finished_at=utcnow(), error=error)
        elif not status.started:  # refused by the cluster: its own one-line message, nothing ran
            log.info("run %s: %s", run_id, status.error)
            self._fail(run, status.error or "the worker could not be started")
        else:
            stderr = tail_text(self.ws.run_dir(run_id) / STDERR_FILE, 1500)
            why = "worker died without a final event" + (f" ({status.error})" if status.error else "")
            self._fail(run, why + (f": {stderr}" if stderr else ""))

    @staticmethod
    def _awaiting_final_line(active: Active, status: JobStatus, run: dict[str, Any]) -> bool:
        """True while an ended job's last lines may still be on their way (NFS attribute caches lag
        behind the compute node); bounded by the executor's `final_wait`, 0 for local processes."""
        if not status.started or run["cancel_requested"] or status.cancelled:
            return False
        now = time.time()
        active.ended_at = active.ended_at or now
        return now - active.ended_at < active.executor.final_wait

    def _fail(self, run: dict[str, Any], error: str) -> None:
        if run["attempt"] < 1 + run["max_retries"]:
            self._update(run["id"], state="queued", error=f"attempt {run['attempt']} failed: {error}",
                         pid=None, progress=None, progress_text="retrying", **JOB_COLUMNS)
        else:
            self._update(run["id"], state="failed", error=error, finished_at=utcnow())

    def _escalate_cancels(self) -> None:
        now = time.time()
        for active in self.active.values():
            if active.kill_at is not None and now >= active.kill_at:
                active.executor.kill(active.handle)
                active.kill_at = None

    # -- starting runs -----------------------------------------------------------------------
    def _start_runnable(self) -> None:
        queued = self.store.runs_in(["queued"])
        if not queued:
            return
        self._blocked = None  # foreign processes are looked at once a pass, when a run needs GPUs
        dep_ids = sorted({d for r in queued for d in r["deps"]})
        states = {r["id"]: r for r in queued}
        if dep_ids:
            states.update({r["id"]: r for r in self.store.runs(
                f"id IN ({', '.join('?' for _ in dep_ids)})", dep_ids)})
        for run in queued:  # in creation order, so upstream cancellations cascade in one pass
            if run["id"] in self.active:  # submitted and waiting in the cluster's queue, or a retry
                continue                  # whose previous attempt is still winding down
            verdict = self._deps_verdict(run, states)
            if verdict == "wait":
                self._say_waiting(run, waiting_for_deps(run, states))
                continue
            if verdict != "ok":
                self._update(run["id"], state="cancelled", error=verdict, finished_at=utcnow())
                states[run["id"]]["state"] = "cancelled"
                continue
            gpus = self._allocate(run)
            if gpus is not None:
                self._start(run, gpus, {d: states[d]["result"] or {} for d in run["deps"]})

    @staticmethod
    def _deps_verdict(run: dict[str, Any], states: dict[str, dict[str, Any]]) -> str:
        for dep in run["deps"]:
            if dep not in states:
                return f"unknown dependency {dep}"
            if states[dep]["state"] in ("failed", "cancelled"):
                return f"dependency {dep} {states[dep]['state']}"
            if states[dep]["state"] != "succeeded":
                return "wait"
        return "ok"

    def _allocate(self, run: dict[str, Any]) -> list[int] | None:
        """GPU indices for the run ([] = a CPU slot, or left to the cluster), or None when it must wait."""
        if not self.executor.assigns_gpus:
            return []  # the cluster allocates; what does not fit waits in its queue
        needed = int(run["gpus_needed"] or 0) if self.gpu_ids else 0
        if needed == 0:
            # a settled run's slot is free: its worker only tears down (a second or two with torch
            # loaded, during which the next run can already start); GPUs stay held until exit
            slots = self.settings.cpu_slot_count
            used = sum(1 for a in self.active.values() if a.cpu_slot and not a.settled)
            if used < slots:
                return []
            self._say_waiting(run, f"waiting for a CPU slot ({used} of {slots} in use)")
            return None
        if needed > self.gpu_total:
            where = "the gpus setting allows" if isinstance(self.settings.gpus, list) else "this box has"
            self._update(run["id"], state="failed", finished_at=utcnow(),
                         error=f"needs {needed} GPUs; {where} {self.gpu_total}")
            return None
        busy = {g for a in self.active.values() for g in a.gpus}
        blocked = self._foreign_blocked()
        if blocked is None:
            self._say_waiting(run, "waiting: asking NVML which processes use the GPUs")
            return None
        free = [g for g in self.gpu_ids if g not in busy and g not in blocked]
        if len(free) >= needed:
            return free[:needed]
        foreign = {g: procs for g, procs in blocked.items() if g in self.gpu_ids and g not in busy}
        self._say_waiting(run, waiting_text(foreign, sorted(busy & set(self.gpu_ids))))
        return None

    # -- other users' GPU processes ----------------------------------------------------------
    def _say_waiting(self, run: dict[str, Any], text: str) -> None:
        """The run's progress text says why it waits (`tix status`, the TUI); written when it changes."""
        if run.get("progress_text") != text:
            self._update(run["id"], progress_text=text)
            run["progress_text"] = text

    def _foreign_blocked(self) -> dict[int, list[GpuProcess]] | None:
        """GPUs that other users' processes fill (over `foreign_gpu_mib`), once a scheduling pass;
        {} without NVML; None until the watcher's first answer (so nothing lands on a full GPU at
        the daemon's start)."""
        if self.gpu_watch is None:
            return {}
        snapshot = self.gpu_watch.latest
        if snapshot is None:
            return None
        if self._blocked is None:
            self._blocked = blocked_gpus(snapshot, set(self.tix_pids()), self.settings.foreign_gpu_mib)
        return self._blocked

    def tix_pids(self) -> dict[int, str]:
        """pid -> run id of this daemon's workers, and of workers that ended within a few NVML
        refreshes: the last snapshot may still list a finished worker's process, not another user's."""
        now = time.monotonic()
        current = {pid: run_id for run_id, a in self.active.items()
                   if isinstance(pid := getattr(a.handle, "pid", None), int)}
        for pid in self._worker_pids.keys() - current.keys():
            self._retired[pid] = (self._worker_pids[pid], now)
        self._worker_pids = current
        keep = 3 * self.settings.gpu_poll + 5
        self._retired = {p: (r, t) for p, (r, t) in self._retired.items()
                         if now - t < keep and p not in current}
        return {**{p: r for p, (r, _) in self._retired.items()}, **current}

    def gpu_view(self) -> tuple[GpuSnapshot | None, dict[int, dict[str, Any]]]:
        """For the `gpus` op: the watcher's last snapshot and, per GPU, `processes` [{pid, user, used,
        command, run (the tix run it belongs to, else None)}] (tix's first, then the others by
        memory), `foreign_used` (bytes other users hold) and `blocked` (over `foreign_gpu_mib`)."""
        snapshot = self.gpu_watch.latest if self.gpu_watch is not None else None
        if snapshot is None:
            return None, {}
        owners = self.tix_pids()
        view: dict[int, dict[str, Any]] = {}
        for proc in snapshot.processes:
            run_id = next((owners[p] for p in proc.lineage if p in owners), None)
            gpu = view.setdefault(proc.gpu, {"processes": [], "foreign": []})
            gpu["processes"].append({"pid": proc.pid, "user": proc.user, "used": proc.used,
                                     "command": proc.command, "run": run_id})
            if run_id is None:
                gpu["foreign"].append(proc)
        for index, gpu in view.items():
            gpu["processes"].sort(key=lambda r: (r["run"] is None, -(r["used"] or 0)))
            gpu["foreign_used"] = held_bytes(gpu.pop("foreign"), snapshot.device_used(index))
            gpu["blocked"] = gpu["foreign_used"] > self.settings.foreign_gpu_mib * MIB
        return snapshot, view

    def _start(self, run: dict[str, Any], gpus: list[int], inputs: dict[str, Any]) -> None:
        run_dir = self.ws.run_dir(run["id"])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / THREADS_FILE).unlink(missing_ok=True)  # an earlier attempt's share is not this one's
        attempt = int(run["attempt"]) + 1
        spec = {"run_id": run["id"], "kind": run["kind"], "experiment": run["experiment"],
                "name": run["name"], "attempt": attempt, "home": str(self.ws.home),
                "params": resolve_refs(worker_params(run["params"]), inputs), "inputs": inputs}
        (run_dir / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
        executor = self.executor
        launch = self._launch(run, run_dir, attempt, gpus)
        # the attempt is stored before anything is submitted: a daemon that dies in between leaves a
        # row a new daemon can match with the job it finds (`find_submitted`), never a second job
        self._update(run["id"], attempt=attempt, executor=executor.name)
        try:
            handle = executor.submit(launch)
        except (OSError, SubmitError) as exc:
            self._update(run["id"], state="failed", error=f"could not start worker: {exc}")
            return
        status = executor.status(handle)
        cpu_slot = executor.assigns_gpus and not gpus
        active = Active(handle, executor, gpus, cpu_slot=cpu_slot,
                        stored={**handle.columns(), "node": None, "reason": None}, running=status.started,
                        threads=core_share(self.settings.cpu_slot_count) if cpu_slot else None)
        self.active[run["id"]] = active
        fields: dict[str, Any] = {
            "attempt": attempt, "executor": executor.name, "pid": None, "pid_started": None,
            **JOB_COLUMNS, **active.stored, "host": self.host, "gpus": launch.env.get("CUDA_VISIBLE_DEVICES"),
            "run_dir": str(run_dir), "finished_at": None, "progress": None, "progress_text": None,
            "cancel_requested": False}
        if status.started:
            fields.update(state="running", started_at=utcnow(), heartbeat_at=utcnow())
        self._update(run["id"], **fields)

    def _share_cores(self) -> None:
        """Split this box's cores among the CPU-slot workers still working, as slots fill and empty;
        a training applies its share each step (`threads` in its run folder), so a run left alone
        gets the core an empty slot would idle. Two threads beside a busy neighbour oversubscribe
        (a lab GRPO step: 0.93 s against 0.45 s on one thread), alone they pay (0.29 s against 0.41
        s). A daemon started with OMP_NUM_THREADS keeps every worker at that number."""
        working = [(run_id, a) for run_id, a in self.active.items() if a.cpu_slot and not a.settled]
        share = core_share(len(working))
        if share is None:
            return
        for run_id, active in working:
            if active.threads != share:
                with contextlib.suppress(OSError):  # a run folder gone with its run: nothing to tell
                    write_threads(self.ws.run_dir(run_id), share)
                active.threads = share

    def _launch(self, run: dict[str, Any], run_dir: Path, attempt: int, gpus: list[int]) -> Launch:
        """One attempt for the configured executor: locally the scheduler chose the GPUs; a cluster
        sets CUDA_VISIBLE_DEVICES itself, and a run needing none gets it empty, as locally."""
        needed = int(run["gpus_needed"] or 0)
        if self.executor.assigns_gpus:
            cuda: str | None = ",".join(str(g) for g in gpus)
            needed = len(gpus)
        else:
            cuda = None if needed else ""
        overrides = (run["params"] or {}).get("slurm") or {}
        nodes = (run["params"] or {}).get("nodes")
        env = worker_env(self.ws.home, cuda)
        cpu_slot = self.executor.assigns_gpus and not gpus
        threads = core_share(self.settings.cpu_slot_count) if cpu_slot else None
        if threads is not None:  # a CPU slot's worker starts with one slot's worth of the cores
            env["OMP_NUM_THREADS"] = str(threads)
        return Launch(run["id"], run_dir, attempt, env, needed, overrides, int(nodes) if nodes else None)

    # -- requests ----------------------------------------------------------------------------
    def submit(self, experiment: dict[str, Any] | None, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Queue planned runs; identical runs (same id) are reused, failed ones queued again."""
        if experiment and experiment.get("spec"):
            self.store.upsert_experiment(experiment["name"], experiment.get("path", ""),
                                         experiment["spec"], experiment.get("spec_hash", ""))
        elif experiment:  # runs filed under a name with no file (`tix score --experiment`)
            self.store.ensure_experiment(experiment["name"])
        out = [self._submit_one(plan) for plan in runs]
        if experiment:
            self.store.link_runs(experiment["name"], [plan["id"] for plan in runs])
        return out

    def _submit_one(self, plan: dict[str, Any]) -> dict[str, Any]:
        existing = self.store.run(plan["id"])
        if existing is None:
            self.store.insert_run({**plan, "state": "queued", "created_at": utcnow()})
            self.changed.add(plan["id"])
            return {"id": plan["id"], "state": "queued", "reused": False}
        if existing["state"] in ("failed", "cancelled"):
            self._update(plan["id"], state="queued", error=None, finished_at=None,
                         cancel_requested=False, progress=None, progress_text=None, **JOB_COLUMNS)
            return {"id": plan["id"], "state": "queued", "reused": True}
        return {"id": plan["id"], "state": existing["state"], "reused": True}

    def resume(self, run_id: str, dependants: bool = False) -> tuple[str | None, list[str]]:
        """Queue a failed or cancelled run again; its worker continues from what it recorded.
        `dependants`: also the runs its end took down (`taken_down`). Returns (why not, or None;
        the dependants queued again). A run whose dependency is failed or cancelled is refused:
        queued, the next pass would cancel it again at once."""
        run = self.store.run(run_id)
        if run is None or run["state"] not in ("failed", "cancelled"):
            state = run["state"] if run else "unknown"
            return f"run {run_id} is {state}: only failed or cancelled runs can be resumed", []
        dead = self._dead_dependency(run)
        if dead is not None:
            return (f"run {run_id} depends on {dead['id']}, which is {dead['state']}: resume that one with "
                    f"its dependants (tix resume {dead['id']} --with-dependants)"), []
        again = self.taken_down(run_id) if dependants else []
        for rid in [run_id, *again]:
            self._update(rid, state="queued", error=None, finished_at=None, cancel_requested=False,
                         progress_text="resuming", **JOB_COLUMNS)
        return None, again

    def _dead_dependency(self, run: dict[str, Any]) -> dict[str, Any] | None:
        """A failed or cancelled run that `run` depends on (None when there is none)."""
        if not run["deps"]:
            return None
        deps = self.store.runs(f"id IN ({', '.join('?' for _ in run['deps'])})", run["deps"])
        return next((d for d in deps if d["state"] in TERMINAL_DOWN), None)

    def taken_down(self, run_id: str) -> list[str]:
        """The runs that ended because `run_id` did, nearest first: cancelled or failed with
        `dependency X cancelled/failed` (the scheduler's cascade), downstream of it at any depth."""
        found: dict[str, None] = {}
        frontier = [run_id]
        while frontier:
            rows = self.store.runs(" OR ".join("list_contains(deps, ?)" for _ in frontier), frontier)
            frontier = [r["id"] for r in rows if r["id"] not in found and r["state"] in TERMINAL_DOWN
                        and str(r.get("error") or "").startswith("dependency ")]
            found.update(dict.fromkeys(frontier))
        return list(found)

    def cancel(self, run_ids: list[str]) -> list[str]:
        """Cancel queued runs at once; SIGTERM running ones (and scancel ones waiting in a cluster's
        queue), SIGKILL after the grace period."""
        done = []
        for run_id in run_ids:
            run = self.store.run(run_id)
            if run is None or run["state"] in TERMINAL_STATES:
                continue
            active = self.active.get(run_id)
            if active is not None and not active.settled:
                self._update(run_id, cancel_requested=True)
                active.executor.terminate(active.handle)
                active.kill_at = time.time() + self.settings.cancel_grace
            elif run["state"] == "queued":
                self._update(run_id, state="cancelled", error="cancelled", finished_at=utcnow())
            done.append(run_id)
        return done

    def _update(self, run_id: str, **fields: Any) -> None:
        self.store.update_run(run_id, **fields)
        self.changed.add(run_id)


def waiting_for_deps(run: dict[str, Any], states: dict[str, dict[str, Any]]) -> str:
    """Why a queued run waits on its dependencies: the unfinished ones with their state
    (`waiting for train-1a2b (running)`), never one that already succeeded."""
    pending = [f"{dep} ({states[dep]['state']})" for dep in run["deps"]
               if dep in states and states[dep]["state"] != "succeeded"]
    more = f" and {len(pending) - 2} more" if len(pending) > 2 else ""
    return f"waiting for {', '.join(pending[:2])}{more}"


TERMINAL_DOWN = ("failed", "cancelled")
"""The states a run taken down by its dependency ends in (it can be resumed from them)."""


def worker_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """A run's parameters for its worker: `slurm:` overrides are for the executor only (a job that
    checks its parameters strictly, like build, would refuse them)."""
    return {key: value for key, value in (params or {}).items() if key != "slurm"}


def core_share(workers: int) -> int | None:
    """Each of `workers` CPU-slot workers' share of this box's cores, so that runs sharing the CPU do
    not oversubscribe it: two workers of two threads each on two cores ran a tiny-lab GRPO step 3x
    slower than one thread each. None when the daemon was started with OMP_NUM_THREADS: that wins."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def retry_waiting(run: dict[str, Any]) -> bool:
    """A queued run whose last attempt failed and which waits for its next one (no job to find)."""
    return str(run.get("error") or "").startswith(f"attempt {run['attempt']} failed")


def reason_column(status: JobStatus) -> str | None:
    """The run's `reason`: why its job waits, or how the cluster ended it (`TIMEOUT (TimeLimit)`)."""
    if status.alive or not status.started or status.state is None:
        return status.reason
    return f"{status.state} ({status.reason})" if status.reason else status.state


def resolve_refs(value: Any, inputs: dict[str, dict[str, Any]]) -> Any:
    """Replace `{"from_run": ID, "key": K}` with the result value K of dependency ID."""
    if isinstance(value, dict):
        if set(value) == {"from_run", "key"}:
            return (inputs.get(value["from_run"]) or {}).get(value["key"])
        return {k: resolve_refs(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, inputs) for v in value]
    return value

