"""The `eval` job: generate, score and record every sample of every benchmark, resumably.

Run it as any job: `python -m engine.jobs.worker RUN_DIR` with `kind: eval` in `spec.yaml`; the
daemon does that for each model of an experiment (`tix run`). Parameters: `model` (a local
folder or hub id, or {name, revision}), `suite` or `benchmarks` ([{name, group?, data?,
limit?, scorer?}]), `limit`, `generation` (overrides of each benchmark's defaults), `backend`
(auto | hf | vllm) and `backend_options`.

The story, per benchmark: load the items; render each prompt (chat template with
`enable_thinking`, or raw); skip the (item, sample) pairs already in `samples.jsonl` (a resumed
run); take what the generation cache already has; generate the rest in chunks, caching them;
strip the think block where the benchmark asks; score; append one line per sample. At the end
the scores are computed from `samples.jsonl` itself, so a resumed run ends with exactly the
scores an uninterrupted one would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.evaluation.backends import Backend, Generation, ModelRef, SamplingParams, load_backend
from engine.evaluation.backends.cache import GenerationCache, cache_key, model_identity
from engine.evaluation.benchfile import find_benchmark, load_benchmark_file
from engine.evaluation.benchmarks import BenchmarkError, load_items, prompt_text, suite_entries
from engine.evaluation.samples import (
    Task,
    add_subset,
    group_means,
    health_counts,
    read_samples,
    sample_record,
    score_one,
    summarise,
)
from engine.evaluation.scorers import Verdict, get_scorer
from engine.jobs import JobContext

VERSION = "1"
CHUNK = 64


def run(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    ref = model_ref(params["model"], params.get("backend_options") or {})
    entries = eval_entries(params)
    lm_entries = [e for e in entries if e.get("lm_eval")]
    generation, limit = generation_of(params), params.get("limit")
    tasks = [make_task(e, generation, limit, ctx.home) for e in entries if not e.get("lm_eval")]
    ctx.events.log(f"evaluating {ref.path} on {len(entries)} benchmark(s)")
    backend = load_backend(ref, params.get("backend", "auto"))
    cache = GenerationCache(ctx.home / "cache" / "generations.sqlite")
    evaluator = Evaluator(ctx, backend, cache, model_identity(ref.path, ref.revision))
    evaluator.total = sum(len(t.items) for t in tasks)
    for task in tasks:
        evaluator.evaluate(task)
        evaluator.done_before += len(task.items)
    results = {t.bench.name: summarise(t, read_samples(ctx.run_dir, t.bench.name)) for t in tasks}
    failures = []
    for entry in lm_entries:
        failures += evaluate_lm_eval(ctx, evaluator, entry, results)
    backend.close()
    for name, result in results.items():
        emit_scores(ctx, name, result)
    errors = {name: r["errors"] for name, r in results.items() if r.get("errors")}
    if errors:
        ctx.events.log("scorer errors (items scored 0, messages in their samples): "
                       + ", ".join(f"{name} {count}" for name, count in errors.items()))
    if failures:
        raise BenchmarkError("; ".join(failures))
    return {"model": ref.path, "backend": backend.name, "scores": results, "groups": group_means(results),
            "generated": evaluator.generated, "from_cache": evaluator.from_cache}


def eval_entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's benchmark entries: its explicit list, or its suite's."""
    if params.get("benchmarks"):
        return [dict(e) for e in params["benchmarks"]]
    return suite_entries(params.get("suite") or "lab", params.get("limit"))


def generation_of(params: dict[str, Any]) -> dict[str, Any]:
    """The experiment's generation overrides that were set."""
    return {k: v for k, v in (params.get("generation") or {}).items() if v is not None}


