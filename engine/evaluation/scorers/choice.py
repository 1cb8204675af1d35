"""Short-answer scorers: a multiple-choice letter, exact match, a number, yes/no.

Each reads only the answer part of the completion (after any think block) and says NO_ANSWER
when it finds nothing to compare, so the health counters tell "wrong" from "did not answer".
"""

from __future__ import annotations

import math
import re
import string
from typing import Any

from engine.evaluation.scorers.base import NO_ANSWER, Verdict, register
from engine.evaluation.scorers.textutil import answer_part, first_line, normalise_space

MAX_LETTERS = 10  # A-J, MMLU-Pro's widest
DEFAULT_LETTERS = "ABCD"

# ---------------------------------------------------------------------------- mc_letter


def letters_for(item: dict[str, Any]) -> str:
    """The valid letters: one per item choice (A-J), else A-D."""
    choices = item.get("choices") or []
    return string.ascii_uppercase[:min(len(choices), MAX_LETTERS)] or DEFAULT_LETTERS


def letter_patterns(letters: str) -> list[re.Pattern[str]]:
    """Answer forms, most explicit first; each is searched for its last match.

    A boxed letter, then `Answer: C` / `answer is (C)`, then `(B)` or `**C**`, then any
    standalone capital letter (never inside a word: the `A` of `A-D` counts, `Apple` does not).
    """
    cls = f"[{letters}]"
    return [re.compile(p) for p in (
        rf"\\boxed\{{\s*(?:\\text\{{)?\s*\(?({cls})\b",
        rf"(?i:answer)\s*(?:is|:)?\s*:?\s*(?:\*\*)?\s*[\(\[]?({cls})\b",
        rf"\(({cls})\)|\*\*({cls})\*\*",
        rf"(?<![\w'’])({cls})(?![\w'’])",
    )]


def extract_letter(text: str, letters: str) -> str | None:
    """The chosen letter by the first pattern that matches anywhere (its last match)."""
    for pattern in letter_patterns(letters):
        matches = list(pattern.finditer(text))
        if matches:
            return next(g for g in matches[-1].groups() if g)
    return None


def gold_letter(item: dict[str, Any], letters: str) -> str:
    """Gold as a letter: `answer` is a letter, or the text of one of the `choices`."""
    gold = str(item["answer"]).strip()
    if gold.upper() in letters and len(gold) == 1:
        return gold.upper()
    choices = [str(c).strip() for c in item.get("choices") or []]
    return letters[choices.index(gold)] if gold in choices[:len(letters)] else gold


@register("mc_letter", "1")
def mc_letter(completion: str, item: dict[str, Any]) -> Verdict:
    """Multiple choice: the last stated letter (Answer: C, (B), **C**, bare D) against gold."""
    text, flags = answer_part(completion)
    letters = letters_for(item)
    letter = extract_letter(text, letters)
    if letter is None:
        return Verdict(0.0, None, [*flags, NO_ANSWER])
    return Verdict(float(letter == gold_letter(item, letters)), letter, flags)

# ---------------------------------------------------------------------------- exact_match


def normalise_text(text: str) -> str:
    """Lower case, one space between words, no surrounding quotes or final period."""
    return normalise_space(text).lower().strip("\"'“”‘’").rstrip(".!").strip()


def golds(item: dict[str, Any]) -> list[str]:
    """Every acceptable gold answer: `answers` (a list) when present, else `answer`."""
    answers = item.get("answers")
    if isinstance(answers, list | tuple) and answers:
        return [str(a) for a in answers]
    return [str(item.get("answer", ""))]


@register("exact_match", "1")
def exact_match(completion: str, item: dict[str, Any]) -> Verdict:
    """The whole answer equals a gold answer after case, space and final-period normalisation."""
    text, flags = answer_part(completion)
    said = normalise_text(text)
    if not said:
        return Verdict(0.0, None, [*flags, NO_ANSWER])
    return Verdict(float(any(said == normalise_text(g) for g in golds(item))), said, flags)

# ---------------------------------------------------------------------------- numeric

_NUMBER = re.compile(r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-−]?\.\d+")
REL_TOL = 1e-6


def last_number(text: str) -> float | None:
    """The last number written in `text` (`1,234.5`, `-3`, `.5`, `2e-3`), as a float."""
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    return float(matches[-1].replace(",", "").replace("−", "-"))


@register("numeric", "1")
def numeric(completion: str, item: dict[str, Any]) -> Verdict:
    """The completion's last number equals gold's within 1e-6 relative (GSM8K style)."""
    text, flags = answer_part(completion)
    said, gold = last_number(text), last_number(str(item["answer"]))
    if said is None:
        return Verdict(0.0, None, [*flags, NO_ANSWER])
    correct = gold is not None and math.isclose(said, gold, rel_tol=REL_TOL, abs_tol=1e-12)
    return Verdict(float(correct), repr(said), flags)

# ---------------------------------------------------------------------------- yes_no_first_line

_YES, _NO = re.compile(r"\byes\b", re.IGNORECASE), re.compile(r"\bno\b", re.IGNORECASE)


def yes_or_no(line: str) -> str | None:
    """`yes` or `no` when exactly one of the two words appears; None for both or neither."""
    yes, no = bool(_YES.search(line)), bool(_NO.search(line))
    return ("yes" if yes else "no") if yes != no else None


@register("yes_no_first_line", "1")
def yes_no_first_line(completion: str, item: dict[str, Any]) -> Verdict:
    """HaluEval: the first line says yes xor no; both or neither is no answer."""
    text, flags = answer_part(completion)
    said = yes_or_no(first_line(text))
    if said is None:
        return Verdict(0.0, None, [*flags, NO_ANSWER])
    return Verdict(float(said == str(item["answer"]).strip().lower()), said, flags)
