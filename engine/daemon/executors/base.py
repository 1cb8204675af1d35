"""The executor interface: what the scheduler needs from whatever starts a run's worker.

The scheduler owns run states; an executor only starts one attempt of a run (`submit`), says
whether it still lives and what the backend calls its state (`status`, after one batched `poll`
per tick), stops it (`terminate`, then `kill` after the cancel grace) and, after a daemon restart,
rebuilds its handle from the columns the scheduler stored with the run (`adopt`). Every executor
runs the same worker command, so the run folder contract is the same whatever runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Launch:
    """One attempt of a run, as an executor needs it."""

    run_id: str
    run_dir: Path
    attempt: int
    env: dict[str, str]
    """Set for the worker on top of the daemon's own environment (TIX_HOME, CUDA_VISIBLE_DEVICES...)."""
    gpus: int
    """GPUs the run needs; the local executor gets the chosen devices in `env` instead."""
    slurm: dict[str, Any] = field(default_factory=dict)
    """The run's `slurm:` overrides from its experiment file (top level, then its variant's `train:`);
    the Slurm executor puts them over its settings, the local executor has nothing to apply them to."""
    nodes: int | None = None
    """`train.nodes`: the Slurm job holds that many nodes (`gpus` on each) and the worker starts one
    launcher per node with srun; None: one node, as every other run. The local executor ignores it
    (the worker itself refuses more than one node outside Slurm)."""


@dataclass(frozen=True)
class JobStatus:
    """What an executor knows about one attempt right now."""

    alive: bool
    """The worker may still write its run folder (being submitted, waiting or running)."""
    started: bool = True
    """The worker runs or ran; False while submitted to a queue and waiting there."""
    state: str | None = None
    """The backend's own word (Slurm: PENDING, RUNNING, TIMEOUT...); None for local processes."""
    reason: str | None = None
    """Why it waits, or how the backend ended it (Slurm's Reason: Resources, TimeLimit...)."""
    node: str | None = None
    error: str | None = None
    """One line for the run's error: why it could not start, or what the backend says of its end."""
    cancelled: bool = False
    """Ended by a cancel that did not come from tix (someone ran scancel)."""
    time_left: float | None = None
    """Seconds until the backend's time limit when it was asked (None: no limit, or not known)."""


class Handle(Protocol):
    """An executor's reference to one attempt; `columns` are stored with the run to adopt it later."""

    def columns(self) -> dict[str, Any]: ...


class Executor(Protocol):
    """Starts, watches and stops workers; see the module docstring for the life cycle."""

    name: str
    """Stored in runs.executor, so a later daemon adopts the run with the same executor."""
    assigns_gpus: bool
    """True when the scheduler picks GPU indices and CPU slots itself (local); False when the
    backend allocates them (Slurm queues what does not fit)."""
    final_wait: float
    """Seconds to wait for a final event line after the job ended without one (NFS lag)."""
    requeues: bool
    """The backend may run the same job again after a signal stopped its worker (Slurm requeue,
    preemption, node failure): a worker's `interrupted` failure then waits for the job's fate."""

    def submit(self, launch: Launch) -> Handle: ...

    def adopt(self, run: dict[str, Any]) -> Handle: ...

    def find_submitted(self, run: dict[str, Any]) -> Handle | None:
        """The live job of the run's current attempt when its id was never stored (a daemon that
        died between submitting and recording it), so that it is adopted, not submitted twice."""
        ...

    def interruption(self, handle: Handle, last: JobStatus, ended: JobStatus) -> str:
        """Why a signal stopped the worker, as far as the backend can tell (for the run's error)."""
        ...

    def poll(self, handles: Sequence[Handle]) -> None: ...

    def status(self, handle: Handle) -> JobStatus: ...

    def terminate(self, handle: Handle) -> None: ...

    def kill(self, handle: Handle) -> None: ...

    def close(self) -> None: ...


class SubmitError(Exception):
    """The backend refused or could not take a run; the message is one line for the run's error."""


def worker_env(home: Path, cuda_visible: str | None) -> dict[str, str]:
    """What every worker gets on top of the daemon's environment; `cuda_visible` None leaves
    CUDA_VISIBLE_DEVICES to the backend (Slurm sets it from the GPUs it allocated)."""
    env = {"TIX_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    if cuda_visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible
        # the scheduler's indices are NVML's (PCI bus order); CUDA's default order puts the fastest
        # GPU first, which on a mixed box is another GPU than the one NVML found free
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env
