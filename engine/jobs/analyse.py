"""The `analyse` job: PCA shift and token shift of a tuned model against its base.

Run it as any job: `python -m engine.jobs.worker RUN_DIR` with `kind: analyse` in `spec.yaml`; `tix run`
queues one per tuned variant, after both models and the variant's evaluation. Parameters:
`base_model` and `model` (a local folder or hub id, or {name, revision}), `samples_from` (the
tuned model's eval run, whose responses token shift re-scores), `pca_shift` ({items, max_tokens,
pooling, layers}) and `token_shift` ({items, batch_size, backend}); an analysis that is absent is
not run. The benchmarks are `benchmarks`/`suite` when the parameters carry them, else those of
the eval run (its spec.yaml), else the ones found in its samples.

Benchmark entries come in the eval run's three kinds, each analysed under the name its samples
carry: `{name: X}` (registered, or a benchmark file in the workspace's benchmarks/ folder, found
by `find_benchmark`), `{file: PATH}` (under the file's `name:`) and `{lm_eval: TASK}` (each task
it stands for, a group's members included, resolved in lm-eval's light index). PCA shift draws
prompts per benchmark with tix's own template, which an lm-eval task does not have: lm-eval
builds its prompts from its data set (few-shot examples, and the chat template by default), so
the recorded prompts are not raw text comparable with the other benchmarks', and their shared
few-shot prefix would fill the first `max_tokens`. So PCA shift skips lm-eval tasks, one logged
line saying so. Token shift re-scores the responses the eval run recorded, lm-eval's included,
so it covers them like any other benchmark.

The story. PCA shift (engine.analysis.pca): per benchmark, the first `items` items rendered with
the benchmark's prompt template as raw text; the base model's pooled hidden states per layer,
then the tuned model's on the same inputs (one model in memory at a time, both fed by the base's
tokenizer as in the paper's code); PCA(2) on the base features per layer and benchmark; per-layer
points and d per benchmark, then d per group = the mean of its benchmarks' d (each benchmark
weighs the same, as in TI). Token shift (engine.analysis.tokens): the tuned model's first
response (sample 0) to each of the first `items` items of every benchmark, scored by both models
at once (both in memory); metrics per benchmark, then per group.

Every result is a `shift` event (ingested into `shift_results`): pca_shift `points` per layer
(value ||m' - m||, payload the two points and the explained-variance ratios) and `d` per
benchmark and per group; token_shift `logp_diff`, `kl`, `rank_shift`, `share_base_rank1`,
`share_base_rank2_3`, `share_base_rank_gt3`, `tokens` and `top_tokens` per benchmark and per
group (group rows have no benchmark). A retried run recomputes everything (it is deterministic)
but writes only the rows the failed attempt did not, so `shift_results` never holds a row twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from engine.analysis import pca, tokens
from engine.evaluation.backends import ModelRef
from engine.evaluation.benchfile import find_benchmark, load_benchmark_file
from engine.evaluation.benchmarks import Benchmark, load_items, prompt_text, suite_benchmarks
from engine.events import EVENTS_FILE, SAMPLES_FILE, SPEC_FILE
from engine.jobs import JobContext
from engine.jobs.eval import read_samples

VERSION = "1"
PCA_BATCH = 16
LM_EVAL_SCORER = "lm_eval"
"""The scorer of an lm-eval task's samples (engine.evaluation.lmeval.SCORER; that module loads lm-eval)."""


