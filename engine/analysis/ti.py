"""`tix ti`: the Transferability Index of every tuned model against its base, from stored scores.

The daemon's `ti` op reads the `model_scores` view (experiment runs and imported scores alike)
and computes with engine.analysis.metrics (`report` below), so every sigma mode (pooled, per-model,
fixed) is available and the CLI never imports numpy (the long-lived daemon pays for it once).
The daemon then adds the uncertainty (engine.analysis.paired: per-benchmark paired statistics and
bootstrap intervals of the TI and the group indices). The CLI parses the flags (`parse_sigma`) and
renders the returned objects (`human_rows`, `csv_rows`, `detail_table`). The `ti` SQL view computes
v1 and pooled v2 the same way in DuckDB (point values only: intervals need the items).

Models are compared per (experiment, base model): pooled sigma pools the point gains of every
model that shares that base in that experiment. An experiment file's `ti: {variant, sigma}`
section is the default for its experiment; flags override it; otherwise v2 with pooled sigma.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

GROUPS = ("math", "other", "non")
Sigma = str | dict[str, float]
Query = Callable[[str, list[Any]], list[dict[str, Any]]]
SCORES_SQL = ('SELECT experiment, model, base_model, method, benchmark, "group", score, position '
              "FROM model_scores{where} ORDER BY experiment, model, benchmark")
SETTINGS_SQL = "SELECT name, spec FROM experiments ORDER BY name"
UNSTABLE_NOTE = ("UNSTABLE: maths gain under 1 point, maths index <= 0, or a maths index whose 95% CI "
                 "includes 0; the ratio is computed but not meaningful")
SIGMA_HELP = "pooled, per-model or math=V,other=V,non=V"


class UnknownExperiment(LookupError):
    """`tix ti NAME` with no experiment of that name."""


def parse_sigma(text: str) -> Sigma:
    """`pooled`, `per-model` or fixed `math=V,other=V,non=V` (all three, each > 0)."""
    text = text.strip()
    if text in ("pooled", "per-model"):
        return text
    values: dict[str, float] = {}
    for part in text.split(","):
        key, sep, number = (p.strip() for p in part.partition("="))
        if not sep or key not in GROUPS:
            raise ValueError(f"--sigma {text!r}: expected {SIGMA_HELP}")
        if key in values:
            raise ValueError(f"--sigma {text!r}: {key} given twice")
        values[key] = _positive(text, key, number)
    missing = [g for g in GROUPS if g not in values]
    if missing:
        raise ValueError(f"--sigma {text!r}: missing {', '.join(missing)} (fixed sigma needs all of "
                         f"{', '.join(GROUPS)})")
    return values


def _positive(text: str, key: str, number: str) -> float:
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"--sigma {text!r}: {key}={number!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--sigma {text!r}: {key} must be a number > 0")
    return value


def check_sigma(value: Any) -> Sigma | None:
    """A sigma sent over the socket (a mode name or a group -> value map), validated; None = default."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_sigma(value)
    if isinstance(value, dict):
        return parse_sigma(",".join(f"{k}={v}" for k, v in value.items()))
    raise ValueError(f"sigma must be {SIGMA_HELP}")


def spec_setting(spec: str | None) -> tuple[str | None, Sigma | None]:
    """The `ti:` section of an experiment file's text (None where absent or unreadable)."""
    import yaml

    try:
        data = yaml.safe_load(spec) if spec else None
    except yaml.YAMLError:
        return None, None
    section = data.get("ti") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return None, None
    try:
        sigma = check_sigma(section.get("sigma"))
    except ValueError:
        sigma = None
    return section.get("variant"), sigma


def choose(spec: tuple[str | None, Sigma | None], variant: str | None,
           sigma: Sigma | None) -> tuple[str, Sigma]:
    """Flags first, then the experiment file's `ti:` section, then v2 with pooled sigma."""
    spec_variant, spec_sigma = spec
    chosen = variant or (spec_variant if spec_variant in ("v1", "v2") else "v2")
    return chosen, sigma or spec_sigma or "pooled"