def evaluate_lm_eval(ctx: JobContext, evaluator: Evaluator, entry: dict[str, Any],
                     results: dict[str, dict[str, Any]]) -> list[str]:
    """One lm-eval entry: lm-eval builds and scores, tix answers; its tasks' samples are recorded
    once (a resumed run skips those already in samples.jsonl). A task that cannot be built (its
    data set is not to be had offline) is one line returned, and the other entries go on."""
    from engine.evaluation import lmeval

    generation = generation_of(ctx.params)
    lm = lmeval.TixLM(evaluator.backend.tokenizer, evaluator.generate, evaluator.backend.loglikelihood_greedy,
                      lmeval.Journal(ctx.run_dir / lmeval.JOURNAL), lmeval.generation_overrides(generation),
                      lambda done, total: ctx.events.progress(done, total, entry["lm_eval"]),
                      bool(generation.get("enable_thinking", False)))
    try:
        with lmeval.working_dir(entry.get("include_path")):
            output = lmeval.evaluate(entry, lm)
    except Exception as exc:  # noqa: BLE001 - lm-eval's loaders raise anything; one line per benchmark
        return [lmeval.failure_line(entry, exc)]
    for task in lmeval.task_results(output, entry, lm):
        results[task.name] = record_lm_eval(ctx, task)
    return []


def record_lm_eval(ctx: JobContext, task: Any) -> dict[str, Any]:
    """Write a task's samples not yet recorded; its summary as `summarise` makes one."""
    from engine.evaluation import lmeval

    done = {(str(s["item_id"]), int(s["sample_idx"])) for s in read_samples(ctx.run_dir, task.name)}
    for sample in task.samples:
        if (sample["item_id"], sample["sample_idx"]) not in done:
            ctx.samples.write(sample)
    accuracy = lmeval.accuracy_of(task)
    metrics = {**task.metrics, **({"accuracy": accuracy} if accuracy is not None else {})}
    return {"group": task.group, "scorer": lmeval.SCORER, "n": task.n, "samples": len(task.samples),
            "metrics": metrics, "stderr": lmeval.item_stderr(task) if task.samples else None,
            "health": health_counts(task.samples), "metric_items": {}}


def model_ref(model: Any, options: dict[str, Any]) -> ModelRef:
    if isinstance(model, dict):
        return ModelRef(str(model["name"]), model.get("revision"), options)
    if not model:
        raise ValueError("eval needs a model")
    return ModelRef(str(model), None, options)


def plan_tasks(params: dict[str, Any], home: Path | None = None) -> list[Task]:
    """Benchmarks with their items, scorer, group and sampling, from the run's parameters."""
    return [make_task(e, generation_of(params), params.get("limit"), home) for e in eval_entries(params)]


def make_task(entry: dict[str, Any], generation: dict[str, Any], limit: int | None,
              home: Path | None = None) -> Task:
    """A registered benchmark, one in `home`/benchmarks (the workspace's; TIX_HOME when None),
    or a benchmark file (`file:`)."""
    bench = load_benchmark_file(entry["file"]) if entry.get("file") else find_benchmark(entry["name"], home)
    items = load_items(bench, entry.get("data"), entry.get("limit") or limit)
    gen = {"max_new_tokens": 256, "temperature": 0.0, "top_p": 1.0, "n": 1, "seed": 0,
           **bench.generation, **generation}
    sampling = SamplingParams(int(gen["max_new_tokens"]), float(gen["temperature"]), float(gen["top_p"]),
                              int(gen["n"]), int(gen["seed"]), tuple(gen.get("stop") or ()))
    return Task(bench, entry.get("group") or bench.group, entry.get("scorer") or bench.scorer, items,
                sampling, bool(gen.get("enable_thinking", False)))


