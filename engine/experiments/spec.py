"""Loading and strict validation of experiment YAML files.

An experiment file is the one thing a researcher writes by hand, and a mistake in it should
cost seconds, not a failed GPU job an hour later. So validation is strict (unknown keys, wrong
types and missing models are errors), reports every problem at once, and says where each one
is as `FILE:LINE: KEY.PATH: MESSAGE (did you mean 'x'?)`, the format editors jump to.

The generic machinery (values built from YAML nodes with the line of every key and value,
strict sections, did-you-mean hints, SpecError) is engine.experiments.checker's, shared with
benchmark files; this module holds the experiment schema and re-exports SpecError and
SpecErrors. Training arguments are checked against the installed trl's config
classes by `engine.experiments.trainargs`, which reads trl's source instead of importing it, so this
module stays free of torch, transformers and trl.

    exp = load_experiment("experiments/tiny-lab.yaml")   # raises SpecErrors
    exp.data["eval"]["generation"]["temperature"]        # defaults are filled in
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from engine.experiments import registry, trainargs
from engine.experiments.checker import (
    _GENERATION,
    _HF_ID,
    _POSITIVE,
    Check,
    KeyPath,
    SpecError,
    SpecErrors,
    _boolean,
    _Checker,
    _choice,
    _compose,
    _exists,
    _expected,
    _Field,
    _integer,
    _is_int,
    _local_path,
    _number,
    _Problem,
    _read,
    _resolve,
    _show,
    _string,
    _strings,
    _suggest,
)

__all__ = ["DISTRIBUTED", "NO_BASE", "Experiment", "SpecError", "SpecErrors", "check_file",
           "load_experiment", "load_experiment_text"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

SET_BY_TIX = frozenset({"output_dir", "logging_dir"})
"""trl arguments tix sets itself: where checkpoints and logs go. `report_to` is the user's (trackers
such as wandb or tensorboard, beside tix's own event callback), checked by `report_to` below."""

METHODS = ("sft", "grpo")
TI_SIGMAS = ("pooled", "per-model")


# ── the result ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: `data` is plain YAML values with every default filled in."""

    name: str
    path: Path
    text: str
    data: dict[str, Any]

    def local_path(self, ref: str) -> Path | None:
        """The file or folder a model/data reference names, when it is a local path.

        Relative paths in the file are relative to the file's folder, not to the cwd of
        whichever process runs the job, so jobs should resolve references through this.
        """
        return _local_path(ref, self.path.parent)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; raises SpecErrors listing every problem."""
    text, error = _read(str(path))
    if error is not None:
        raise SpecErrors([error])
    experiment = load_experiment_text(text, str(path))
    return replace(experiment, path=Path(path).resolve())


def load_experiment_text(text: str, filename: str = "<string>") -> Experiment:
    """Validate experiment YAML given as text; relative paths are relative to filename's folder."""
    try:
        data, errors = _check_text(text, filename, Path(filename).parent)
    except Exception as exc:  # noqa: BLE001 - the contract is: only SpecErrors escape
        errors = [SpecError(filename, 1, "", f"internal error while checking: {type(exc).__name__}: {exc}")]
    if errors:
        raise SpecErrors(errors)
    return Experiment(data["name"], Path(filename), text, data)


def check_file(path: str | Path) -> list[SpecError]:
    """Every problem in an experiment file; an empty list when it is valid."""
    try:
        load_experiment(path)
    except SpecErrors as exc:
        return exc.errors
    return []



def _check_text(text: str, filename: str, folder: Path) -> tuple[dict[str, Any], list[SpecError]]:
    """Parse and validate; returns the data and the errors sorted by line."""
    root, error = _compose(text, filename)
    if error is not None:
        return {}, [error]
    checker = _ExperimentChecker(filename, folder)
    data = checker.run(root)
    return data, sorted(checker.errors, key=lambda e: e.line)