# -- computing (the daemon) -----------------------------------------------------------------------
@dataclass
class _Experiment:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> base_model, method, ...
    groups: dict[str, str] = field(default_factory=dict)  # benchmark -> group


def report(query: Query, experiment: str | None, variant: str | None,
           sigma: Sigma | None) -> dict[str, Any]:
    """{"results": one object per tuned model, "warnings": [...]}; `query(sql, params)` gives rows."""
    specs = {r["name"]: r["spec"] for r in query(SETTINGS_SQL, [])}
    if experiment is not None and experiment not in specs:
        raise UnknownExperiment(f"no experiment named {experiment!r} "
                                f"(experiments: {', '.join(sorted(specs)) or 'none yet'})")
    where, params = (" WHERE experiment = ?", [experiment]) if experiment else ("", [])
    rows = query(SCORES_SQL.format(where=where), params)
    settings = {name: choose(spec_setting(specs.get(name)), variant, sigma)
                for name in {r["experiment"] for r in rows}}
    results, warnings = compute(rows, settings)
    return {"results": results, "warnings": warnings}


def collect(rows: list[dict[str, Any]]) -> dict[str, _Experiment]:
    """model_scores rows grouped by experiment and model."""
    out: dict[str, _Experiment] = {}
    for r in rows:
        exp = out.setdefault(r["experiment"], _Experiment())
        model = exp.models.setdefault(r["model"], {"base_model": r["base_model"], "method": r["method"],
                                                   "position": r["position"], "scores": {}})
        model["scores"][r["benchmark"]] = float(r["score"])
        exp.groups.setdefault(r["benchmark"], r["group"])
    return out


def compute(rows: list[dict[str, Any]], settings: Mapping[str, tuple[str, Sigma]]
            ) -> tuple[list[dict[str, Any]], list[str]]:
    """TI objects of every tuned model (per experiment, per base); warnings for bases with no scores."""
    from engine.analysis.metrics import transferability

    results: list[dict[str, Any]] = []
    warnings: list[str] = []
    for name, exp in collect(rows).items():
        variant, sigma = settings[name]
        for base in sorted({m["base_model"] for m in exp.models.values() if m["base_model"]}):
            tuned = _ordered({k: m for k, m in exp.models.items() if m["base_model"] == base})
            if base not in exp.models:
                warnings += [f"experiment {name}: no scores for base model {base!r}; skipped {t}"
                             for t in tuned]
                continue
            scores = {base: exp.models[base]["scores"], **{t: exp.models[t]["scores"] for t in tuned}}
            for r in transferability(base, scores, exp.groups, variant, sigma):
                results.append(to_object(name, exp.models[r.model]["method"], sigma, r))
    return results, warnings


def _ordered(models: dict[str, dict[str, Any]]) -> list[str]:
    """File order for imported models, then names."""
    return sorted(models, key=lambda m: (models[m]["position"] is None, models[m]["position"] or 0, m))


def to_object(experiment: str, method: str | None, sigma: Sigma, r: Any) -> dict[str, Any]:
    """One tuned model's TIResult as a JSON object (NaN stays NaN until printed as null)."""
    return {"experiment": experiment, "model": r.model, "base_model": r.base_model, "method": method,
            "variant": r.variant, "sigma": None if r.variant == "v1" else sigma,
            "ti_other": r.ti_other, "ti_non": r.ti_non, "unstable": r.unstable,
            "unstable_reason": unstable_reason(r.unstable, r.math_gain, r.groups.get("math")),
            "math_gain": r.math_gain,
            "groups": {g: {**v, "benchmarks": sum(b["group"] == g for b in r.benchmarks.values())}
                       for g, v in r.groups.items()},
            "benchmarks": benchmark_details(r.benchmarks)}