def run(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    if params.get("pca_shift") is None and params.get("token_shift") is None:
        raise ValueError("analyse: the parameters ask for no analysis (pca_shift or token_shift)")
    base, tuned = model_ref(params, "base_model"), model_ref(params, "model")
    eval_dir = samples_dir(ctx)
    entries = analysed(benchmark_entries(params, eval_dir), ctx.home)
    ctx.events.log(f"analysing {tuned.path} against {base.path} on {len(entries)} benchmark(s)")
    emit = ShiftEmitter(ctx)
    drawn = pca_entries(ctx, entries) if params.get("pca_shift") is not None else []
    progress = Progress(ctx, 2 * len(drawn) + (len(entries) if params.get("token_shift") is not None else 0))
    result: dict[str, Any] = {"device": device_name()}
    if params.get("pca_shift") is not None:
        result["pca_shift"] = run_pca(params["pca_shift"], drawn, base, tuned, emit, progress, ctx.home)
    if params.get("token_shift") is not None:
        result["token_shift"] = run_token_shift(params["token_shift"], entries, base, tuned, eval_dir, emit,
                                                progress)
    return result


# -- inputs ------------------------------------------------------------------------------------


def model_ref(params: dict[str, Any], key: str) -> ModelRef:
    """A model parameter (a path or hub id, or {name, revision}) as the backends' ModelRef."""
    value = params.get(key)
    if isinstance(value, dict) and value.get("name"):
        return ModelRef(str(value["name"]), value.get("revision"))
    if not value or isinstance(value, dict):
        raise ValueError(f"analyse needs `{key}` (a model folder or hub id), got {value!r}")
    return ModelRef(str(value))


def samples_dir(ctx: JobContext) -> Path | None:
    """The eval run folder named by `samples_from` (None when the parameters name none)."""
    run_id = ctx.params.get("samples_from")
    return ctx.home / "runs" / str(run_id) if run_id else None


def benchmark_entries(params: dict[str, Any], eval_dir: Path | None) -> list[dict[str, Any]]:
    """[{name, group?, data?}]: the parameters' benchmarks or suite, else the eval run's, else
    the benchmarks present in its samples (in the order they first appear)."""
    source = params if params.get("benchmarks") or params.get("suite") else eval_params(eval_dir)
    if source.get("benchmarks"):
        entries = [dict(e) for e in source["benchmarks"]]
    elif source.get("suite"):
        entries = [{"name": b.name} for b in suite_benchmarks(source["suite"])]
    else:
        entries = sampled_benchmarks(eval_dir)
    if not entries:
        raise ValueError(f"analyse: no benchmarks to analyse (no benchmarks or suite in the parameters, "
                         f"and no samples in {eval_dir})")
    return entries


def eval_params(eval_dir: Path | None) -> dict[str, Any]:
    path = eval_dir / SPEC_FILE if eval_dir else None
    if path is None or not path.is_file():
        return {}
    spec = yaml.safe_load(path.read_text()) or {}
    return spec.get("params") or {} if isinstance(spec, dict) else {}


def sampled_benchmarks(eval_dir: Path | None) -> list[dict[str, Any]]:
    """The benchmarks of the samples (an lm-eval task's marked as one: its scorer is lm-eval's)."""
    found: dict[str, dict[str, Any]] = {}
    for sample in _sample_lines(eval_dir):
        if sample.get("benchmark") and sample["benchmark"] not in found:
            found[sample["benchmark"]] = {"name": sample["benchmark"], "group": sample.get("group")} | (
                {"lm_eval": sample["benchmark"]} if sample.get("scorer") == LM_EVAL_SCORER else {})
    return list(found.values())


def _sample_lines(eval_dir: Path | None) -> Iterator[dict[str, Any]]:
    path = eval_dir / SAMPLES_FILE if eval_dir else None
    if path is None or not path.is_file():
        return
    for line in path.read_bytes().splitlines():
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if isinstance(sample, dict):
            yield sample


def analysed(entries: list[dict[str, Any]], home: Path) -> list[dict[str, Any]]:
    """One entry per benchmark, named as the eval run named its samples and with its group
    settled: a `{file:}` entry under the file's `name:`, an `{lm_eval:}` entry as its tasks."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        if entry.get("lm_eval"):
            group = entry.get("group") or "other"  # as the eval job records lm-eval samples
            out += [{"name": task, "group": group, "lm_eval": entry["lm_eval"]}
                    for task in lm_eval_tasks(entry, home)]
        elif entry.get("file"):
            bench = load_benchmark_file(entry["file"])
            out.append({**entry, "name": bench.name, "group": entry.get("group") or bench.group})
        else:
            out.append({**entry, "group": group_of(entry, home)})
    return out


def lm_eval_tasks(entry: dict[str, Any], home: Path) -> list[str]:
    """The tasks an lm-eval entry stands for (a group's or tag's members), from lm-eval's light
    index (cached in `home`); the entry's own name when the index does not know it."""
    from engine.evaluation import lmeval_index

    include = entry.get("include_path")
    try:
        found = lmeval_index.index(include, home)
        info = lmeval_index.resolve(entry["lm_eval"], include, home)
    except lmeval_index.LmEvalError:
        return [entry["lm_eval"]]
    return [task.name for task in lmeval_index.leaves(info, found)] or [entry["lm_eval"]]


def group_of(entry: dict[str, Any], home: Path | None = None) -> str:
    """The entry's own group, else its benchmark's (a benchmark only seen in samples may be neither)."""
    if entry.get("group"):
        return str(entry["group"])
    try:
        return find_benchmark(entry["name"], home).group
    except ValueError:
        return "?"


def bench_of(entry: dict[str, Any], home: Path | None) -> Benchmark:
    """The benchmark an (analysed) entry names: its file, else a registered or workspace one."""
    return load_benchmark_file(entry["file"]) if entry.get("file") else find_benchmark(entry["name"], home)


def pca_entries(ctx: JobContext, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries PCA shift draws prompts for: all but lm-eval tasks (see the module docstring)."""
    skipped = [e["name"] for e in entries if e.get("lm_eval")]
    if skipped:
        ctx.events.log(f"pca_shift: skipping lm-eval task(s) {', '.join(skipped)}: lm-eval builds their "
                       "prompts from its data sets (few-shot, chat template), not tix's raw template; "
                       "token_shift covers them from their recorded samples")
    return [e for e in entries if not e.get("lm_eval")]


# -- models ------------------------------------------------------------------------------------


def device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def loaded(ref: ModelRef) -> Iterator[Any]:
    """A causal LM in eval mode (bf16 on CUDA as the paper's code, fp32 on CPU), freed on exit."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device_name()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(ref.path, revision=ref.revision, dtype=dtype)
    model = model.to(device).eval()
    try:
        yield model
    finally:
        del model
        if device == "cuda":
            torch.cuda.empty_cache()


def load_tokenizer(ref: ModelRef) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=ref.revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# -- PCA shift ---------------------------------------------------------------------------------


def run_pca(opts: dict[str, Any], entries: list[dict[str, Any]], base: ModelRef, tuned: ModelRef,
            emit: ShiftEmitter, progress: Progress, home: Path | None = None) -> dict[str, Any]:
    """Features of both models (one loaded at a time), then points and d per benchmark and group;
    nothing (no model loaded) when no benchmark is left to draw prompts from."""
    if not entries:
        return {"d": {}, "benchmarks": {}}
    texts = {e["name"]: pca_texts(e, int(opts.get("items", 100)), home) for e in entries}
    tokenizer = load_tokenizer(base)
    base_features = model_features(base, tokenizer, texts, opts, progress, "base")
    tuned_features = model_features(tuned, tokenizer, texts, opts, progress, "tuned")
    by_bench: dict[str, float] = {}
    by_group: dict[str, list[float]] = {}
    for entry in entries:
        name, group = entry["name"], group_of(entry)
        layers, base_arrays = base_features[name]
        shift = pca.pca_shift(base_arrays, tuned_features[name][1], layers)
        emit_points(emit, name, group, shift)
        by_bench[name] = shift.d
        by_group.setdefault(group, []).append(shift.d)
    groups = {g: sum(v) / len(v) for g, v in by_group.items()}
    for group, d in groups.items():
        emit("pca_shift", "d", d, group=group)
    return {"d": groups, "benchmarks": by_bench}


def pca_texts(entry: dict[str, Any], items: int, home: Path | None = None) -> list[str]:
    """The benchmark's first `items` prompts as raw text (its template, no chat template)."""
    bench = bench_of(entry, home)
    texts = [prompt_text(bench, item) for item in load_items(bench, entry.get("data"), items)]
    if len(texts) < pca.MIN_ITEMS:
        raise ValueError(f"pca_shift: benchmark {bench.name} has {len(texts)} item(s); "
                         f"PCA(2) needs at least {pca.MIN_ITEMS}")
    return texts


def model_features(ref: ModelRef, tokenizer: Any, texts: dict[str, list[str]], opts: dict[str, Any],
                   progress: Progress, label: str) -> dict[str, tuple[list[int], list[Any]]]:
    """{benchmark: (layers, per-layer features)} of one model, loaded for this pass only."""
    out = {}
    settings = {"max_tokens": int(opts.get("max_tokens", 128)), "pooling": opts.get("pooling", "paper"),
                "layers": opts.get("layers", "all"), "batch_size": PCA_BATCH}
    with loaded(ref) as model:
        for name, bench_texts in texts.items():
            out[name] = pca.hidden_features(model, tokenizer, bench_texts, **settings)
            progress.step(f"pca_shift {label} {name}")
    return out


def emit_points(emit: ShiftEmitter, bench: str, group: str, shift: pca.PcaShift) -> None:
    for point in shift.points:
        payload = {"base": point.base.tolist(), "tuned": point.tuned.tolist(),
                   "explained_variance": point.explained.tolist()}
        emit("pca_shift", "points", point.shift, benchmark=bench, group=group, layer=point.layer,
             payload=payload)
    emit("pca_shift", "d", shift.d, benchmark=bench, group=group)


# -- token shift -------------------------------------------------------------------------------


def run_token_shift(opts: dict[str, Any], entries: list[dict[str, Any]], base: ModelRef, tuned: ModelRef,
                    eval_dir: Path | None, emit: ShiftEmitter, progress: Progress) -> dict[str, Any]:
    """Re-score the tuned model's responses with both models; metrics per benchmark, then group."""
    tokenizer = load_tokenizer(tuned)
    check_same_vocabulary(tokenizer, load_tokenizer(base))
    responses = {e["name"]: bench_responses(eval_dir, e["name"], int(opts.get("items", 100)), tokenizer)
                 for e in entries}
    if not any(responses.values()):
        raise ValueError(f"token_shift: no responses to score in {eval_dir} (samples_from)")
    scores = score_all(opts, base, tuned, responses, tokenizer, progress)
    by_group: dict[str, list[tokens.TokenSummary]] = {}
    for entry in entries:
        summary = tokens.summarise(scores[entry["name"]])
        emit_tokens(emit, tokenizer, summary, benchmark=entry["name"], group=group_of(entry))
        by_group.setdefault(group_of(entry), []).append(summary)
    groups = {g: tokens.combine(s) for g, s in by_group.items()}
    for group, summary in groups.items():
        emit_tokens(emit, tokenizer, summary, benchmark=None, group=group)
    return {name: {g: s.metrics.get(name) for g, s in groups.items()}
            for name in ("kl", "logp_diff", "rank_shift", "tokens")}


def check_same_vocabulary(tuned: Any, base: Any) -> None:
    """Token shift compares distributions token by token: the two vocabularies must be one."""
    if tuned.get_vocab() != base.get_vocab():
        raise ValueError("token_shift: the base and tuned tokenizers differ; it needs one vocabulary")


def bench_responses(eval_dir: Path | None, bench: str, items: int, tokenizer: Any) -> list[tokens.Response]:
    """The first response (sample 0) to each of the first `items` items, prompt as the model saw it."""
    recorded = read_samples(eval_dir, bench) if eval_dir else []
    samples = [s for s in recorded if int(s.get("sample_idx", 0)) == 0]
    return [tokens.encode_response(tokenizer, str(s.get("prompt") or ""), str(s.get("completion") or ""))
            for s in samples[:items]]


def score_all(opts: dict[str, Any], base: ModelRef, tuned: ModelRef,
              responses: dict[str, list[tokens.Response]], tokenizer: Any,
              progress: Progress) -> dict[str, list[tokens.TokenScores]]:
    """{benchmark: per-response scores}: transformers (both models loaded) or, asked for, vLLM."""
    if opts.get("backend", "hf") == "vllm":
        return score_with_vllm(base, tuned, responses, progress)
    batch = int(opts.get("batch_size") or 8)
    out = {}
    with loaded(base) as base_model, loaded(tuned) as tuned_model:
        for name, bench in responses.items():
            out[name] = tokens.score_pair(base_model, tuned_model, bench, batch_size=batch,
                                          pad_id=tokenizer.pad_token_id or 0)
            progress.step(f"token_shift {name}")
    return out


def score_with_vllm(base: ModelRef, tuned: ModelRef, responses: dict[str, list[tokens.Response]],
                    progress: Progress) -> dict[str, list[tokens.TokenScores]]:
    """Every benchmark's responses in one vLLM pass per model (log p and ranks; no full KL)."""
    from engine.evaluation.backends import require_vllm

    require_vllm("token_shift.backend vllm")
    flat = [r for bench in responses.values() for r in bench]
    paired = tokens.from_vllm(flat, tokens.vllm_token_scores(base.path, flat, revision=base.revision,
                                                             **base.options),
                              tokens.vllm_token_scores(tuned.path, flat, revision=tuned.revision,
                                                       **tuned.options))
    out, start = {}, 0
    for name, bench in responses.items():
        out[name], start = paired[start : start + len(bench)], start + len(bench)
        progress.step(f"token_shift {name}")
    return out


def emit_tokens(emit: ShiftEmitter, tokenizer: Any, summary: tokens.TokenSummary, *, benchmark: str | None,
                group: str) -> None:
    for metric, value in summary.metrics.items():
        emit("token_shift", metric, value, benchmark=benchmark, group=group)
    if summary.metrics.get("tokens"):
        top = tokens.top_tokens(summary.shifted, lambda t: tokenizer.decode([t]))
        emit("token_shift", "top_tokens", len(top), benchmark=benchmark, group=group, payload=top)


# -- events ------------------------------------------------------------------------------------


class ShiftEmitter:
    """Writes `shift` events, each (analysis, benchmark, group, layer, metric) row once per run:
    rows an earlier attempt of this run already wrote are not written again."""

    def __init__(self, ctx: JobContext) -> None:
        self.events = ctx.events
        self.seen = recorded_rows(ctx.run_dir / EVENTS_FILE)

    def __call__(self, analysis: str, metric: str, value: float, *, benchmark: str | None = None,
                 group: str | None = None, layer: int | None = None, payload: Any = None) -> None:
        key = (analysis, benchmark, group, layer, metric)
        if key in self.seen:
            return
        self.seen.add(key)
        self.events.emit("shift", analysis=analysis, benchmark=benchmark, group=group, layer=layer,
                         metric=metric, value=value, payload=payload)


def recorded_rows(path: Path) -> set[tuple[Any, ...]]:
    if not path.is_file():
        return set()
    data = path.read_bytes()
    rows = set()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "shift":
            rows.add(tuple(event.get(k) for k in ("analysis", "benchmark", "group", "layer", "metric")))
    return rows


class Progress:
    """`progress` events over the run's steps (a model pass over a benchmark)."""

    def __init__(self, ctx: JobContext, total: int) -> None:
        self.events = ctx.events
        self.total = total
        self.done = 0

    def step(self, desc: str) -> None:
        self.done += 1
        self.events.progress(self.done, max(self.total, self.done), desc)
