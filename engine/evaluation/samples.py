"""Sample records and benchmark summaries: what an evaluation writes per item and how it is scored.

Shared by the `eval` job (engine/jobs/eval.py, which generates) and re-scoring
(engine/evaluation/rescore.py, which reads saved completions), so both record the same
`samples.jsonl` lines and compute the same scores from them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.evaluation.backends import Generation, SamplingParams
from engine.evaluation.benchmarks import Benchmark
from engine.evaluation.scorers import get_scorer
from engine.evaluation.scorers.base import (
    NO_ANSWER,
    SCORER_ERROR,
    TRUNCATED,
    UNCLOSED_THINK,
    Verdict,
)
from engine.evaluation.scorers.textutil import strip_think
from engine.events import SAMPLES_FILE

HEALTH_FLAGS = (NO_ANSWER, TRUNCATED, UNCLOSED_THINK)


@dataclass
class Task:
    """One benchmark as this run evaluates it."""

    bench: Benchmark
    group: str
    scorer: str
    items: list[dict[str, Any]]
    sampling: SamplingParams
    enable_thinking: bool


def sample_record(task: Task, item: dict[str, Any], k: int, prompt: str | None, gen: Generation,
                  verdict: Verdict) -> dict[str, Any]:
    """One line of samples.jsonl, for evaluation and re-scoring alike (the task's group, which an
    experiment may override). The gold answer travels with the sample so a reader of a wrong
    answer sees what was expected without the data set."""
    gold, scorer = item.get("answer"), task.scorer
    return {
        "benchmark": task.bench.name, "group": task.group, "item_id": item["id"], "sample_idx": k,
        "prompt": prompt, "completion": gen.text, "extracted": verdict.extracted,
        "verdict": verdict.score, "tokens": gen.tokens, "finish_reason": gen.finish_reason,
        "flags": verdict.flags, "metrics": verdict.metrics, "detail": verdict.detail,
        "scorer": scorer, "scorer_version": get_scorer(scorer).version,
        "gold": None if gold is None else str(gold),
    }


def score_one(scorer: Any, bench: Benchmark, gen: Generation, item: dict[str, Any]) -> Verdict:
    """Strip the think block where the benchmark asks, score, and add the health flags."""
    text, unclosed = strip_think(gen.text) if bench.strip_think else (gen.text, False)
    verdict = scorer(text, item)
    flags = set(verdict.flags)
    if unclosed:
        flags.add(UNCLOSED_THINK)
    if gen.finish_reason == "length":
        flags.add(TRUNCATED)
    verdict.flags = sorted(flags)
    return add_subset(verdict, item)


def add_subset(verdict: Verdict, item: dict[str, Any]) -> Verdict:
    """A pooled benchmark's item also counts towards `accuracy_<subset>`, its part's own score."""
    if item.get("subset"):
        verdict.metrics = {**verdict.metrics, f"accuracy_{item['subset']}": verdict.score}
    return verdict


def read_samples(run_dir: Path, benchmark: str) -> list[dict[str, Any]]:
    """The recorded samples of one benchmark (complete lines only; last record of a pair wins)."""
    path = run_dir / SAMPLES_FILE
    if not path.exists():
        return []
    found: dict[tuple[str, int], dict[str, Any]] = {}
    data = path.read_bytes()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if isinstance(sample, dict) and sample.get("benchmark") == benchmark:
            found[(str(sample["item_id"]), int(sample["sample_idx"]))] = sample
    return list(found.values())


def summarise(task: Task, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's metrics (the scorer's aggregate), n items, standard error and health counts."""
    scorer = get_scorer(task.scorer)
    verdicts = [Verdict(float(s["verdict"]), s.get("extracted"), s.get("flags") or [],
                        s.get("metrics") or {}, s.get("detail")) for s in samples]
    per_item: dict[str, list[float]] = {}
    for s in samples:
        per_item.setdefault(str(s["item_id"]), []).append(float(s["verdict"]))
    means = [sum(v) / len(v) for v in per_item.values()]
    health = health_counts(samples)
    return {"group": task.group, "scorer": scorer.name, "n": len(per_item), "samples": len(samples),
            "metrics": scorer.aggregate(verdicts) if verdicts else {}, "stderr": 100 * stderr(means),
            "health": health, "metric_items": metric_items(samples),
            "errors": sum(SCORER_ERROR in (s.get("flags") or []) for s in samples)}


def health_counts(samples: list[dict[str, Any]]) -> dict[str, int]:
    """How many samples carry each health flag (no answer, truncated, unclosed think)."""
    return {flag: sum(flag in (s.get("flags") or []) for s in samples) for flag in HEALTH_FLAGS}


def metric_items(samples: list[dict[str, Any]]) -> dict[str, int]:
    """Items behind each per-sample metric: a pooled benchmark's `accuracy_<subset>` is the mean
    over that part's items only, so its stored `n` must count those, not the whole benchmark's."""
    items: dict[str, set[str]] = {}
    for sample in samples:
        for key in sample.get("metrics") or {}:
            items.setdefault(key, set()).add(str(sample["item_id"]))
    return {key: len(ids) for key, ids in items.items()}


def stderr(values: list[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); 0 for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def group_means(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean accuracy per group over its benchmarks (each benchmark weighs the same)."""
    by_group: dict[str, list[float]] = {}
    for result in results.values():
        if "accuracy" in result["metrics"]:
            by_group.setdefault(result["group"], []).append(result["metrics"]["accuracy"])
    return {g: sum(v) / len(v) for g, v in by_group.items()}