def _layers(value: Any) -> _Problem | None:
    """`"all"` or a list of layer indices."""
    if value == "all":
        return None
    if not isinstance(value, list) or not value:
        return _expected("'all' or a non-empty list of layer numbers", value)
    bad = next((v for v in value if not (_is_int(v) and v >= 0)), None)
    return None if bad is None else _Problem(f"expected layer numbers >= 0, got {_show(bad)}")


def _target_modules(value: Any) -> _Problem | None:
    if value == "all-linear":
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return None
    return _expected("'all-linear' or a list of module names", value)



def _name(value: Any) -> _Problem | None:
    if not isinstance(value, str):
        return _expected("a string", value)
    if not _NAME.match(value):
        rule = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
        return _Problem(f"invalid name '{value}': {rule}")
    return None


# ── references to models and data ──────────────────────────────────────────────────────────



def _ref_problem(ref: Any, what: str, builtins: set[str], folder: Path) -> _Problem | None:
    """Whether `ref` is a built-in, an HF id ("org/name") or an existing local path."""
    if not isinstance(ref, str):
        return _expected("a string", ref)
    if ref in builtins:
        return None
    local = _local_path(ref, folder)
    if local is not None:
        return None if _exists(local) else _Problem(f"{what} path not found: {local}")
    if _HF_ID.match(ref):
        return None
    noun = "dataset" if what == "data" else what
    message = (f"unknown {noun} '{ref}': expected a built-in ({', '.join(sorted(builtins))}), "
               "an HF id (org/name) or a local path")
    return _Problem(message, _suggest(ref, builtins))


def _build_params(value: Any) -> _Problem | None:
    """`base.build:` of the built-in tiny lab: build parameters other than the model and seed
    (which `base:` names), checked as the build job checks them."""
    from engine.lab.params import resolve

    if not isinstance(value, dict):
        return _Problem("must be a mapping of build parameters (pretrain_steps, precision, ...)")
    fixed = sorted({"model", "seed"} & set(value))
    if fixed:
        return _Problem(f"set {' and '.join(fixed)} under base:, not under base.build")
    try:
        resolve(value)
    except ValueError as exc:
        return _Problem(str(exc))
    return None


# ── the schema ─────────────────────────────────────────────────────────────────────────────


DISTRIBUTED = ("zero3", "fsdp", "ddp")
"""Shipped accelerate configurations (configs/accelerate/<name>.yaml) for `train.distributed`."""


#: vLLM options with a type to check (others pass through to vLLM as written).
_BACKEND_OPTIONS: dict[str, Check] = {
    "tensor_parallel_size": _POSITIVE, "data_parallel_size": _POSITIVE, "max_model_len": _POSITIVE,
    "gpu_memory_utilization": _number(0, 1, lo_open=True), "seed": _integer(),
    "cpu_kv_cache_gib": _POSITIVE,  # whole GiB: vLLM reads VLLM_CPU_KVCACHE_SPACE as an integer
}


def _backend_options(value: Any) -> _Problem | None:
    """A mapping; the sizes that decide how many GPUs an evaluation holds must be numbers."""
    if not isinstance(value, dict):
        return _expected("a mapping", value)
    for key, check in _BACKEND_OPTIONS.items():
        if key in value and (problem := check(value[key])) is not None:
            return _Problem(f"{key}: {problem.message}")
    return None


def _distributed(value: Any) -> _Problem | None:
    """A shipped configuration's name, or a path to an accelerate config file."""
    if isinstance(value, str) and (value in DISTRIBUTED or value.endswith((".yaml", ".yml"))):
        return None
    return _Problem(f"expected one of {', '.join(DISTRIBUTED)} or a path to an accelerate config "
                    f"(.yaml), got {_show(value)}", _suggest(str(value), DISTRIBUTED))


def _text(value: Any) -> _Problem | None:
    """A Slurm option's value: a non-empty string (a number is taken as written, e.g. `time: 60`)."""
    if _is_int(value) or (isinstance(value, str) and value.strip()):
        return None
    return _expected("a non-empty string", value)


