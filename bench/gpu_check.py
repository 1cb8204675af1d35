"""`make gpu-check`: the GPU paths on a CUDA box, one line per check (after `pytest -m gpu tests/gpu`).

Checks, each on a micro model built locally (nothing downloaded): CUDA and the GPUs; HF
generation in bf16; the vLLM backend; a data-parallel evaluation over two engines on two GPUs,
equal to one engine's (when two GPUs exist); one bf16 SFT step; one GRPO step with colocated
vLLM rollouts (trl's `vllm_mode: colocate`, which tix turns on when CUDA and vLLM are present).
Exit status 1 when a check fails or there is no CUDA device.

Run: `make gpu-check` (installs the `gpu` extra first) or `python bench/gpu_check.py`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from engine.doctor import Doctor, Skip, cuda, generate, micro_model, train_step
from engine.evaluation.backends import ModelRef, SamplingParams, load_backend
from engine.workspace import Workspace

OPTIONS = {"gpu_memory_utilization": 0.2, "max_model_len": 256, "enforce_eager": True}


def data_parallel(model: Path) -> str:
    """Two engines on two GPUs: the same greedy texts, in the same order, as one engine."""
    import torch

    if torch.cuda.device_count() < 2:
        raise Skip(f"{torch.cuda.device_count()} GPU: needs 2")
    one = load_backend(ModelRef(str(model), options=OPTIONS), "vllm")
    prompts = [one.render(f"What is {i} + {i}?", chat=True, enable_thinking=False) for i in range(64)]
    params = SamplingParams(max_new_tokens=16)
    expected = [g[0].text for g in one.generate(prompts, params)]
    one.close()
    two = load_backend(ModelRef(str(model), options={**OPTIONS, "data_parallel_size": 2}), "vllm")
    try:
        got = [g[0].text for g in two.generate(prompts, params)]
    finally:
        two.close()
    if got != expected:
        raise RuntimeError(f"{sum(a != b for a, b in zip(got, expected, strict=True))}/64 texts differ")
    return "64 prompts over 2 engines = one engine's texts, in order"


def main() -> int:
    doc = Doctor(Workspace.resolve(None), as_json=False)
    if not doc.check("cuda", cuda) or doc.results[-1]["status"] != "ok":
        print("no CUDA device: nothing to check here (the CPU paths are `make test` and `make test-vllm`)")
        return 1
    with tempfile.TemporaryDirectory(prefix="tix-gpu-check-") as tmp:
        home = Path(tmp)
        model = micro_model(home / "micro")
        doc.check("generate: hf (bf16)", lambda: generate(model, "hf"))
        doc.check("generate: vllm", lambda: generate(model, "vllm"))
        doc.check("eval: vllm data parallel x2", lambda: data_parallel(model))
        doc.check("train: sft bf16 (1 step)", lambda: train_step(model, home, "sft"))
        doc.check("train: grpo + colocated vllm (1 step)", lambda: train_step(model, home, "grpo"))
    return 1 if doc.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
