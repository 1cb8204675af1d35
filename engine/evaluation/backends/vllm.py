"""vLLM backend: the same interface as the HF backend, much faster on GPUs; runs on vLLM's CPU build too.

Options (from the experiment's `eval.backend_options` or defaults): `tensor_parallel_size`,
`max_model_len`, `gpu_memory_utilization` (0.9, CUDA), `seed`, `dtype` (bfloat16 on CUDA,
float32 on CPU, as the HF backend), `enforce_eager` (default on CPU: torch.compile costs about a
minute per new model and buys little there), `cpu_kv_cache_gib` (CPU only: the KV cache vLLM
reserves, `VLLM_CPU_KVCACHE_SPACE`; default 1 GiB, where vLLM's own default is 90 % of a NUMA
node's RAM), and `data_parallel_size`: with k > 1, k engine processes, each on its own
`tensor_parallel_size` GPUs of the run (`CUDA_VISIBLE_DEVICES`), started once and fed shards of
every chunk, which is how vLLM recommends scaling a model that fits one GPU. Log-likelihoods use
`prompt_logprobs`.

Token counts follow one rule for every backend (engine.evaluation.backends.count_tokens): the
tokens the model generated, stop-string tokens included, without the EOS / stop token that
ended the completion. vLLM's `token_ids` include that final token, so it is taken off here.

This module imports vllm only inside the functions that run an engine (workers load it). It is
tested on vLLM's CPU build in the vLLM lane (`make test-vllm`, tests/vllm) and on CUDA by
tests/gpu and `make gpu-check`.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
from typing import Any

from engine.evaluation.backends import Generation, ModelRef, SamplingParams
from engine.evaluation.backends.hf import render_prompt

ENGINE_KEYS = ("tensor_parallel_size", "max_model_len", "gpu_memory_utilization", "seed", "dtype",
               "enforce_eager", "enable_prefix_caching", "enable_chunked_prefill", "max_num_batched_tokens")
CPU_KV_CACHE_GIB = 1
"""Default KV-cache size of a CPU engine (GiB): enough for the lab and small models."""
START_TIMEOUT_S = 1800.0
"""How long a data-parallel pool waits for its engines to load (a large model from disk)."""


class VLLMBackend:
    name = "vllm"
    chunk = 2048
    """Prompts per generate call: vLLM schedules its own batches, so the evaluation hands it
    large chunks (samples are still written, and resumable, chunk by chunk)."""

    def __init__(self, ref: ModelRef) -> None:
        self.ref = ref
        self.dp = int(ref.options.get("data_parallel_size", 1))
        self.engine_args = engine_args(ref.path, ref.options, revision=ref.revision)
        self.cache_tag = f"vllm:{self.engine_args['dtype']}"
        prepare_environment(ref.options)
        self.llm = make_llm(self.engine_args) if self.dp == 1 else None
        self.pool = EnginePool(self.engine_args, self.dp) if self.dp > 1 else None
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=ref.revision)

    def render(self, question: str, *, chat: bool, enable_thinking: bool, system: str | None = None) -> str:
        return render_prompt(self.tokenizer, question, chat=chat, enable_thinking=enable_thinking,
                             system=system)

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        if self.pool is not None:
            return self.pool.run("generate", prompts, params)
        return _generate(self.llm, prompts, params)

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[float]:
        return [ll for ll, _ in self.loglikelihood_greedy(pairs)]

    def loglikelihood_greedy(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(summed log p, whether every continuation token ranks first), as lm-eval asks."""
        if self.pool is not None:
            return self.pool.run("loglikelihood", pairs)
        return _loglikelihood(self.llm, pairs)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.llm = self.pool = None


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def engine_args(model: str, options: dict[str, Any], *, revision: str | None = None) -> dict[str, Any]:
    """`LLM(...)` arguments: tix's defaults for this device, then the options that are engine keys."""
    cuda = on_cuda()
    defaults: dict[str, Any] = {"model": model, "revision": revision, "seed": 0,
                                "dtype": "bfloat16" if cuda else "float32"}
    if cuda:
        defaults["gpu_memory_utilization"] = 0.9
    else:
        # vLLM 0.31's CPU runner fails seeded sampling in a step that holds a partial prefill
        # ("CPU Generator does not use offset"): on CPU, prefills are scheduled whole.
        defaults.update(enforce_eager=True, enable_chunked_prefill=False,
                        max_num_batched_tokens=max(8192, int(options.get("max_model_len") or 0)))
    chosen = {k: options[k] for k in ENGINE_KEYS if k in options}
    if not cuda:
        chosen.pop("gpu_memory_utilization", None)  # the CPU build sizes its cache from cpu_kv_cache_gib
    return {**defaults, **chosen}


