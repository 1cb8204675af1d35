"""The tiny lab's tasks: reasoning-gym items, seeded, verified, and split with no leak.

Evaluation questions must never be trained on, neither by the base model's pre-training nor by
the maths tuning set, or the Transferability Index would measure memory instead of transfer.
"""

from __future__ import annotations

import itertools

import pytest

from engine.evaluation.scorers import get_scorer
from engine.lab import data

PRETRAIN_ITEMS = 20_000  # enough to hit the small question spaces (one-digit sums) many times


@pytest.fixture(scope="module")
def eval_items() -> dict[str, list[dict]]:
    return {task: data.lab_eval_items(task) for task in data.TASKS}


def test_at_least_two_tasks_in_every_group() -> None:
    assert set(data.LAB_TASKS) == set(data.GROUPS)
    assert all(len(tasks) >= 2 for tasks in data.LAB_TASKS.values())
    assert {t for tasks in data.LAB_TASKS.values() for t in tasks} == set(data.TASKS)


def test_eval_items_are_deterministic_distinct_and_prefixes(eval_items: dict[str, list[dict]]) -> None:
    data._eval_pool.cache_clear()
    for task, items in eval_items.items():
        assert items == data.lab_eval_items(task), task
        assert len(items) == data.EVAL_POOL and set(items[0]) == {"id", "question", "answer", "metadata"}
        assert len({it["question"] for it in items}) == len(items), f"{task}: repeated question"
        assert len({it["id"] for it in items}) == len(items)
        assert data.lab_eval_items(task, 10) == items[:10]
    with pytest.raises(ValueError, match="evaluation items"):
        data.lab_eval_items("chain_sum", data.EVAL_POOL + 1)
    with pytest.raises(ValueError, match="unknown lab task"):
        data.lab_eval_items("add")


def test_returned_items_are_copies() -> None:
    data.lab_eval_items("chain_sum")[0]["question"] = "changed"
    assert data.lab_eval_items("chain_sum")[0]["question"] != "changed"


@pytest.mark.parametrize("task", list(data.TASKS))
def test_gold_answers_score_one_with_reasoning_gym(task: str, eval_items: dict[str, list[dict]]) -> None:
    """The scorer the benchmarks use, which calls the task's own `score_answer`, accepts gold."""
    scorer = get_scorer("reasoning_gym")
    items = eval_items[task]
    assert {it["metadata"]["source_dataset"] for it in items} == {data.TASKS[task].dataset}
    assert all(scorer(it["answer"], it).score == 1.0 for it in items)
    assert all(scorer(f"<think>\n\n</think>\n\n{it['answer']}", it).score == 1.0 for it in items[:5])


def test_math_train_is_maths_only_verified_and_disjoint_from_eval(eval_items: dict[str, list[dict]]) -> None:
    train = data.math_train(600)
    assert len(train) == 600 and train == data.math_train(600)
    assert len({it["id"] for it in train}) == 600
    maths = {data.TASKS[t].dataset for t in data.LAB_TASKS["math"]}
    assert {it["metadata"]["source_dataset"] for it in train} == maths
    scorer = get_scorer("reasoning_gym")
    assert all(scorer(it["answer"], it).score == 1.0 for it in train)
    evaluated = {it["question"] for items in eval_items.values() for it in items}
    assert not {it["question"] for it in train} & evaluated


def test_pretraining_is_seeded_mixed_and_disjoint_from_eval(eval_items: dict[str, list[dict]]) -> None:
    rows = data.pretrain_items(0, PRETRAIN_ITEMS)
    assert len(rows) == PRETRAIN_ITEMS and rows[:50] == data.pretrain_items(0, PRETRAIN_ITEMS)[:50]
    assert rows[:50] != data.pretrain_items(1, 50)
    assert {r["task"] for r in rows} == set(data.TASKS)
    assert {r["group"] for r in rows} == set(data.GROUPS)
    evaluated = {it["question"] for items in eval_items.values() for it in items}
    assert not {r["question"] for r in rows} & evaluated
    with pytest.raises(ValueError, match="seeds start at 0"):
        data.pretrain_items(-1, 10)


def test_pretraining_can_be_limited_to_groups() -> None:
    rows = data.pretrain_items(2, 300, ("math",))
    assert len(rows) == 300 and {r["task"] for r in rows} == set(data.LAB_TASKS["math"])
    with pytest.raises(ValueError, match="unknown or no groups"):
        data.pretrain_items(2, 10, ("maths",))


def test_seed_blocks_of_different_uses_do_not_overlap() -> None:
    """reasoning-gym seeds item i with seed + i: each (use, task) owns SEED_BLOCK seeds."""
    starts = sorted(
        data._seed(base, task)
        for base in (data.EVAL_SEED, data.MATH_TRAIN_SEED, data.PRETRAIN_SEED)
        for task in data.TASKS
    )
    assert all(b - a >= data.SEED_BLOCK for a, b in itertools.pairwise(starts))
    assert data.EVAL_SEED + len(data.TASKS) * data.SEED_BLOCK <= data.MATH_TRAIN_SEED
    assert data.MATH_TRAIN_SEED + len(data.TASKS) * data.SEED_BLOCK <= data.PRETRAIN_SEED
