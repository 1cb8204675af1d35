"""`tix demo`: the tiny lab end to end, and the tables it ends with.

Runs `experiments/tiny-lab.yaml` through the daemon (build the base, tune it on maths by SFT
and by GRPO, evaluate all three on every group), then reads the scores back over SQL and prints
the per-benchmark accuracies and the Transferability Index (v1 and v2, pooled sigma). Client
side only: no torch, no database file; the TI is computed with engine.metrics (numpy).
"""

from __future__ import annotations

import math
from typing import Any

from engine.metrics import TIResult, transferability

SCORES_SQL = """
SELECT r.name AS model, s.benchmark, s."group", s.value
FROM scores s JOIN runs r ON r.id = s.run_id
JOIN experiment_runs e ON e.run_id = r.id
WHERE e.experiment = ? AND r.kind = 'eval' AND r.state = 'succeeded' AND s.metric = 'accuracy'
ORDER BY s."group", s.benchmark, r.name"""


def scores_query(experiment: str) -> str:
    return SCORES_SQL.replace("?", "'" + experiment.replace("'", "''") + "'")


def collect(rows: list[list[Any]]) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """model -> benchmark -> accuracy, and benchmark -> group, from the query's rows."""
    scores: dict[str, dict[str, float]] = {}
    groups: dict[str, str] = {}
    for model, benchmark, group, value in rows:
        scores.setdefault(model, {})[benchmark] = float(value)
        groups[benchmark] = group
    return scores, groups


def accuracy_rows(scores: dict[str, dict[str, float]], groups: dict[str, str],
                  models: list[str]) -> list[list[str]]:
    rows = []
    for benchmark in sorted(groups, key=lambda b: (["math", "other", "non"].index(groups[b]), b)):
        rows.append([groups[benchmark], benchmark] + [_fmt(scores[m].get(benchmark)) for m in models])
    return rows


def ti_rows(scores: dict[str, dict[str, float]], groups: dict[str, str]) -> list[list[str]]:
    """One row per tuned model: group means, TI v1 and v2 (other, non), and the stability flag."""
    v1 = {r.model: r for r in transferability("base", scores, groups, "v1")}
    v2 = {r.model: r for r in transferability("base", scores, groups, "v2", "pooled")}
    return [_ti_row(v1[m], v2[m]) for m in sorted(v1)]


def _ti_row(v1: TIResult, v2: TIResult) -> list[str]:
    means = [f"{v2.groups[g]['base']:.1f} -> {v2.groups[g]['model']:.1f}" for g in ("math", "other", "non")]
    flag = "UNSTABLE (maths gain < 1 pt or index <= 0)" if v1.unstable or v2.unstable else ""
    return [v1.model, *means, _fmt(v1.ti_other), _fmt(v1.ti_non), _fmt(v2.ti_other), _fmt(v2.ti_non), flag]


TI_COLUMNS = ["model", "math", "other", "non", "TI_other v1", "TI_non v1", "TI_other v2", "TI_non v2", ""]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.1f}"
