"""Daemon settings: defaults, then `TIX_HOME/config.yaml`, then `TIX_*` environment variables.

Validation is strict because a typo in a cluster setting would otherwise surface as a puzzling
sbatch refusal hours later: an unknown key or a wrong type stops the daemon from starting with
one line that names the file and the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

#: DuckDB's memory_limit for the daemon (see DaemonSettings.database_settings).
DB_MEMORY = "640MB"
_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)", re.IGNORECASE)
#: How workers are started: `local` processes on this box, or `slurm` jobs on a cluster.
EXECUTORS = ("local", "slurm")
#: `slurm:` keys an experiment file may override (top level, or a variant's `train:`); the rest
#: (gpus_per_node, final_wait, poll_interval) describe the cluster or the daemon, not a run.
PER_EXPERIMENT = ("partition", "account", "qos", "time", "cpus_per_gpu", "mem_per_gpu", "constraint",
                  "exclusive", "extra_args", "cpu_partition", "setup", "signal_grace")


@dataclass
class SlurmSettings:
    """`slurm:` in config.yaml: how the slurm executor submits workers (unset = the cluster's default)."""

    partition: str | None = field(default=None, metadata={
        "kind": "text", "help": "--partition for runs needing GPUs (every run when cpu_partition is unset)."})
    account: str | None = field(default=None, metadata={"kind": "text", "help": "--account to charge."})
    qos: str | None = field(default=None, metadata={"kind": "text", "help": "--qos of every job."})
    time: str | None = field(default=None, metadata={
        "kind": "text", "help": "--time limit of every job (minutes, or [D-]HH:MM:SS)."})
    gpus_per_node: int | None = field(default=None, metadata={
        "kind": "int", "help": "GPUs one node has; a run needing more fails before submission."})
    cpus_per_gpu: int | None = field(default=None, metadata={
        "kind": "int", "help": "--cpus-per-gpu for runs that use GPUs."})
    mem_per_gpu: str | None = field(default=None, metadata={
        "kind": "text", "help": "--mem-per-gpu for runs that use GPUs (e.g. 40G)."})
    constraint: str | None = field(default=None, metadata={"kind": "text", "help": "--constraint (features)"})
    exclusive: bool = field(default=False, metadata={"kind": "bool", "help": "--exclusive: whole nodes."})
    extra_args: list[str] = field(default_factory=list, metadata={
        "kind": "list", "help": "More sbatch arguments, added last (they win over the ones above)."})
    cpu_partition: str | None = field(default=None, metadata={
        "kind": "text", "help": "--partition for runs that need no GPU (they ask --gpus-per-node=0)."})
    setup: list[str] = field(default_factory=list, metadata={
        "kind": "list", "help": "Shell lines the job script runs before the worker (module load, venv...)."})
    signal_grace: int = field(default=300, metadata={
        "kind": "int", "help": "Seconds before the time limit when the worker gets TERM (--signal=B:TERM@N)"})
    final_wait: float = field(default=30.0, metadata={
        "kind": "number", "help": "Seconds to wait for a job's last event lines after it ended (NFS lag)."})
    poll_interval: float = field(default=2.0, metadata={
        "kind": "number", "help": "Least seconds between two squeue calls (one call asks about every job)."})

    @classmethod
    def from_values(cls, values: Any, source: str) -> SlurmSettings:
        if values is None:
            return cls()
        if not isinstance(values, dict):
            raise ValueError(f"{source}: setting slurm expects a mapping of slurm settings, got {values!r}")
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise ValueError(f"{source}: unknown setting 'slurm.{key}' (known: {', '.join(known)})")
            value = _check(f"slurm.{key}", raw, known[key].metadata["kind"], source)
            if value is not None:
                kwargs[key] = value
        return cls(**kwargs)

    def merged(self, overrides: dict[str, Any] | None, source: str) -> SlurmSettings:
        """These settings with a run's overrides from its experiment file on top (later wins, lists
        included). Checked again here: they come from the database, perhaps from an older tix."""
        if not overrides:
            return self
        kinds = {f.name: f.metadata["kind"] for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in PER_EXPERIMENT:
                raise ValueError(f"{source}: 'slurm.{key}' cannot be set in an experiment file "
                                 f"(per experiment: {', '.join(PER_EXPERIMENT)})")
            value = _check(f"slurm.{key}", raw, kinds[key], source)
            if value is not None:
                changes[key] = value
        return replace(self, **changes)


@dataclass
class DaemonSettings:
    """What the daemon reads at start; every field can be set in config.yaml, most in the environment."""

    idle_timeout: float = field(default=600.0, metadata={
        "help": "Seconds with nothing queued or running and no client connected before the daemon "
                "exits and releases the database (env TIX_IDLE_TIMEOUT).", "env": "TIX_IDLE_TIMEOUT",
        "kind": "number"})
    gpus: int | list[int] | None = field(default=None, metadata={
        "help": "GPUs to schedule on: a number (the first N), or a list of GPU indices, an allowlist "
                "(gpus: [0, 1, 3]); unset = every GPU NVML or nvidia-smi sees (env TIX_GPUS: 4, or 0,1,3).",
        "env": "TIX_GPUS", "kind": "gpus"})
    foreign_gpu_mib: float = field(default=2048.0, metadata={
        "help": "A GPU whose processes that are not tix's (another user's job) hold more than this many "
                "MiB is not handed out; runs already on it go on (env TIX_FOREIGN_GPU_MIB).",
        "env": "TIX_FOREIGN_GPU_MIB", "kind": "number"})
    gpu_poll: float = field(default=2.0, metadata={
        "help": "Seconds between two questions to NVML about the GPUs' processes, asked in a thread "
                "(env TIX_GPU_POLL).", "env": "TIX_GPU_POLL", "kind": "number"})
    cpu_slots: int | None = field(default=None, metadata={
        "help": "Runs that need no GPU (or any run on a CPU-only box) running at once; unset = 2 on a box "
                "with 2 or more cores, else 1 (env TIX_CPU_SLOTS).",
        "env": "TIX_CPU_SLOTS", "kind": "int"})
    cancel_grace: float = field(default=10.0, metadata={
        "help": "Seconds between SIGTERM and SIGKILL when a run is cancelled (env TIX_CANCEL_GRACE).",
        "env": "TIX_CANCEL_GRACE", "kind": "number"})
    tick: float = field(default=0.5, metadata={
        "help": "Seconds between scheduler passes (ingest, liveness, starts) (env TIX_TICK).",
        "env": "TIX_TICK", "kind": "number"})
    executor: str = field(default="local", metadata={
        "help": "How workers start: local processes, or slurm jobs (env TIX_EXECUTOR).",
        "env": "TIX_EXECUTOR", "kind": "choice"})
    slurm: SlurmSettings = field(default_factory=SlurmSettings, metadata={
        "help": "The slurm executor's sbatch options (a mapping; see SlurmSettings).", "kind": "slurm"})
    db_memory: str = field(default=DB_MEMORY, metadata={
        "help": "DuckDB's memory_limit on the daemon's database: its buffer pool, beyond which joins, "
                "sorts and aggregates spill to TIX_HOME/tix.duckdb.tmp (env TIX_DB_MEMORY).",
        "env": "TIX_DB_MEMORY", "kind": "size"})
    db_threads: int | None = field(default=None, metadata={
        "help": "DuckDB threads of the daemon's database; unset = one per core (env TIX_DB_THREADS).",
        "env": "TIX_DB_THREADS", "kind": "int"})

    def database_settings(self) -> list[str]:
        """SET statements for the daemon's connection. Without a limit DuckDB keeps up to 80 % of
        the machine's memory cached, and a paper-scale ingest (3.2 GB of JSONL, bench/scale.py) grew
        to 2.2 GiB RSS; the rest of the process (Python, Arrow, the JSON parser's own DuckDB) adds
        about 0.3 GiB to the limit: 512MB peaked at 0.76 GiB, 640MB at 0.88, 768MB at 1.0."""
        out = [f"SET memory_limit = '{self.db_memory}'"]
        if self.db_threads:
            out.append(f"SET threads = {int(self.db_threads)}")
        return out

    @property
    def cpu_slot_count(self) -> int:
        """The CPU slots in use: the setting, or two where there are two cores to share. On a 2-core
        box a second thread makes a tiny-model training only 1.4x faster (a lab GRPO step: 0.293 s
        against 0.407 s), while a second run uses the core fully: the demo took 103 s with two slots
        against 126 s with one (AVX2 emulated, same tables; the scheduler's core sharing on)."""
        if self.cpu_slots is not None:
            return max(1, self.cpu_slots)
        return 2 if (os.cpu_count() or 1) >= 2 else 1

    @classmethod
    def load(cls, config_file: Path | None = None, env: dict[str, str] | None = None) -> DaemonSettings:
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        if config_file and config_file.is_file():
            loaded = yaml.safe_load(config_file.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config_file}: expected a mapping of settings")
            values.update(loaded)
        for f in fields(cls):
            if f.metadata.get("env") in env:
                values[f.name] = env[f.metadata["env"]]
        return cls.from_values(values, source=str(config_file or "environment"))

    @classmethod
    def from_values(cls, values: dict[str, Any], source: str) -> DaemonSettings:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise ValueError(f"{source}: unknown setting {key!r} (known: {', '.join(known)})")
            kind = known[key].metadata["kind"]
            if kind == "slurm":
                kwargs[key] = SlurmSettings.from_values(raw, source)
            elif kind == "choice":
                kwargs[key] = _choice(key, raw, source)
            elif kind == "gpus":
                kwargs[key] = _gpus(raw, source)
            elif kind == "size":
                kwargs[key] = _size(key, raw, source)
            else:
                value = _coerce(key, raw, kind, source)
                if value is not None or known[key].default is None:  # empty: the default stays
                    kwargs[key] = value
        return cls(**kwargs)


def _size(key: str, raw: Any, source: str) -> str:
    """A memory size as DuckDB reads it (640MB, 1.5GiB); empty = the default."""
    if raw is None or raw == "":
        return DB_MEMORY
    text = str(raw).strip()
    if isinstance(raw, bool) or not _SIZE.fullmatch(text):
        raise ValueError(f"{source}: setting {key} expects a size such as 640MB or 2GiB, got {raw!r}")
    return text


def _choice(key: str, raw: Any, source: str) -> str:
    if raw is None or raw == "":
        return "local"
    if raw not in EXECUTORS:
        raise ValueError(f"{source}: setting {key} must be one of {', '.join(EXECUTORS)}, got {raw!r}")
    return str(raw)


def _gpus(raw: Any, source: str) -> int | list[int] | None:
    """`gpus`: a count (4, "4"), or an allowlist of indices ([0, 1, 3], "0,1,3", "3,"); empty = detect.
    A list is what a shared box needs: the GPUs this user may take, whatever the others run."""
    if isinstance(raw, str) and "," in raw:
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list):
        return _coerce("gpus", raw, "int", source)
    indices = []
    for item in raw:
        if isinstance(item, bool) or not str(item).isdigit():
            raise ValueError(f"{source}: setting gpus expects a number or a list of GPU indices, got {raw!r}")
        indices.append(int(item))
    if len(set(indices)) != len(indices):
        raise ValueError(f"{source}: setting gpus lists a GPU twice: {raw!r}")
    return indices


def _coerce(key: str, raw: Any, kind: str, source: str) -> Any:
    """A non-negative number from YAML or an environment string; empty means unset."""
    if raw is None or raw == "":
        return None
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = int(raw) if kind == "int" else float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: setting {key} expects a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{source}: setting {key} must not be negative")
    return value


def _check(key: str, raw: Any, kind: str, source: str) -> Any:
    """One `slurm:` value checked against its kind; None leaves the default in place."""
    if raw is None:
        return None
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ValueError(f"{source}: setting {key} expects true or false, got {raw!r}")
        return raw
    if kind == "list":
        if not isinstance(raw, list) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                                for x in raw):
            raise ValueError(f"{source}: setting {key} expects a list of strings, got {raw!r}")
        return [str(x) for x in raw]
    if kind == "text":
        if isinstance(raw, bool) or not isinstance(raw, (str, int)) or str(raw).strip() == "":
            raise ValueError(f"{source}: setting {key} expects a non-empty string, got {raw!r}")
        return str(raw)
    return _coerce(key, raw, kind, source)