#: Per-experiment sbatch options: the daemon's `slurm:` settings that make sense for one run
#: (engine.daemon.settings.PER_EXPERIMENT, which a test keeps equal to these keys).
_SLURM = {
    "partition": _Field(_text), "account": _Field(_text), "qos": _Field(_text), "time": _Field(_text),
    "cpus_per_gpu": _Field(_POSITIVE), "mem_per_gpu": _Field(_text), "constraint": _Field(_text),
    "exclusive": _Field(_boolean), "extra_args": _Field(_strings), "cpu_partition": _Field(_text),
    "setup": _Field(_strings), "signal_grace": _Field(_integer(0)),
}
_SLURM_DAEMON = ("gpus_per_node", "final_wait", "poll_interval")
"""`slurm:` settings of the daemon that describe the cluster or the daemon itself, not a run."""
_SLURM_TEXT = frozenset(key for key, spec in _SLURM.items() if spec.check is _text)
_TOP_KEYS = ("name", "description", "base", "models", "eval", "analysis", "ti", "slurm")
_TOP = {"name": _Field(_name, required=True), "description": _Field(_string, "")}
_VARIANT_KEYS = ("from", "model", "revision", "method", "train")
NO_BASE = "none"
"""`from: none` on a released model: a base of its own (a model zoo's other base models)."""
_ENTRY_KINDS = ("name", "lm_eval", "file")
"""The key that says what an `eval.benchmarks` entry is."""


def _benchmark_name(value: Any) -> _Problem | None:
    """A registered benchmark, or one defined by a file in TIX_HOME/benchmarks."""
    from engine.evaluation.benchfile import home_benchmarks
    from engine.workspace import default_home

    known = sorted({*registry.BENCHMARKS, *home_benchmarks(default_home())})
    return _choice(known, "benchmark")(value)
_ANALYSES = {
    "pca_shift": {
        "items": _Field(_integer(3), 100),  # PCA(2) needs 3 texts: 2 centred points span one direction
        "max_tokens": _Field(_POSITIVE, 128),
        "pooling": _Field(_choice(("paper", "masked"), "pooling"), "paper"),
        "layers": _Field(_layers, "all"),
    },
    "token_shift": {"items": _Field(_POSITIVE, 100)},
}
#: Options checked when present but not filled in when absent (the job picks the default).
_ANALYSIS_OPTIONS = {
    "token_shift": {
        "batch_size": _Field(_POSITIVE),
        "backend": _Field(_choice(("hf", "vllm"), "token_shift backend")),
    },
}
_TI = {"variant": _Field(_choice(("v1", "v2"), "TI variant"), "v2")}
_SIGMA = {group: _Field(_number(0, lo_open=True), required=True, to_float=True) for group in registry.GROUPS}
_LORA = {  # the usual recipe: rank 16, alpha 2r, every linear layer
    "r": _Field(_POSITIVE, 16),
    "alpha": _Field(_POSITIVE, 32),
    "dropout": _Field(_number(0, 1, hi_open=True), 0.0, to_float=True),
    "target_modules": _Field(_target_modules, "all-linear"),
}
_ARG_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": (lambda v: v > 0, "must be > 0"),
    "num_train_epochs": (lambda v: v > 0, "must be > 0"),
    "max_steps": (lambda v: v == -1 or v > 0, "must be -1 (no limit) or > 0"),
    "per_device_train_batch_size": (lambda v: v >= 1, "must be >= 1"),
}
"""Bounds trl itself would only complain about (if at all) after the model has loaded."""

_GRPO_ARG_RULES = {"num_generations": (lambda v: v >= 2, "must be >= 2 (GRPO compares completions)")}


# ── the checker ────────────────────────────────────────────────────────────────────────────


