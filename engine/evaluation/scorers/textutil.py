"""Small text helpers shared by the scorers: think blocks, first lines, whitespace.

Reasoning models wrap their scratch work in `<think>...</think>`; only what follows the last
`</think>` is an answer. An opened but never closed think block means the model ran out of
tokens while thinking, so nothing it wrote counts as an answer.
"""

from __future__ import annotations

import re

from engine.evaluation.scorers.base import UNCLOSED_THINK

OPEN_THINK = "<think>"
CLOSE_THINK = "</think>"
_SPACE = re.compile(r"\s+")


def strip_think(text: str) -> tuple[str, bool]:
    """The answer part of `text` and whether a think block was left open.

    Text without think tags comes back unchanged. Otherwise the text after the last
    `</think>` (stripped); a `<think>` after the last `</think>` (or with none) gives `("", True)`.
    A lone `</think>` counts as closing a block the prompt opened (chat templates do that).
    """
    last_open, last_close = text.rfind(OPEN_THINK), text.rfind(CLOSE_THINK)
    if last_open < 0 and last_close < 0:
        return text, False
    if last_open > last_close:
        return "", True
    return text[last_close + len(CLOSE_THINK):].strip(), False


def answer_part(completion: str) -> tuple[str, list[str]]:
    """`strip_think` for scorers: the answer text and the flags to put on the verdict."""
    text, unclosed = strip_think(completion)
    return text, [UNCLOSED_THINK] if unclosed else []


def first_line(text: str) -> str:
    """The first line of the stripped text (the CoQA and HaluEval answer rule)."""
    return text.strip().split("\n", 1)[0].strip()


def normalise_space(text: str) -> str:
    """Every run of whitespace (newlines, tabs, NBSP...) as one space, ends stripped."""
    return _SPACE.sub(" ", text).strip()