def prepare_environment(options: dict[str, Any]) -> None:
    """On CPU, size vLLM's KV cache from `cpu_kv_cache_gib` unless the user set the variable."""
    if not on_cuda() and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(options.get("cpu_kv_cache_gib", CPU_KV_CACHE_GIB))


def keep_cpu_linear_weights() -> None:
    """Let trl's weight sync reach a colocated engine on vLLM's CPU build.

    That build repacks each linear layer's weight for oneDNN and drops the original, so trl's
    `load_weights` after every optimiser step fails ("'Parameter' object has no attribute
    'weight_loader'"). In the training process only, linear layers keep their weights and run
    torch's `linear` (the CPU build's own fallback); embeddings are packed as before.
    """
    import torch
    from vllm.model_executor.layers import utils

    original = utils.dispatch_cpu_unquantized_gemm
    if getattr(original, "keeps_weights", False):
        return

    def dispatch(layer: Any, remove_weight: bool) -> None:
        if not remove_weight:
            original(layer, remove_weight)
            return
        layer.cpu_linear = torch.nn.functional.linear

    dispatch.keeps_weights = True  # type: ignore[attr-defined]
    utils.dispatch_cpu_unquantized_gemm = dispatch


def make_llm(args: dict[str, Any]) -> Any:
    from vllm import LLM

    return LLM(**{k: v for k, v in args.items() if v is not None})


def generated_tokens(completion: Any) -> int:
    """vLLM's token count under the shared rule: its `token_ids` end with the EOS or stop token
    when one ended the completion (`stop_reason` None or a token id); a stop string's tokens stay."""
    ended_by_token = completion.finish_reason == "stop" and not isinstance(completion.stop_reason, str)
    return len(completion.token_ids) - (1 if ended_by_token and completion.token_ids else 0)


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
    return [[Generation(c.text, generated_tokens(c), "length" if c.finish_reason == "length" else "stop",
                        len(o.prompt_token_ids)) for c in o.outputs] for o in outputs]