class _ExperimentChecker(_Checker):
    """The experiment schema over the shared checker (engine.experiments.checker), section by
    section; `lines` says where each key and value is, so any error points at the right line."""

    def check(self, top: dict[str, Any]) -> dict[str, Any]:
        return self.experiment(top)

    def model_ref(self, value: Any) -> _Problem | None:
        return _ref_problem(value, "model", registry.BUILTIN_MODELS, self.folder)

    def data_ref(self, value: Any) -> _Problem | None:
        return _ref_problem(value, "data", registry.BUILTIN_DATASETS, self.folder)

    # sections

    def experiment(self, top: dict[str, Any]) -> dict[str, Any]:
        data = self.section((), top, _TOP, extra=_TOP_KEYS[2:]) or {}
        data["base"] = self.base(top)
        data["models"] = self.models(top.get("models"))
        data["eval"] = self.eval(top["eval"]) if "eval" in top else self.eval({})
        data["analysis"] = self.analysis(top["analysis"]) if "analysis" in top else self.analysis(None)
        data["ti"] = self.ti(top.get("ti", {}))
        data["slurm"] = self.slurm(("slurm",), top.get("slurm"))
        return data

    def base(self, top: dict[str, Any]) -> dict[str, Any] | None:
        if "base" not in top:
            self.error(("base",), "missing required key 'base'")
            return None
        fields = {
            "model": _Field(self.model_ref, required=True),
            "revision": _Field(_string),
            "seed": _Field(_integer(), 0),
            "rebuild": _Field(_boolean, False),
            "build": _Field(_build_params),
        }
        base = self.section(("base",), top["base"], fields)
        key = "build" if base and base.get("build") else "rebuild" if base and base.get("rebuild") else None
        if key and base and base.get("model") not in registry.BUILTIN_MODELS:
            self.error(("base", key), f"only a built-in base ({', '.join(sorted(registry.BUILTIN_MODELS))}) "
                                      "is built; this base is loaded as it is")
        return base

    def models(self, value: Any) -> dict[str, Any]:
        """Variants by name; an empty `models:` means none."""
        found = self.mapping(("models",), {} if value is None else value, None) or {}
        variants = {}
        for name, spec in found.items():
            self.variant_name(name)
            variants[name] = self.variant(("models", name), spec)
        self.check_parents(variants)
        return variants

    def variant_name(self, name: str) -> None:
        path = ("models", name)
        if name in ("base", NO_BASE):
            self.error(path, f"'{name}' is reserved (the base model, no base); choose another variant name")
        elif not _VARIANT_NAME.match(name):
            self.error(path, f"invalid variant name '{name}': use letters, digits, '_' and '-'")

    def variant(self, path: KeyPath, value: Any) -> dict[str, Any] | None:
        """A trained variant (`train:`) or a released checkpoint to evaluate (`model:`).

        `from:` is the model a variant starts from: for a trained one, what it trains; for a
        released one, the base the TI and the analyses compare it with (`none`: it is a base
        itself). `method:` labels a released model (sft, rl, ...) in reports.
        """
        fields = {
            "from": _Field(_string, "base"),
            "model": _Field(self.model_ref),
            "revision": _Field(_string),
            "method": _Field(_string),
        }
        variant = self.section(path, value, fields, extra=("train",))
        if variant is None:
            return None
        if ("model" in value) == ("train" in value):
            both = ", not both" if "model" in value else ""
            self.error(path, f"variant needs either model: or train:{both}")
        if "train" in value and "method" in value:
            self.error((*path, "method"), "method: labels released models; a trained one has train.method")
        if "train" in value and value.get("from") == NO_BASE:
            self.error((*path, "from"), "from: none is for released models; a trained one needs a source")
        variant["train"] = self.train((*path, "train"), value["train"]) if "train" in value else None
        return variant

    def train(self, path: KeyPath, value: Any) -> dict[str, Any] | None:
        fields = {
            "method": _Field(_choice(METHODS, "method"), required=True),
            "data": _Field(self.data_ref, required=True),
            "retries": _Field(_integer(0), 0),
            "gpus": _Field(_POSITIVE, 1),
            "nodes": _Field(_POSITIVE),
            "distributed": _Field(_distributed),
            "limit": _Field(_POSITIVE),
        }
        train = self.section(path, value, fields, extra=("reward", "args", "lora", "teacher", "slurm"))
        if train is None:
            return None
        self.parallel(path, train, "lora" in value)
        teacher = value.get("teacher")
        train["teacher"] = self.teacher((*path, "teacher"), teacher) if teacher is not None else None
        if train["teacher"] is not None and train["method"] != "sft":
            self.error((*path, "teacher"), "teacher: only applies to method sft (GRPO samples itself)")
        method = train["method"] if train["method"] in METHODS else None
        train["reward"] = self.reward(path, value, method)
        train["args"] = self.args((*path, "args"), value.get("args", {}), method)
        train["lora"] = self.section((*path, "lora"), value["lora"], _LORA) if "lora" in value else None
        train["slurm"] = self.slurm((*path, "slurm"), value.get("slurm"))
        return train

    def parallel(self, path: KeyPath, train: dict[str, Any], lora: bool) -> None:
        """`gpus` (per node) and `nodes`: a `distributed:` config needs several processes in all;
        LoRA trains in one. `nodes` stays None unless given, so files without it keep their run
        ids; whether the daemon's executor can hold several nodes is only known when it runs."""
        gpus, nodes = train.get("gpus"), train.get("nodes") or 1
        if not isinstance(gpus, int) or not isinstance(nodes, int):
            return
        if gpus == 1 and nodes == 1 and train.get("distributed"):
            self.error((*path, "distributed"), "distributed: needs gpus: 2 or more")
        if gpus > 1 and lora:
            self.error((*path, "lora"), "lora: not supported with gpus > 1 yet (the merged model is saved "
                       "from one process); train LoRA on one GPU")
        elif nodes > 1 and lora:
            self.error((*path, "lora"), "lora: not supported with nodes > 1 yet (the merged model is saved "
                       "from one process); train LoRA on one GPU")

    def slurm(self, path: KeyPath, value: Any) -> dict[str, Any] | None:
        """sbatch options over the daemon's for these runs; only the keys given are kept (no
        defaults), so a file without them plans the same runs, with the same ids, as before."""
        found = self.mapping(path, value, None) if value is not None else None
        if not found:
            return None
        for key in found:
            if key in _SLURM_DAEMON:
                self.error((*path, key), f"'{key}' is a daemon setting (TIX_HOME/config.yaml), "
                                         "not one per experiment")
            elif key not in _SLURM:
                self.unknown_key((*path, key), key, tuple(_SLURM))
        checked = {key: self.field((*path, key), found, key, _SLURM[key]) for key in _SLURM if key in found}
        return {key: str(v) if key in _SLURM_TEXT and _is_int(v) else v for key, v in checked.items()}

    def teacher(self, path: KeyPath, value: Any) -> dict[str, Any] | None:
        """SFT data the paper's way: sample a teacher ("self" = on-policy), keep correct answers."""
        fields = {
            "model": _Field(self.teacher_ref, required=True),
            "samples": _Field(_POSITIVE, 4),
            "enable_thinking": _Field(_boolean, False),
            "max_new_tokens": _Field(_POSITIVE, 256),
            "temperature": _Field(_number(0), 0.7, to_float=True),
            "keep": _Field(_choice(("first", "all"), "keep"), "first"),
            "limit": _Field(_POSITIVE),
            "backend": _Field(_choice(registry.BACKENDS, "backend")),
            "backend_options": _Field(_backend_options, {}),
        }
        return self.section(path, value, fields)

    def teacher_ref(self, value: Any) -> _Problem | None:
        return None if value == "self" else self.model_ref(value)

    def reward(self, path: KeyPath, train: dict[str, Any], method: str | None) -> str | None:
        """GRPO needs a reward (default "math"); SFT has none."""
        if method == "sft" and "reward" in train:
            self.error((*path, "reward"), "reward: only applies to method grpo")
        if method != "grpo":
            return None
        reward = train.get("reward", "math")
        problem = _choice(sorted(registry.REWARDS), "reward")(reward)
        if problem is not None:
            self.problem((*path, "reward"), problem)
        return reward

    def args(self, path: KeyPath, value: Any, method: str | None) -> dict[str, Any]:
        """trl config arguments, checked against the installed trl's fields and types."""
        found = self.mapping(path, {} if value is None else value, None)
        if not found or method is None:
            return dict(found or {})
        try:
            fields = trainargs.config_fields(method)
        except RuntimeError as exc:
            self.error(path, f"cannot check training arguments: {exc}")
            return dict(found)
        for key, arg in found.items():
            self.arg((*path, key), key, arg, fields, method)
        return dict(found)

    def arg(self, path: KeyPath, key: str, value: Any, fields: dict[str, trainargs.FieldType],
            method: str) -> None:
        """One trl argument: not one tix sets, a real field, the right type, within bounds."""
        config = trainargs.CONFIG_HOMES[method][2]
        if key in SET_BY_TIX:
            self.error(path, f"'{key}' is set by tix; remove it")
        elif key not in fields:
            self.error(path, f"unknown training argument '{key}' for trl {config}", _suggest(key, fields))
        elif (expected := trainargs.check_value(fields[key], value)) is not None:
            self.problem(path, _expected(expected, value))
        elif key == "report_to":
            self.report_to(path, value)
        elif value is not None:
            rules = {**_ARG_RULES, **(_GRPO_ARG_RULES if method == "grpo" else {})}
            rule = rules.get(key)
            if rule is not None and not rule[0](value):
                self.problem(path, _Problem(f"{rule[1]}, got {_show(value)}"))

    def report_to(self, path: KeyPath, value: Any) -> None:
        """Trackers trl reports to beside tix (`none`, `all`, or names transformers knows): a typo
        fails here, not when the trainer starts an hour into the queue."""
        try:
            unknown = trainargs.unknown_integrations(value)
            known = trainargs.report_integrations()
        except RuntimeError as exc:
            self.error(path, f"cannot check report_to: {exc}")
            return
        for name in unknown:
            words = "" if isinstance(value, str) else " (none and all only alone)"
            message = (f"unknown tracker {name!r} for report_to{words}: transformers knows "
                       f"{', '.join(known)}, plus none and all")
            alone = name in trainargs.REPORT_TO_WORDS  # right word, wrong place: nothing to suggest
            hint = None if alone else _suggest(str(name), [*known, *trainargs.REPORT_TO_WORDS])
            self.problem(path, _Problem(message, hint))

    def check_parents(self, variants: dict[str, Any]) -> None:
        """`from:` must name the base or another variant, without cycles."""
        names = [name for name, variant in variants.items() if variant]
        parents = {name: variants[name]["from"] for name in names if isinstance(variants[name]["from"], str)}
        for name, parent in parents.items():
            if parent not in ("base", NO_BASE) and parent not in variants:
                problem = _Problem(f"unknown variant '{parent}'", _suggest(parent, ["base", *variants]))
                self.problem(("models", name, "from"), problem)
        reported: set[frozenset[str]] = set()
        for name in parents:
            cycle = _cycle_from(name, parents)
            if cycle and frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                self.error(("models", cycle[0], "from"), "dependency cycle: " + " -> ".join(cycle))

    def eval(self, value: Any) -> dict[str, Any] | None:
        """One suite or an explicit benchmark list (the lab suite when neither is given)."""
        path: KeyPath = ("eval",)
        fields = {"suite": _Field(_choice(sorted(registry.SUITES), "suite")), "limit": _Field(_POSITIVE),
                  "backend": _Field(_choice(registry.BACKENDS, "backend"), "auto"),
                  "backend_options": _Field(_backend_options, {})}
        found = self.section(path, value, fields, extra=("benchmarks", "generation"))
        if found is None:
            return None
        if "suite" in value and "benchmarks" in value:
            self.error(path, "needs either suite: or benchmarks:, not both")
        if "benchmarks" in value:
            found["benchmarks"] = self.benchmarks((*path, "benchmarks"), value["benchmarks"])
        else:
            found["suite"], found["benchmarks"] = value.get("suite", "lab"), None
        found["generation"] = self.section((*path, "generation"), value.get("generation", {}), _GENERATION)
        return found

    def benchmarks(self, path: KeyPath, value: Any) -> list[dict[str, Any]] | None:
        """Entries of three kinds, told apart by their key: `name:` (registered or a file in
        TIX_HOME/benchmarks), `lm_eval:` (an lm-eval task or group) and `file:` (a tix benchmark file)."""
        if not isinstance(value, list) or not value:
            self.problem(path, _expected("a non-empty list of {name, group}", value))
            return None
        benchmarks, first_line = [], {}
        for index, item in enumerate(value):
            benchmark = self.benchmark_entry((*path, index), item)
            benchmarks.append(benchmark)
            kind = next((k for k in _ENTRY_KINDS if benchmark and k in benchmark and benchmark[k]), None)
            for name in self.entry_names(benchmark, kind):
                if name in first_line:
                    message = f"duplicate benchmark '{name}' (first at line {first_line[name]})"
                    self.error((*path, index, kind or "name"), message, at_value=True)
                else:
                    first_line[name] = self.lines[(*path, index, kind or "name")][1]
        return benchmarks

    def benchmark_entry(self, path: KeyPath, item: Any) -> dict[str, Any] | None:
        kinds = [k for k in _ENTRY_KINDS if isinstance(item, dict) and k in item]
        if len(kinds) > 1:
            self.error(path, f"an entry names one benchmark: {' or '.join(kinds)}, not both")
            return None
        if kinds == ["lm_eval"]:
            return self.lm_eval_entry(path, item)
        if kinds == ["file"]:
            return self.file_entry(path, item)
        return self.section(path, item, self.benchmark_fields())

    def entry_names(self, entry: dict[str, Any] | None, kind: str | None) -> list[str]:
        """The benchmark names an entry stores (an lm-eval group: each of its tasks)."""
        if not entry or kind is None or not isinstance(entry.get(kind), str):
            return []
        if kind == "lm_eval":
            return list(entry.get("_tasks") or [entry["lm_eval"]])
        if kind == "file":
            return [entry.get("_name") or entry["file"]]
        return [entry["name"]]

    def benchmark_fields(self) -> dict[str, _Field]:
        """One `eval.benchmarks` entry: a registered name; group, scorer and a local copy optional."""
        return {
            "name": _Field(_benchmark_name, required=True),
            "group": _Field(_choice(registry.GROUPS, "group")),
            "data": _Field(self.local_file),
            "limit": _Field(_POSITIVE),
            "scorer": _Field(self.scorer_ref),
        }

    def lm_eval_entry(self, path: KeyPath, item: dict[str, Any]) -> dict[str, Any] | None:
        """`{lm_eval: TASK, include_path: DIR, group: G, num_fewshot: K, limit: N, chat: true}`;
        the task is resolved against lm-eval's index here, without loading its data."""
        fields = {
            "lm_eval": _Field(_string, required=True),
            "include_path": _Field(self.local_folder),
            "group": _Field(_choice(registry.GROUPS, "group"), required=True),
            "num_fewshot": _Field(_integer(0)),
            "limit": _Field(_POSITIVE),
            "chat": _Field(_boolean, True),
            "fewshot_as_multiturn": _Field(_boolean, True),
        }
        entry = self.section(path, item, fields)
        if entry is None or not isinstance(entry.get("lm_eval"), str):
            return entry
        return self.resolve_lm_eval(path, entry)

    def resolve_lm_eval(self, path: KeyPath, entry: dict[str, Any]) -> dict[str, Any]:
        from engine.evaluation import lmeval_index

        folder = entry.get("include_path")
        include = str(_resolve(folder, self.folder)) if isinstance(folder, str) else None
        try:
            info = lmeval_index.check(entry["lm_eval"], include)
            found = lmeval_index.index(include)
        except lmeval_index.LmEvalError as exc:
            self.error((*path, "lm_eval"), str(exc), at_value=True)
            return entry
        entry["_tasks"] = [t.name for t in lmeval_index.leaves(info, found)] + (
            [info.name] if info.kind == "group" else [])
        return entry

    def file_entry(self, path: KeyPath, item: dict[str, Any]) -> dict[str, Any] | None:
        """`{file: PATH, group: G, limit: N, scorer: S}`: a tix benchmark file, checked strictly
        (its own errors name its own lines)."""
        fields = {"file": _Field(self.benchmark_file, required=True),
                  "group": _Field(_choice(registry.GROUPS, "group")), "limit": _Field(_POSITIVE),
                  "scorer": _Field(self.scorer_ref)}
        entry = self.section(path, item, fields)
        if entry is None or not isinstance(entry.get("file"), str):
            return entry
        from engine.evaluation.benchfile import check_benchmark_file

        target = _resolve(entry["file"], self.folder)
        if target.is_file():
            errors = check_benchmark_file(target)
            self.errors.extend(errors)
            if not errors:
                entry["_name"] = (yaml.safe_load(target.read_text()) or {}).get("name")
        return entry

    def benchmark_file(self, value: Any) -> _Problem | None:
        if not isinstance(value, str):
            return _expected("a path to a benchmark file (.yaml)", value)
        path = _resolve(value, self.folder)
        return None if path.is_file() else _Problem(f"benchmark file not found: {path}")

    def local_folder(self, value: Any) -> _Problem | None:
        if not isinstance(value, str):
            return _expected("a folder path", value)
        path = _resolve(value, self.folder)
        return None if path.is_dir() else _Problem(f"folder not found: {path}")

    def local_file(self, value: Any) -> _Problem | None:
        if not isinstance(value, str):
            return _expected("a string", value)
        path = (self.folder / Path(value).expanduser()).resolve()
        return None if path.is_file() else _Problem(f"data file not found: {path}")

    def analysis(self, value: Any) -> dict[str, Any] | None:
        """Absent: every analysis with defaults. Present: only those listed (`name:` alone = defaults)."""
        if value is None:
            value = dict.fromkeys(_ANALYSES)
        found = self.mapping(("analysis",), value, _ANALYSES)
        if found is None:
            return None
        return {name: self.analysis_options(name, {} if found[name] is None else found[name])
                for name in _ANALYSES if name in found}

    def analysis_options(self, name: str, value: Any) -> dict[str, Any] | None:
        """One analysis: its fields with defaults, plus the optional options it was given."""
        options = _ANALYSIS_OPTIONS.get(name, {})
        found = self.section(("analysis", name), value, _ANALYSES[name], extra=tuple(options))
        if found is None:
            return None
        for key, spec in options.items():
            if key in value:
                found[key] = self.field(("analysis", name, key), value, key, spec)
        return found

    def ti(self, value: Any) -> dict[str, Any] | None:
        """Transferability index: its variant and how the per-group sigma is estimated."""
        ti = self.section(("ti",), value, _TI, extra=("sigma",))
        if ti is None:
            return None
        sigma = value.get("sigma", "pooled")
        if isinstance(sigma, dict):
            ti["sigma"] = self.section(("ti", "sigma"), sigma, _SIGMA)
            return ti
        ti["sigma"] = sigma
        if sigma not in TI_SIGMAS:
            expected = "'pooled', 'per-model' or a mapping {" + ", ".join(registry.GROUPS) + "}"
            suggestion = _suggest(sigma, TI_SIGMAS) if isinstance(sigma, str) else None
            self.problem(("ti", "sigma"), _Problem(f"expected {expected}, got {_show(sigma)}", suggestion))
        return ti


def _cycle_from(start: str, parents: dict[str, str]) -> list[str]:
    """The cycle reached by following `from:` links from `start`, e.g. [a, b, a]; [] if none."""
    chain = [start]
    while (parent := parents.get(chain[-1])) is not None and parent != "base":
        if parent in chain:
            return [*chain[chain.index(parent):], parent]
        chain.append(parent)
    return []
