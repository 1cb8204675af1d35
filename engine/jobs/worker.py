"""The worker: one process per run, `python -m engine.jobs.worker RUN_DIR`.

It reads the resolved spec the daemon wrote (`RUN_DIR/spec.yaml`), runs the job it names, and
reports only through files in its run folder (`environment.json`: the code and library versions it
runs with, engine/runenv.py): `started`, `progress`, `metric`, `heartbeat`,
then `finished` with the job's result or `failed` with the traceback. It never opens the
database, so it keeps going when the daemon dies and a new daemon picks up its lines.
SIGTERM (from `tix cancel`, or Slurm before a time limit, a requeue or a preemption) ends it with
a `failed` event marked `interrupted`, after the job saved what lets a later attempt continue;
under Slurm the `started` event carries the job id and how often Slurm restarted the job.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from engine.events import EVENTS_FILE, SPEC_FILE, EventWriter, Heartbeat
from engine.jobs import JobContext, Stop, job_module
from engine.runenv import record as record_environment


class Terminated(BaseException):
    """Raised by the SIGTERM handler so `finally` blocks and the failed event still run."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated(f"terminated by signal {signum}")


def load_spec(run_dir: Path) -> dict[str, Any]:
    spec = yaml.safe_load((run_dir / SPEC_FILE).read_text())
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"{run_dir / SPEC_FILE}: not a run spec")
    return spec


def run(run_dir: Path) -> int:
    """Run the job of `run_dir`; returns the process exit status."""
    events = EventWriter(run_dir / EVENTS_FILE)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        spec = load_spec(run_dir)
        ctx = JobContext.from_spec(run_dir, spec, events)
        events.emit("started", pid=os.getpid(), attempt=spec.get("attempt"), kind=spec["kind"],
                    cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), **slurm_job())
        if problem := record_environment(run_dir):
            events.log(problem)
        if int(os.environ.get("SLURM_RESTART_COUNT") or 0):
            events.log(f"Slurm restarted job {os.environ.get('SLURM_JOB_ID')} (restart "
                       f"{os.environ['SLURM_RESTART_COUNT']}: requeued, preempted or its node failed); "
                       "continuing from what this run folder holds")
        started = time.monotonic()
        with Heartbeat(events, float(os.environ.get("TIX_HEARTBEAT", "2"))):
            result = job_module(spec["kind"]).run(ctx)
        events.emit("finished", result=result or {}, usage=usage(started))
        return 0
    except (Exception, Terminated) as exc:  # noqa: BLE001 - every failure becomes an event
        events.emit("failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
                    interrupted=isinstance(exc, (Terminated, Stop)))
        traceback.print_exc()
        return 1
    finally:
        events.close()


def slurm_job() -> dict[str, Any]:
    """The Slurm job this worker runs in, for its `started` event (nothing outside Slurm)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return {}
    return {"slurm_job_id": os.environ["SLURM_JOB_ID"],
            "slurm_restarts": int(os.environ.get("SLURM_RESTART_COUNT") or 0)}


def usage(started: float) -> dict[str, float]:
    """Wall time, CPU time and peak memory of this run, so `make bench` can report them per stage.

    Peak RSS is the larger of this process and its largest waited-for child (vLLM engines,
    sandboxed code); Linux reports ru_maxrss in KiB.
    """
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": round(time.monotonic() - started, 2),
            "cpu_s": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 2),
            "peak_rss_mb": round(max(own.ru_maxrss, children.ru_maxrss) / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m engine.jobs.worker RUN_DIR", file=sys.stderr)
        return 2
    return run(Path(args[0]).resolve())


if __name__ == "__main__":
    sys.exit(main())
