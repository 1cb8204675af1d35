"""The scheduler: the daemon's run state machine.

Every tick it (1) ingests what running workers wrote, (2) notices workers that died, (3)
escalates cancellations from SIGTERM to SIGKILL, (4) cancels runs whose dependencies failed,
and (5) starts queued runs whose dependencies succeeded, on free GPU sets or CPU slots.
States: queued -> running -> succeeded | failed | cancelled (failed may go back to queued when
the run asks for retries).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.daemon.executors.local import WorkerHandle, kill, spawn_worker, terminate
from engine.daemon.ingest import EventSummary, ingest_run, ingest_until_drained
from engine.daemon.settings import DaemonSettings
from engine.events import SPEC_FILE, STDERR_FILE, tail_text
from engine.workspace import Workspace
from storage.store import TERMINAL_STATES, Store, utcnow


@dataclass
class Active:
    """A worker this daemon watches, and the resources it holds until its process exits."""

    handle: WorkerHandle
    gpus: list[int] = field(default_factory=list)
    cpu_slot: bool = True
    kill_at: float | None = None


class Scheduler:
    """Owns run state transitions; the server calls `tick`, `submit` and `cancel`."""

    def __init__(self, store: Store, ws: Workspace, settings: DaemonSettings, gpu_total: int) -> None:
        self.store = store
        self.ws = ws
        self.settings = settings
        self.gpu_total = gpu_total
        self.active: dict[str, Active] = {}
        self.changed: set[str] = set()
        #: What ingest stored per run since the daemon last looked (for run_events pushes).
        self.ingested: dict[str, EventSummary] = {}
        self.host = socket.gethostname()

    # -- recovery and status -----------------------------------------------------------------
    def recover(self) -> None:
        """Adopt workers left running by a previous daemon (they kept going without it)."""
        for run in self.store.runs_in(["running"]):
            handle = WorkerHandle(int(run["pid"] or 0), float(run["pid_started"] or 0.0))
            gpus = [int(g) for g in (run["gpus"] or "").split(",") if g]
            self.active[run["id"]] = Active(handle, gpus, cpu_slot=not gpus)
            if run["cancel_requested"]:
                self.active[run["id"]].kill_at = time.time() + self.settings.cancel_grace

    def busy(self) -> bool:
        return bool(self.active) or bool(self.store.count_runs().get("queued"))

    # -- the tick ----------------------------------------------------------------------------
    def tick(self) -> set[str]:
        """One pass; returns the ids of runs whose row changed."""
        for run_id in list(self.active):
            self._watch(run_id)
        self._escalate_cancels()
        self._start_runnable()
        changed, self.changed = self.changed, set()
        return changed

    def _watch(self, run_id: str) -> None:
        active = self.active[run_id]
        alive = active.handle.alive()
        run_dir = self.ws.run_dir(run_id)
        summary = ingest_run(self.store, run_id, run_dir) if alive else ingest_until_drained(
            self.store, run_id, run_dir)
        self._apply(run_id, summary)
        if summary.lines or summary.sample_lines:
            self.ingested[run_id] = summary
        if not alive:
            self._exited(run_id)

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
        if run is None or run["state"] != "running":
            return
        if final["type"] == "finished":
            self._update(run_id, state="succeeded", result=final.get("result"), progress=1.0,
                         finished_at=utcnow(), error=None)
        elif run["cancel_requested"]:
            self._update(run_id, state="cancelled", finished_at=utcnow(), error="cancelled")
        else:
            self._fail(run, str(final.get("error") or "failed"))

    def _exited(self, run_id: str) -> None:
        """The worker process is gone: free its resources and settle a state it did not write."""
        self.active.pop(run_id, None)
        run = self.store.run(run_id)
        if run is None or run["state"] != "running":
            return
        if run["cancel_requested"]:
            self._update(run_id, state="cancelled", finished_at=utcnow(), error="cancelled")
            return
        stderr = tail_text(self.ws.run_dir(run_id) / STDERR_FILE, 1500)
        self._fail(run, "worker died without a final event" + (f": {stderr}" if stderr else ""))

    def _fail(self, run: dict[str, Any], error: str) -> None:
        if run["attempt"] < 1 + run["max_retries"]:
            self._update(run["id"], state="queued", error=f"attempt {run['attempt']} failed: {error}",
                         pid=None, progress=None, progress_text="retrying")
        else:
            self._update(run["id"], state="failed", error=error, finished_at=utcnow())

    def _escalate_cancels(self) -> None:
        now = time.time()
        for active in self.active.values():
            if active.kill_at is not None and now >= active.kill_at:
                kill(active.handle)
                active.kill_at = None

    # -- starting runs -----------------------------------------------------------------------
    def _start_runnable(self) -> None:
        queued = self.store.runs_in(["queued"])
        if not queued:
            return
        dep_ids = sorted({d for r in queued for d in r["deps"]})
        states = {r["id"]: r for r in queued}
        if dep_ids:
            states.update({r["id"]: r for r in self.store.runs(
                f"id IN ({', '.join('?' for _ in dep_ids)})", dep_ids)})
        for run in queued:  # in creation order, so upstream cancellations cascade in one pass
            verdict = self._deps_verdict(run, states)
            if verdict == "wait":
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
        """GPU indices for the run ([] = a CPU slot), or None when it must wait."""
        needed = int(run["gpus_needed"] or 0) if self.gpu_total else 0
        if needed == 0:
            used = sum(1 for a in self.active.values() if a.cpu_slot)
            return [] if used < max(1, self.settings.cpu_slots) else None
        if needed > self.gpu_total:
            self._update(run["id"], state="failed", finished_at=utcnow(),
                         error=f"needs {needed} GPUs; this box has {self.gpu_total}")
            return None
        busy = {g for a in self.active.values() for g in a.gpus}
        free = [g for g in range(self.gpu_total) if g not in busy]
        return free[:needed] if len(free) >= needed else None

    def _start(self, run: dict[str, Any], gpus: list[int], inputs: dict[str, Any]) -> None:
        run_dir = self.ws.run_dir(run["id"])
        run_dir.mkdir(parents=True, exist_ok=True)
        attempt = int(run["attempt"]) + 1
        spec = {"run_id": run["id"], "kind": run["kind"], "experiment": run["experiment"],
                "name": run["name"], "attempt": attempt, "home": str(self.ws.home),
                "params": resolve_refs(run["params"] or {}, inputs), "inputs": inputs}
        (run_dir / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
        cuda = ",".join(str(g) for g in gpus)
        try:
            handle = spawn_worker(run_dir, self.ws.home, cuda, attempt)
        except OSError as exc:
            self._update(run["id"], state="failed", error=f"could not start worker: {exc}")
            return
        self.active[run["id"]] = Active(handle, gpus, cpu_slot=not gpus)
        self._update(run["id"], state="running", attempt=attempt, pid=handle.pid,
                     pid_started=handle.started, host=self.host, gpus=cuda, run_dir=str(run_dir),
                     started_at=utcnow(), heartbeat_at=utcnow(), finished_at=None, progress=None,
                     progress_text=None, cancel_requested=False)

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
                         cancel_requested=False, progress=None, progress_text=None)
            return {"id": plan["id"], "state": "queued", "reused": True}
        return {"id": plan["id"], "state": existing["state"], "reused": True}

    def resume(self, run_id: str) -> str | None:
        """Queue a failed or cancelled run again; its worker continues from what it recorded."""
        run = self.store.run(run_id)
        if run is None or run["state"] not in ("failed", "cancelled"):
            state = run["state"] if run else "unknown"
            return f"run {run_id} is {state}: only failed or cancelled runs can be resumed"
        self._update(run_id, state="queued", error=None, finished_at=None, cancel_requested=False,
                     progress_text="resuming")
        return None

    def cancel(self, run_ids: list[str]) -> list[str]:
        """Cancel queued runs at once; SIGTERM running ones, SIGKILL after the grace period."""
        done = []
        for run_id in run_ids:
            run = self.store.run(run_id)
            if run is None or run["state"] in TERMINAL_STATES:
                continue
            if run["state"] == "queued":
                self._update(run_id, state="cancelled", error="cancelled", finished_at=utcnow())
            elif run_id in self.active:
                self._update(run_id, cancel_requested=True)
                terminate(self.active[run_id].handle)
                self.active[run_id].kill_at = time.time() + self.settings.cancel_grace
            done.append(run_id)
        return done

    def _update(self, run_id: str, **fields: Any) -> None:
        self.store.update_run(run_id, **fields)
        self.changed.add(run_id)


def resolve_refs(value: Any, inputs: dict[str, dict[str, Any]]) -> Any:
    """Replace `{"from_run": ID, "key": K}` with the result value K of dependency ID."""
    if isinstance(value, dict):
        if set(value) == {"from_run", "key"}:
            return (inputs.get(value["from_run"]) or {}).get(value["key"])
        return {k: resolve_refs(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, inputs) for v in value]
    return value

