"""Local lm-eval task folders for the agreement tests: YAMLs and JSONL data written by the test,
over the tiny lab's items (the shipped base answers some of them, so metrics are not all 0)."""

from __future__ import annotations

import json
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
