"""Maths final-answer scorers: one extraction, two ways to decide equivalence.

Extraction (`extract_answer`), in this order, each taking the last occurrence:
1. `\\boxed{...}` or `\\fbox{...}` with balanced (nested) braces, escaped `\\{ \\}` ignored; the
   brace-less `\\boxed 5` form runs to the next `$` or end of line. An unclosed last box (the
   response was cut off inside it) falls back to the previous complete one.
2. Minerva's `The final answer is $X$. I hope it is correct.` -> X.
3. `Final Answer: X` (the paper's prompt asks for it) -> the rest of that line, or the next
   non-empty line when the line ends there.
4. `... answer is X` where X is `$...$`, `\\(...\\)`, `\\[...\\]` or a plain number (a hedge such as
   "the answer is probably..." in a cut-off response is not an answer).
Surrounding `$`, `\\( \\)`, `\\[ \\]`, markdown `**` and a final period are removed from 2-4.

Equivalence:
- `math_hendrycks`: the MATH paper's `is_equiv` (hendrycks/math `math_equivalence.py`): both
  strings through its `_strip_string` normalisation, then compared as strings. Reproduced here,
  quirks included (`0.5` becomes `\\frac{1}{2}` but `0.25` stays; a string with two `\\text{ `
  units falls back to raw equality), because published MATH numbers use it.
- `math_verify`: Hugging Face's `math-verify` (both sides parsed to sympy, then compared
  numerically and symbolically). Its signal-based timeouts only work in the main thread, so they
  are off: the scorer runs in worker threads, and the caller bounds the wall time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from engine.evaluation.scorers.base import NO_ANSWER, Verdict, register
from engine.evaluation.scorers.textutil import answer_part

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_MINERVA = re.compile(r"final answer is\s*\$(.+?)\$", re.IGNORECASE | re.DOTALL)
_FINAL = re.compile(r"final\s+answer\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?(.*)", re.IGNORECASE)
_ANSWER_IS = re.compile(  # only a maths span or a number: "the answer is supposed to be..." is not one
    r"answer\s+is\s*:?\s*(?:\*\*)?\s*(\$[^$]+\$|\\\(.+?\\\)|\\\[.+?\\\]|[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?)",
    re.IGNORECASE | re.DOTALL)
_WRAPPERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"))

# ---------------------------------------------------------------------------- extraction


def extract_answer(text: str) -> tuple[str, str] | None:
    """The final answer in `text` and the form it was found in (`boxed`, `minerva`, ...)."""
    boxed = last_boxed(text)
    if boxed is not None:
        return (boxed, "boxed") if boxed else None
    for form, find in (("minerva", _minerva), ("final_answer", _final_answer), ("answer_is", _answer_is)):
        found = find(text)
        if found:
            return found, form
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{}`/`\\fbox{}` (stripped), or None without one."""
    for match in reversed(list(_BOX.finditer(text))):
        content = _box_content(text, match.end())
        if content is not None:
            return content.strip()
    return None


def _box_content(text: str, start: int) -> str | None:
    """What the box starting at `start` holds: `{...}` balanced, or `\\boxed 5` up to `$`/newline."""
    rest = text[start:]
    body = rest.lstrip()
    if body.startswith("{"):
        return _balanced(text, start + len(rest) - len(body))
    if rest[:1].isspace() and body:
        return re.split(r"[$\n]", body, maxsplit=1)[0].strip().rstrip(".,")
    return None


def _balanced(text: str, open_at: int) -> str | None:
    """The text inside the brace at `open_at` up to its partner; None when never closed."""
    depth, i = 0, open_at
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # an escaped character (\{ \} \\) never opens or closes a group
            continue
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return text[open_at + 1:i]
        i += 1
    return None


def _minerva(text: str) -> str | None:
    matches = _MINERVA.findall(text)
    return _clean(matches[-1]) if matches else None


def _final_answer(text: str) -> str | None:
    """Rest of the last `Final Answer:` line, or the next non-empty line when that is empty."""
    matches = list(_FINAL.finditer(text))
    if not matches:
        return None
    answer = _clean(matches[-1].group(1))
    if answer:
        return answer
    following = [line for line in text[matches[-1].end():].split("\n") if _clean(line)]
    return _clean(following[0]) if following else None


