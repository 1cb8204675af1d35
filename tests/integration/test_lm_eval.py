"""lm-eval tasks through the daemon: tix's per-doc results and aggregates equal lm-eval's own
`simple_evaluate` with its HF model on the same tiny model and chat setting, doc for doc.

Four task shapes, in YAMLs and JSONL data this test writes: `generate_until` with two regex
filters, `multiple_choice` (raw and chat), few-shot with a description, and a group of two
subtasks with its aggregate. Then a task whose dataset cannot be had offline: one line, and the
run's other benchmark is still scored.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sql_json
from tests.lm_eval_tasks import shipped_model, write_tasks

pytestmark = pytest.mark.slow

ENTRIES = [
    ("tiny_arith", "math", True),
    ("tiny_syllogism", "other", False),
    ("tiny_arith_fewshot", "math", True),
    ("tiny_pair", "non", True),
]


def experiment(path: Path, tasks: Path, entries: list[tuple[str, str, bool]]) -> Path:
    lines = [f"  - {{lm_eval: {name}, include_path: {tasks}, group: {group}, chat: {str(chat).lower()}}}"
             for name, group, chat in entries]
    path.write_text(f"name: lm-eval-agreement\nbase: {{model: {shipped_model()}}}\n"
                    "eval:\n  backend: hf\n  benchmarks:\n" + "\n".join(lines) + "\nanalysis: {}\n")
    return path


def reference(tasks: Path, names: list[str], chat: bool) -> dict[str, Any]:
    """lm-eval's own run: its HF model, batch size 1, fp32, thinking off as tix's default."""
    import os

    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    here = Path.cwd()
    os.chdir(tasks)  # relative data_files, as tix reads them from include_path
    try:
        return simple_evaluate(model="hf", model_args={"pretrained": str(shipped_model()), "dtype": "float32",
                                                       "enable_thinking": False},
                               tasks=names, task_manager=TaskManager(include_path=str(tasks)),
                               apply_chat_template=chat, batch_size=1, device="cpu", log_samples=True)
    finally:
        os.chdir(here)


def test_lm_eval_tasks_agree_with_lm_eval_doc_for_doc(tix, tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "lm_tasks")
    result = tix("run", str(experiment(tmp_path / "exp.yaml", tasks, ENTRIES)), "--wait", timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    chat = reference(tasks, ["tiny_arith", "tiny_arith_fewshot", "tiny_pair"], chat=True)
    raw = reference(tasks, ["tiny_syllogism"], chat=False)
    scores = sql_json(tix, "SELECT benchmark, \"group\", metric, value, n FROM scores")
    samples = sql_json(tix, "SELECT benchmark, item_id, prompt, completion, extracted, verdict, "
                            "extra->'metrics' AS metrics FROM samples")
    for ref in (chat, raw):
        for task, values in ref["results"].items():
            assert_scores_equal(task, values, scores)
            if task in ref["samples"]:
                assert_docs_equal(task, ref["samples"][task], samples)
    groups = {r["benchmark"]: r["group"] for r in scores}
    assert groups["tiny_sum"] == groups["tiny_spell"] == groups["tiny_pair"] == "non"
    assert {r["benchmark"] for r in scores if r["metric"] == "accuracy"} == {
        "tiny_arith", "tiny_syllogism", "tiny_arith_fewshot", "tiny_spell", "tiny_sum"}  # not the group's


def assert_scores_equal(task: str, values: dict[str, Any], scores: list[dict[str, Any]]) -> None:
    """Every numeric lm-eval metric stored under its own name; accuracy = first metric x 100."""
    stored = {r["metric"]: r for r in scores if r["benchmark"] == task}
    expected = {k: float(v) for k, v in values.items() if "," in k and isinstance(v, int | float)}
    assert expected and set(expected) <= set(stored), (task, sorted(stored))
    for metric, value in expected.items():
        assert math.isclose(stored[metric]["value"], value, rel_tol=1e-9, abs_tol=1e-12), (task, metric)
    if "accuracy" in stored:
        first = next(k for k in expected if "_stderr" not in k)
        assert math.isclose(stored["accuracy"]["value"], 100 * expected[first], rel_tol=1e-9)
        assert stored["accuracy"]["n"] == values["sample_len"]


def assert_docs_equal(task: str, logged: list[dict[str, Any]], samples: list[dict[str, Any]]) -> None:
    """Per doc: the same prompt, response, filtered answer and every filter's metrics."""
    mine = {s["item_id"]: s for s in samples if s["benchmark"] == task}
    docs = {str(ex["doc_id"]) for ex in logged}
    assert set(mine) == docs, task
    for ex in logged:
        sample = mine[str(ex["doc_id"])]
        metrics = json.loads(sample["metrics"]) if isinstance(sample["metrics"], str) else sample["metrics"]
        assert sample["prompt"] == ex["arguments"][0][0]
        for metric in ex["metrics"]:
            assert metrics[f"{metric},{ex['filter']}"] == float(ex[metric]), (task, ex["doc_id"], metric)
        if isinstance(ex["arguments"][0][1], dict):  # generated: the response and its filtered answer
            assert sample["completion"] == ex["resps"][0][0]
            if ex["filter"] == next(iter(e["filter"] for e in logged)):
                assert sample["extracted"] == ex["filtered_resps"][0]
    assert any(s["verdict"] > 0 for s in mine.values()) or task == "tiny_spell"


def test_an_offline_dataset_fails_its_benchmark_in_one_line(tix, tmp_path: Path, monkeypatch) -> None:
    tasks = write_tasks(tmp_path / "lm_tasks", items=4)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = experiment(tmp_path / "exp.yaml", tasks, [("tiny_offline", "math", True), ("tiny_spell", "non", True)])
    result = tix("run", str(path), "--wait", timeout=300)
    assert result.returncode != 0
    error = sql_json(tix, "SELECT error FROM runs WHERE kind = 'eval'")[0]["error"]
    line = error.splitlines()[0]
    assert "tiny_offline" in line and "tix-tests/no-such-dataset" in line and "data_files" in line, error
    assert "Traceback" not in line
    stored = sql_json(tix, "SELECT benchmark FROM scores WHERE metric = 'accuracy'")
    assert stored == [{"benchmark": "tiny_spell"}]
