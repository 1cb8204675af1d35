"""The scorers: importing this package registers every built-in scorer in `SCORERS`.

Light on purpose (no torch, no sympy, no lm-eval at import): the heavy libraries behind
`math_verify` and `ifeval` load on their first scored sample, so `tix benchmarks` stays fast.
`get_scorer` lives here, not in `base`: it also loads plugins, and `plugin` builds on `base`.
"""

from engine.evaluation.scorers import choice, code, ifeval, loglik, maths, plugin, rgym, text
from engine.evaluation.scorers.base import (
    NO_ANSWER,
    SCORERS,
    TRUNCATED,
    UNCLOSED_THINK,
    ScoreFn,
    Scorer,
    Verdict,
    mean_metrics,
    register,
)

__all__ = [
    "NO_ANSWER", "SCORERS", "TRUNCATED", "UNCLOSED_THINK", "ScoreFn", "Scorer", "Verdict",
    "choice", "code", "get_scorer", "ifeval", "loglik", "maths", "mean_metrics", "plugin", "register", "rgym",
    "text",
]


def get_scorer(name: str) -> Scorer:
    """The scorer called `name` (a plugin `file.py:function` is loaded on first use), or a
    one-line error listing the known ones."""
    if name not in SCORERS and plugin.is_plugin(name):
        SCORERS[name] = plugin.load(name)
    if name not in SCORERS:
        raise LookupError(f"unknown scorer {name!r} (known: {', '.join(sorted(SCORERS))})")
    return SCORERS[name]
