"""Rejection sampling: the datagen job keeps only answers the scorer accepts, and the planner
puts it between the teacher and the SFT run (on-policy: the source model is the teacher)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.experiments.plan import plan_experiment
from engine.experiments.spec import load_experiment_text
from tests.conftest import job_context


def test_planner_inserts_rejection_sampling_before_sft(tmp_path: Path) -> None:
    text = ("name: rs\nbase: {model: tiny-lab}\nanalysis: {}\nmodels:\n"
            "  onpolicy: {train: {method: sft, data: lab/math-train, teacher: {model: self, samples: 2}}}\n"
            "  distilled: {train: {method: sft, data: lab/math-train, teacher: {model: org/teacher}}}\n")
    runs = {(r["kind"], r["name"]): r for r in plan_experiment(load_experiment_text(text, str(tmp_path / "rs.yaml")))}
    build = runs[("build", "base")]["id"]
    onpolicy, distilled = runs[("datagen", "onpolicy")], runs[("datagen", "distilled")]
    assert onpolicy["deps"] == [build] and onpolicy["params"]["teacher"]["from_run"] == build
    assert distilled["deps"] == [] and distilled["params"]["teacher"]["name"] == "org/teacher"
    train = runs[("train", "onpolicy")]
    assert set(train["deps"]) == {build, onpolicy["id"]}
    assert train["params"]["data"] == {"from_run": onpolicy["id"], "key": "data_path"}
    with pytest.raises(Exception, match="only applies to method sft"):
        load_experiment_text(text.replace("method: sft, data: lab/math-train, teacher: {model: self",
                                          "method: grpo, data: lab/math-train, teacher: {model: self"))


@pytest.mark.slow
def test_datagen_keeps_only_correct_answers(tmp_path: Path, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from engine.evaluation.backends import SamplingParams
    from engine.evaluation.backends.cache import GenerationCache, cache_key, model_identity
    from engine.evaluation.backends.hf import render_prompt
    from engine.jobs import datagen

    data = tmp_path / "q.jsonl"
    rows = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": "no model says this",
             "scorer": "exact_match"} for i in range(6)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    # a hot temperature makes the weak test model say varied, non-empty things
    params = {"teacher": str(tiny_model), "data": str(data), "samples": 2, "max_new_tokens": 4, "temperature": 5.0}
    with pytest.raises(RuntimeError, match="no SFT data"):
        datagen.run(job_context(tmp_path, "datagen", params))
    # make the first three questions' gold answers equal to what the teacher said (from the cache)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    cache = GenerationCache(tmp_path / "cache" / "generations.sqlite")
    sampling = SamplingParams(4, 5.0, 1.0, 2, 0)
    for row in rows[:3]:
        prompt = render_prompt(tokenizer, row["question"], chat=True, enable_thinking=False)
        gens = cache.get_many([cache_key(model_identity(str(tiny_model)), prompt, sampling, "hf:float32")])
        row["answer"] = next(iter(gens.values()))[0].text
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = datagen.run(job_context(tmp_path, "datagen", params, run_id="run-2"))
    kept = [json.loads(x) for x in Path(result["data_path"]).read_text().splitlines()]
    assert result["questions"] == 6 and result["kept"] == len(kept) >= 2  # (a blank sample cannot match)
    assert {k["id"] for k in kept} <= {"q0", "q1", "q2"}
    assert all(k["completion"] == k["answer"].strip() for k in kept)
    assert result["generated"] == 0 and result["from_cache"] == 6  # nothing sampled twice
