"""Expansion of a validated experiment into runs with dependencies and content hashes.

An experiment becomes: a `build` run when the base is the built-in tiny lab; a `train` run per
tuned variant (after its source model); an `eval` run for the base and every variant (after the
run that makes its model); an `analyse` run per variant against the base (after both models and
the variant's evaluation, whose samples token shift re-scores). A run's id is its kind plus a
hash of its parameters, its dependencies' ids and the code version, so an identical run asked
for twice (or by two experiments) is one run, reused rather than repeated.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine import __version__
from engine.experiments.registry import BENCHMARKS, BUILTIN_MODELS
from engine.experiments.spec import DISTRIBUTED, NO_BASE, Experiment

#: Bumped when a job's outputs change meaning, so old results are not reused for new code.
JOB_VERSIONS = {"build": "1", "train": "1", "eval": "1", "analyse": "1", "probe": "1", "score": "1",
                "datagen": "1"}
#: GPUs a run of each kind asks for on a GPU box (CPU-only boxes run everything in CPU slots).
DEFAULT_GPUS = {"build": 0, "train": 1, "eval": 1, "analyse": 1, "probe": 0, "score": 0, "datagen": 1}


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def make_run(kind: str, name: str, experiment: str, params: dict[str, Any], deps: list[str],
             max_retries: int = 0, gpus: int | None = None) -> dict[str, Any]:
    """A planned run; its id hashes everything that determines its outputs. `gpus` overrides the
    kind's default (a multi-GPU training, a tensor- or data-parallel evaluation)."""
    digest = content_hash({"kind": kind, "params": params, "deps": sorted(deps),
                           "code": f"{__version__}/{JOB_VERSIONS.get(kind, '0')}"})
    return {"id": f"{kind}-{digest[:10]}", "kind": kind, "name": name, "experiment": experiment,
            "params": params, "deps": sorted(set(deps)), "max_retries": max_retries,
            "gpus_needed": DEFAULT_GPUS.get(kind, 0) if gpus is None else gpus}


