"""vLLM through the daemon, on vLLM's CPU build: a datagen teacher, evaluations with a cache hit on
repeat, and GRPO with colocated vLLM rollouts (trl's `vllm_mode: colocate`), curves in the database."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import sql_json

LIMIT = 5


def experiment(tmp_path: Path, model: Path, name: str, limit: int, models: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nbase: {{model: {model}}}\n{models}"
                    f"eval:\n  suite: lab\n  limit: {limit}\n  backend: vllm\n"
                    "  backend_options: {max_model_len: 512}\n  generation: {max_new_tokens: 16}\n"
                    "analysis: {}\n")
    return path


VARIANTS = """models:
  sft:
    train:
      method: sft
      data: lab/math-train
      limit: 24
      teacher: {model: self, backend: vllm, samples: 4, temperature: 1.0, max_new_tokens: 12,
                backend_options: {max_model_len: 512}}
      args: {max_steps: 2, per_device_train_batch_size: 4, learning_rate: 1.0e-4}
  rl:
    train:
      method: grpo
      data: lab/math-train
      limit: 16
      reward: math
      args: {max_steps: 3, num_generations: 4, per_device_train_batch_size: 8, max_completion_length: 8,
             learning_rate: 1.0e-5, use_vllm: true, vllm_mode: colocate, vllm_max_model_length: 512}
"""


def run_result(tix, kind: str, name: str) -> dict:
    rows = sql_json(tix, f"SELECT result FROM runs WHERE kind = '{kind}' AND name = '{name}' "
                         "ORDER BY created_at DESC LIMIT 1")
    value = rows[0]["result"]
    return json.loads(value) if isinstance(value, str) else value


def test_experiment_with_vllm_teacher_grpo_rollouts_and_evals(tix, tmp_path: Path, lab_base: Path) -> None:
    done = tix("run", str(experiment(tmp_path, lab_base, "vllm-lane", LIMIT, VARIANTS)), "--wait", timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    states = sql_json(tix, "SELECT kind, name, state, error FROM runs ORDER BY kind, name")
    assert {(r["kind"], r["name"]) for r in states} >= {("datagen", "sft"), ("train", "sft"), ("train", "rl"),
                                                       ("eval", "base"), ("eval", "sft"), ("eval", "rl")}
    assert all(r["state"] == "succeeded" for r in states), states
    # the teacher sampled with vLLM and kept correct answers
    teacher = run_result(tix, "datagen", "sft")
    assert teacher["kept"] > 0 and teacher["generated"] > 0
    # evaluations: samples and scores of every lab benchmark, for each model
    scores = sql_json(tix, "SELECT model, count(*) AS n FROM scores WHERE metric = 'accuracy' GROUP BY model "
                           "ORDER BY model")
    assert [(r["model"], r["n"]) for r in scores] == [("base", 6), ("rl", 6), ("sft", 6)]
    assert sql_json(tix, "SELECT count(*) AS n FROM samples")[0]["n"] == 3 * 6 * LIMIT
    # GRPO with colocated vLLM rollouts: its curves are in the database
    curves = sql_json(tix, "SELECT m.name, count(*) AS n FROM metrics m JOIN runs r ON r.id = m.run_id "
                           "WHERE r.kind = 'train' AND r.name = 'rl' GROUP BY m.name")
    names = {r["name"]: r["n"] for r in curves}
    assert names.get("loss", 0) >= 3 and any(n.startswith("reward") for n in names), names
    logs = sql_json(tix, "SELECT e.payload FROM events e JOIN runs r ON r.id = e.run_id "
                         "WHERE r.kind = 'train' AND r.name = 'rl' AND e.type = 'log'")
    assert any("GRPO rollouts by vLLM (colocate)" in str(r["payload"]) for r in logs), logs


def test_repeated_evaluation_hits_the_generation_cache(tix, tmp_path: Path, lab_base: Path) -> None:
    first = tix("run", str(experiment(tmp_path, lab_base, "vllm-cache", LIMIT)), "--wait", timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert run_result(tix, "eval", "base")["from_cache"] == 0
    again = tix("run", str(experiment(tmp_path, lab_base, "vllm-cache", LIMIT + 1)), "--wait", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    result = run_result(tix, "eval", "base")
    assert (result["from_cache"], result["generated"]) == (6 * LIMIT, 6)
    repeated = sql_json(tix, "SELECT s.completion, s.tokens, s.run_id FROM samples s WHERE s.benchmark = "
                             "'lab_chain_sum' ORDER BY s.item_id, s.run_id")
    by_item: dict[str, set] = {}
    for row in repeated:
        by_item.setdefault(row["completion"], set()).add(row["tokens"])
    assert all(len(counts) == 1 for counts in by_item.values())
