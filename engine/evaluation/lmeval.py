"""lm-eval tasks in a tix evaluation: lm-eval builds and scores, tix generates.

An `eval.benchmarks` entry `{lm_eval: TASK, include_path: DIR, num_fewshot: K, chat: true}` runs
the installed lm-evaluation-harness's own `simple_evaluate` with a model object of tix's
(`TixLM`): lm-eval's `TaskManager` builds the task (dataset, few-shot examples, `doc_to_text`,
`doc_to_choice`, description, delimiters, the chat rendering of `--apply_chat_template`), sends
its requests to `TixLM`, then applies the task's filters, `process_results` and aggregations. So
every number is the one `lm_eval` prints for the same outputs; tix only answers the requests,
through its own backends (HF or vLLM, the generation cache, data-parallel engines) and records
each doc as a sample and each metric as a score.

Requests are answered in chunks; each answered chunk is appended to the run's
`lm_eval_responses.jsonl` before the next, so a killed run resumed with `tix resume` asks the
backend only for what is missing (item granularity), and the final scoring sees exactly the
answers an uninterrupted run would.

Heavy (lm-eval imports `datasets`): imported by the eval worker only; the light side (task
index, checks, hashes) is engine.evaluation.lmeval_index.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from engine.evaluation.backends import Generation, SamplingParams
from engine.evaluation.lmeval_index import LmEvalError, lm_eval_version
from engine.evaluation.samples import stderr
from engine.evaluation.scorers.base import NO_ANSWER, TRUNCATED
from engine.events import JsonlWriter

JOURNAL = "lm_eval_responses.jsonl"
CHUNK = 64
SCORER = "lm_eval"
#: lm-eval's defaults for a generate_until request that does not say (HFLM's).
DEFAULT_MAX_GEN_TOKS = 256
#: A regex filter's answer when nothing matched.
INVALID = "[invalid]"

Generate = Callable[[list[str], SamplingParams], list[list[Generation]]]
Loglik = Callable[[list[tuple[str, str]]], list[tuple[float, bool]]]
Progress = Callable[[int, int], None]


@dataclass
class TaskResult:
    """One lm-eval task as tix stores it: samples (one per doc) and metrics (lm-eval's names)."""

    name: str
    group: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    n: int = 0
    is_group: bool = False


class Journal:
    """Answered requests of this run, by a hash of (request type, arguments): what resume reuses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: dict[str, Any] = {}
        if path.exists():
            data = path.read_bytes()
            for line in data[: data.rfind(b"\n") + 1].splitlines():
                try:
                    entry = json.loads(line)
                    self.known[entry["key"]] = entry["resp"]
                except (ValueError, KeyError, TypeError):
                    continue
        self.writer = JsonlWriter(path)

    @staticmethod
    def key(kind: str, args: Any) -> str:
        return hashlib.sha256(json.dumps([kind, args], sort_keys=True, default=str).encode()).hexdigest()

    def add(self, entries: dict[str, Any]) -> None:
        for key, resp in entries.items():
            self.known[key] = resp
            self.writer.write({"key": key, "resp": resp})


class TixLM(LM):
    """lm-eval's model interface, answered by tix's backend.

    `apply_chat_template` renders exactly as lm-eval's HF model does (`continue_final_message`
    for a prefilled answer, `enable_thinking` passed as tix's generation setting); raw contexts get
    the tokenizer's BOS text when its encoder would add one (as lm-eval's HF model tokenises).
    """

    def __init__(self, tokenizer: Any, generate: Generate, loglikelihood: Loglik, journal: Journal,
                 sampling: dict[str, Any], progress: Progress, enable_thinking: bool | None) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self._generate = generate
        self._loglikelihood = loglikelihood
        self.journal = journal
        self.overrides = sampling
        self.progress = progress
        self.enable_thinking = enable_thinking
        self.generations: dict[str, list[Generation]] = {}  # context -> its generations, for samples
        self.bos = _bos_text(tokenizer)
        self.done = 0
        self.total = 0

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "tix")).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.tokenizer, "chat_template", None) if chat_template else None

    def apply_chat_template(self, chat_history: list[dict[str, str]],
                            add_generation_prompt: bool = True) -> str:
        extra = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt, **extra)

    def with_bos(self, context: str) -> str:
        return context if not self.bos or context.startswith(self.bos) else self.bos + context

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Identical (context, settings) requests (lm-eval's `repeats`) become one prompt with n
        samples; answered chunk by chunk, journal first."""
        wanted = [(req.args[0], self.sampling(req.args[1])) for req in requests]
        counts: dict[tuple[str, SamplingParams], int] = {}
        for pair in wanted:
            counts[pair] = counts.get(pair, 0) + 1
        keyed = {pair: Journal.key("generate_until", [pair[0], pair[1].key(), n])
                 for pair, n in counts.items()}
        self.total += len(keyed)
        answers = self._answer_generations(counts, keyed)
        taken: dict[tuple[str, SamplingParams], int] = {}
        out = []
        for pair in wanted:
            k = taken[pair] = taken.get(pair, -1) + 1
            out.append(answers[pair][k].text)
        return out

    def _answer_generations(self, counts: dict[tuple[str, SamplingParams], int],
                            keyed: dict[tuple[str, SamplingParams], str]) -> dict[Any, list[Generation]]:
        answers: dict[Any, list[Generation]] = {}
        todo = []
        for pair, key in keyed.items():
            if key in self.journal.known:
                answers[pair] = [Generation(**g) for g in self.journal.known[key]]
            else:
                todo.append(pair)
        self.done += len(answers)
        by_params: dict[SamplingParams, list[str]] = {}
        for context, params in todo:
            by_params.setdefault(params, []).append(context)
        for params, contexts in by_params.items():
            for start in range(0, len(contexts), CHUNK):
                chunk = contexts[start : start + CHUNK]
                self._generate_chunk(chunk, params, counts, keyed, answers)
        for (context, _), gens in answers.items():
            self.generations[context] = gens
        return answers

    def _generate_chunk(self, contexts: list[str], params: SamplingParams, counts: dict[Any, int],
                        keyed: dict[Any, str], answers: dict[Any, list[Generation]]) -> None:
        n = max(counts[(c, params)] for c in contexts)
        made = self._generate([self.with_bos(c) for c in contexts], _with_n(params, n))
        fresh = {}
        for context, gens in zip(contexts, made, strict=True):
            answers[(context, params)] = gens
            fresh[keyed[(context, params)]] = [g.to_json() for g in gens]
        self.journal.add(fresh)
        self.done += len(contexts)
        self.progress(self.done, self.total)

    def sampling(self, kwargs: dict[str, Any]) -> SamplingParams:
        """A request's generation settings (lm-eval's names), then the experiment's overrides."""
        gen = dict(kwargs or {})
        until = gen.get("until") or []
        temperature = float(gen.get("temperature") or 0.0) if gen.get("do_sample") else 0.0
        settings = {"max_new_tokens": int(gen.get("max_gen_toks") or DEFAULT_MAX_GEN_TOKS),
                    "temperature": temperature, "top_p": float(gen.get("top_p") or 1.0), "seed": 0,
                    "stop": tuple([until] if isinstance(until, str) else until)}
        settings.update(self.overrides)
        return SamplingParams(int(settings["max_new_tokens"]), float(settings["temperature"]),
                              float(settings["top_p"]), 1, int(settings["seed"]), tuple(settings["stop"]))

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        pairs = [_split_space(*req.args) for req in requests]
        keys = [Journal.key("loglikelihood", list(p)) for p in pairs]
        todo = list(dict.fromkeys(i for i, k in enumerate(keys) if k not in self.journal.known))
        self.total += len(set(keys))
        self.done += len(set(keys)) - len({keys[i] for i in todo})
        for start in range(0, len(todo), CHUNK * 4):
            chunk = todo[start : start + CHUNK * 4]
            scored = self._loglikelihood([(self.with_bos(pairs[i][0]), pairs[i][1]) for i in chunk])
            self.journal.add({keys[i]: [float(ll), bool(g)]
                              for i, (ll, g) in zip(chunk, scored, strict=True)})
            self.done += len(chunk)
            self.progress(self.done, self.total)
        return [(float(self.journal.known[k][0]), bool(self.journal.known[k][1])) for k in keys]

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        raise LmEvalError("perplexity tasks (loglikelihood_rolling) are not evaluated by tix; "
                          "run them with lm_eval directly")


