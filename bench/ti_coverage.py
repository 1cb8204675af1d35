"""Coverage of tix's 95% intervals over synthetic experiments whose true values are known.

Each seed draws a fresh set of items from one population: per benchmark a base answers an item right
with probability p_base and the tuned model with p_model (it answers like the base on `--agree` of
the items, so the two are paired as real models are). The true scores are 100 p, so the true delta,
group gains, indices and TI follow from engine.analysis.metrics. The intervals are computed by the
daemon's own code path (engine.analysis.ti objects, engine.analysis.paired.attach, the fixed seed):
a 95% interval should hold the truth in about 95% of the seeds. v2 is run with a fixed sigma (the
population's: the bootstrap holds sigma at its value, so this measures the items' share of the
noise) and with pooled sigma (estimated from the same items, whose own noise the interval omits).

Run: `python bench/ti_coverage.py [--seeds 500] [--items 100] [--boot 2000]` (not a timing test).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from engine.analysis import metrics, paired, stats, ti

# The demo's SFT-like population: maths gains +27 and +1 points, other -5 and 0, non -19 and -14.
POPULATION = {"lab_basic_arithmetic": ("math", 0.35, 0.62), "lab_chain_sum": ("math", 0.62, 0.63),
              "lab_count_bits": ("other", 0.29, 0.24), "lab_syllogism": ("other", 0.55, 0.55),
              "lab_spell_backward": ("non", 0.53, 0.34), "lab_word_sequence_reversal": ("non", 0.51, 0.37)}


def draw(rng: np.random.Generator, items: int, agree: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One sample of items per benchmark: (base, model) binary verdicts."""
    out = {}
    for bench, (_, p_base, p_model) in POPULATION.items():
        u = rng.uniform(size=items)
        v = np.where(rng.uniform(size=items) < agree, u, rng.uniform(size=items))
        out[bench] = ((u < p_base).astype(float), (v < p_model).astype(float))
    return out


def score_rows(sample: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict[str, Any]]:
    """model_scores rows as the `ti` op reads them (accuracy = mean item score)."""
    rows = []
    for bench, (base, model) in sample.items():
        for name, verdicts in (("base", base), ("tuned", model)):
            rows.append({"experiment": "syn", "model": name, "base_model": None if name == "base" else "base",
                         "method": None, "benchmark": bench, "group": POPULATION[bench][0],
                         "score": 100 * float(verdicts.mean()), "position": None})
    return rows


def paired_data(sample: dict[str, tuple[np.ndarray, np.ndarray]]) -> paired.PairedData:
    """The arrays engine.analysis.paired.load makes from the database, made directly."""
    segments, seg, item, y, x = [], [], [], [], []
    for i, (bench, (base, model)) in enumerate(sample.items()):
        segments.append(paired.Segment("syn", "tuned", "base", None, bench, POPULATION[bench][0], i))
        seg.append(np.full(len(base), i))
        item.append(np.arange(len(base)))
        y.append(model)
        x.append(base)
    seg_all = np.concatenate(seg)
    return paired._compute("synthetic", segments, seg_all, seg_all.copy(), np.concatenate(item),
                           np.concatenate(y), np.concatenate(x), np.ones(len(seg_all), dtype=bool))


def truth(variant: str, sigma: Any) -> Any:
    base = {b: 100 * p for b, (_, p, _) in POPULATION.items()}
    model = {b: 100 * p for b, (_, _, p) in POPULATION.items()}
    groups = {b: g for b, (g, _, _) in POPULATION.items()}
    return metrics.transferability("base", {"base": base, "tuned": model}, groups, variant, sigma)[0]


def inside(interval: list[float] | None, value: float) -> bool:
    return interval is not None and interval[0] <= value <= interval[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=100, help="items per benchmark")
    parser.add_argument("--boot", type=int, default=stats.BOOT)
    parser.add_argument("--agree", type=float, default=0.6,
                        help="share of items the tuned model answers as the base")
    args = parser.parse_args()
    true_sigma = truth("v2", "pooled").groups
    fixed = {g: true_sigma[g]["sigma"] for g in ("math", "other", "non")}
    modes = {"v1": ("v1", "pooled"), "v2 fixed sigma": ("v2", fixed), "v2 pooled sigma": ("v2", "pooled")}
    truths = {label: truth(*mode) for label, mode in modes.items()}
    hits: dict[str, list[bool]] = {}
    widths: dict[str, list[float]] = {}
    started = time.perf_counter()
    for seed in range(args.seeds):
        sample = draw(np.random.default_rng(seed), args.items, args.agree)
        data = paired_data(sample)
        for label, (variant, sigma) in modes.items():
            o = ti.compute(score_rows(sample), {"syn": (variant, sigma)})[0][0]
            paired.attach([o], data, args.boot)
            tally(hits, widths, label, o, truths[label])
    elapsed = time.perf_counter() - started
    print(f"{args.seeds} synthetic seeds x {len(POPULATION)} benchmarks x {args.items} binary items, "
          f"{args.boot} replicates, agreement {args.agree:.0%}; {elapsed:.0f} s")
    print(f"{'interval':44} {'coverage':>9} {'median width':>12}  (no interval counts as a miss)")
    for key in hits:
        print(f"{key:44} {100 * np.mean(hits[key]):8.1f}% {np.nanmedian(widths[key]):12.3g}")


def tally(hits: dict[str, list[bool]], widths: dict[str, list[float]], label: str, o: dict[str, Any],
          true: Any) -> None:
    """Whether each interval of one TI object holds the truth, and its width."""
    checks: list[tuple[str, list[float] | None, float]] = [
        (f"{label}: TI_other (bootstrap)", o["ti_other_ci"], true.ti_other),
        (f"{label}: TI_non (bootstrap)", o["ti_non_ci"], true.ti_non),
        *((f"{label}: index {g} (bootstrap)", o["groups"][g]["index_ci"], true.groups[g]["index"])
          for g in ("math", "other", "non"))]
    if label == "v1":  # the same for every variant: counted once
        checks += [(f"group gain {g} (bootstrap)", o["groups"][g]["gain_ci"],
                    true.groups[g]["model"] - true.groups[g]["base"]) for g in ("math", "other", "non")]
        checks += [("benchmark delta (paired t)", o["benchmarks"][b]["paired"]["ci"], 100 * (pm - pb))
                   for b, (_, pb, pm) in POPULATION.items()]
    for key, interval, value in checks:
        hits.setdefault(key, []).append(inside(interval, value))
        widths.setdefault(key, []).append(np.nan if interval is None else interval[1] - interval[0])


if __name__ == "__main__":
    main()