def _answer_is(text: str) -> str | None:
    matches = _ANSWER_IS.findall(text)
    return _clean(matches[-1]) if matches else None


def _clean(answer: str) -> str:
    """Strip the markup around an answer written in prose (`$5$.` -> `5`)."""
    answer = answer.strip().rstrip(".").strip()
    changed = True
    while changed and answer:
        changed = False
        for left, right in _WRAPPERS:
            if len(answer) >= len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
                answer, changed = answer[len(left):len(answer) - len(right)].strip().rstrip("."), True
    return answer.strip()

# ---------------------------------------------------------------------------- Hendrycks MATH


def is_equiv(str1: str | None, str2: str | None) -> bool:
    """The MATH paper's equivalence: equal after `strip_string`; raw equality if that fails."""
    if str1 is None or str2 is None:
        return str1 is None and str2 is None
    try:
        return strip_string(str1) == strip_string(str2)
    except (AssertionError, IndexError, ValueError):
        return str1 == str2


def strip_string(string: str) -> str:
    """Hendrycks' `_strip_string`, step for step (order matters: units go before spaces)."""
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]  # drop a short "k = " prefix
    string = _fix_sqrt(string).replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def _fix_fracs(string: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{72}` -> `\\frac{1}{72}`; braced fracs untouched."""
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr[0] == "{":  # IndexError on a trailing "\frac", as in the original
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b, post = substr[0], substr[1], substr[2:]
        new_str += "{" + a + "}{" + b + "}" + post if b != "{" else "{" + a + "}" + b + post
    return new_str


def _fix_a_slash_b(string: str) -> str:
    """`3/4` -> `\\frac{3}{4}`, only for two plain integers."""
    parts = string.split("/")
    if len(parts) != 2:
        return string
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return string
    return f"\\frac{{{a}}}{{{b}}}" if string == f"{a}/{b}" else string


def _remove_right_units(string: str) -> str:
    """Drop `\\text{ units}` on the right; two of them raise, as in the original."""
    if "\\text{ " not in string:
        return string
    splits = string.split("\\text{ ")
    if len(splits) != 2:
        raise AssertionError("more than one unit")
    return splits[0]


def _fix_sqrt(string: str) -> str:
    """`\\sqrt3` -> `\\sqrt{3}` (one character only, as in the original)."""
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        new_string += "\\sqrt" + split if split[0] == "{" else "\\sqrt{" + split[0] + "}" + split[1:]
    return new_string

# ---------------------------------------------------------------------------- math-verify


@functools.cache
def _math_verify() -> Any:
    """Import math-verify on first use (sympy and the LaTeX parser take about a second)."""
    import math_verify
    import math_verify.grader
    import math_verify.parser

    # Timeouts are off on purpose (see the module docstring); silence its once-per-process warning.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return math_verify


def _mv_parse(answer: str) -> list[Any]:
    """An extracted answer parsed by math-verify, boxed so its LaTeX extractor takes it whole."""
    return _math_verify().parse("\\boxed{" + answer + "}", parsing_timeout=None)


_gold_parse = functools.lru_cache(maxsize=8192)(_mv_parse)


def verify_equiv(pred: str, gold: str) -> bool:
    """math-verify's verdict on the extracted answer against the gold answer."""
    gold_parsed, pred_parsed = _gold_parse(gold), _mv_parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(_math_verify().verify(gold_parsed, pred_parsed, timeout_seconds=None))

# ---------------------------------------------------------------------------- scorers


def _score(completion: str, item: dict[str, Any], equiv: Callable[[str, str], bool]) -> Verdict:
    text, flags = answer_part(completion)
    found = extract_answer(text)
    if found is None:
        return Verdict(0.0, None, [*flags, NO_ANSWER])
    answer, form = found
    correct = equiv(answer, str(item["answer"]))
    return Verdict(float(correct), answer, flags, detail={"form": form})


@register("math_hendrycks", "1")
def math_hendrycks(completion: str, item: dict[str, Any]) -> Verdict:
    """Last boxed answer, equal to gold after the MATH paper's string normalisation."""
    return _score(completion, item, is_equiv)


@register("math_verify", "1")
def math_verify(completion: str, item: dict[str, Any]) -> Verdict:
    """Last boxed answer, equivalent to gold by math-verify (sympy, numeric and symbolic)."""
    return _score(completion, item, verify_equiv)