def _with_n(params: SamplingParams, n: int) -> SamplingParams:
    return dataclasses.replace(params, n=n)


def _split_space(context: str, continuation: str) -> tuple[str, str]:
    """Trailing spaces of the context belong to the continuation (lm-eval's word-boundary rule)."""
    spaces = len(context) - len(context.rstrip())
    if spaces and context.strip():
        return context[:-spaces], context[-spaces:] + continuation
    return context, continuation


def _bos_text(tokenizer: Any) -> str:
    """The BOS token's text when the tokenizer's encoder adds it by default, else ''."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return ""
    ids = tokenizer("a")["input_ids"]
    return str(tokenizer.bos_token) if ids and ids[0] == bos_id else ""


# ── running a task and reading its results ────────────────────────────────────────────────────


def generation_overrides(generation: dict[str, Any]) -> dict[str, Any]:
    """The experiment's `generation:` keys that override a task's own settings."""
    keys = ("max_new_tokens", "temperature", "top_p", "seed", "stop")
    return {k: (tuple(v) if k == "stop" else v) for k, v in generation.items() if k in keys and v is not None}


def evaluate(entry: dict[str, Any], lm: TixLM) -> dict[str, Any]:
    """lm-eval's `simple_evaluate` on one entry with tix's model object (samples logged)."""
    from lm_eval import evaluator

    _quiet()
    return evaluator.simple_evaluate(
        model=lm, tasks=[entry["lm_eval"]], task_manager=task_manager(entry),
        num_fewshot=entry.get("num_fewshot"), limit=entry.get("limit"),
        apply_chat_template=bool(entry.get("chat", True)),
        fewshot_as_multiturn=bool(entry.get("fewshot_as_multiturn", True)) and bool(entry.get("chat", True)),
        log_samples=True, bootstrap_iters=int(entry.get("bootstrap_iters", 100000)))


@functools.cache
def _task_manager(include_path: str | None) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def task_manager(entry: dict[str, Any]) -> Any:
    """lm-eval's TaskManager for the entry's `include_path`, one per folder and process (indexing
    lm-eval's ~15,000 YAMLs takes seconds)."""
    return _task_manager(entry.get("include_path") or None)


def _quiet() -> None:
    """lm-eval logs every request batch at INFO; the run's log keeps warnings only."""
    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.WARNING)


