"""HF backend throughput against a bare `model.generate` loop (the overhead ratio; target <= 1.10).

Both sides get the same 256 raw lab prompts, the same batch size and greedy
decoding with the same `max_new_tokens`, on the same freshly built tiny-lab model, in one
process. The bare loop tokenises each batch with left padding, calls `model.generate`, and
decodes; the backend does the same plus its bookkeeping (length sorting, EOS and stop handling,
finish reasons, token counts). Each side runs 5 times, alternating; the best times are compared
(the least disturbed by other load on a shared 2-core machine).

Run: `make bench` or `python bench/backend.py [--prompts N] [--batch B] [--tokens T]`.
"""

from __future__ import annotations

import argparse
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
        backend = load_backend(ModelRef(path, options={"batch_size": args.batch}), "hf")
        questions = [it["question"] for name in SUITES["lab"] for it in load_items(get_benchmark(name))]
        # raw "Question: ...\nAnswer:" prompts: the tiny model continues them to the token limit,
        # so both sides decode the full length (chat prompts often stop after one token)
        prompts = [f"Question: {q}\nAnswer:" for q in questions][: args.prompts]
        params = SamplingParams(max_new_tokens=args.tokens)
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
          f"{produced} tokens generated, 2 CPU threads")
    print(f"HF backend:          {ours_s:.2f} s ({len(prompts) / ours_s:.1f} prompts/s)")
    print(f"bare model.generate: {bare_s:.2f} s ({len(prompts) / bare_s:.1f} prompts/s)")
    print(f"overhead ratio (backend / bare): {ours_s / bare_s:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