def unstable_reason(unstable: bool, math_gain: float, maths: dict[str, float] | None = None) -> str | None:
    """Why a model's ratios are flagged, in the terms that made them so: `maths` is the maths
    group's means, index and (v2) sigma. An index that is undefined is not `<= 0`: with a sigma of 0
    (per-model sigma of equal gains) or a base score of 0 (v1) the division has no value."""
    if not unstable:
        return None
    if math.isnan(math_gain):
        return "no maths benchmark shared with the base"
    if math_gain < 1.0:
        return f"maths gain {math_gain:.2f} points < 1"
    maths = maths or {}
    index = maths.get("index", float("nan"))
    if not math.isnan(index):
        return f"maths index {index:.3g} <= 0"
    if maths.get("sigma") == 0:
        return "maths index undefined: σ_math is 0 (every maths gain the same), nothing to divide by"
    if maths and "sigma" not in maths:  # v1
        return "maths index undefined: a maths benchmark's base score is 0 (its relative gain has no value)"
    return "maths index undefined"


def benchmark_details(benchmarks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-benchmark deltas with the gain (points) and relative gain whatever the variant."""
    out = {}
    for b, d in benchmarks.items():
        gain = d["model"] - d["base"]
        out[b] = {**d, "gain": gain, "relative": gain / d["base"] if d["base"] else float("nan")}
    return out


# -- output (the CLI) -----------------------------------------------------------------------------
def sigma_label(o: dict[str, Any]) -> str:
    if o["variant"] == "v1":
        return "v1"
    return f"v2 {o['sigma']}" if isinstance(o["sigma"], str) else "v2 fixed"


HUMAN_COLUMNS = ["experiment", "model", "base", "method", "TI", "math", "other", "non",
                 "TI_other [95% CI]", "TI_non [95% CI]", "unstable"]
CSV_COLUMNS = ["experiment", "model", "base_model", "method", "variant", "sigma", "math_base", "math_model",
               "other_base", "other_model", "non_base", "non_model", "math_gain", "ti_other", "ti_non",
               "unstable", "ti_other_ci_low", "ti_other_ci_high", "ti_non_ci_low", "ti_non_ci_high",
               "math_index_le0", "ci_missing"]
CI_NOTE = ("[low, high]: 95% paired bootstrap interval (items resampled within each benchmark, "
           "the same draw for a model and its base); see README \"Statistics\"")


def notes(objects: list[dict[str, Any]]) -> list[str]:
    """The lines under a table of these models: what the brackets are (when any model has an
    interval), and what UNSTABLE means (when any is)."""
    shown = [CI_NOTE] if any(o.get("ti_other_ci") or o.get("ti_non_ci") for o in objects) else []
    return shown + ([UNSTABLE_NOTE] if any(o["unstable"] for o in objects) else [])


def human_rows(objects: list[dict[str, Any]]) -> list[list[Any]]:
    """Table/md/latex rows: group means as `base -> model` (one decimal), each TI with its interval
    (`-80.6 [-195, -41]`, or `[no items]` for imported scores), the flag spelled out."""
    rows = []
    for o in objects:
        means = [f"{_f(o['groups'][g]['base'])} -> {_f(o['groups'][g]['model'])}" for g in GROUPS]
        rows.append([o["experiment"], o["model"], o["base_model"], o["method"] or "", sigma_label(o), *means,
                     with_ci(o["ti_other"], o.get("ti_other_ci"), o.get("ci_missing")),
                     with_ci(o["ti_non"], o.get("ti_non_ci"), o.get("ci_missing")),
                     "UNSTABLE" if o["unstable"] else ""])
    return rows


def with_ci(value: float | None, interval: list[float] | None, missing: str | None = None) -> str:
    """`-80.6 [-195, -41]`: the value to one decimal, the bounds as `bound` writes them; the reason
    in brackets where there is no interval (`85.7 [no items]`)."""
    if interval is None:
        return f"{_f(value)} [{missing}]" if missing else _f(value)
    return f"{_f(value)} {ci_text(interval)}"


def ci_text(interval: list[float] | None, signed: bool = False) -> str:
    """`[-195, -41]`; `-` without an interval."""
    if interval is None:
        return "-"
    return f"[{bound(interval[0], signed)}, {bound(interval[1], signed)}]"


def bound(value: float | None, signed: bool = False) -> str:
    """An interval's end: whole from 10 up, one decimal below (the interval's width, not the last
    digit, is the information); `+` written out when `signed`."""
    if value is None or math.isnan(value):
        return "nan"
    text = f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"
    return "+" + text if signed and value > 0 else text


def p_text(value: float | None) -> str:
    """A p or q value for a human: three decimals, or two significant digits below 0.001."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def csv_rows(objects: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for o in objects:
        sigma = o["sigma"] if isinstance(o["sigma"], str) or o["sigma"] is None else \
            ",".join(f"{g}={o['sigma'][g]:g}" for g in GROUPS)
        means = [o["groups"][g][k] for g in GROUPS for k in ("base", "model")]
        cis = [(o.get(k) or [None, None])[i] for k in ("ti_other_ci", "ti_non_ci") for i in (0, 1)]
        boot = o.get("bootstrap") or {}
        rows.append([o["experiment"], o["model"], o["base_model"], o["method"], o["variant"], sigma or "",
                     *means, o["math_gain"], o["ti_other"], o["ti_non"], o["unstable"], *cis,
                     boot.get("math_index_le0"), o.get("ci_missing") or ""])
    return rows


