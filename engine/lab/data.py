"""The tiny lab's tasks: reasoning-gym generators at a difficulty a tiny model can partly learn.

Each lab task is a `reasoning-gym` dataset with small difficulty knobs (sums of two or three
one-digit numbers, three- to five-letter words, two or three words to reverse...), so that the
tiny lab's base model, pre-trained for about two minutes on 2 CPU cores, scores between 10% and
90% in every group and has room to move either way when tuned on maths. Questions are
reasoning-gym's own, untemplated. The same generators feed three uses, kept apart by seed and by
question text:

- evaluation: `lab_eval_items(task)`, the `lab_<task>` benchmarks (the first distinct questions
  drawn from the task's evaluation seeds);
- maths tuning: `math_train(n)`, the `lab/math-train` set that SFT and GRPO train on (maths only);
- pre-training: `pretrain_items(seed, n)`, every task, mixed by weight; a task may widen its
  difficulty there (word_sequence_reversal adds one-word lists, which teach plain copying).

reasoning-gym seeds item i of a dataset with `Random(seed + i)`, so two datasets whose seed ranges
overlap share items: each (use, task) pair owns its own block of SEED_BLOCK seeds. Small question
spaces (one-digit sums) still collide by chance, so every training question identical to an
evaluation question is dropped as well. Items keep their reasoning-gym `metadata`, so the task's
own `score_answer` (the `reasoning_gym` scorer) verifies every answer.
"""

from __future__ import annotations

import copy
import functools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

GROUPS = ("math", "other", "non")
#: Evaluation items per task; `lab_eval_items(task, n)` returns the first n of these.
EVAL_POOL = 100
#: Seeds owned by one (use, task) pair: far more items than any use draws.
SEED_BLOCK = 10**7
EVAL_SEED = 1_000_000_000
MATH_TRAIN_SEED = 2_000_000_000
PRETRAIN_SEED = 3_000_000_000


@dataclass(frozen=True)
class LabTask:
    """One lab task: a reasoning-gym dataset, its difficulty, and its share of pre-training."""

    name: str
    group: str
    dataset: str
    config: dict[str, Any]
    #: Difficulty used for pre-training when it differs: a wider range that includes easier items.
    pretrain_config: dict[str, Any] | None = None
    #: Relative share of the pre-training corpus (skills that are slow to learn get more).
    weight: float = 1.0
    description: str = field(default="", compare=False)


_ONE_DIGIT_SUMS = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1}
_PLAIN = {"operators": ("+", "-"), "allow_parentheses": False, "allow_negation": False}

TASKS: dict[str, LabTask] = {
    t.name: t
    for t in (
        LabTask("basic_arithmetic", "math", "basic_arithmetic",
                {**_ONE_DIGIT_SUMS, **_PLAIN},
                weight=1.5, description="'Calculate 6 - 2 + 5.': two or three one-digit terms"),
        LabTask("chain_sum", "math", "chain_sum", _ONE_DIGIT_SUMS, weight=1.5,
                description="the same skill in another wording ('State the final answer ...: 6 - 2 + 5 =')"),
        LabTask("syllogism", "other", "syllogism", {"invalid_ratio": 0.5}, weight=0.5,
                description="does a conclusion follow from two premises (Yes/No, half of them do)"),
        LabTask("count_bits", "other", "count_bits", {"min_n": 1, "max_n": 1023},
                description="number of 1 bits of a number below 1024"),
        LabTask("spell_backward", "non", "spell_backward", {"min_word_len": 3, "max_word_len": 5}, weight=2.0,
                description="a three- to five-letter word spelt backward"),
        LabTask("word_sequence_reversal", "non", "word_sequence_reversal", {"min_words": 2, "max_words": 3},
                {"min_words": 1, "max_words": 3}, weight=2.0,
                description="two or three words in reverse order (pre-training adds one-word lists)"),
    )
}

LAB_TASKS: dict[str, tuple[str, ...]] = {
    group: tuple(t.name for t in TASKS.values() if t.group == group) for group in GROUPS
}


def lab_eval_items(task: str, n: int = EVAL_POOL) -> list[dict[str, Any]]:
    """The first `n` items of benchmark `lab_<task>`: distinct questions, fixed seeds."""
    if not 0 <= n <= EVAL_POOL:
        raise ValueError(f"lab tasks have {EVAL_POOL} evaluation items, not {n}")
    return copy.deepcopy(list(_eval_pool(task)[:n]))  # callers may edit items; the cache must not change


