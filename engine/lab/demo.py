"""`tix demo`: the tiny lab end to end, and the tables it ends with.

Runs `experiments/tiny-lab.yaml` through the daemon (build the base, tune it on maths by SFT
and by GRPO, evaluate all three on every group, measure each variant's PCA and token shift
against the base), then reads the results back over SQL and prints the per-benchmark
accuracies, the Transferability Index (v1 and v2, pooled sigma) and the shift per group. Client
side only: no torch, no numpy, no database file; the TI comes from the daemon's `ti` op (the same
numbers as `tix ti`).
"""

from __future__ import annotations

import math
from typing import Any

SCORES_SQL = """
SELECT r.name AS model, s.benchmark, s."group", s.value
FROM scores s JOIN runs r ON r.id = s.run_id
JOIN experiment_runs e ON e.run_id = r.id
WHERE e.experiment = ? AND r.kind = 'eval' AND r.state = 'succeeded' AND s.metric = 'accuracy'
ORDER BY s."group", s.benchmark, r.name"""


SHIFT_SQL = """
SELECT model, "group", pca_d, kl, logp_diff, rank_shift, share_base_rank1, share_base_rank2_3,
       share_base_rank_gt3, tokens
FROM shift_summary WHERE experiment = ? AND scope = 'group'
ORDER BY model, list_position(['math', 'other', 'non'], "group")"""

SHIFT_COLUMNS = ["model", "group", "PCA d", "token KL", "logp diff", "rank shift", "base rank 1 %",
                 "2-3 %", ">3 %", "tokens"]


def shift_rows(rows: list[list[Any]]) -> list[list[str]]:
    """Group-level shift of each tuned model: PCA d, token KL, log-prob gain, rank shift, rank shares."""
    out = []
    for model, group, d, kl, logp, rank, r1, r23, r4, tokens in rows:
        shares = [_fmt(None if v is None else 100 * v) for v in (r1, r23, r4)]
        out.append([model, group, _fmt3(d), _fmt3(kl), _fmt3(logp), _fmt3(rank), *shares,
                    "-" if tokens is None else str(int(tokens))])
    return out


def _fmt3(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


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


def ti_rows(v1: list[dict[str, Any]], v2: list[dict[str, Any]]) -> list[list[str]]:
    """One row per tuned model from the `ti` op's objects: group means, TI v1 and v2, the flag."""
    by_model = {o["model"]: o for o in v2}
    return [_ti_row(one, by_model[one["model"]]) for one in sorted(v1, key=lambda o: o["model"])]


def _ti_row(v1: dict[str, Any], v2: dict[str, Any]) -> list[str]:
    groups = v2["groups"]
    means = [f"{groups[g]['base']:.1f} -> {groups[g]['model']:.1f}" for g in ("math", "other", "non")]
    flag = "UNSTABLE (maths gain < 1 pt or index <= 0)" if v1["unstable"] or v2["unstable"] else ""
    return [v1["model"], *means, *(_fmt(o[k]) for o in (v1, v2) for k in ("ti_other", "ti_non")), flag]


TI_COLUMNS = ["model", "math", "other", "non", "TI_other v1", "TI_non v1", "TI_other v2", "TI_non v2", ""]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.1f}"
