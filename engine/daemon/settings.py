"""Daemon settings: defaults, then `TIX_HOME/config.yaml`, then `TIX_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DaemonSettings:
    """What the daemon reads at start; every field can be set in config.yaml or the environment."""

    idle_timeout: float = field(default=600.0, metadata={
        "help": "Seconds with nothing queued or running and no client connected before the daemon "
                "exits and releases the database (env TIX_IDLE_TIMEOUT).", "env": "TIX_IDLE_TIMEOUT"})
    gpus: int | None = field(default=None, metadata={
        "help": "Number of GPUs to schedule on; unset = detect with NVML or nvidia-smi (env TIX_GPUS).",
        "env": "TIX_GPUS"})
    cpu_slots: int = field(default=1, metadata={
        "help": "Runs that need no GPU (or any run on a CPU-only box) running at once (env TIX_CPU_SLOTS).",
        "env": "TIX_CPU_SLOTS"})
    cancel_grace: float = field(default=10.0, metadata={
        "help": "Seconds between SIGTERM and SIGKILL when a run is cancelled (env TIX_CANCEL_GRACE).",
        "env": "TIX_CANCEL_GRACE"})
    tick: float = field(default=0.5, metadata={
        "help": "Seconds between scheduler passes (ingest, liveness, starts) (env TIX_TICK).",
        "env": "TIX_TICK"})

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
            if f.metadata["env"] in env:
                values[f.name] = env[f.metadata["env"]]
        return cls.from_values(values, source=str(config_file or "environment"))

    @classmethod
    def from_values(cls, values: dict[str, Any], source: str) -> DaemonSettings:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise ValueError(f"{source}: unknown setting {key!r} (known: {', '.join(known)})")
            kwargs[key] = _coerce(key, raw, known[key].type, source)
        return cls(**kwargs)


def _coerce(key: str, raw: Any, type_name: Any, source: str) -> Any:
    if raw is None or raw == "":
        return None
    kind = int if "int" in str(type_name) else float
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: setting {key} expects a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{source}: setting {key} must not be negative")
    return value
