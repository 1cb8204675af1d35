"""Re-scoring saved generations: score a file of completions against a benchmark, no model needed.

Each input line (JSONL) holds a completion in `output`, `completion` or `response`, and names its
item by `id`, by `index` (0-based position in the benchmark), or failing those by the item's
text found inside its `input` / `prompt` (how lm-eval-style dumps and the paper's generation
files look). Several lines for one item are its samples (avg@k). An optional `finish_reason`
("length" = cut off) or `truncated: true` feeds the health counters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.evaluation.backends import Generation, SamplingParams
from engine.evaluation.benchfile import find_benchmark
from engine.evaluation.benchmarks import BenchmarkError, load_items
from engine.evaluation.samples import HEALTH_FLAGS, Task, sample_record, score_one, summarise
from engine.evaluation.scorers import get_scorer

COMPLETION_KEYS = ("output", "completion", "response")
TEXT_KEYS = ("input", "prompt")


@dataclass
class Rescored:
    """Samples as an eval run would record them, and the benchmark summary."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def rescore(benchmark: str, generations: Path, data: Path | None = None,
            scorer: str | None = None) -> Rescored:
    bench = find_benchmark(benchmark)  # registered, or a benchmark file in TIX_HOME/benchmarks/
    items = load_items(bench, data)
    scorer_obj = get_scorer(scorer or bench.scorer)
    lines = read_generations(generations)
    matcher = Matcher(items)
    task = Task(bench, bench.group, scorer_obj.name, items, SamplingParams(), False)
    out = Rescored()
    counts: dict[str, int] = {}
    unmatched = 0
    for number, line in lines:
        item = matcher.match(line)
        if item is None:
            unmatched += 1
            continue
        k = counts[item["id"]] = counts.get(item["id"], -1) + 1
        out.samples.append(sample_row(task, scorer_obj, item, k, line, number))
    if not out.samples:
        raise BenchmarkError(f"{generations}: no line matched an item of {benchmark} "
                             f"(by id, index or item text inside input/prompt)")
    out.summary = {"benchmark": benchmark, **summary_of(task, out.samples), "unmatched_lines": unmatched}
    return out


def summary_of(task: Task, samples: list[dict[str, Any]]) -> dict[str, Any]:
    result = summarise(task, samples)
    return {"scorer": result["scorer"], "n": result["n"], "samples": result["samples"],
            "accuracy": result["metrics"].get("accuracy"), "stderr": result["stderr"],
            "metrics": result["metrics"], "health": result["health"], "group": result["group"],
            "metric_items": result["metric_items"]}


def sample_row(task: Task, scorer: Any, item: dict[str, Any], k: int, line: dict[str, Any],
               number: int) -> dict[str, Any]:
    text = next(str(line[key]) for key in COMPLETION_KEYS if key in line)
    finish = "length" if line.get("finish_reason") == "length" or line.get("truncated") is True else "stop"
    gen = Generation(text, int(line.get("tokens") or 0), finish)
    verdict = score_one(scorer, task.bench, gen, item)
    record = sample_record(task, item, k, line.get("input") or line.get("prompt"), gen, verdict)
    return {**record, "tokens": line.get("tokens"), "source_line": number}


def read_generations(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) pairs; a line without a completion field is a one-line error."""
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such file")
    out = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise BenchmarkError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not any(k in obj for k in COMPLETION_KEYS):
            keys = ", ".join(COMPLETION_KEYS)
            raise BenchmarkError(f"{path}:{number}: expected an object with one of {keys}")
        out.append((number, obj))
    return out


class Matcher:
    """Finds a generation line's item: by id, then index, then item text inside the line's input."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.by_id = {str(it["id"]): it for it in items}
        # longest texts first, so a question that contains a shorter one still matches itself
        self.by_text = sorted((it for it in items if it.get("question")),
                              key=lambda it: -len(str(it["question"])))

    def match(self, line: dict[str, Any]) -> dict[str, Any] | None:
        if "id" in line and str(line["id"]) in self.by_id:
            return self.by_id[str(line["id"])]
        if isinstance(line.get("index"), int) and 0 <= line["index"] < len(self.items):
            return self.items[line["index"]]
        text = next((str(line[k]) for k in TEXT_KEYS if k in line), "")
        if not text:
            return None
        return next((it for it in self.by_text if str(it["question"]).strip() in text), None)


__all__ = ["HEALTH_FLAGS", "Rescored", "rescore"]