DETAIL_COLUMNS = ["experiment", "model", "base", "TI", "benchmark", "group", "base_score", "score", "gain",
                  "relative", "sigma", "delta", "s", "weight", "n", "se", "ci_low", "ci_high", "p", "q",
                  "mcnemar_p"]
DETAIL_HUMAN_COLUMNS = ["experiment", "model", "base", "TI", "benchmark", "group", "base_score", "score",
                        "gain", "95% CI", "p", "q", "q<0.05", "relative", "sigma", "delta", "s", "weight"]
SIGNIFICANT_MARK = "*"
DETAIL_NOTE = ("gain: points; 95% CI and p: paired t over the items both models have; q: Benjamini-Hochberg "
               f"over the experiment; {SIGNIFICANT_MARK}: q < 0.05; no items: imported scores")


def detail_table(objects: list[dict[str, Any]], fmt: str) -> tuple[list[str], list[list[Any]]]:
    """`tix ti --benchmarks` (and the TUI's export of it): numbers whole in csv/json, the interval as
    text and significant rows marked in table/md/latex."""
    if fmt in ("csv", "json"):
        return DETAIL_COLUMNS, detail_rows(objects)
    rows = []
    for row, paired in zip(detail_rows(objects), _paired(objects), strict=True):
        if paired is None:
            shown = ["no items", None, None, ""]
        else:
            q = paired["q"]
            mark = SIGNIFICANT_MARK if q is not None and q < 0.05 else ""
            shown = [ci_text(paired["ci"], signed=True), p_text(paired["p"]), p_text(q), mark]
        rows.append([*row[:9], *shown, *row[9:14]])
    return DETAIL_HUMAN_COLUMNS, rows


def _paired(objects: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    return [o["benchmarks"][b].get("paired") for o in objects for b in _benchmark_order(o["benchmarks"])]


def _benchmark_order(details: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(details, key=lambda b: (GROUPS.index(details[b]["group"]), b))


def detail_rows(objects: list[dict[str, Any]]) -> list[list[Any]]:
    """Per-benchmark rows: gain and relative gain (v1's terms), sigma, delta, signed root and weight
    (v2's terms; empty for v1), then the paired statistics (empty without items)."""
    rows = []
    for o in objects:
        details = o["benchmarks"]
        for b in _benchmark_order(details):
            d = details[b]
            v2 = ([o["groups"][d["group"]]["sigma"], d["delta"], d["s"], d["weight"]] if o["variant"] == "v2"
                  else [None] * 4)
            paired = d.get("paired") or {}
            ci = paired.get("ci") or [None, None]
            rows.append([o["experiment"], o["model"], o["base_model"], sigma_label(o), b, d["group"],
                         d["base"], d["model"], d["gain"], d["relative"], *v2, paired.get("n"),
                         paired.get("se"), *ci, paired.get("p"), paired.get("q"), paired.get("mcnemar_p")])
    return rows


def _f(value: float | None) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.1f}"
