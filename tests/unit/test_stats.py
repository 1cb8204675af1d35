"""engine.analysis.stats against scipy on synthetic data with known answers: Student's t (p and
quantiles to 1e-9 relative), the paired t test (`ttest_rel`), Benjamini-Hochberg
(`false_discovery_control`), McNemar's exact test (`binomtest`), and the bootstrap (deterministic,
paired, the TI recomputed as engine.analysis.metrics computes it). scipy is a test dependency only."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sp

from engine.analysis import stats
from engine.analysis.metrics import transferability

REL = 1e-9


def close(ours: float, theirs: float, rel: float = REL) -> bool:
    if math.isnan(theirs):
        return math.isnan(ours)
    return ours == pytest.approx(theirs, rel=rel, abs=1e-300)


@pytest.mark.parametrize("df", [1, 2, 3, 4.5, 9, 29, 99, 999, 9999, 100_000])
def test_two_sided_p_equals_scipy(df: float) -> None:
    t = np.array([0.0, 1e-8, 0.1, 0.5, 1.0, 1.96, 2.5, 4.0, 8.0, 30.0, 300.0, -2.0, -40.0])
    ours = stats.t_two_sided_p(t, df)
    theirs = 2 * sp.t.sf(np.abs(t), df)
    if df == 1:  # Cauchy, exactly: scipy's sf is 2e-9 off near t = 0 (0.99999999051 for 0.99999999363)
        theirs = 2 / np.pi * np.arctan2(1.0, np.abs(t))
    for o, s in zip(ours, theirs, strict=True):
        assert close(o, s), (df, o, s)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 9, 29, 99, 999, 99_999])
def test_t_quantile_equals_scipy(df: float) -> None:
    for prob in (0.975, 0.995, 0.9, 0.6, 0.5000001, 0.025, 1 - 1e-9):
        assert close(stats.t_quantile(prob, df), sp.t.ppf(prob, df)), (prob, df)
    assert stats.t_quantile(0.5, df) == 0.0 and math.isnan(stats.t_quantile(1.0, df))


def test_incomplete_beta_equals_scipy() -> None:
    from scipy.special import betainc

    rng = np.random.default_rng(3)
    a, b, x = rng.uniform(0.1, 800, 500), rng.uniform(0.1, 800, 500), rng.uniform(0, 1, 500)
    want = betainc(a, b, x)
    got = stats.betainc(a, b, x)
    kept = want > 1e-290
    assert np.allclose(got[kept], want[kept], rtol=REL, atol=0)
    assert list(stats.betainc([2.0, 2.0], [3.0, 3.0], [0.0, 1.0])) == [0.0, 1.0]


def segments(rng: np.random.Generator) -> list[np.ndarray]:
    """Item differences of several (model, benchmark) pairs: binary items, avg@4 items, ties."""
    out = []
    for n, p_base, p_model in [(100, 0.35, 0.62), (100, 0.62, 0.63), (37, 0.5, 0.2), (1000, 0.3, 0.31), (5, 0.5, 0.5)]:
        base = (rng.uniform(size=(n, 1)) < p_base).astype(float)
        model = np.where(rng.uniform(size=(n, 1)) < 0.6, base, (rng.uniform(size=(n, 1)) < p_model))
        out.append((model - base)[:, 0])
    k4 = rng.integers(0, 5, size=(2, 80)) / 4  # avg@4 item scores of a base and a model
    out.append(k4[1] - k4[0])
    return out


def test_paired_deltas_equal_ttest_rel() -> None:
    rng = np.random.default_rng(7)
    parts = segments(rng)
    d = np.concatenate(parts)
    seg = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    got = stats.paired_deltas(d, seg, len(parts))
    for i, part in enumerate(parts):
        n = len(part)
        want = sp.ttest_rel(part, np.zeros(n))  # the item scores' own test: d = model - base
        assert got.n[i] == n
        assert close(got.delta[i], 100 * part.mean(), 1e-12)
        assert close(got.se[i], 100 * part.std(ddof=1) / math.sqrt(n), 1e-12)
        assert close(got.p[i], want.pvalue), (i, got.p[i], want.pvalue)
        low, high = want.confidence_interval(0.95)
        assert close(got.ci_low[i], 100 * low) and close(got.ci_high[i], 100 * high)


def test_ties_all_equal_items_and_single_items() -> None:
    """Every difference zero: no test (NULL p), a zero-width interval at 0. Equal non-zero
    differences: p = 0 as scipy gives it. One item: no spread, nothing but the delta."""
    d = np.array([0.0] * 10 + [1.0] * 6 + [0.5])
    seg = np.array([0] * 10 + [1] * 6 + [2])
    got = stats.paired_deltas(d, seg, 3)
    assert math.isnan(got.p[0]) and math.isnan(sp.ttest_rel(np.zeros(10), np.zeros(10)).pvalue)
    assert (got.delta[0], got.se[0], got.ci_low[0], got.ci_high[0]) == (0.0, 0.0, 0.0, 0.0)
    with warnings.catch_warnings():  # scipy warns of the zero spread it divides by
        warnings.simplefilter("ignore", RuntimeWarning)
        assert got.p[1] == 0.0 == sp.ttest_rel(np.ones(6), np.zeros(6)).pvalue
    assert got.delta[2] == 50.0 and math.isnan(got.se[2]) and math.isnan(got.p[2]) and math.isnan(got.ci_low[2])


def test_benjamini_hochberg_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    for p in [rng.uniform(size=40), np.concatenate([rng.uniform(0, 1e-3, 5), rng.uniform(size=20)]),
              np.array([0.01, 0.01, 0.01, 0.04, 0.04, 0.5, 1.0]), np.array([0.2])]:
        want = sp.false_discovery_control(p, method="bh")
        assert np.allclose(stats.benjamini_hochberg(p), want, rtol=1e-12, atol=0)
    with_nan = np.array([0.01, np.nan, 0.03, 0.2])
    got = stats.benjamini_hochberg(with_nan)
    assert math.isnan(got[1])  # no test, and not counted among the tests
    assert np.allclose(got[[0, 2, 3]], sp.false_discovery_control([0.01, 0.03, 0.2], method="bh"))
    assert stats.benjamini_hochberg([]).size == 0


def test_mcnemar_exact_equals_binomtest() -> None:
    pairs = [(b, c) for b in range(0, 41, 3) for c in range(0, 41, 7) if b + c] + \
            [(0, 1), (1, 0), (5, 5), (27, 1), (0, 1000), (10, 900), (400, 450), (500, 500)]
    got = stats.mcnemar_exact([b for b, _ in pairs], [c for _, c in pairs])
    for (b, c), ours in zip(pairs, got, strict=True):
        want = sp.binomtest(min(b, c), b + c, 0.5).pvalue
        assert close(ours, want), (b, c, ours, want)
    assert stats.mcnemar_exact(0, 0) == 1.0  # no discordant item: nothing against the null


def test_replicate_means_are_paired_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    items = rng.uniform(size=(50, 3))
    one = stats.replicate_means(items, 300, stats.stratum_rng("e\0base\0b", 50))
    two = stats.replicate_means(items, 300, stats.stratum_rng("e\0base\0b", 50))
    assert np.array_equal(one, two)  # same seed and stratum: the same interval every call
    other = stats.replicate_means(items, 300, stats.stratum_rng("e\0base\0c", 50))
    assert not np.array_equal(one, other)  # strata are resampled independently
    draws = stats.stratum_rng("e\0base\0b", 50).integers(0, 50, size=(300, 50), dtype=np.int32)
    assert np.allclose(one, items[draws].mean(axis=1))  # a weight matrix = resampled items, all columns alike
    chunked = stats.replicate_means(np.repeat(items, 50_000 // 50, axis=0)[:, :1], 3, np.random.default_rng(2))
    assert chunked.shape == (3, 1)


def test_bootstrap_se_of_a_mean_difference_is_the_paired_se() -> None:
    """Known answer: the bootstrap sd of mean(d) is sd(d) * sqrt((n - 1) / n) / sqrt(n)."""
    rng = np.random.default_rng(5)
    base = (rng.uniform(size=400) < 0.4).astype(float)
    model = np.where(rng.uniform(size=400) < 0.7, base, rng.uniform(size=400) < 0.5)
    reps = stats.replicate_means(np.column_stack([base, model]), 4000, np.random.default_rng(9))
    d = model - base
    want = d.std(ddof=0) / math.sqrt(len(d))
    assert np.std(reps[:, 1] - reps[:, 0]) == pytest.approx(want, rel=0.05)


GROUPS = {"m1": "math", "m2": "math", "o1": "other", "n1": "non", "n2": "non"}
CASES = {
    "plain": ({"m1": 20.0, "m2": 40.0, "o1": 50.0, "n1": 60.0, "n2": 80.0},
              {"m1": 30.0, "m2": 50.0, "o1": 45.0, "n1": 54.0, "n2": 80.0}),
    "negative maths": ({"m1": 20.0, "m2": 40.0, "o1": 50.0, "n1": 60.0, "n2": 80.0},
                       {"m1": 15.0, "m2": 39.0, "o1": 55.0, "n1": 60.0, "n2": 84.0}),
    "zero base": ({"m1": 20.0, "m2": 40.0, "o1": 0.0, "n1": 60.0, "n2": 100.0},
                  {"m1": 30.0, "m2": 50.0, "o1": 10.0, "n1": 54.0, "n2": 100.0}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_ti_replicates_recompute_the_metrics_ti(case: str, variant: str) -> None:
    """One 'replicate' holding the point scores gives engine.analysis.metrics' TI exactly."""
    base, model = CASES[case]
    names = sorted(GROUPS)
    sigma = {"math": 3.0, "other": 2.0, "non": 4.0}
    want = transferability("base", {"base": base, "tuned": model}, GROUPS, variant, sigma)[0]
    reps = stats.ti_replicates(np.array([[base[b] for b in names]]), np.array([[model[b] for b in names]]),
                               [GROUPS[b] for b in names], variant, sigma)
    for key, value in (("ti_other", want.ti_other), ("ti_non", want.ti_non),
                       *((f"index_{g}", want.groups[g]["index"]) for g in ("math", "other", "non"))):
        assert close(float(reps[key][0]), value, 1e-12), (key, reps[key][0], value)
    assert close(float(reps["gain_math"][0]), want.math_gain, 1e-12)


def test_percentile_interval_skips_undefined_replicates() -> None:
    values = np.concatenate([np.arange(1.0, 101.0), [np.nan, np.inf]])
    assert stats.percentile_ci(values) == [pytest.approx(3.475), pytest.approx(97.525)]
    assert stats.percentile_ci(np.array([np.nan])) is None