class Planner:
    """Walks the experiment once, remembering how each model is produced; `home` is the workspace
    whose benchmarks/ folder a `{name:}` entry may name (TIX_HOME when None)."""

    def __init__(self, exp: Experiment, home: Path | None = None) -> None:
        self.exp = exp
        self.home = home
        self.data = exp.data
        self.runs: dict[str, dict[str, Any]] = {}
        self.models: dict[str, tuple[Any, list[str]]] = {}  # variant -> (model param, deps)
        self.slurm: dict[str, Any] = exp.data.get("slurm") or {}

    def with_slurm(self, params: dict[str, Any], train: dict[str, Any] | None = None) -> dict[str, Any]:
        """`params` plus the run's sbatch overrides: the file's top-level `slurm:`, then the
        training's own (later wins). Absent when there are none, so those run ids stay as they were."""
        overrides = {**self.slurm, **((train or {}).get("slurm") or {})}
        return {**params, "slurm": overrides} if overrides else params

    def add(self, run: dict[str, Any]) -> dict[str, Any]:
        self.runs.setdefault(run["id"], run)
        return run

    def plan(self) -> list[dict[str, Any]]:
        self.models["base"] = self.base_model()
        for name in variant_order(self.data["models"]):
            self.models[name] = self.variant_model(name, self.data["models"][name])
        evals = {name: self.eval_run(name) for name in self.models}
        for name in self.data["models"]:
            self.analyse_run(name, evals[name])
        return list(self.runs.values())

    def base_model(self) -> tuple[Any, list[str]]:
        base = self.data["base"]
        if base["model"] in BUILTIN_MODELS:
            params = {"model": base["model"], "seed": base.get("seed", 0), **(base.get("build") or {})} | (
                {"rebuild": True} if base.get("rebuild") else {})  # absent when false: same run ids as before
            run = self.add(make_run("build", "base", self.exp.name, self.with_slurm(params), []))
            return {"from_run": run["id"], "key": "model_path"}, [run["id"]]
        return self.external_model(base), []

    def external_model(self, section: dict[str, Any]) -> dict[str, Any]:
        ref = model_ref(section["model"], self.exp.path.parent)
        return {"name": ref, "revision": section.get("revision"), "signature": path_signature(ref)}

    def variant_model(self, name: str, variant: dict[str, Any]) -> tuple[Any, list[str]]:
        if variant.get("model"):
            return self.external_model(variant), []
        source, deps = self.models[variant.get("from") or "base"]
        train = variant["train"]
        data: Any = model_ref(train["data"], self.exp.path.parent)
        params = {"model": source, "method": train["method"], "data": data,
                  "data_signature": path_signature(data), "reward": train.get("reward"),
                  "args": train.get("args") or {}, "lora": train.get("lora")}
        if train.get("limit"):
            params["limit"] = train["limit"]
        gpus, nodes = int(train.get("gpus") or 1), train.get("nodes")
        if gpus * (nodes or 1) > 1:
            distributed = train.get("distributed") or "zero3"
            params.update(gpus=gpus, distributed=distributed if distributed in DISTRIBUTED
                          else model_ref(distributed, self.exp.path.parent))
        if nodes:  # given: the worker launches through srun, `gpus` per node (absent: same ids as before)
            params["nodes"] = int(nodes)
        train_deps = list(deps)
        if train.get("teacher"):
            generated = self.datagen_run(name, train, data, source, deps)
            params["data"] = {"from_run": generated["id"], "key": "data_path"}
            train_deps.append(generated["id"])
        retries = int(train.get("retries", 0))
        run = self.add(make_run("train", name, self.exp.name, self.with_slurm(params, train), train_deps,
                                retries, gpus=gpus))
        return {"from_run": run["id"], "key": "model_path"}, [run["id"]]

    def datagen_run(self, name: str, train: dict[str, Any], data: str, source: Any,
                    source_deps: list[str]) -> dict[str, Any]:
        """Rejection sampling: the teacher (or, on-policy, the source model itself) answers the
        training questions and the scorer keeps the correct answers as SFT data."""
        teacher = dict(train["teacher"])
        if teacher["model"] == "self":
            model, deps = source, source_deps
        else:
            model, deps = self.external_model(teacher), []
        params = {"teacher": model, "data": data, "data_signature": path_signature(data),
                  **{k: v for k, v in teacher.items() if k != "model" and v not in (None, {})}}
        return self.add(make_run("datagen", name, self.exp.name, self.with_slurm(params), deps,
                                 gpus=eval_gpus(params)))

    def eval_run(self, name: str) -> dict[str, Any]:
        model, deps = self.models[name]
        params = {"model": model, **self.data["eval"], **self.released_labels(name)}
        if params.get("benchmarks"):
            params["benchmarks"] = [self.local_benchmark(b) for b in params["benchmarks"]]
        return self.add(make_run("eval", name, self.exp.name, self.with_slurm(params), deps,
                                 gpus=eval_gpus(params)))

    def released_labels(self, name: str) -> dict[str, Any]:
        """A released model's base (when not the experiment's) and method label, which the
        `models` view reads from its eval run; nothing for others, so their run ids stay."""
        if name == "base" or self.data["models"][name].get("train"):
            return {}
        against = self.compared_with(name)
        labels = {} if against == "base" else {"base_model": against or NO_BASE}
        method = self.data["models"][name].get("method")
        return {**labels, **({"method": method} if method else {})}

    def compared_with(self, name: str) -> str | None:
        """The model a variant is compared with: its released base, else the experiment's."""
        variant = self.data["models"][name]
        parent = variant.get("from") or "base"
        if variant.get("train") or parent == "base":
            return "base"
        return None if parent == NO_BASE else parent

    def local_benchmark(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A benchmark entry as its run needs it: local paths absolute and fingerprinted (its data,
        benchmark file, scorer plugin), an lm-eval task's files hashed with lm-eval's version, so
        an edited file is a new run; keys absent where unused, so other run ids stay as they were.
        A `{name:}` entry naming a workspace benchmark file is fingerprinted like a `{file:}` one;
        a registered name gets no key (registered benchmarks change with the code version)."""
        folder = self.exp.path.parent
        entry = {k: v for k, v in entry.items() if not k.startswith("_")}
        if entry.get("data"):
            data = model_ref(entry["data"], folder)
            entry.update(data=data, data_signature=path_signature(data))
        if entry.get("file"):
            entry["file"] = str(local_path(entry["file"], folder))
            entry["file_signature"] = benchmark_file_signature(Path(entry["file"]))
        elif entry.get("name") and (path := workspace_benchmark(entry["name"], self.home)) is not None:
            entry["file_signature"] = benchmark_file_signature(path)
        if entry.get("scorer"):
            entry.update(scorer_signature(entry["scorer"], folder))
        if entry.get("lm_eval"):
            entry.update(lm_eval_signature(entry, folder))
        return entry

    def analyse_run(self, name: str, evaluation: dict[str, Any]) -> None:
        analysis = self.data.get("analysis") or {}
        against = self.compared_with(name)
        if not analysis or against is None:
            return
        base, base_deps = self.models[against]
        model, deps = self.models[name]
        params = {"base_model": base, "model": model, "samples_from": evaluation["id"], **analysis}
        self.add(make_run("analyse", name, self.exp.name, self.with_slurm(params),
                          [*base_deps, *deps, evaluation["id"]]))


def eval_gpus(params: dict[str, Any]) -> int:
    """GPUs an evaluation holds: vLLM's tensor parallel size times its data-parallel copies."""
    options = params.get("backend_options") or {}
    sizes = [options.get("tensor_parallel_size"), options.get("data_parallel_size")]
    return max(1, int(sizes[0] or 1)) * max(1, int(sizes[1] or 1))


def variant_order(models: dict[str, dict[str, Any]]) -> list[str]:
    """Variants with every `from` source before the variants built on it (validation forbids cycles)."""
    order: list[str] = []

    def visit(name: str) -> None:
        parent = models[name].get("from") or "base"
        if parent not in ("base", NO_BASE) and parent not in order:
            visit(parent)
        if name not in order:
            order.append(name)

    for name in models:
        visit(name)
    return order


def model_ref(ref: str, folder: Path) -> str:
    """Local paths become absolute (relative to the experiment file); other refs stay as written."""
    if ref.startswith(("/", "./", "../", "~")) or (folder / ref).exists():
        return str((folder / Path(ref).expanduser()).resolve())
    return ref


def local_path(ref: str, folder: Path) -> Path:
    """`ref` relative to `folder` (the experiment file's), made absolute."""
    path = Path(ref).expanduser()
    return (path if path.is_absolute() else folder / path).resolve()


def workspace_benchmark(name: str, home: Path | None) -> Path | None:
    """The file in `home`/benchmarks/ (TIX_HOME's when None) that a `{name:}` entry runs, as the
    worker's `find_benchmark` picks it: None for a registered name, which comes first."""
    from engine.evaluation.benchfile import home_benchmarks
    from engine.workspace import default_home

    if name in BENCHMARKS:
        return None
    return home_benchmarks(default_home() if home is None else home).get(name)


def benchmark_file_signature(path: Path) -> str:
    """The benchmark file's bytes, its local data's signature and its file plugin's source hash
    (`scorer:` relative to the benchmark file): editing any of them is a new run. The plugin's
    hash is left out when there is none, so the ids of files without one stay as they were."""
    import yaml

    text = path.read_text()
    top = yaml.safe_load(text) or {}
    data, scorer = top.get("data"), top.get("scorer")
    data_sig = path_signature(str(local_path(data, path.parent))) if isinstance(data, str) else None
    plugin = scorer_signature(scorer, path.parent) if isinstance(scorer, str) else {}
    plugin_sig = plugin.get("scorer_signature")
    return content_hash([text, data_sig, *([plugin_sig] if plugin_sig else [])])[:16]


def scorer_signature(scorer: str, folder: Path) -> dict[str, Any]:
    """A file plugin made absolute, with its source's hash (`scorer_signature`)."""
    from engine.evaluation.scorers import plugin

    if not plugin.is_plugin(scorer):
        return {}
    target, function = plugin.split(scorer)
    if not plugin.is_file_target(target):
        return {}
    name = f"{local_path(target, folder)}:{function}"
    return {"scorer": name, "scorer_signature": plugin.file_hash(name)}


def lm_eval_signature(entry: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`include_path` absolute; the task's YAML, Python and data files hashed with lm-eval's version."""
    from engine.evaluation import lmeval_index

    include = str(local_path(entry["include_path"], folder)) if entry.get("include_path") else None
    extra = {"include_path": include} if include else {}
    return {**extra, "lm_eval_version": lmeval_index.lm_eval_version(),
            "task_hash": lmeval_index.task_hash(entry["lm_eval"], include)}


def path_signature(ref: str) -> str | None:
    """Size and mtime of a local file or folder, so edited local data or weights are not reused."""
    path = Path(ref)
    if not path.is_absolute() or not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return content_hash([(str(p.relative_to(path.parent)), p.stat().st_size, p.stat().st_mtime_ns)
                         for p in files[:10_000]])[:16]


def plan_experiment(exp: Experiment, only: set[str] | None = None, models: set[str] | None = None,
                    home: Path | None = None) -> list[dict[str, Any]]:
    """The experiment's runs; `only` keeps runs of those kinds, `models` runs of those variants
    ("base" included), each with everything they depend on; `home` the workspace (TIX_HOME when
    None) whose benchmark files `{name:}` entries may name."""
    runs = Planner(exp, home).plan()
    if not only and not models:
        return runs
    by_id = {r["id"]: r for r in runs}
    keep: set[str] = set()
    stack = [r["id"] for r in runs if (not only or r["kind"] in only) and (not models or r["name"] in models)]
    while stack:
        run_id = stack.pop()
        if run_id not in keep:
            keep.add(run_id)
            stack.extend(by_id[run_id]["deps"])
    return [r for r in runs if r["id"] in keep]
