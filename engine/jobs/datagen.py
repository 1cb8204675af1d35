"""The `datagen` job: SFT data the paper's way, by rejection sampling.

A teacher model (or, on-policy, the model about to be tuned) answers every training question
`samples` times; the scorer the evaluation uses keeps the correct answers (the first, or all of
them), and the kept (question, response) pairs become the JSONL dataset the SFT run consumes. In
thinking mode the kept response includes its reasoning trace. Generations go through the same
cache as evaluations, so a resumed or repeated run samples nothing twice.

Run: `python -m engine.jobs.worker RUN_DIR` with `kind: datagen`; `tix run` queues one before each
SFT variant that names a `teacher:`.
"""

from __future__ import annotations

import json
from typing import Any

from engine.evaluation.backends import ModelRef, SamplingParams, load_backend
from engine.evaluation.backends.cache import GenerationCache, model_identity
from engine.evaluation.datasets import load_train_data
from engine.evaluation.scorers import get_scorer
from engine.evaluation.scorers.textutil import strip_think
from engine.jobs import JobContext
from engine.jobs.eval import Evaluator, model_ref
from engine.jobs.train import item_scorer

VERSION = "1"
CHUNK = 64
OUTPUT = "sft-data.jsonl"


def run(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    ref: ModelRef = model_ref(params["teacher"], params.get("backend_options") or {})
    items = load_train_data(params["data"], params.get("limit"))
    sampling = SamplingParams(int(params.get("max_new_tokens", 256)), float(params.get("temperature", 0.7)),
                              1.0, int(params.get("samples", 4)), int(params.get("seed", 0)))
    backend = load_backend(ref, params.get("backend", "auto"))
    cache = GenerationCache(ctx.home / "cache" / "generations.sqlite")
    sampler = Evaluator(ctx, backend, cache, model_identity(ref.path, ref.revision))
    kept = 0
    with (ctx.run_dir / OUTPUT).open("w") as out:
        for start in range(0, len(items), CHUNK):
            kept += keep_correct(sampler, items[start : start + CHUNK], sampling, params, out)
            ctx.events.progress(min(start + CHUNK, len(items)), len(items), "rejection sampling")
    backend.close()
    ctx.events.log(f"kept {kept} correct responses for {len(items)} questions")
    if kept == 0:
        raise RuntimeError("the teacher answered no training question correctly: no SFT data")
    return {"data_path": str(ctx.run_dir / OUTPUT), "kept": kept, "questions": len(items),
            "generated": sampler.generated, "from_cache": sampler.from_cache}


def keep_correct(sampler: Evaluator, chunk: list[dict[str, Any]], sampling: SamplingParams,
                 params: dict[str, Any], out: Any) -> int:
    """Sample the chunk and write the correct responses; returns how many were kept."""
    thinking = bool(params.get("enable_thinking", False))
    prompts = [sampler.backend.render(it["question"], chat=True, enable_thinking=thinking) for it in chunk]
    kept = 0
    for item, gens in zip(chunk, sampler.generate(prompts, sampling), strict=True):
        scorer = get_scorer(item_scorer(item))
        good = [g.text for g in gens if scorer(strip_think(g.text)[0], item).score >= 1.0]
        for text in good[:1] if params.get("keep", "first") == "first" else good:
            out.write(json.dumps({**item, "completion": text.strip()}, default=str) + "\n")
            kept += 1
    out.flush()
    return kept
