"""The worker side: `worker` (`python -m engine.jobs.worker RUN_DIR`) and the job kinds it runs.

Each job module exposes `run(ctx) -> dict` and a `VERSION`; a new kind goes here and in
`JOB_MODULES`. Only worker processes import the job modules (never the daemon, the CLI or the
TUI), and nothing here opens the database: jobs write their run folder only.

The returned dict is the run's result (for example `{"model_path": ...}`); it travels in the
final `finished` event, and runs that depend on this one receive it in their resolved spec.
Modules are imported lazily so that a `probe` worker never pays for torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.events import EventWriter, JsonlWriter

#: kind -> module under engine.jobs.
JOB_MODULES: dict[str, str] = {
    "build": "engine.jobs.build",
    "eval": "engine.jobs.eval",
    "train": "engine.jobs.train",
    "datagen": "engine.jobs.datagen",
    "score": "engine.jobs.score",
    "probe": "engine.jobs.probe",
    "analyse": "engine.jobs.analyse",
}

#: Kinds an experiment expands into, whether or not this version can run them yet.
PLANNED_KINDS = ("build", "train", "eval", "analyse")


@dataclass
class JobContext:
    """What a job gets: its resolved parameters, its folders and the event stream."""

    run_id: str
    kind: str
    params: dict[str, Any]
    run_dir: Path
    home: Path
    events: EventWriter
    inputs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    name: str | None = None  # the variant ("base", "sft", ...) this run belongs to
    _samples: JsonlWriter | None = None

    @classmethod
    def from_spec(cls, run_dir: Path, spec: dict[str, Any], events: EventWriter) -> JobContext:
        """The context of the run whose resolved `spec.yaml` is `spec` (the worker and each
        rank of a distributed training build it the same way)."""
        return cls(run_id=spec["run_id"], kind=spec["kind"], params=spec.get("params") or {}, run_dir=run_dir,
                   home=Path(spec.get("home") or run_dir.parent.parent), events=events,
                   inputs=spec.get("inputs") or {}, attempt=int(spec.get("attempt") or 1),
                   name=spec.get("name"))

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def samples(self) -> JsonlWriter:
        """`samples.jsonl`, opened on first use so jobs without samples leave no empty file."""
        if self._samples is None:
            self._samples = JsonlWriter(self.run_dir / "samples.jsonl")
        return self._samples


class Stop(Exception):
    """A job stopped on request (SIGTERM) after saving what lets `tix resume` continue.

    Here rather than in one job's module because both the in-process trainer and the launcher of
    a distributed training raise it, and the worker treats it like any failure it records.
    """


def job_module(kind: str) -> ModuleType:
    """The module implementing `kind`, or a one-line error naming what exists."""
    if kind not in JOB_MODULES:
        known = ", ".join(sorted(JOB_MODULES))
        raise LookupError(f"job kind {kind!r} is not implemented in this version (available: {known})")
    return importlib.import_module(JOB_MODULES[kind])