class Evaluator:
    """Generates and scores the missing samples of each task, appending them to samples.jsonl."""

    def __init__(self, ctx: JobContext, backend: Backend, cache: GenerationCache, model_id: str) -> None:
        self.ctx = ctx
        self.backend = backend
        self.cache = cache
        self.model_id = model_id
        self.generated = 0  # prompts sent to the backend
        self.from_cache = 0  # prompts the generation cache answered
        self.total = 0  # items over all benchmarks, for run-level progress
        self.done_before = 0  # items of the benchmarks already finished

    def evaluate(self, task: Task) -> None:
        done = {(s["item_id"], s["sample_idx"]) for s in read_samples(self.ctx.run_dir, task.bench.name)}
        todo = [it for it in task.items
                if any((it["id"], k) not in done for k in range(task.sampling.n))]
        self.ctx.events.log(f"{task.bench.name}: {len(task.items) - len(todo)} of {len(task.items)} "
                            "items already recorded")
        size = int(getattr(self.backend, "chunk", CHUNK))
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            if task.bench.method == "loglikelihood":
                self.score_choices(task, chunk)
            else:
                self.score_generations(task, chunk, done)
            finished = self.done_before + len(task.items) - len(todo) + start + len(chunk)
            self.ctx.events.progress(finished, max(self.total, finished), task.bench.name)

    def score_generations(self, task: Task, chunk: list[dict[str, Any]], done: set[tuple[str, int]]) -> None:
        prompts = [self.render(task, item) for item in chunk]
        generations = self.generate(prompts, task.sampling)
        scorer = get_scorer(task.scorer)
        for item, prompt, gens in zip(chunk, prompts, generations, strict=True):
            for k, gen in enumerate(gens):
                if (item["id"], k) not in done:
                    self.write(task, item, k, prompt, gen, score_one(scorer, task.bench, gen, item))

    def render(self, task: Task, item: dict[str, Any]) -> str:
        question = prompt_text(task.bench, item)
        return self.backend.render(question, chat=task.bench.chat, enable_thinking=task.enable_thinking,
                                   system=item.get("system"))

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[list[Generation]]:
        """Cached generations where the cache has them; the rest generated and cached."""
        keys = [cache_key(self.model_id, p, sampling, self.backend.cache_tag) for p in prompts]
        found = self.cache.get_many(keys)
        missing = list(dict.fromkeys(p for p, k in zip(prompts, keys, strict=True) if k not in found))
        self.generated += len(missing)
        self.from_cache += len(prompts) - len(missing)
        if missing:
            made = self.backend.generate(missing, sampling)
            tag = self.backend.cache_tag
            fresh = {cache_key(self.model_id, p, sampling, tag): g
                     for p, g in zip(missing, made, strict=True)}
            self.cache.put_many(fresh)
            found.update(fresh)
        return [found[k] for k in keys]

    def score_choices(self, task: Task, chunk: list[dict[str, Any]]) -> None:
        scorer = get_scorer(task.scorer)
        prompts = [self.render(task, item) for item in chunk]
        pairs = [(p, " " + str(c)) for p, item in zip(prompts, chunk, strict=True) for c in item["choices"]]
        scores = iter(self.backend.loglikelihood(pairs))
        for item, prompt in zip(chunk, prompts, strict=True):
            lls = [next(scores) for _ in item["choices"]]
            best = str(item["choices"][max(range(len(lls)), key=lls.__getitem__)])
            verdict = add_subset(scorer(best, item), item)
            verdict.detail = {"loglikelihoods": lls}
            self.write(task, item, 0, prompt, Generation(best, 0, "stop"), verdict)

    def write(self, task: Task, item: dict[str, Any], k: int, prompt: str, gen: Generation,
              verdict: Verdict) -> None:
        self.ctx.samples.write(sample_record(task, item, k, prompt, gen, verdict))


def emit_scores(ctx: JobContext, name: str, result: dict[str, Any]) -> None:
    """One `score` event per metric (percent), labelled with the run's model (variant) name; each
    with the items it is over (a part's own count for `accuracy_<subset>`, else all of them)."""
    model = ctx.params.get("label") or ctx.name
    counts = result.get("metric_items") or {}
    for metric, value in result["metrics"].items():
        ctx.events.score(name, result["group"], metric, value, counts.get(metric, result["n"]), model)
    if result.get("stderr") is not None:
        ctx.events.score(name, result["group"], "accuracy_stderr", result["stderr"], result["n"], model)


