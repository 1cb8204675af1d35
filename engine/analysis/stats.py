"""Uncertainty of a tuned model's differences from its base: paired standard errors, t intervals and
tests per benchmark, Benjamini-Hochberg q values, McNemar's exact test, and the paired item bootstrap
of the Transferability Index. Pure numpy and `math`; the one module every view's numbers come from.

Why paired (Miller 2024, "Adding Error Bars to Evals", arXiv 2411.00640): a model and its base answer
the same items, so the per-item difference d cancels each item's own difficulty. Its spread, not the
spread of two independent accuracies, is the noise of the gain; on 100 items that is the difference
between "+27 points, p = 2e-5" and "+1 point, p = 0.86" being told apart at all.

- Student's t without scipy (the product computes with numpy only): the two-sided p is the
  regularized incomplete beta function I_{v/(v+t^2)}(v/2, 1/2), evaluated by its continued fraction
  (Numerical Recipes' betacf, modified Lentz); the quantile is safeguarded Newton on that p. Both
  agree with scipy to 1e-9 relative (tests/unit/test_stats.py).
- `paired_deltas`: per segment (a model and benchmark) of item differences: n, delta, se, CI, p.
- `benjamini_hochberg`: step-up q values over every test of an experiment.
- `mcnemar_exact`: the two-sided binomial test on the discordant counts (binary single-sample items).
- The bootstrap: `replicate_means` resamples items with replacement (the same indices for a model and
  its base: a stratum is one benchmark of one base), `ti_replicates` recomputes the group indices and
  the TI from replicate scores (sigma held at its point value), `percentile_ci` reads the interval.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
"""Confidence level of every interval tix prints."""
BOOT = 2000
"""Bootstrap replicates by default (`tix ti --boot N`)."""
SEED = 0
"""The bootstrap's fixed seed: every call prints the same interval."""
GROUPS = ("math", "other", "non")
_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 100_000
_lgamma = np.vectorize(math.lgamma, otypes=[float])


# -- Student's t ----------------------------------------------------------------------------------
def _nonzero(values: np.ndarray) -> np.ndarray:
    """Lentz's guard: a term that would divide by zero becomes tiny instead."""
    return np.where(np.abs(values) < _TINY, _TINY, values)


