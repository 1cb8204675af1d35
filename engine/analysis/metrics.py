"""The Transferability Index (arXiv 2507.00432), exactly as DESIGN.md section 5 defines it.

Pure numpy, so any process (the CLI, the TUI through the daemon, a notebook) can compute it
from stored scores. Scores are percentages per benchmark; each benchmark is in a group `math`,
`other` or `non`.

- v1: dR_g = mean over b in g of (R_model - R_base) / R_base; TI_g = 100 * dR_g / dR_math.
- v2: dR_b = R_model - R_base (points); delta_b = dR_b / sigma_g; s_b = sign * sqrt|delta_b|;
  w_b = (100 - R_base) normalised within g; DI_g = sum w_b s_b; TI_g = 100 * DI_g / DI_math.
  sigma_g: `pooled` (population std of dR over every compared model's benchmarks in g), `per-model`
  (the same over this model's benchmarks only), or fixed values per group.
- Unstable (flagged, still computed): a maths gain under 1 point, or a maths index at or below 0.
  A zero base score (v1) or a zero sigma (v2) makes the affected terms undefined (NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

GROUPS = ("math", "other", "non")
Scores = Mapping[str, float]  # benchmark -> percent


@dataclass
class TIResult:
    """One tuned model against its base."""

    model: str
    base_model: str
    variant: str
    ti_other: float
    ti_non: float
    unstable: bool
    math_gain: float  # mean point gain over the maths benchmarks
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> base/model means, index
    benchmarks: dict[str, dict[str, float]] = field(default_factory=dict)  # per-benchmark deltas


def _by_group(groups: Mapping[str, str], names: list[str]) -> dict[str, list[str]]:
    return {g: [b for b in names if groups.get(b) == g] for g in GROUPS}


def _ratio(num: float, den: float) -> float:
    return float("nan") if den == 0 or np.isnan(den) else 100.0 * num / den


def _means(base: Scores, model: Scores, names: list[str]) -> dict[str, float]:
    return {"base": float(np.mean([base[b] for b in names])) if names else float("nan"),
            "model": float(np.mean([model[b] for b in names])) if names else float("nan")}


def ti_v1(model_name: str, base_name: str, base: Scores, model: Scores,
          groups: Mapping[str, str]) -> TIResult:
    shared = sorted(set(base) & set(model))
    grouped = _by_group(groups, shared)
    rel = {b: (model[b] - base[b]) / base[b] if base[b] else float("nan") for b in shared}
    d = {g: float(np.mean([rel[b] for b in names])) if names else float("nan")
         for g, names in grouped.items()}
    math_gain = _math_gain(base, model, grouped["math"])
    result = TIResult(model_name, base_name, "v1", _ratio(d["other"], d["math"]),
                      _ratio(d["non"], d["math"]), math_gain < 1.0 or not d["math"] > 0, math_gain)
    result.groups = {g: {**_means(base, model, names), "index": d[g]} for g, names in grouped.items()}
    result.benchmarks = {b: {"group": groups[b], "base": base[b], "model": model[b], "relative": rel[b]}
                         for b in shared if b in groups}
    return result


def _math_gain(base: Scores, model: Scores, names: list[str]) -> float:
    return float(np.mean([model[b] - base[b] for b in names])) if names else float("nan")


def sigmas(base: Scores, models: Mapping[str, Scores], groups: Mapping[str, str],
           mode: str | Mapping[str, float], model_name: str | None = None) -> dict[str, float]:
    """sigma_g per group: pooled over `models`, per-model (`model_name` only), or fixed values."""
    if not isinstance(mode, str):
        return {g: float(mode[g]) for g in GROUPS}
    if mode not in ("pooled", "per-model"):
        raise ValueError(f"unknown sigma mode {mode!r}: pooled, per-model or fixed values")
    chosen = models if mode == "pooled" else {model_name: models[model_name]}
    out = {}
    for g in GROUPS:
        deltas = [m[b] - base[b] for m in chosen.values() for b in m if b in base and groups.get(b) == g]
        out[g] = float(np.std(deltas)) if deltas else float("nan")
    return out


def ti_v2(model_name: str, base_name: str, base: Scores, model: Scores, groups: Mapping[str, str],
          sigma: Mapping[str, float]) -> TIResult:
    shared = sorted(set(base) & set(model))
    grouped = _by_group(groups, shared)
    detail, di = {}, {}
    for g, names in grouped.items():
        weights = np.array([100.0 - base[b] for b in names])
        weights = weights / weights.sum() if names and weights.sum() > 0 else np.full(len(names), np.nan)
        s = []
        for b, w in zip(names, weights, strict=True):
            delta = (model[b] - base[b]) / sigma[g] if sigma[g] else float("nan")
            s.append(float(np.sign(delta) * np.sqrt(abs(delta))))
            detail[b] = {"group": g, "base": base[b], "model": model[b], "gain": model[b] - base[b],
                         "delta": delta, "s": s[-1], "weight": float(w)}
        di[g] = float(np.dot(weights, s)) if names else float("nan")
    math_gain = _math_gain(base, model, grouped["math"])
    result = TIResult(model_name, base_name, "v2", _ratio(di["other"], di["math"]),
                      _ratio(di["non"], di["math"]), math_gain < 1.0 or not di["math"] > 0, math_gain)
    result.groups = {g: {**_means(base, model, names), "index": di[g], "sigma": sigma[g]}
                     for g, names in grouped.items()}
    result.benchmarks = detail
    return result


def transferability(base_name: str, scores: Mapping[str, Scores], groups: Mapping[str, str],
                    variant: str = "v2", sigma: str | Mapping[str, float] = "pooled") -> list[TIResult]:
    """TI of every model in `scores` other than the base, against the base."""
    base = scores[base_name]
    tuned = {m: s for m, s in scores.items() if m != base_name}
    shared = None if variant == "v1" or sigma == "per-model" else sigmas(base, tuned, groups, sigma)
    out = []
    for name, model in tuned.items():
        if variant == "v1":
            out.append(ti_v1(name, base_name, base, model, groups))
        else:  # pooled and fixed sigma are the same for every model: computed once above
            sig = shared if shared is not None else sigmas(base, tuned, groups, sigma, name)
            out.append(ti_v2(name, base_name, base, model, groups, sig))
    return out