def math_train(n: int = 2000) -> list[dict[str, Any]]:
    """`lab/math-train`: `n` maths items (tasks alternating), none with an evaluation question."""
    maths = LAB_TASKS["math"]
    per_task = {t: _training(TASKS[t], _seed(MATH_TRAIN_SEED, t), TASKS[t].config, True) for t in maths}
    rows = []
    for i in range(n):
        task = maths[i % len(maths)]
        rows.append({**next(per_task[task]), "id": f"math-train-{i}"})
    return rows


def pretrain_items(seed: int, n: int, groups: tuple[str, ...] = GROUPS) -> list[dict[str, str]]:
    """`n` pre-training items over the tasks of `groups`, in proportion to their weights.

    Each is {group, task, question, answer}; none repeats an evaluation question. The same seed
    gives the same items; seeds own disjoint blocks, so different seeds give different items.
    """
    if seed < 0:
        raise ValueError(f"pre-training seeds start at 0, not {seed}")
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown or not groups:
        raise ValueError(f"unknown or no groups {unknown or groups!r} (known: {', '.join(GROUPS)})")
    tasks = [t for t in TASKS.values() if t.group in groups]
    total = sum(t.weight for t in tasks)
    counts = [round(n * t.weight / total) for t in tasks]
    counts[0] += n - sum(counts)  # rounding remainder
    rows = []
    for task, count in zip(tasks, counts, strict=True):
        first = _seed(PRETRAIN_SEED + seed * len(TASKS) * SEED_BLOCK, task.name)
        entries = _training(task, first, task.pretrain_config or task.config, metadata=False)
        rows += [{"group": task.group, "task": task.name, **next(entries)} for _ in range(count)]
    random.Random(seed).shuffle(rows)
    return rows


def eval_questions() -> frozenset[str]:
    """Every evaluation question of every lab task: what no training item may repeat."""
    return frozenset(item["question"] for name in TASKS for item in _eval_pool(name))


@functools.cache
def _eval_pool(task: str) -> tuple[dict[str, Any], ...]:
    """The task's EVAL_POOL evaluation items: distinct questions, in seed order."""
    if task not in TASKS:
        raise ValueError(f"unknown lab task {task!r} (known: {', '.join(TASKS)})")
    spec = TASKS[task]
    seen: set[str] = set()
    pool = []
    for entry in _entries(spec, _seed(EVAL_SEED, task), spec.config):
        if entry["question"] in seen:
            continue
        seen.add(entry["question"])
        pool.append(_item(f"{task}-{len(pool)}", entry))
        if len(pool) == EVAL_POOL:
            return tuple(pool)
    raise AssertionError("unreachable: the entry stream is endless")


def _training(spec: LabTask, first: int, config: dict[str, Any], metadata: bool) -> Iterator[dict[str, Any]]:
    """Endless training items of `spec` from seed `first` on, evaluation questions skipped.

    Pre-training needs no metadata, and making it JSON-safe would cost most of the time.
    """
    excluded = eval_questions()
    for entry in _entries(spec, first, config):
        if entry["question"] in excluded:
            continue
        question, answer = entry["question"], str(entry["answer"])
        yield _item("", entry) if metadata else {"question": question, "answer": answer}


def _seed(base: int, task: str) -> int:
    """The first seed of `task`'s block within the seeds of one use starting at `base`."""
    return base + list(TASKS).index(task) * SEED_BLOCK


def _entries(spec: LabTask, seed: int, config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """reasoning-gym entries of `spec` from `seed` on, one seed per entry."""
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(spec.dataset, size=SEED_BLOCK, seed=seed, **config)
    for index in range(SEED_BLOCK):
        yield dataset[index]
    raise ValueError(f"{spec.name}: seed block of {SEED_BLOCK} items exhausted")


def _item(item_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A benchmark item; metadata made JSON-safe (tuples become lists) as samples store it."""
    metadata = json.loads(json.dumps(entry["metadata"], default=str))
    return {"id": item_id, "question": entry["question"], "answer": str(entry["answer"]),
            "metadata": metadata}
