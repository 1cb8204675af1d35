"""Local lm-eval task folders for the agreement tests: YAMLs and JSONL data written by the test,
over the tiny lab's items (the shipped base answers some of them, so metrics are not all 0)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from engine.lab.shipping import SHIPPED

GENERATE = """\
task: tiny_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: arith_test.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 16
  do_sample: false
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "^(-?[0-9]+)$"
      - function: take_first
  - name: flexible
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

CHOICE = """\
task: tiny_syllogism
dataset_path: json
dataset_kwargs:
  data_files:
    test: syllogism.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}\\nAnswer:"
doc_to_choice: ["Yes", "No"]
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
"""

FEWSHOT = """\
task: tiny_arith_fewshot
dataset_path: json
dataset_kwargs:
  data_files:
    train: arith_train.jsonl
    test: arith_test.jsonl
test_split: test
fewshot_split: train
num_fewshot: 2
description: "Answer with a number.\\n\\n"
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 16
metric_list:
  - metric: exact_match
"""

SPELL = """\
task: tiny_spell
dataset_path: json
dataset_kwargs:
  data_files:
    test: spell.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 12
metric_list:
  - metric: exact_match
"""

SUM = SPELL.replace("task: tiny_spell", "task: tiny_sum").replace("spell.jsonl", "arith_train.jsonl")

GROUP = """\
group: tiny_pair
task:
  - tiny_spell
  - tiny_sum
aggregate_metric_list:
  - metric: exact_match
    weight_by_size: true
"""

PERPLEXITY = """\
task: tiny_perplexity
dataset_path: json
dataset_kwargs:
  data_files:
    test: spell.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{question}}"
metric_list:
  - metric: word_perplexity
"""

OFFLINE = """\
task: tiny_offline
dataset_path: tix-tests/no-such-dataset
test_split: test
output_type: generate_until
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: exact_match
"""

TASKS = {"arith.yaml": GENERATE, "syllogism.yaml": CHOICE, "fewshot.yaml": FEWSHOT, "spell.yaml": SPELL,
         "sum.yaml": SUM, "pair.yaml": GROUP, "perplexity.yaml": PERPLEXITY,
         "offline.yaml": OFFLINE}


def shipped_model() -> Path:
    """The tiny lab's shipped base (in the repository): no build needed."""
    return next(p for p in sorted(SHIPPED.iterdir()) if (p / "config.json").is_file())


def write_tasks(folder: Path, items: int = 12) -> Path:
    """The task folder: the YAMLs above and their data (lab items, fixed seeds)."""
    from engine.evaluation.benchmarks import lab_items

    folder.mkdir(parents=True, exist_ok=True)
    arith = lab_items("basic_arithmetic", 2 * items)
    _jsonl(folder / "arith_test.jsonl", [{"question": r["question"], "answer": r["answer"]} for r in arith[:items]])
    _jsonl(folder / "arith_train.jsonl", [{"question": r["question"], "answer": r["answer"]} for r in arith[items:]])
    _jsonl(folder / "syllogism.jsonl", [{"question": r["question"], "label": 0 if r["answer"] == "Yes" else 1}
                                        for r in lab_items("syllogism", items)])
    _jsonl(folder / "spell.jsonl", [{"question": r["question"], "answer": r["answer"]}
                                    for r in lab_items("spell_backward", items)])
    for name, text in TASKS.items():
        (folder / name).write_text(text)
    return folder


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def experiment(path: Path, tasks: Path, entries: list[tuple[str, str, bool]], backend: str = "hf") -> Path:
    """An experiment evaluating the shipped base on `entries` (task, group, chat)."""
    lines = [f"  - {{lm_eval: {name}, include_path: {tasks}, group: {group}, chat: {str(chat).lower()}}}"
             for name, group, chat in entries]
    options = "  backend_options: {max_model_len: 512}\n" if backend == "vllm" else ""
    path.write_text(f"name: lm-eval-agreement\nbase: {{model: {shipped_model()}}}\n"
                    f"eval:\n  backend: {backend}\n{options}  benchmarks:\n" + "\n".join(lines) + "\nanalysis: {}\n")
    return path


def reference(tasks: Path, names: list[str], chat: bool) -> dict[str, Any]:
    """lm-eval's own run: its HF model, batch size 1, fp32, thinking off as tix's default."""
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


def sample_rows(tix: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The workspace's scores and samples (with each sample's per-filter metrics)."""
    from tests.conftest import sql_json

    scores = sql_json(tix, 'SELECT benchmark, "group", metric, value, n FROM scores')
    samples = sql_json(tix, "SELECT benchmark, item_id, prompt, completion, extracted, verdict, "
                            "extra->'metrics' AS metrics FROM samples")
    return scores, samples


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
