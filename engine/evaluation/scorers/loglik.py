"""`choice_index`: the verdict for benchmarks scored by log-likelihood over their choices.

The eval job picks the choice with the highest log-likelihood and passes its text as the
"completion"; this scorer compares it with the gold answer (a choice text or its index).
"""

from __future__ import annotations

from typing import Any

from engine.evaluation.scorers.base import Verdict, register


@register("choice_index", "1")
def choice_index(completion: str, item: dict[str, Any]) -> Verdict:
    """Correct when the likeliest choice is the gold one."""
    gold = str(item.get("answer", "")).strip()
    choices = [str(c).strip() for c in item.get("choices") or []]
    if gold.isdigit() and gold not in choices and int(gold) < len(choices):
        gold = choices[int(gold)]
    picked = completion.strip()
    return Verdict(float(picked == gold), extracted=picked)
