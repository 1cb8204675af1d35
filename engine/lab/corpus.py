"""The tiny lab's pre-training corpus: the lab's reasoning-gym tasks on training seeds, as documents.

Items come from `engine.lab.data.pretrain_items`: the generators of the `lab_*` benchmarks, on
seeds of their own, with every evaluation question left out. One in four becomes plain text trained
on whole ("Question: ...\\nAnswer: ..."); the others the very chat the evaluation sends (user turn
and the empty think block of `enable_thinking=False` as context, the answer as target): like Qwen's
base models, the base model must know that format to show any skill before tuning. Training on the
chat answer alone spends the tiny model's capacity on answering rather than on predicting random
question text, which is what lets skills such as copying appear within two minutes (with half the
items plain, maths and non-reasoning scored 25 and 17 points lower after the same training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.lab.data import GROUPS, pretrain_items

if TYPE_CHECKING:  # torch and transformers load only when a build actually runs
    from engine.lab.model import Document

__all__ = ["GROUPS", "Item", "corpus", "documents", "items"]


@dataclass(frozen=True)
class Item:
    """One task: its group, its task name, the question and the expected answer."""

    group: str
    task: str
    question: str
    answer: str

    @property
    def text(self) -> str:
        """The plain pre-training rendering (no chat template)."""
        return f"Question: {self.question}\nAnswer: {self.answer}"


def items(seed: int, n: int, groups: tuple[str, ...] = GROUPS) -> list[Item]:
    """`n` pre-training items of `groups`' lab tasks, mixed by task weight; deterministic for `seed`."""
    return [Item(**row) for row in pretrain_items(seed, n, groups)]


#: Every PLAIN_EVERY-th item is plain text; the rest are chat.
PLAIN_EVERY = 4


def documents(batch: list[Item]) -> list[Document]:
    """Items as documents: chat (the answer is the target) but for every PLAIN_EVERY-th, plain text."""
    from engine.lab.model import IM_END, render_prompts

    chat = [i for i in range(len(batch)) if i % PLAIN_EVERY]
    prompts = render_prompts([batch[i].question for i in chat])
    docs: list[Document] = [("", it.text) for it in batch]
    for i, prompt in zip(chat, prompts, strict=True):
        docs[i] = (prompt, f"{batch[i].answer}{IM_END}\n")
    return docs


def corpus(seed: int, n: int) -> list[str]:
    """`n` plain question/answer texts over all three groups; deterministic for `seed`."""
    return [item.text for item in items(seed, n)]
