"""The Transferability Index on small cases computed by hand (DESIGN.md section 5)."""

from __future__ import annotations

import math

import pytest

from engine.analysis.metrics import sigmas, ti_v1, ti_v2, transferability

GROUPS = {"m1": "math", "m2": "math", "o1": "other", "n1": "non", "n2": "non"}
BASE = {"m1": 20.0, "m2": 40.0, "o1": 50.0, "n1": 60.0, "n2": 80.0}
SFT = {"m1": 30.0, "m2": 50.0, "o1": 45.0, "n1": 54.0, "n2": 80.0}
RL = {"m1": 25.0, "m2": 44.0, "o1": 55.0, "n1": 60.0, "n2": 84.0}


def test_v1_by_hand() -> None:
    r = ti_v1("sft", "base", BASE, SFT, GROUPS)
    d_math = (10 / 20 + 10 / 40) / 2  # 0.375
    d_other = -5 / 50  # -0.1
    d_non = (-6 / 60 + 0 / 80) / 2  # -0.05
    assert r.ti_other == pytest.approx(100 * d_other / d_math)  # -26.67
    assert r.ti_non == pytest.approx(100 * d_non / d_math)  # -13.33
    assert r.groups["math"]["base"] == 30.0 and r.groups["math"]["model"] == 40.0
    assert not r.unstable and r.math_gain == 10.0


def test_v2_pooled_by_hand() -> None:
    gains = {"math": [10, 10, 5, 4], "other": [-5, 5], "non": [-6, 0, 0, 4]}
    pooled = {g: float(_pstd(v)) for g, v in gains.items()}
    assert sigmas(BASE, {"sft": SFT, "rl": RL}, GROUPS, "pooled") == pytest.approx(pooled)
    r = ti_v2("sft", "base", BASE, SFT, GROUPS, pooled)
    s = lambda gain, g: math.copysign(math.sqrt(abs(gain / pooled[g])), gain)  # noqa: E731
    w_m = [80 / 140, 60 / 140]
    di_math = w_m[0] * s(10, "math") + w_m[1] * s(10, "math")
    di_other = 1.0 * s(-5, "other")
    w_n = [40 / 60, 20 / 60]
    di_non = w_n[0] * s(-6, "non") + w_n[1] * 0.0
    assert r.ti_other == pytest.approx(100 * di_other / di_math)
    assert r.ti_non == pytest.approx(100 * di_non / di_math)
    assert r.benchmarks["m1"]["weight"] == pytest.approx(80 / 140)


def test_v2_per_model_and_fixed_sigma() -> None:
    per = sigmas(BASE, {"sft": SFT, "rl": RL}, GROUPS, "per-model", "rl")
    assert per["math"] == pytest.approx(_pstd([5, 4])) and per["other"] == 0.0
    r = ti_v2("rl", "base", BASE, RL, GROUPS, per)
    assert math.isnan(r.ti_other)  # sigma 0: undefined, not a crash
    fixed = transferability("base", {"base": BASE, "rl": RL}, GROUPS, "v2", {"math": 2.0, "other": 4.0, "non": 1.0})[0]
    di_math = (80 / 140) * math.sqrt(5 / 2) + (60 / 140) * math.sqrt(4 / 2)  # weights 100 - base
    assert fixed.ti_other == pytest.approx(100 * math.sqrt(5 / 4) / di_math)


def test_negative_and_near_zero_maths_gains_are_flagged() -> None:
    worse = {**SFT, "m1": 15.0, "m2": 39.0}
    r1, r2 = ti_v1("w", "base", BASE, worse, GROUPS), transferability("base", {"base": BASE, "w": worse}, GROUPS)[0]
    assert r1.unstable and r2.unstable and r1.math_gain == -3.0
    assert not math.isnan(r1.ti_other)  # computed all the same
    tiny = {**SFT, "m1": 20.5, "m2": 40.5}
    assert ti_v1("t", "base", BASE, tiny, GROUPS).unstable  # under 1 point
    with pytest.raises(ValueError, match="unknown sigma mode"):
        sigmas(BASE, {"w": worse}, GROUPS, "median")


def _pstd(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
