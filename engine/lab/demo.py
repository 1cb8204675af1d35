"""`tix demo`: the tiny lab end to end, and the tables it ends with.

Runs `experiments/tiny-lab.yaml` through the daemon (build the base, tune it on maths by SFT
and by GRPO, evaluate all three on every group, measure each variant's PCA and token shift
against the base), then reads the results back over SQL and prints the per-benchmark
accuracies, each variant's paired difference from the base per benchmark and group with its 95%
interval, p and q (which effects 100 items resolve), the Transferability Index (v1 and v2, pooled
sigma) with its bootstrap interval, and the shift per group. Client side only: no torch, no numpy,
no database file; the TI and the statistics come from the daemon's `ti` op (the same numbers as
`tix ti` and the `paired_deltas` view).
"""

from __future__ import annotations

import math
from typing import Any

from engine.analysis.ti import bound, ci_text, p_text, with_ci

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
    """The base's group means, then one row per tuned model from the `ti` op's objects: its group
    means with the signed change from the base, TI v1 and v2; an unstable model's name gets `*`
    (explained by `ti_notes` under the table)."""
    by_model = {o["model"]: o for o in v2}
    ordered = sorted(v1, key=lambda o: o["model"])
    base = [base_row(by_model[ordered[0]["model"]])] if ordered else []
    return base + [_ti_row(one, by_model[one["model"]]) for one in ordered]


def base_row(v2: dict[str, Any]) -> list[str]:
    groups = v2["groups"]
    return [str(v2["base_model"]), *(f"{groups[g]['base']:.1f}" for g in GROUPS), *["-"] * 4]


def _ti_row(v1: dict[str, Any], v2: dict[str, Any]) -> list[str]:
    groups = v2["groups"]
    means = [f"{groups[g]['model']:.1f} ({groups[g]['model'] - groups[g]['base']:+.1f})" for g in GROUPS]
    name = v1["model"] + ("*" if is_unstable(v1, v2) else "")
    return [name, *means, *(with_ci(o[k], o.get(f"{k}_ci"), o.get("ci_missing"))
                            for o in (v1, v2) for k in ("ti_other", "ti_non"))]


PAIRED_COLUMNS = ["model", "group", "benchmark", "n", "Δ points", "95% CI", "p", "q", ""]


def paired_rows(objects: list[dict[str, Any]]) -> list[list[str]]:
    """Per tuned model: each benchmark's paired difference from the base (n items, delta, t interval,
    p, BH q, `*` where q < 0.05), then each group's mean difference with its bootstrap interval."""
    rows = []
    for o in sorted(objects, key=lambda o: o["model"]):
        details = o["benchmarks"]
        for b in sorted(details, key=lambda b: (GROUPS.index(details[b]["group"]), b)):
            paired = details[b].get("paired")
            if paired is None:
                rows.append([o["model"], details[b]["group"], b, "-", bound(details[b]["gain"], True),
                             "no items", "-", "-", ""])
                continue
            mark = "*" if paired["q"] is not None and paired["q"] < 0.05 else ""
            rows.append([o["model"], details[b]["group"], b, str(paired["n"]), bound(paired["delta"], True),
                         ci_text(paired["ci"], signed=True), p_text(paired["p"]), p_text(paired["q"]), mark])
        for g in GROUPS:
            group = o["groups"][g]
            rows.append([o["model"], g, "group mean", "", bound(group["model"] - group["base"], True),
                         ci_text(group.get("gain_ci"), signed=True), "", "", _resolved(group.get("gain_ci"))])
    return rows


def _resolved(interval: list[float] | None) -> str:
    """`*` for a group whose bootstrap interval excludes 0: a difference 100 items resolve."""
    return "*" if interval is not None and (interval[0] > 0 or interval[1] < 0) else ""


def is_unstable(v1: dict[str, Any], v2: dict[str, Any]) -> bool:
    return bool(v1["unstable"] or v2["unstable"])


def ti_notes(v1: list[dict[str, Any]], v2: list[dict[str, Any]]) -> list[str]:
    """The footnote of each starred model: why its TI is not meaningful."""
    by_model = {o["model"]: o for o in v2}
    notes = []
    for one in sorted(v1, key=lambda o: o["model"]):
        two = by_model[one["model"]]
        if is_unstable(one, two):
            why = one.get("unstable_reason") or two.get("unstable_reason") or UNSTABLE_WHY
            notes.append(f"* {one['model']}: TI unstable, not meaningful ({why})")
    return notes


GROUPS = ("math", "other", "non")
UNSTABLE_WHY = "maths gain < 1 pt or index <= 0"
TI_COLUMNS = ["model", "math (Δ)", "other (Δ)", "non (Δ)", "TI_other v1", "TI_non v1", "TI_other v2",
              "TI_non v2"]
PAIRED_TITLE = ("Paired differences from the base (points; 95% CI: paired t over the items, bootstrap for "
                "group means;\np: paired t test; q: Benjamini-Hochberg over the experiment; *: q < 0.05, "
                "or a group CI without 0):")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.1f}"
