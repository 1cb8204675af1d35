"""Scorers on real model outputs: MATH-500 and IFEval responses of the paper's RL model.

Data from `../shared/data` (see its README); skipped when that folder is absent. The bands are
wide on purpose: they catch a broken extractor or checker (accuracy near 0, or near 100 for
wrong answers), not a one-point change. `-s` prints the measured numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.evaluation.scorers import NO_ANSWER, get_scorer

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real data {DATA} is absent (a clone without ../shared)"),
]
MATH_MODES = ("math_hendrycks", "math_verify")
Pairs = list[tuple[str, dict[str, Any]]]  # (model output, normalised item)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def match(rendered: str, items: list[dict[str, Any]], text_key: str) -> dict[str, Any]:
    """The item whose text is inside the rendered prompt (the longest, should one contain another);
    else the one whose opening is (one IFEval prompt was reworded between dataset versions)."""
    inside = [item for item in items if item[text_key] in rendered]
    inside = inside or [item for item in items if item[text_key][:60] in rendered]
    assert inside, f"no item for {rendered[:120]!r}"
    return max(inside, key=lambda item: len(item[text_key]))


@pytest.fixture(scope="module")
def math_pairs() -> Pairs:
    items = read_jsonl(DATA / "benchmarks" / "math500.jsonl")
    outputs = read_jsonl(DATA / "generations" / "UniReason-RL_hendrycks_math_500.jsonl")
    pairs = []
    for row in outputs:
        item = match(row["input"], items, "problem")
        normalised = {"id": item["unique_id"], "question": item["problem"], "answer": item["answer"]}
        pairs.append((row["output"], normalised))
    assert len({item["id"] for _, item in pairs}) == 500
    return pairs


@pytest.mark.parametrize("mode", MATH_MODES)
def test_math500_accuracy_is_sane(mode: str, math_pairs: Pairs) -> None:
    scorer = get_scorer(mode)
    verdicts = [scorer(output, item) for output, item in math_pairs]
    accuracy = scorer.aggregate(verdicts)["accuracy"]
    no_answer = sum(NO_ANSWER in v.flags for v in verdicts)
    print(f"\n{mode}: accuracy {accuracy:.1f}%, no_answer {no_answer}/500")
    assert 40 <= accuracy <= 100
    assert 100 <= no_answer <= 250  # many responses stop before any \boxed{}
    answered = [v.score for v in verdicts if v.extracted is not None]
    assert sum(answered) / len(answered) >= 0.85  # when the model answers, it is mostly right


@pytest.mark.parametrize("mode", MATH_MODES)
def test_math500_gold_answers_score_perfectly(mode: str, math_pairs: Pairs) -> None:
    scorer = get_scorer(mode)
    wrong = [item["answer"] for _, item in math_pairs
             if scorer(f"Final Answer: \\boxed{{{item['answer']}}}", item).score != 1]
    assert wrong == []


@pytest.mark.parametrize("mode", MATH_MODES)
def test_math500_shuffled_answers_score_near_zero(mode: str, math_pairs: Pairs) -> None:
    scorer = get_scorer(mode)
    items = [item for _, item in math_pairs]
    shifted = items[7:] + items[:7]  # every output against another item's gold
    verdicts = [scorer(output, item) for (output, _), item in zip(math_pairs, shifted, strict=True)]
    accuracy = scorer.aggregate(verdicts)["accuracy"]
    print(f"\n{mode} on shuffled golds: {accuracy:.1f}%")
    assert accuracy < 5


def test_ifeval_metrics_are_plausible() -> None:
    items = read_jsonl(DATA / "benchmarks" / "ifeval.jsonl")
    outputs = read_jsonl(DATA / "generations" / "UniReason-RL_ifeval.jsonl")
    scorer = get_scorer("ifeval")
    verdicts = []
    for row in outputs:
        item = match(row["input"], items, "prompt")
        verdicts.append(scorer(row["output"], {**item, "id": item["key"], "question": item["prompt"]}))
    metrics = scorer.aggregate(verdicts)
    print("\nifeval:", {k: round(v, 1) for k, v in metrics.items()})
    assert len(verdicts) == 541
    assert 30 <= metrics["prompt_strict"] <= 100 and metrics["accuracy"] == metrics["prompt_strict"]
    assert metrics["prompt_loose"] >= metrics["prompt_strict"]
    assert metrics["inst_loose"] >= metrics["inst_strict"] >= metrics["prompt_strict"]