def task_results(results: dict[str, Any], entry: dict[str, Any], lm: TixLM) -> list[TaskResult]:
    """Every subtask as a tix benchmark (samples + metrics), then each lm-eval group's aggregate."""
    group = entry.get("group") or "other"
    out = []
    for name, logged in results.get("samples", {}).items():
        result = TaskResult(name, group, n=int(results.get("n-samples", {}).get(name, {}).get("effective")
                                               or len({s["doc_id"] for s in logged})))
        result.metrics = numeric_metrics(results["results"].get(name, {}))
        result.samples = doc_samples(name, group, logged, lm)
        out.append(result)
    for name, values in (results.get("groups") or {}).items():
        out.append(TaskResult(name, group, metrics=numeric_metrics(values), is_group=True,
                              n=sum(r.n for r in out if r.name in results["group_subtasks"].get(name, []))))
    return out


def numeric_metrics(values: dict[str, Any]) -> dict[str, float]:
    """lm-eval's metric keys (`exact_match,strict-match`, `..._stderr,...`) with number values."""
    return {k: float(v) for k, v in values.items()
            if "," in k and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def doc_samples(task: str, group: str, logged: list[dict[str, Any]], lm: TixLM) -> list[dict[str, Any]]:
    """One tix sample per doc: its first filter's answer and first metric; every filter's metrics."""
    by_doc: dict[Any, list[dict[str, Any]]] = {}
    for example in logged:
        by_doc.setdefault(example["doc_id"], []).append(example)
    return [doc_sample(task, group, examples, lm) for examples in by_doc.values()]


def doc_sample(task: str, group: str, examples: list[dict[str, Any]], lm: TixLM) -> dict[str, Any]:
    first = examples[0]
    metric = first["metrics"][0]
    metrics = {f"{m},{ex['filter']}": float(ex[m]) for ex in examples for m in ex["metrics"]
               if isinstance(ex[m], int | float)}
    prompt, completion, gen, generated = response_of(first, lm)
    extracted = _text(first["filtered_resps"][0]) if generated and first["filtered_resps"] else completion
    flags = ([TRUNCATED] if gen is not None and gen.finish_reason == "length" else []) + (
        [NO_ANSWER] if extracted == INVALID else [])
    return {"benchmark": task, "group": group, "item_id": str(first["doc_id"]), "sample_idx": 0,
            "prompt": prompt, "completion": completion, "extracted": extracted,
            "verdict": float(first[metric]), "tokens": gen.tokens if gen else None,
            "finish_reason": gen.finish_reason if gen else "stop", "flags": flags, "metrics": metrics,
            "detail": {"metric": f"{metric},{first['filter']}", "resps": _plain(first["resps"])},
            "scorer": SCORER, "scorer_version": lm_eval_version(), "gold": _text(first["target"])}


def response_of(example: dict[str, Any], lm: TixLM) -> tuple[str, str, Generation | None, bool]:
    """(prompt, completion, generation, generated?): a generated answer, or the likeliest choice."""
    args = example["arguments"]
    context = str(args[0][0])
    if len(args[0]) > 1 and isinstance(args[0][1], dict):  # generate_until: (context, gen kwargs)
        gens = lm.generations.get(context) or []
        text = _text(example["resps"][0][0]) if example["resps"] and example["resps"][0] else ""
        return context, text, gens[0] if gens else None, True
    lls = [float(r[0][0]) for r in example["resps"]]
    best = max(range(len(lls)), key=lls.__getitem__) if lls else 0
    return context, str(args[best][1]).strip() if args else "", None, False


def _text(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def accuracy_of(result: TaskResult) -> float | None:
    """The benchmark's `accuracy` (percent): the task's first metric after its first filter,
    times 100 when it is a [0, 1] metric (every per-doc value in [0, 1])."""
    if not result.samples:
        return None
    first = result.samples[0]["detail"]["metric"]
    if first not in result.metrics:
        return None
    unit = all(0.0 <= s["verdict"] <= 1.0 for s in result.samples)
    return result.metrics[first] * (100.0 if unit else 1.0)


def item_stderr(result: TaskResult) -> float:
    """Standard error of the per-doc first metric (clustered by item), in accuracy's unit."""
    values = [float(s["verdict"]) for s in result.samples]
    unit = all(0.0 <= v <= 1.0 for v in values)
    return stderr(values) * (100.0 if unit else 1.0)


@contextlib.contextmanager
def working_dir(include_path: str | None) -> Iterator[None]:
    """Run lm-eval from the task folder, so a task's relative `data_files` are read from there."""
    if not include_path:
        yield
        return
    with contextlib.chdir(include_path):
        yield


def failure_line(entry: dict[str, Any], exc: BaseException) -> str:
    """One line for an lm-eval entry that could not be built or run: the task, its data set when
    that is what failed, and how to provide it offline."""
    name = entry["lm_eval"]
    message = " ".join(str(exc).split())[:300]
    if isinstance(exc, LmEvalError):
        return f"benchmark {name}: {message}"
    dataset = dataset_of(entry)
    if dataset and _is_data_error(exc):
        return (f"benchmark {name}: lm-eval cannot load dataset '{dataset}' "
                f"({type(exc).__name__}: {message}); offline, give the task local data "
                "(dataset_path: json with dataset_kwargs.data_files) or fill the Hugging Face datasets "
                "cache on a box with internet and set HF_DATASETS_OFFLINE=1")
    return f"benchmark {name}: lm-eval failed ({type(exc).__name__}: {message})"


def _is_data_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"ConnectionError", "DatasetNotFoundError", "FileNotFoundError",
                         "OfflineModeIsEnabled", "LocalEntryNotFoundError", "HfHubHTTPError",
                         "DataFilesNotFoundError", "EmptyDatasetError", "MaxRetryError",
                         "NameResolutionError"})


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def dataset_of(entry: dict[str, Any]) -> str | None:
    """The `dataset_path` of the entry's (first) task, from its YAML."""
    from engine.evaluation import lmeval_index

    try:
        found = lmeval_index.index(entry.get("include_path"))
        info = lmeval_index.resolve(entry["lm_eval"], entry.get("include_path"))
        leaf = next(iter(lmeval_index.leaves(info, found)), None)
        return lmeval_index.dataset_path(leaf) if leaf else None
    except LmEvalError:
        return None
