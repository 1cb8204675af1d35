"""Extractive QA scoring: SQuAD exact match and token F1, on the completion's first line.

The normalisation is the official SQuAD script's (lower case, punctuation and the articles
a/an/the removed, whitespace collapsed). As in the CoQA script, an empty prediction or gold
scores 1 only against another empty one, and only the first line of the answer is scored: chat
models add explanations after the answer, which would otherwise drown the F1.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

from engine.evaluation.scorers.base import NO_ANSWER, Verdict, register
from engine.evaluation.scorers.choice import golds
from engine.evaluation.scorers.textutil import answer_part, first_line

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's `normalize_answer`: lower, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 between the normalised strings."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


@register("squad_f1", "1")
def squad_f1(completion: str, item: dict[str, Any]) -> Verdict:
    """SQuAD/CoQA F1 (and EM) of the first line against the best-matching gold answer."""
    text, flags = answer_part(completion)
    line = first_line(text)
    if not line:
        return Verdict(0.0, None, [*flags, NO_ANSWER], metrics={"em": 0.0, "f1": 0.0})
    answers = golds(item)
    em, best = max(exact(line, g) for g in answers), max(f1(line, g) for g in answers)
    return Verdict(best, line, flags, metrics={"em": em, "f1": best})
