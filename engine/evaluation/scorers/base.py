"""The scorer contract: plain functions in a registry, each with a name and a version.

A scorer takes a completion (already stripped of its think block where the benchmark asks)
and the benchmark item, and returns a `Verdict`. `aggregate` turns a benchmark's verdicts into
its reported metrics (percent). Scorers are pure and deterministic, so re-scoring saved
generations gives the verdict a fresh evaluation would, and training rewards reuse them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Per-sample flags every scorer and backend may set; the health counters count them.
NO_ANSWER = "no_answer"
TRUNCATED = "truncated"
UNCLOSED_THINK = "unclosed_think"
#: A scorer plugin raised on this sample (engine.evaluation.scorers.plugin): scored 0, message in `detail`.
SCORER_ERROR = "scorer_error"


@dataclass
class Verdict:
    """One sample's outcome: `score` in [0, 1] (1 = correct; F1 may be partial)."""

    score: float
    extracted: str | None = None
    flags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # per-sample extras (IFEval levels, F1...)
    detail: dict[str, Any] | None = None


class ScoreFn(Protocol):
    def __call__(self, completion: str, item: dict[str, Any]) -> Verdict: ...


@dataclass(frozen=True)
class Scorer:
    """A registered scorer: `fn` scores one sample, `aggregate` makes the benchmark's metrics."""

    name: str
    version: str
    fn: ScoreFn
    aggregate: Callable[[Sequence[Verdict]], dict[str, float]]
    description: str = ""

    def __call__(self, completion: str, item: dict[str, Any]) -> Verdict:
        return self.fn(completion, item)


SCORERS: dict[str, Scorer] = {}


def mean_metrics(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Default aggregate: `accuracy` = mean score in percent, plus the mean of every per-sample metric."""
    out = {"accuracy": 100.0 * _mean([v.score for v in verdicts])}
    keys = sorted({k for v in verdicts for k in v.metrics})
    for key in keys:
        out[key] = 100.0 * _mean([v.metrics[key] for v in verdicts if key in v.metrics])
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


Aggregate = Callable[[Sequence[Verdict]], dict[str, float]]


def register(name: str, version: str, aggregate: Aggregate = mean_metrics,
             description: str = "") -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: add a scoring function to the registry under `name`."""

    def wrap(fn: ScoreFn) -> ScoreFn:
        if name in SCORERS:
            raise ValueError(f"scorer {name!r} registered twice")
        summary = description or (fn.__doc__ or "").strip().split("\n")[0]
        SCORERS[name] = Scorer(name, version, fn, aggregate, summary)
        return fn

    return wrap
