"""The scorers: importing this package registers every built-in scorer in `SCORERS`.

Light on purpose (no torch, no sympy, no lm-eval at import): the heavy libraries behind
`math_verify` and `ifeval` load on their first scored sample, so `tix benchmarks` stays fast.
"""

from engine.evaluation.scorers import choice, code, ifeval, loglik, maths, rgym, text
from engine.evaluation.scorers.base import (
    NO_ANSWER,
    SCORERS,
    TRUNCATED,
    UNCLOSED_THINK,
    ScoreFn,
    Scorer,
    Verdict,
    get_scorer,
    mean_metrics,
    register,
)

__all__ = [
    "NO_ANSWER", "SCORERS", "TRUNCATED", "UNCLOSED_THINK", "ScoreFn", "Scorer", "Verdict",
    "choice", "code", "get_scorer", "ifeval", "loglik", "maths", "mean_metrics", "register", "rgym", "text",
]
