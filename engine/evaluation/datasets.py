"""Training data for `train` runs: built-in lab sets, local files, or hub datasets.

A training item is `{id, question, answer, ...}` (the same shape as benchmark items), plus
optionally `completion` (a worked answer to imitate; SFT uses it instead of the bare answer)
and `scorer` (how GRPO rewards an answer to it). Local files are JSONL/JSON/CSV with those
fields (`problem`/`prompt` and `solution`/`response` are accepted as aliases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.evaluation.benchmarks import BenchmarkError, read_records

ALIASES = {"question": ("question", "problem", "prompt", "instruction"),
           "answer": ("answer", "expected_answer", "final_answer"),
           "completion": ("completion", "response", "solution", "output")}


def load_train_data(ref: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Items of a built-in set (`lab/math-train`), a local file, or a hub dataset id."""
    if ref == "lab/math-train":
        rows = lab_math_train()
    elif Path(ref).exists():
        rows = [normalise(r, i) for i, r in enumerate(read_records(Path(ref)))]
    else:
        rows = [normalise(r, i) for i, r in enumerate(_hub(ref))]
    return rows[:limit] if limit else rows


def lab_math_train() -> list[dict[str, Any]]:
    """The tiny lab's maths training set (`lab/math-train`), disjoint from every lab evaluation item."""
    from engine.lab.data import math_train

    return math_train()


def normalise(row: dict[str, Any], index: int) -> dict[str, Any]:
    item = dict(row)
    for key, names in ALIASES.items():
        found = next((row[n] for n in names if row.get(n) not in (None, "")), None)
        if found is not None:
            item[key] = found if key == "completion" else str(found)
    if "question" not in item:
        raise BenchmarkError(f"training row {index} has none of {', '.join(ALIASES['question'])}")
    item["id"] = str(item.get("id", index))
    return item


def _hub(ref: str) -> list[dict[str, Any]]:
    try:
        from datasets import load_dataset

        return [dict(r) for r in load_dataset(ref, split="train")]
    except Exception as exc:  # noqa: BLE001 - offline boxes get one line, not a hub traceback
        raise BenchmarkError(f"training data {ref}: not a built-in set or local file, and loading it "
                             f"from the hub failed ({type(exc).__name__})") from None