def _betacf(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The continued fraction of I_x(a, b) (Numerical Recipes 6.4), every element at once; each
    element stops at its own convergence (about sqrt(max(a, b)) terms), so its value does not
    depend on which other elements are computed with it (an incremental refresh computes a few,
    a full read all, and both must give the same bits)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 / _nonzero(1.0 - qab * x / qap)
    h = d.copy()
    out = np.empty_like(x)
    live = np.arange(x.size)
    for m in range(1, _MAX_TERMS + 1):
        m2 = 2.0 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 / _nonzero(1.0 + aa * d)
        c = _nonzero(1.0 + aa / c)
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 / _nonzero(1.0 + aa * d)
        c = _nonzero(1.0 + aa / c)
        step = d * c
        h *= step
        done = np.abs(step - 1.0) < _EPS
        if done.any():
            out[live[done]] = h[done]
            keep = ~done
            live, a, b, x, qab, qap, qam, c, d, h = (v[keep] for v in (live, a, b, x, qab, qap, qam, c, d, h))
            if live.size == 0:
                return out
    out[live] = h
    return out


def betainc(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """The regularized incomplete beta function I_x(a, b); `y` = 1 - x when the caller knows it more
    exactly than 1 - x (the t test's t^2 / (v + t^2)). The fraction converges fast for
    x < (a + 1) / (a + b + 2); past that, 1 - I_{1-x}(b, a)."""
    a, b, x = (np.asarray(v, dtype=float) for v in (a, b, x))
    a, b, x = np.broadcast_arrays(a, b, x)
    y = 1.0 - x if y is None else np.broadcast_to(np.asarray(y, dtype=float), x.shape)
    out = np.full(x.shape, np.nan)
    out[x <= 0] = 0.0
    out[y <= 0] = 1.0
    inside = (x > 0) & (y > 0) & (a > 0) & (b > 0)
    if not inside.any():
        return out
    a, b, x, y = a[inside], b[inside], x[inside], y[inside]
    front = np.exp(_lgamma(a + b) - _lgamma(a) - _lgamma(b) + a * np.log(x) + b * np.log(y))
    direct = x < (a + 1.0) / (a + b + 2.0)
    value = np.empty(x.shape)
    if direct.any():
        value[direct] = front[direct] * _betacf(a[direct], b[direct], x[direct]) / a[direct]
    flip = ~direct
    if flip.any():
        value[flip] = 1.0 - front[flip] * _betacf(b[flip], a[flip], y[flip]) / b[flip]
    out[inside] = value
    return out


def t_two_sided_p(t: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom (NaN where t or df is undefined)."""
    t, df = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(df, dtype=float))
    t2 = t * t
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(np.isinf(t2), 0.0, df / (df + t2))
        y = np.where(np.isinf(t2), 1.0, t2 / (df + t2))
    p = betainc(df / 2.0, np.full(df.shape, 0.5), x, y)
    return np.where(np.isnan(t) | ~(df > 0), np.nan, p)


def t_pdf(t: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """Student's t density (element-wise)."""
    t, df = np.asarray(t, dtype=float), np.asarray(df, dtype=float)
    log_norm = _lgamma((df + 1) / 2) - _lgamma(df / 2) - 0.5 * np.log(df * math.pi)
    return np.exp(log_norm - (df + 1) / 2 * np.log1p(t * t / df))


def t_quantile(prob: float, df: float) -> float:
    """The `prob` quantile of Student's t with `df` degrees of freedom (see `t_quantiles`)."""
    if not 0.0 < prob < 1.0 or not df > 0:
        return math.nan
    if prob == 0.5:
        return 0.0
    if prob < 0.5:
        return -t_quantile(1.0 - prob, df)
    return float(t_quantiles(prob, np.array([float(df)]))[0])


def t_quantiles(prob: float, df: np.ndarray) -> np.ndarray:
    """The `prob` (> 0.5) quantile of Student's t for each df (> 0): Newton on the two-sided p from
    the Cornish-Fisher start, kept inside a bracket (bisection where a step would leave it), to full
    double precision. Every df steps together, so each step is one vectorised incomplete beta (the
    continued fraction is a Python loop: one solve per df cost 130 ms for 10 df at paper scale)."""
    df = np.asarray(df, dtype=float)
    target = 2.0 * (1.0 - prob)
    t = np.array([_t_start(prob, float(v)) for v in df])
    lo, hi = np.zeros(df.shape), np.full(df.shape, np.inf)
    active = np.arange(df.size)
    for _ in range(200):
        if active.size == 0:
            break
        ta, da = t[active], df[active]
        excess = t_two_sided_p(ta, da) - target
        above = excess > 0
        lo[active] = np.where(above, ta, lo[active])
        hi[active] = np.where(above, hi[active], ta)
        la, ha = lo[active], hi[active]
        new = ta + excess / (2.0 * t_pdf(ta, da))
        outside = ~((la < new) & (new < ha))
        new = np.where(outside, np.where(np.isinf(ha), 2.0 * la + 1.0, (la + ha) / 2), new)
        t[active] = new
        active = active[np.abs(new - ta) > 4 * np.finfo(float).eps * new]
    return t


def _t_start(prob: float, df: float) -> float:
    """A first guess: exact for 1 and 2 degrees of freedom, else the normal quantile corrected by
    the first Cornish-Fisher terms (Abramowitz and Stegun 26.7.5)."""
    if df == 1:
        return math.tan(math.pi * (prob - 0.5))
    if df == 2:
        return (2 * prob - 1) * math.sqrt(2 / (4 * prob * (1 - prob)))
    z = statistics.NormalDist().inv_cdf(prob)
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


_CRITICAL: dict[tuple[float, float], float] = {}
"""t_critical's values solved so far: the daemon's refreshes ask for the same few df again."""


def t_critical(df: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """The two-sided critical value t_{(1+level)/2, df} of each df (NaN for df < 1); the df not
    solved before are solved together."""
    df = np.asarray(df, dtype=float)
    out = np.full(df.shape, np.nan)
    usable = df >= 1
    values, where = np.unique(df[usable], return_inverse=True)
    prob = (1.0 + level) / 2.0
    known = {v: _CRITICAL.get((prob, v)) for v in values.tolist()}  # a local copy: another thread
    new = [v for v, t in known.items() if t is None]  # may clear the cache meanwhile
    if new:
        if len(_CRITICAL) > 100_000:
            _CRITICAL.clear()
        known.update(zip(new, t_quantiles(prob, np.array(new)).tolist(), strict=True))
        _CRITICAL.update(((prob, v), known[v]) for v in new)
    if values.size:
        out[usable] = np.array([known[v] for v in values.tolist()])[where]
    return out


# -- paired differences per benchmark ------------------------------------------------------------
@dataclass
class Paired:
    """Per segment (one model and benchmark against its base): everything in points, p two-sided."""

    n: np.ndarray
    delta: np.ndarray  # 100 * mean(d)
    se: np.ndarray  # 100 * sd(d, ddof=1) / sqrt(n): clustered by item, paired
    ci_low: np.ndarray
    ci_high: np.ndarray
    p: np.ndarray  # paired t test (= scipy.stats.ttest_rel); NaN when every difference is zero


def paired_deltas(d: np.ndarray, segment: np.ndarray, count: int, level: float = LEVEL) -> Paired:
    """Paired statistics of the item differences `d` (model - base item score, in [−1, 1]) grouped by
    `segment` (0..count-1). Two passes (mean, then squared deviations) keep the variance exact for
    differences that are all nearly equal."""
    n = np.bincount(segment, minlength=count).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(segment, weights=d, minlength=count) / n
        deviation = d - mean[segment]
        ss = np.bincount(segment, weights=deviation * deviation, minlength=count)
        sd = np.where(n > 1, np.sqrt(ss / (n - 1)), np.nan)
        se = sd / np.sqrt(n)
        t = mean / se
        half = t_critical(n - 1, level) * se
    zero = (mean == 0) & (ss == 0)  # every difference zero: no test (0 / 0)
    p = np.where(zero | (n < 2), np.nan, t_two_sided_p(np.where(zero, 0.0, t), n - 1))
    return Paired(n.astype(int), 100 * mean, 100 * se, 100 * (mean - half), 100 * (mean + half), p)


def benjamini_hochberg(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """BH q values (step-up, made monotone, capped at 1) over the defined p values; NaN stays NaN and
    does not count as a test (equal to scipy.stats.false_discovery_control(p, method='bh'))."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    defined = ~np.isnan(p)
    m = int(defined.sum())
    if m == 0:
        return q
    values = p[defined]
    order = np.argsort(values, kind="stable")
    scaled = values[order] * m / np.arange(1, m + 1)
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    ranked = np.empty(m)
    ranked[order] = np.minimum(monotone, 1.0)
    q[defined] = ranked
    return q


def mcnemar_exact(gained: np.ndarray | int, lost: np.ndarray | int) -> np.ndarray:
    """McNemar's exact p: two-sided binomial test of the discordant pairs against 1/2,
    min(1, 2 * P(Bin(b + c, 1/2) <= min(b, c))), with the binomial CDF as I_{1/2}(n - k, k + 1).
    No discordant pair: p = 1."""
    b, c = np.broadcast_arrays(np.asarray(gained, dtype=float), np.asarray(lost, dtype=float))
    n, k = b + c, np.minimum(b, c)
    cdf = np.ones(n.shape)
    some = k < n / 2  # at k >= n / 2 the CDF is >= 1/2 and the p is 1
    if some.any():
        cdf[some] = betainc(n[some] - k[some], k[some] + 1, np.full(int(some.sum()), 0.5))
    return np.where(n == 0, 1.0, np.minimum(1.0, 2.0 * cdf))


# -- the paired item bootstrap -------------------------------------------------------------------
def stratum_rng(key: str, n: int, seed: int = SEED) -> np.random.Generator:
    """A stratum's own generator, from the seed and its name: an interval does not change when other
    models, benchmarks or experiments are added to the database."""
    return np.random.default_rng([seed, zlib.crc32(key.encode()), n])


def replicate_means(items: np.ndarray, boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of the columns of `items` (n items x k series, e.g. a base and its tuned
    models on one benchmark): each replicate draws n items with replacement, the same draw for every
    column (paired). Weight matrices of at most ~2M cells, multiplied in (BLAS), never a Python loop
    over items. Returns (boot, k)."""
    n = items.shape[0]
    out = np.empty((boot, items.shape[1]))
    chunk = max(1, min(boot, 2_000_000 // max(n, 1)))
    for start in range(0, boot, chunk):
        rows = min(chunk, boot - start)
        draws = rng.integers(0, n, size=(rows, n), dtype=np.int32)
        draws += (np.arange(rows, dtype=np.int32) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(float)
        out[start:start + rows] = weights @ items / n
    return out


def ti_replicates(base: np.ndarray, model: np.ndarray, groups: Sequence[str], variant: str,
                  sigma: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """TI of each replicate, as engine.analysis.metrics computes it from point scores. `base` and
    `model` are (replicates, benchmarks) scores in percent; `groups` names each column's group;
    v2's sigma is held at its point value. Returns per group `index_<g>` (v1's relative gain dR_g,
    v2's DI_g) and `gain_<g>` (mean gain in points), and `ti_other`, `ti_non` (NaN where the maths
    index is 0)."""
    out: dict[str, np.ndarray] = {}
    columns = {g: [i for i, name in enumerate(groups) if name == g] for g in GROUPS}
    with np.errstate(invalid="ignore", divide="ignore"):
        for g, cols in columns.items():
            b, m = base[:, cols], model[:, cols]
            out[f"gain_{g}"] = (m - b).mean(axis=1) if cols else np.full(len(base), np.nan)
            out[f"index_{g}"] = _index(b, m, variant, (sigma or {}).get(g, math.nan)) if cols \
                else np.full(len(base), np.nan)
        math_index = out["index_math"]
        for g in ("other", "non"):
            out[f"ti_{g}"] = np.where(math_index == 0, np.nan, 100.0 * out[f"index_{g}"] / math_index)
    return out


def _index(base: np.ndarray, model: np.ndarray, variant: str, sigma: float) -> np.ndarray:
    """One group's index per replicate: v1 mean relative gain, v2 weighted signed-root gain."""
    if variant == "v1":
        return np.where(base == 0, np.nan, (model - base) / base).mean(axis=1)
    delta = (model - base) / sigma if sigma and not math.isnan(sigma) else np.full(base.shape, np.nan)
    weights = 100.0 - base
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, weights / total, np.nan)
    return (weights * np.sign(delta) * np.sqrt(np.abs(delta))).sum(axis=1)


def percentile_ci(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The percentile interval of the defined replicates; None when none is defined."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return [float(low), float(high)]
