"""Backend overheads: HF backend vs a bare `model.generate` loop (target <= 1.10), and, where vLLM is
installed, tix's vLLM backend vs vLLM's own `LLM.generate` on the same engine (target <= 1.05),
with HF vs vLLM wall times for information.

Both sides get the same 256 raw lab prompts, the same batch size and greedy
decoding with the same `max_new_tokens`, on the same freshly built tiny-lab model, in one
process. The bare loop tokenises each batch with left padding, calls `model.generate`, and
decodes; the backend does the same plus its bookkeeping (length sorting, EOS and stop handling,
finish reasons, token counts). Each side runs 5 times, alternating; the best times are compared
(the least disturbed by other load on a shared 2-core machine).

The vLLM part (`make bench-vllm`, in .venv-vllm on vLLM's CPU build, or on a GPU box) hands the
same prompts to one engine both ways: through `VLLMBackend.generate` (which also counts prompt
tokens for the context cap, builds per-prompt sampling parameters and wraps the results) and as
one bare `llm.generate` call with a single SamplingParams. Same alternation, best of 5.

Run: `make bench` or `python bench/backend.py [--prompts N] [--batch B] [--tokens T]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import torch
from common import tiny_model  # bench/common.py (scripts run as `python bench/NAME.py`)

from engine.evaluation.backends import ModelRef, SamplingParams, load_backend
from engine.evaluation.benchmarks import SUITES, get_benchmark, load_items


def bare_loop(model, tokenizer, prompts: list[str], batch: int, tokens: int) -> int:
    produced = 0
    for start in range(0, len(prompts), batch):
        enc = tokenizer(prompts[start : start + batch], return_tensors="pt", padding=True,
                        add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=tokens, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1] :]
        tokenizer.batch_decode(new, skip_special_tokens=True)
        produced += int((new != tokenizer.pad_token_id).sum())
    return produced


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        # barely trained on purpose: it rarely emits EOS, so every prompt decodes the full length
        path = tiny_model(Path(tmp), pretrain_steps=2)
        prompts = lab_prompts(args.prompts)
        params = SamplingParams(max_new_tokens=args.tokens)
        hf_s = bench_hf(path, prompts, params, args)
        if importlib.util.find_spec("vllm") is not None:
            bench_vllm(path, prompts, params, hf_s)
        else:
            print("vLLM: not installed here (`make bench-vllm` runs this in .venv-vllm)")


def lab_prompts(n: int) -> list[str]:
    """Raw "Question: ...\nAnswer:" prompts: the tiny model continues them to the token limit, so
    every side decodes the full length (chat prompts often stop after one token)."""
    questions = [it["question"] for name in SUITES["lab"] for it in load_items(get_benchmark(name))]
    return [f"Question: {q}\nAnswer:" for q in questions][:n]


def bench_hf(path: str, prompts: list[str], params: SamplingParams, args: argparse.Namespace) -> float:
    backend = load_backend(ModelRef(path, options={"batch_size": args.batch, "dtype": "float32"}), "hf")
    ours, bare = [], []
    for _ in range(5):  # alternating, so background load hits both sides alike
        t0 = time.perf_counter()
        gens = backend.generate(prompts, params)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bare_loop(backend.model, backend.tokenizer, prompts, args.batch, args.tokens)
        bare.append(time.perf_counter() - t0)
    produced = sum(g[0].tokens for g in gens)
    ours_s, bare_s = min(ours), min(bare)
    print(f"{len(prompts)} prompts, batch {args.batch}, greedy, max {args.tokens} new tokens, "
          f"{produced} tokens generated, 2 CPU threads, fp32")
    print(f"HF backend:          {ours_s:.2f} s ({len(prompts) / ours_s:.1f} prompts/s)")
    print(f"bare model.generate: {bare_s:.2f} s ({len(prompts) / bare_s:.1f} prompts/s)")
    print(f"overhead ratio (backend / bare): {ours_s / bare_s:.2f} (target <= 1.10)")
    return ours_s


def bench_vllm(path: str, prompts: list[str], params: SamplingParams, hf_s: float) -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import SamplingParams as VSP

    backend = load_backend(ModelRef(path, options={"max_model_len": 512}), "vllm")
    bare_params = VSP(max_tokens=params.max_new_tokens, temperature=0.0, seed=params.seed)
    ours, bare = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        gens = backend.generate(prompts, params)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        outputs = backend.llm.generate(prompts, bare_params, use_tqdm=False)
        bare.append(time.perf_counter() - t0)
    assert [g[0].text for g in gens] == [o.outputs[0].text for o in outputs]
    ours_s, bare_s = min(ours), min(bare)
    import vllm

    print(f"vLLM {vllm.__version__} ({backend.engine_args['dtype']}, "
          f"{'CUDA' if torch.cuda.is_available() else 'CPU build'}), same prompts, one engine:")
    print(f"tix VLLMBackend:     {ours_s:.2f} s ({len(prompts) / ours_s:.1f} prompts/s)")
    print(f"bare LLM.generate:   {bare_s:.2f} s ({len(prompts) / bare_s:.1f} prompts/s)")
    print(f"overhead ratio (backend / bare): {ours_s / bare_s:.2f} (target <= 1.05)")
    print(f"HF backend / tix vLLM backend wall time: {hf_s / ours_s:.2f} (information)")
    backend.close()


if __name__ == "__main__":
    main()
