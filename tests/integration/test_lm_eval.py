"""lm-eval tasks through the daemon: tix's per-doc results and aggregates equal lm-eval's own
`simple_evaluate` with its HF model on the same tiny model and chat setting, doc for doc.

Four task shapes, in YAMLs and JSONL data this test writes: `generate_until` with two regex
filters, `multiple_choice` (raw and chat), few-shot with a description, and a group of two
subtasks with its aggregate. Then a task whose dataset cannot be had offline: one line, and the
run's other benchmark is still scored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import sql_json
from tests.lm_eval_tasks import (
    assert_docs_equal,
    assert_scores_equal,
    experiment,
    reference,
    sample_rows,
    write_tasks,
)

pytestmark = pytest.mark.slow

ENTRIES = [
    ("tiny_arith", "math", True),
    ("tiny_syllogism", "other", False),
    ("tiny_arith_fewshot", "math", True),
    ("tiny_pair", "non", True),
]


def test_lm_eval_tasks_agree_with_lm_eval_doc_for_doc(tix, tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "lm_tasks")
    result = tix("run", str(experiment(tmp_path / "exp.yaml", tasks, ENTRIES)), "--wait", timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    chat = reference(tasks, ["tiny_arith", "tiny_arith_fewshot", "tiny_pair"], chat=True)
    raw = reference(tasks, ["tiny_syllogism"], chat=False)
    scores, samples = sample_rows(tix)
    for ref in (chat, raw):
        for task, values in ref["results"].items():
            assert_scores_equal(task, values, scores)
            if task in ref["samples"]:
                assert_docs_equal(task, ref["samples"][task], samples)
    groups = {r["benchmark"]: r["group"] for r in scores}
    assert groups["tiny_sum"] == groups["tiny_spell"] == groups["tiny_pair"] == "non"
    assert {r["benchmark"] for r in scores if r["metric"] == "accuracy"} == {
        "tiny_arith", "tiny_syllogism", "tiny_arith_fewshot", "tiny_spell", "tiny_sum"}  # not the group's


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
