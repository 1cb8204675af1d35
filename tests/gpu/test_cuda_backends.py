"""GPU paths: the HF backend in bf16 on CUDA and the vLLM backend, on the tiny lab model.

Skipped without CUDA (and the vLLM tests without the `vllm` package: `pip install -e '.[gpu]'`).
Run on a GPU box with `pytest tests/gpu -m gpu`.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from engine.evaluation.backends import ModelRef, SamplingParams, load_backend  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm (.[gpu])")
PROMPT = "Question: What is 12 + 7?\nAnswer:"


def test_hf_backend_runs_bf16_on_cuda(tiny_model: Path) -> None:
    backend = load_backend(ModelRef(str(tiny_model)), "hf")
    assert backend.device == "cuda" and next(backend.model.parameters()).dtype == torch.bfloat16
    gens = backend.generate([PROMPT] * 4, SamplingParams(max_new_tokens=8))
    assert len(gens) == 4 and all(g[0].finish_reason in ("stop", "length") for g in gens)
    assert all(v < 0 for v in backend.loglikelihood([(PROMPT, " 19")]))


@needs_vllm
def test_vllm_backend_matches_hf_greedy(tiny_model: Path) -> None:
    options = {"gpu_memory_utilization": 0.3, "max_model_len": 512, "dtype": "float32", "enforce_eager": True}
    vllm = load_backend(ModelRef(str(tiny_model), options=options), "vllm")
    assert vllm.name == "vllm"
    hf = load_backend(ModelRef(str(tiny_model), options={"dtype": "float32"}), "hf")
    params = SamplingParams(max_new_tokens=8)
    prompts = [PROMPT, "Question: Repeat the word zove.\nAnswer:"]
    assert [g[0].text for g in vllm.generate(prompts, params)] == [g[0].text for g in hf.generate(prompts, params)]
    sampled = vllm.generate([PROMPT], SamplingParams(max_new_tokens=8, temperature=1.0, n=3, seed=1))[0]
    assert len(sampled) == 3
    a = vllm.loglikelihood([(PROMPT, " 19")])[0]
    b = hf.loglikelihood([(PROMPT, " 19")])[0]
    assert math.isclose(a, b, rel_tol=1e-2, abs_tol=1e-2)


@needs_vllm
def test_vllm_caps_new_tokens_at_the_context_and_keeps_data_parallel_order(tiny_model: Path) -> None:
    """A model whose context is shorter than the asked-for answer ends with `length`, not an error;
    with two GPUs, data-parallel engines return what one engine returns, in prompt order."""
    options = {"gpu_memory_utilization": 0.3, "max_model_len": 128, "dtype": "float32", "enforce_eager": True}
    one = load_backend(ModelRef(str(tiny_model), options=options), "vllm")
    prompts = [f"Question: What is {i} + {i}?\nAnswer:" for i in range(12)]
    long = one.generate(prompts[:2], SamplingParams(max_new_tokens=32768))
    assert all(g[0].finish_reason in ("length", "stop") for g in long)
    if torch.cuda.device_count() < 2:
        pytest.skip("data parallelism needs 2 GPUs")
    two = load_backend(ModelRef(str(tiny_model), options={**options, "data_parallel_size": 2}), "vllm")
    params = SamplingParams(max_new_tokens=8)
    assert [g[0].text for g in two.generate(prompts, params)] == [g[0].text for g in one.generate(prompts, params)]
    assert two.loglikelihood([(PROMPT, " 19")]) == pytest.approx(one.loglikelihood([(PROMPT, " 19")]), abs=1e-3)
    two.close()
