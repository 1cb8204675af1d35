"""The tiny lab build's parameters: defaults, validation and the content hash that names a build.

Free of torch, so that `tix check` can validate an experiment's `base.build:` and the planner
can name builds without loading ML libraries; the build job (engine/jobs/build.py) uses the same
functions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from engine.lab import DEFAULT_SIZE

VERSION = "2"

#: Every parameter the build accepts, with its default; anything else is a ValueError.
DEFAULTS: dict[str, Any] = {
    "model": "tiny-lab",
    "seed": 0,
    "vocab_size": 1024,
    "size": {},
    "pretrain_steps": 1000,
    "batch_size": 32,
    "lr": 3e-3,
    "corpus_items": 70000,
    "precision": "auto",
}
#: `precision` values: bf16 autocast, fp32, or `auto` (bf16 where the CPU has native bf16).
PRECISIONS = ("auto", "bf16", "fp32")


def resolve(params: dict[str, Any]) -> dict[str, Any]:
    """`params` over DEFAULTS, size included; unknown keys or models are a ValueError."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown build parameter(s): {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    resolved = {**DEFAULTS, **params}
    if resolved["model"] != "tiny-lab":
        raise ValueError(f"build can only make model 'tiny-lab', not {resolved['model']!r}")
    resolved["size"] = {**DEFAULT_SIZE, **(resolved["size"] or {})}
    _check_types(resolved)
    if resolved["precision"] not in PRECISIONS:
        raise ValueError(f"build parameter 'precision' must be one of {', '.join(PRECISIONS)}")
    return resolved


def _check_types(params: dict[str, Any]) -> None:
    """Each parameter must have its default's type (an int is fine where a float is expected)."""
    for key, default in DEFAULTS.items():
        expected = (int, float) if isinstance(default, float) else type(default)
        if not isinstance(params[key], expected) or isinstance(params[key], bool):
            raise ValueError(f"build parameter {key!r} must be {type(default).__name__}, not {params[key]!r}")


def content_hash(params: dict[str, Any]) -> str:
    """First 12 hex digits of sha256 over the canonical JSON of resolved params and VERSION."""
    canonical = json.dumps({"params": params, "version": VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