def _loglikelihood(llm: Any, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
    """Sum of the continuation's token log-probabilities, from vLLM's `prompt_logprobs`, and
    whether each of those tokens ranks first."""
    from vllm import SamplingParams as VSP

    tokenizer = llm.get_tokenizer()
    outputs = llm.generate([ctx + cont for ctx, cont in pairs], VSP(max_tokens=1, prompt_logprobs=0),
                           use_tqdm=False)
    sums = []
    for (ctx, _), out in zip(pairs, outputs, strict=True):
        start = len(tokenizer(ctx, add_special_tokens=False)["input_ids"])
        ids = out.prompt_token_ids
        picked = [out.prompt_logprobs[i][ids[i]] for i in range(max(start, 1), len(ids))]
        sums.append((sum(p.logprob for p in picked), all(p.rank == 1 for p in picked)))
    return sums


SHARD_FNS = {"generate": _generate, "loglikelihood": _loglikelihood}


class EnginePool:
    """Data parallelism: `dp` vLLM engines, each in its own process on its own `tensor_parallel_size`
    GPUs of the run (8 GPUs, dp 4, tp 2: GPUs 0-1, 2-3, 4-5, 6-7), started once and kept for the
    whole evaluation (loading a model takes minutes; a chunk seconds).

    The engine processes are plain (non-daemonic) processes, because vLLM starts children of
    its own (its engine core), which a `multiprocessing.Pool` worker may not. Work is cut into
    twice as many interleaved shards as engines on one shared queue, so an engine that finishes
    early takes another; results come back in input order. An engine that fails to load, fails
    a shard or dies makes the caller raise with its error; nothing waits forever.
    """

    def __init__(self, args: dict[str, Any], dp: int) -> None:
        ctx = mp.get_context("spawn")
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        groups = device_groups(os.environ.get("CUDA_VISIBLE_DEVICES", ""), dp,
                               int(args.get("tensor_parallel_size") or 1))
        self.procs = [ctx.Process(target=_engine_main, name=f"vllm-dp{i}", daemon=False,
                                  args=(i, args, group, self.tasks, self.results))
                      for i, group in enumerate(groups)]
        for proc in self.procs:
            proc.start()
        try:
            for _ in self.procs:
                self._next(START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def run(self, fn: str, inputs: list[Any], *args: Any) -> list[Any]:
        parts = 2 * len(self.procs)
        for i in range(parts):
            self.tasks.put((i, fn, inputs[i::parts], args))
        out: list[Any] = [None] * len(inputs)
        for _ in range(parts):
            _, i, part = self._next(None)
            out[i::parts] = part
        return out

    def _next(self, timeout: float | None) -> tuple[Any, ...]:
        """The next message from an engine; raises when one reported an error or died."""
        waited = 0.0
        while timeout is None or waited < timeout:
            try:
                message = self.results.get(timeout=0.5)
            except queue.Empty:
                waited += 0.5
                self._raise_if_dead()
                continue
            if message[0] == "error":
                self.close()
                raise RuntimeError(f"vLLM data-parallel engine {message[1]} failed: {message[2]}")
            return message
        self.close()
        raise RuntimeError(f"vLLM data-parallel engines did not start within {timeout:.0f} s")

    def _raise_if_dead(self) -> None:
        dead = next((p for p in self.procs if p.exitcode is not None), None)
        if dead is not None:
            self.close()
            raise RuntimeError(f"vLLM data-parallel engine {dead.name} exited with status {dead.exitcode} "
                               "without an error message (killed? out of memory?)")

    def close(self) -> None:
        """Stop every engine and whatever it started (vLLM's engine-core processes outlive a
        `multiprocessing` child that exits without running its own shutdown)."""
        descendants = [child for proc in self.procs for child in _children(proc.pid)]
        for proc in self.procs:
            if proc.is_alive():
                self.tasks.put(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        _kill_all(descendants)
        self.procs = []


def _children(pid: int | None) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True) if pid else []
    except psutil.Error:
        return []


def _kill_all(procs: list[Any]) -> None:
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def device_groups(visible: str, dp: int, tp: int) -> list[str]:
    """The CUDA_VISIBLE_DEVICES of each of `dp` engines of `tp` GPUs, from the run's own GPUs."""
    devices = [d for d in visible.split(",") if d] or [str(i) for i in range(dp * tp)]
    if len(devices) < dp * tp:
        raise RuntimeError(f"data_parallel_size {dp} x tensor_parallel_size {tp} needs {dp * tp} GPUs; "
                           f"the run has {len(devices)} ({','.join(devices)})")
    return [",".join(devices[i * tp:(i + 1) * tp]) for i in range(dp)]


def _engine_main(index: int, args: dict[str, Any], devices: str, tasks: Any, results: Any) -> None:
    """One engine process: load, say ready, then run shards until the `None` sentinel."""
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    llm = None
    try:
        llm = make_llm(args)
        results.put(("ready", index))
        while (task := tasks.get()) is not None:
            i, fn, payload, extra = task
            results.put(("done", i, SHARD_FNS[fn](llm, payload, *extra) if payload else []))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        results.put(("error", index, f"{type(exc).__name__}: {exc}"))
    finally:
        shutdown(llm)


def shutdown(llm: Any) -> None:
    """End an engine's own processes now (a `multiprocessing` child skips atexit handlers)."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        with contextlib.suppress(Exception):
            core.shutdown()
