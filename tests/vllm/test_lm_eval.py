"""An lm-eval `generate_until` task evaluated by tix's vLLM backend through the daemon, on vLLM's
CPU build: every doc's response, filtered answer and metrics equal lm-eval's own run with its HF
model on the same model (fp32, greedy), and so do the aggregates."""

from __future__ import annotations

from pathlib import Path

from tests.lm_eval_tasks import (
    assert_docs_equal,
    assert_scores_equal,
    experiment,
    reference,
    sample_rows,
    write_tasks,
)


def test_generate_task_by_vllm_agrees_with_lm_eval(tix, tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "lm_tasks")
    path = experiment(tmp_path / "exp.yaml", tasks, [("tiny_arith", "math", True)], backend="vllm")
    result = tix("run", str(path), "--wait", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    ref = reference(tasks, ["tiny_arith"], chat=True)
    scores, samples = sample_rows(tix)
    assert_scores_equal("tiny_arith", ref["results"]["tiny_arith"], scores)
    assert_docs_equal("tiny_arith", ref["samples"]["tiny_arith"], samples)
