"""vLLM backend, for CUDA boxes: the same interface as the HF backend, much faster.

Options (from the experiment's `eval.backend_options` or defaults): `tensor_parallel_size`,
`max_model_len`, `gpu_memory_utilization` (0.9), `seed`, `dtype` (bfloat16), and
`data_parallel_size`: with k > 1, k vLLM processes, each pinned to one of the run's GPUs
(`CUDA_VISIBLE_DEVICES`), started once and fed shards of every chunk, which is how vLLM
recommends scaling a model that fits one GPU. Log-likelihoods use `prompt_logprobs`.

This module imports vllm; only worker processes on GPU boxes load it. It is exercised by the
GPU tests (tests/gpu), which skip without CUDA.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

from engine.evaluation.backends import Generation, ModelRef, SamplingParams
from engine.evaluation.backends.hf import render_prompt

ENGINE_KEYS = ("tensor_parallel_size", "max_model_len", "gpu_memory_utilization", "seed", "dtype",
               "enforce_eager", "enable_prefix_caching")


class VLLMBackend:
    name = "vllm"
    chunk = 2048
    """Prompts per generate call: vLLM schedules its own batches, so the evaluation hands it
    large chunks (samples are still written, and resumable, chunk by chunk)."""

    def __init__(self, ref: ModelRef) -> None:
        self.ref = ref
        self.dp = int(ref.options.get("data_parallel_size", 1))
        self.engine_args = {"model": ref.path, "revision": ref.revision, "dtype": "bfloat16",
                            "gpu_memory_utilization": 0.9, "seed": 0,
                            **{k: ref.options[k] for k in ENGINE_KEYS if k in ref.options}}
        self.llm = _make_llm(self.engine_args) if self.dp == 1 else None
        self.pool = _ShardPool(self.engine_args, self.dp) if self.dp > 1 else None
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=ref.revision)

    def render(self, question: str, *, chat: bool, enable_thinking: bool, system: str | None = None) -> str:
        return render_prompt(self.tokenizer, question, chat=chat, enable_thinking=enable_thinking,
                             system=system)

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        if self.pool is not None:
            return self.pool.run(_shard_generate, prompts, params)
        return _generate(self.llm, prompts, params)

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[float]:
        if self.pool is not None:
            return self.pool.run(_shard_loglikelihood, pairs)
        return _loglikelihood(self.llm, pairs)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.llm = self.pool = None


def _make_llm(engine_args: dict[str, Any]) -> Any:
    from vllm import LLM

    return LLM(**{k: v for k, v in engine_args.items() if v is not None})


def _generate(llm: Any, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
    """Generate; a prompt whose answer would run past the context gets the room that is left
    (finish reason `length`), instead of vLLM refusing the whole batch (a 4k-context base model
    asked for the paper's 32,768 new tokens)."""
    from vllm import SamplingParams as VSP

    def sampling(max_tokens: int) -> Any:
        return VSP(n=params.n, temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                   max_tokens=max_tokens, stop=list(params.stop) or None)

    limit = int(llm.llm_engine.model_config.max_model_len)
    tokenizer = llm.get_tokenizer()
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]  # with special tokens, as vLLM counts
    per_prompt = [sampling(max(1, min(params.max_new_tokens, limit - n))) for n in lengths]
    outputs = llm.generate(prompts, per_prompt, use_tqdm=False)
    return [[Generation(c.text, len(c.token_ids), "length" if c.finish_reason == "length" else "stop",
                        len(o.prompt_token_ids)) for c in o.outputs] for o in outputs]


def _loglikelihood(llm: Any, pairs: list[tuple[str, str]]) -> list[float]:
    """Sum of the continuation's token log-probabilities, from vLLM's `prompt_logprobs`."""
    from vllm import SamplingParams as VSP

    tokenizer = llm.get_tokenizer()
    outputs = llm.generate([ctx + cont for ctx, cont in pairs], VSP(max_tokens=1, prompt_logprobs=0),
                           use_tqdm=False)
    sums = []
    for (ctx, _), out in zip(pairs, outputs, strict=True):
        start = len(tokenizer(ctx, add_special_tokens=False)["input_ids"])
        ids = out.prompt_token_ids
        sums.append(sum(out.prompt_logprobs[i][ids[i]].logprob for i in range(max(start, 1), len(ids))))
    return sums


class _ShardPool:
    """Data parallelism: `dp` vLLM engines, each in its own process on its own `tensor_parallel_size`
    GPUs of the run (8 GPUs, dp 4, tp 2: GPUs 0-1, 2-3, 4-5, 6-7), started once and kept for the
    whole evaluation (loading a model takes minutes; a chunk seconds).

    Work is cut into twice as many interleaved shards as engines, so an engine that finishes
    early takes another; results come back in input order.
    """

    def __init__(self, engine_args: dict[str, Any], dp: int) -> None:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        for group in device_groups(os.environ.get("CUDA_VISIBLE_DEVICES", ""), dp,
                                   int(engine_args.get("tensor_parallel_size") or 1)):
            queue.put(group)
        self.dp = dp
        self.pool = ctx.Pool(dp, initializer=_start_engine, initargs=(engine_args, queue))

    def run(self, fn: Any, inputs: list[Any], *args: Any) -> list[Any]:
        parts = 2 * self.dp
        shards = [inputs[i::parts] for i in range(parts)]
        done = self.pool.starmap(fn, [(shard, *args) for shard in shards], chunksize=1)
        out: list[Any] = [None] * len(inputs)
        for i, part in enumerate(done):
            out[i::parts] = part
        return out

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


_ENGINE: Any = None
"""The engine of a shard process (set once by `_start_engine`)."""


def device_groups(visible: str, dp: int, tp: int) -> list[str]:
    """The CUDA_VISIBLE_DEVICES of each of `dp` engines of `tp` GPUs, from the run's own GPUs."""
    devices = [d for d in visible.split(",") if d] or [str(i) for i in range(dp * tp)]
    if len(devices) < dp * tp:
        raise RuntimeError(f"data_parallel_size {dp} x tensor_parallel_size {tp} needs {dp * tp} GPUs; "
                           f"the run has {len(devices)} ({','.join(devices)})")
    return [",".join(devices[i * tp:(i + 1) * tp]) for i in range(dp)]


def _start_engine(engine_args: dict[str, Any], devices: Any) -> None:
    global _ENGINE
    os.environ["CUDA_VISIBLE_DEVICES"] = devices.get()
    _ENGINE = _make_llm(engine_args)


def _shard_generate(prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
    return _generate(_ENGINE, prompts, params) if prompts else []


def _shard_loglikelihood(pairs: list[tuple[str, str]]) -> list[float]:
    return _loglikelihood(_ENGINE, pairs) if pairs else []
