"""PCA shift and token shift time per 100 items against bare forward passes (the overhead ratio).

Same freshly built tiny-lab model as base, a noised copy of it as the tuned model, 100 lab
items, in one process on the CPU. PCA shift: both models' pooled hidden states of the raw
prompts (truncated to 64 tokens, batch 16, left-padded) plus PCA(2) per layer and d; its bare
reference is one `model(..., output_hidden_states=True)` over the same padded batches. Token
shift: both models scoring 100 responses (chat prompt + 32 greedily generated tokens, batch 8,
right-padded): log p, ranks and the full-vocabulary KL per token, then the summary; its bare
reference is one forward pass (with output_hidden_states) over the same padded batches. An
analysis needs two models' passes, so the ratio against one pass starts at 2; the ratio against
two bare passes is the overhead proper. Each side runs 5 times, alternating; best times compared.

Run: `make bench` or `python bench/shift.py [--items N] [--tokens T]`.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import tiny_model  # bench/common.py (scripts run as `python bench/NAME.py`)

from engine.analysis import pca, tokens
from engine.evaluation.backends import ModelRef, SamplingParams, load_backend
from engine.evaluation.benchmarks import SUITES, get_benchmark, load_items

PCA_BATCH, TOKEN_BATCH = 16, 8


def noised(model: torch.nn.Module, scale: float = 0.05) -> torch.nn.Module:
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.std())
    return other


def bare_passes(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.inference_mode():
        for ids, mask in batches:
            model(input_ids=ids, attention_mask=mask, output_hidden_states=True)


def pca_batches(tokenizer, texts: list[str], max_tokens: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The very padded batches `pca.hidden_features` builds, for the bare reference."""
    ids, width = pca.left_padded(tokenizer, texts, max_tokens)
    pad = tokenizer.pad_token_id
    out = []
    for i in range(0, len(ids), PCA_BATCH):
        chunk = ids[i : i + PCA_BATCH]
        out.append((torch.tensor([[pad] * (width - len(r)) + r for r in chunk]),
                    torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in chunk])))
    return out


def token_batches(responses: list[tokens.Response], pad: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded batches, longest first, as `tokens.score_pair` makes them."""
    ordered = sorted(responses, key=lambda r: len(r.ids), reverse=True)
    out = []
    for i in range(0, len(ordered), TOKEN_BATCH):
        chunk = ordered[i : i + TOKEN_BATCH]
        width = max(len(r.ids) for r in chunk)
        out.append((torch.tensor([r.ids + [pad] * (width - len(r.ids)) for r in chunk]),
                    torch.tensor([[1] * len(r.ids) + [0] * (width - len(r.ids)) for r in chunk])))
    return out


def best(fn: Callable[[], object], bare: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    ours, ref = [], []
    for _ in range(repeats):  # alternating, so background load hits both sides alike
        start = time.perf_counter()
        fn()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        bare()
        ref.append(time.perf_counter() - start)
    return min(ours), min(ref)


def report(name: str, ours: float, bare: float, items: int) -> None:
    scale = 100 / items
    print(f"{name}: {ours * scale:.3f} s per 100 items; one bare forward pass {bare * scale:.3f} s; "
          f"ratio {ours / bare:.2f} against one pass, {ours / (2 * bare):.2f} against the two it needs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=32, help="generated tokens per token-shift response")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        path = tiny_model(Path(tmp), pretrain_steps=2)
        backend = load_backend(ModelRef(path, options={"batch_size": 16}), "hf")
    base, tokenizer = backend.model, backend.tokenizer
    tuned = noised(base)
    items = [it for name in SUITES["lab"] for it in load_items(get_benchmark(name))]
    texts = [it["question"] for it in items][: args.items]

    def pca_shift() -> float:
        layers, feats_base = pca.hidden_features(base, tokenizer, texts, max_tokens=64, pooling="paper")
        _, feats_tuned = pca.hidden_features(tuned, tokenizer, texts, max_tokens=64, pooling="paper")
        return pca.pca_shift(feats_base, feats_tuned, layers).d

    batches = pca_batches(tokenizer, texts, 64)
    report("PCA shift", *best(pca_shift, lambda: bare_passes(base, batches)), len(texts))

    prompts = [backend.render(t, chat=True, enable_thinking=False) for t in texts]
    gens = backend.generate(prompts, SamplingParams(max_new_tokens=args.tokens))
    responses = [tokens.encode_response(tokenizer, p, g[0].text) for p, g in zip(prompts, gens, strict=True)]
    scored = sum(len(r.ids) - r.start for r in responses)

    def token_shift() -> dict:
        return tokens.summarise(tokens.score_pair(base, tuned, responses, batch_size=TOKEN_BATCH,
                                                  pad_id=tokenizer.pad_token_id)).metrics

    token_pad = token_batches(responses, tokenizer.pad_token_id)
    print(f"token shift scores {scored} response tokens over {len(responses)} responses")
    report("token shift", *best(token_shift, lambda: bare_passes(base, token_pad)), len(responses))


if __name__ == "__main__":
    main()
