"""A run's configuration as flat dotted keys, and the keys two runs differ in (`tix diff`, the TUI's
config tab and its `d`).

A run's parameters are nested (trl's args under `params.args`, sampling under
`params.generation`), and two runs differ in a handful of the hundred leaves: flattening them to
`params.args.learning_rate = 5e-05` makes the difference a set operation that the CLI prints and
the TUI lays out the same way. Pure Python on dicts the daemon hands over (engine/daemon/compare_ops.py
reads the run row and its folder's spec.yaml), so the CLI and tests import it without the database.

What the configuration holds:
- `run.*`: kind, experiment, name, dependencies, GPUs asked for, retries, where it ran;
- `params.*`: the job's parameters, with a dependency's output (`{from_run, key}`) replaced by the
  value the worker was given (spec.yaml), once the run started: seeds, data, trl args, generation;
- `inputs.*`: what each dependency handed over (model path, its own hashes);
- `code.*`: the run id's content hash (of kind, parameters, dependencies and tix's version with the
  job's version, engine/experiments/plan.py) and the job version this tix gives the kind; once the
  run started, the tix version, git commit and dirty flag its worker ran (environment.json,
  engine/runenv.py);
- `env.*`: from the same file: Python, the host, and the torch, transformers, trl, vllm, lm_eval
  and duckdb versions installed (null: not installed), so a diff shows a library upgrade;
- `outputs.*`: the result's hashes and paths (a build's sha256, a model's path): a run's scores
  are on its results tab, not here.
"""

from __future__ import annotations

import json
import re
from typing import Any

MISSING = "—"
"""How a key one run lacks is shown."""
RUN_FIELDS = ("kind", "experiment", "name", "deps", "gpus_needed", "max_retries", "executor", "host")
OUTPUT_KEY = re.compile(r"sha|hash|signature|path|version|checksum", re.IGNORECASE)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (`params.args.max_steps`); lists of dicts indexed
    (`params.stop[0].x`); other lists, scalars and empty dicts are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def show(value: Any) -> str:
    """A leaf as one line: text as it is, everything else as JSON (`null`, `5e-05`, `["a", "b"]`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def config_of(run: dict[str, Any], spec: dict[str, Any] | None = None,
              job_version: str | None = None, environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flat configuration of `run` (a row of the runs table), its folder's `spec` and
    `environment` (None before it started, or for a run older than environment.json): see the
    module docstring for the sections."""
    facts = {field: run.get(field) for field in RUN_FIELDS if run.get(field) not in (None, "", [])}
    out = flatten(facts, "run")
    stored = run.get("params") or {}
    resolved = (spec or {}).get("params") or {}
    out.update(flatten({**stored, **resolved} if isinstance(stored, dict) else stored, "params"))
    for dep, given in ((spec or {}).get("inputs") or {}).items():
        out.update(flatten(given, f"inputs.{dep}"))
    digest = str(run.get("id") or "").partition("-")[2]
    out["code.run_hash"] = digest or None
    if job_version is not None:
        out["code.job_version"] = job_version
    for section, values in (environment or {}).items():
        if section in ("code", "env") and isinstance(values, dict) and values:
            out.update(flatten(values, section))
    result = run.get("result") if isinstance(run.get("result"), dict) else {}
    out.update({f"outputs.{k}": v for k, v in flatten(result).items() if OUTPUT_KEY.search(k)})
    return out


def differing(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, left value, right value) for each key whose values differ, in the left's key order
    then the right's own keys; a key one side lacks shows MISSING there."""
    keys = list(left) + [k for k in right if k not in left]
    rows = []
    for key in keys:
        a, b = left.get(key, MISSING), right.get(key, MISSING)
        if key not in left or key not in right or a != b:
            rows.append((key, show(a) if key in left else MISSING, show(b) if key in right else MISSING))
    return rows


def diff_text(left_id: str, right_id: str, rows: list[list[str]], same: int) -> str:
    """`tix diff`'s table: the differing keys with both values, and how many keys are equal."""
    if not rows:
        return f"{left_id} and {right_id}: no differing keys ({same} equal)"
    key_w = max(len("key"), *(len(r[0]) for r in rows))
    left_w = max(len(left_id), *(len(r[1]) for r in rows))
    lines = [f"{'key'.ljust(key_w)}  {left_id.ljust(left_w)}  {right_id}"]
    lines += [f"{key.ljust(key_w)}  {a.ljust(left_w)}  {b}" for key, a, b in rows]
    lines.append(f"{len(rows)} differing, {same} equal")
    return "\n".join(lines)
