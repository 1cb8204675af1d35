"""Scorer throughput on real responses: math_verify and math_hendrycks on MATH-500, ifeval on IFEval.

Uses the paper's RL-model responses in `../shared/data/generations` (500 MATH-500 and 541 IFEval
responses), each matched to its benchmark item by the problem text inside the rendered prompt.
The one-off load of each scorer's libraries (sympy and the LaTeX parser; lm-eval and NLTK) is
timed apart, by scoring one sample first; then every response is scored `--repeat` times in one
thread. "cold" is the first pass, the number a fresh evaluation sees; "warm" the best later pass,
where math-verify's own LaTeX parse caches already hold every answer (a re-score of the same
generations in one process).

Run: `make bench` or `python bench/scorers.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from engine.evaluation.scorers import get_scorer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
Pairs = list[tuple[str, dict[str, Any]]]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pair(generations: str, benchmark: str, key: str, normalise: Any) -> Pairs:
    """(response, normalised item) for each line, the item found by its text inside the prompt."""
    items = read_jsonl(DATA / "benchmarks" / benchmark)
    out = []
    for row in read_jsonl(DATA / "generations" / generations):
        found = [it for it in items if it[key] in row["input"]]
        found = found or [it for it in items if it[key][:60] in row["input"]]  # one reworded IFEval prompt
        out.append((row["output"], normalise(max(found, key=lambda it: len(it[key])))))
    return out


def math_pairs() -> Pairs:
    return pair("UniReason-RL_hendrycks_math_500.jsonl", "math500.jsonl", "problem",
                lambda it: {"id": it["unique_id"], "question": it["problem"], "answer": it["answer"]})


def ifeval_pairs() -> Pairs:
    return pair("UniReason-RL_ifeval.jsonl", "ifeval.jsonl", "prompt",
                lambda it: {**it, "id": it["key"], "question": it["prompt"]})


def bench(name: str, pairs: Pairs, repeat: int) -> None:
    scorer = get_scorer(name)
    t0 = time.perf_counter()
    scorer(*pairs[0])
    load = time.perf_counter() - t0
    passes = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        verdicts = [scorer(output, item) for output, item in pairs]
        passes.append(time.perf_counter() - t0)
    accuracy = scorer.aggregate(verdicts)["accuracy"]
    print(f"{name:15s} cold {len(pairs) / passes[0]:8.1f} items/s, warm {len(pairs) / min(passes[1:]):8.1f} "
          f"items/s  ({len(pairs)} items; load {load:.2f} s; accuracy {accuracy:.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="passes over the data (at least 2)")
    args = parser.parse_args()
    args.repeat = max(args.repeat, 2)
    if not DATA.is_dir():
        print(f"skipped: no real data at {DATA} (a clone without ../shared)")
        sys.exit(0)
    maths = math_pairs()
    bench("math_hendrycks", maths, args.repeat)
    bench("math_verify", maths, args.repeat)
    bench("ifeval", ifeval_pairs(), args.repeat)


if __name__ == "__main__":
    main()
