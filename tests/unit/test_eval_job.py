"""The eval job on a real tiny model: every sample recorded, scores from samples, the
generation cache, log-likelihood benchmarks, and a killed run resumed to identical scores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine.evaluation.benchmarks import SUITES, get_benchmark, lab_items
from engine.jobs import eval as eval_job
from tests.conftest import ROOT, job_context, wait_until

pytestmark = pytest.mark.slow
PARAMS = {"suite": "lab", "limit": 40, "generation": {"max_new_tokens": 24, "temperature": 0.0}}


def samples_of(run_dir: Path) -> list[dict]:
    path = run_dir / "samples.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_eval_records_samples_scores_and_uses_the_cache(tmp_path: Path, tiny_model: Path) -> None:
    ctx = job_context(tmp_path, "eval", {"model": str(tiny_model), **PARAMS, "limit": 6}, name="base")
    result = eval_job.run(ctx)
    assert set(result["scores"]) == set(SUITES["lab"]) and len(SUITES["lab"]) == 6
    assert result["generated"] == 36 and result["from_cache"] == 0
    samples = samples_of(ctx.run_dir)
    assert len(samples) == 36
    first = samples[0]
    assert {"prompt", "completion", "extracted", "verdict", "tokens", "finish_reason", "flags", "gold"} <= set(first)
    assert first["gold"] == lab_items("basic_arithmetic")[0]["answer"]
    assert first["prompt"].startswith("<|im_start|>user\n") and first["scorer"] == "reasoning_gym"
    add = result["scores"]["lab_basic_arithmetic"]
    assert add["n"] == 6 and add["metrics"]["accuracy"] == 100 * sum(
        s["verdict"] for s in samples if s["benchmark"] == "lab_basic_arithmetic") / 6
    assert set(result["groups"]) == {"math", "other", "non"}
    events = [json.loads(x) for x in (ctx.run_dir / "events.jsonl").read_text().splitlines()]
    scores = [e for e in events if e["type"] == "score"]
    assert {(e["benchmark"], e["metric"]) for e in scores} >= {("lab_basic_arithmetic", "accuracy"),
                                                               ("lab_basic_arithmetic", "accuracy_stderr")}
    assert all(e["model"] == "base" for e in scores)
    again = eval_job.run(job_context(tmp_path, "eval", {"model": str(tiny_model), **PARAMS, "limit": 6},
                                     run_id="run-2"))
    assert again["generated"] == 0 and again["from_cache"] == 36
    assert again["scores"] == result["scores"]


def test_loglikelihood_benchmark(tmp_path: Path, tiny_model: Path) -> None:
    params = {"model": str(tiny_model), "benchmarks": [{"name": "lab_syllogism_choice", "group": "non"}],
              "limit": 10}  # the experiment moves it to another group
    ctx = job_context(tmp_path, "eval", params)
    result = eval_job.run(ctx)["scores"]["lab_syllogism_choice"]
    assert result["n"] == 10 and result["scorer"] == "choice_index" and result["group"] == "non"
    for sample in samples_of(ctx.run_dir):
        assert sample["completion"] in sample["prompt"] and len(sample["detail"]["loglikelihoods"]) == 2
        assert sample["group"] == "non" and sample["gold"] in ("Yes", "No")


def start_worker(home: Path, run_dir: Path, params: dict) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"run_id": run_dir.name, "kind": "eval", "name": "base", "attempt": 1, "home": str(home),
            "params": params}
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "TIX_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "engine.jobs.worker", str(run_dir)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_killed_eval_resumes_to_the_same_scores(tmp_path: Path, tiny_model: Path) -> None:
    params = {"model": str(tiny_model), **PARAMS, "limit": 20}
    whole = eval_job.run(job_context(tmp_path / "a", "eval", params, name="base"))
    run_dir = tmp_path / "b" / "runs" / "eval-b"
    worker = start_worker(tmp_path / "b", run_dir, params)
    wait_until(lambda: len(samples_of(run_dir)) >= 30, timeout=120, every=0.02)
    os.killpg(worker.pid, signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL, "the worker finished before it could be killed"
    recorded = len(samples_of(run_dir))
    assert 30 <= recorded < 120
    time.sleep(0.1)
    resumed = start_worker(tmp_path / "b", run_dir, params)
    assert resumed.wait(timeout=300) == 0
    samples = samples_of(run_dir)
    keys = [(s["benchmark"], s["item_id"], s["sample_idx"]) for s in samples]
    assert len(keys) == len(set(keys)) == 120  # every sample once: nothing re-recorded
    final = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()][-1]
    assert final["type"] == "finished"
    assert final["result"]["scores"] == whole["scores"]
    assert final["result"]["generated"] < 120  # the resumed attempt skipped what was recorded


def test_a_pooled_part_score_counts_its_own_items(tmp_path: Path) -> None:
    task = eval_job.Task(get_benchmark("halueval"), "non", "yes_no_first_line", [],
                         eval_job.SamplingParams(), False)
    samples = [{"item_id": f"{part}/{i}", "sample_idx": 0, "verdict": float(i == 0), "flags": [],
                "metrics": {f"accuracy_{part}": float(i == 0)}}
               for part, count in (("qa", 3), ("dialogue", 1)) for i in range(count)]
    ctx = job_context(tmp_path, "eval", {"label": "base"})
    eval_job.emit_scores(ctx, "halueval", eval_job.summarise(task, samples))
    events = [json.loads(x) for x in (ctx.run_dir / "events.jsonl").read_text().splitlines()]
    counts = {e["metric"]: (e["value"], e["n"]) for e in events if e["type"] == "score"}
    assert counts["accuracy"] == (50.0, 4) and counts["accuracy_stderr"][1] == 4
    assert counts["accuracy_qa"] == (pytest.approx(100 / 3), 3) and counts["accuracy_dialogue"] == (100.0, 1)
