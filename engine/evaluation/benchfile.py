"""Benchmark files: a benchmark written as YAML (data, a Jinja prompt, the gold answer, a scorer).

A researcher's own benchmark should not need a change to tix: a `*.yaml` file names its data (a
local JSONL, JSON, CSV or Parquet file, or a hub dataset), says how a row becomes a prompt and a
gold answer (Jinja templates over the row), and picks a scorer. An experiment uses it as
`{file: PATH}` in `eval.benchmarks`; a file under `TIX_HOME/benchmarks/` is also found by its
`name:` (`find_benchmark`, `tix score -b NAME`) and listed by `tix benchmarks`. (The registry's
`get_benchmark` cannot look here: this module builds on the registry's Benchmark, so the
registry importing it would close a cycle.)

    name: my-bench                      # [a-z0-9][a-z0-9_-]*, not a registered benchmark's name
    group: other                        # math | other | non (default other)
    data: ./my-bench.jsonl              # or {hf: org/name, config: null, split: test}
    id: qid                             # a field naming each row (default: its position)
    system: "You are a careful solver." # optional template
    prompt: "Q: {{ question }}\\nA:"     # template over the row (`row` is the whole row)
    answer: answer                      # a field, or a template
    choices: options                    # optional: a field, a template or a list -> log-likelihood
    scorer: exact_match                 # a registered scorer, or path.py:function / pkg.mod:function
    chat: true                          # chat template at run time (default: true, false with choice_index)
    generation: {n: 1, temperature: 0.0, top_p: 1.0, max_new_tokens: 256, stop: ["\\n\\n"]}
    limit: 100

It is checked as strictly as an experiment file, by the same machinery (engine.experiments.checker):
one line per problem, `FILE:LINE: KEY: MESSAGE (did you mean 'x'?)`. The check also reads the
first row of local data and renders every template with it, so a misspelt field is caught by
`tix check`, not by a worker an hour into a run; a row the templates cannot render at run time
is a one-line error naming the row. Templates run in Jinja's sandbox with StrictUndefined.

    errors = check_benchmark_file("my-bench.yaml")   # [] when valid
    bench = load_benchmark_file("my-bench.yaml")     # a Benchmark; raises BenchmarkError
    items = load_items(bench, limit=10)              # id, question, answer, system, choices + the row
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from engine.evaluation.benchmarks import (
    REGISTRY,
    Benchmark,
    BenchmarkError,
    _parquet,
    describe,
    load_items,
    read_records,
    unknown_benchmark,
)
from engine.evaluation.benchmarks_jinja import RowError, compiled, is_template, render
from engine.experiments import registry
from engine.experiments.checker import (
    _GENERATION,
    _HF_ID,
    _LOCAL_PREFIXES,
    _POSITIVE,
    SpecError,
    _boolean,
    _Checker,
    _choice,
    _compose,
    _exists,
    _expected,
    _Field,
    _Problem,
    _read,
    _resolve,
    _show,
    _string,
)
from engine.workspace import default_home

HOME_FOLDER = "benchmarks"
"""`TIX_HOME/benchmarks/`: benchmark files found by name, in any sub-folder."""
FILE_SUFFIXES = (".yaml", ".yml")
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
LOGLIK_SCORER = "choice_index"
"""The scorer that makes a file a log-likelihood benchmark (and the default with `choices:`)."""
DEFAULT_SCORER = "exact_match"
DEFAULT_SPLIT = "test"
GENERATION_KEYS = ("n", "temperature", "top_p", "max_new_tokens", "stop")
ITEM_KEYS = ("id", "system", "prompt", "answer", "choices")
"""What a row is rendered into, in the order they are checked against the first row."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


# ── value checks ───────────────────────────────────────────────────────────────────────────


def _template(value: Any) -> _Problem | None:
    """A Jinja template that compiles."""
    from jinja2 import TemplateSyntaxError

    if not isinstance(value, str):
        return _expected("a string (a Jinja template)", value)
    try:
        compiled(value)
    except TemplateSyntaxError as exc:
        where = f" (template line {exc.lineno})" if "\n" in value.strip() else ""
        return _Problem(f"Jinja syntax error: {exc.message}{where}")
    return None


def _field_name(value: Any) -> _Problem | None:
    if isinstance(value, str) and value and not is_template(value):
        return None
    return _expected("a field name", value)


def _field_or_template(value: Any) -> _Problem | None:
    if isinstance(value, str) and value and not is_template(value):
        return None
    return _template(value)


def _choices(value: Any) -> _Problem | None:
    """A field (holding a list), a template rendering a list, or a list of texts or templates."""
    if not isinstance(value, list):
        return _field_or_template(value)
    if len(value) < 2:
        return _expected("two choices or more", value)
    for choice in value:
        if isinstance(choice, bool) or not isinstance(choice, str | int | float):
            return _Problem(f"expected texts, got {_show(choice)}" + " (quote it)" * isinstance(choice, bool))
        if isinstance(choice, str) and (problem := _template(choice)) is not None:
            return problem
    return None


def _bench_name(value: Any) -> _Problem | None:
    if not isinstance(value, str):
        return _expected("a string", value)
    if not _NAME.match(value):
        return _Problem(f"invalid name '{value}': use lower-case letters, digits, '_' and '-'")
    if value in REGISTRY:
        return _Problem(f"'{value}' is a registered benchmark; a benchmark file needs a name of its own")
    return None


def _hub_id(value: Any) -> _Problem | None:
    if isinstance(value, str) and _HUB_ID.match(value):
        return None
    return _expected("a hub dataset id (org/name)", value)


def _looks_hub(ref: str) -> bool:
    """`org/name`, not a path: worth a hint when no such file exists."""
    local = ref.startswith(_LOCAL_PREFIXES) or Path(ref).suffix in DATA_SUFFIXES
    return bool(_HF_ID.match(ref)) and not local


def _optional_string(value: Any) -> _Problem | None:
    return None if value is None else _string(value)


_HUB = {"hf": _Field(_hub_id, required=True), "config": _Field(_optional_string),
        "split": _Field(_string, DEFAULT_SPLIT)}
_SPEC_GENERATION = {key: _GENERATION[key] for key in GENERATION_KEYS}
"""The experiment file's sampling checks, for the keys a benchmark may set."""


# ── the checker ────────────────────────────────────────────────────────────────────────────


class _FileChecker(_Checker):
    """The shared checker (values with their lines, strict sections, did-you-mean, and its
    `scorer_ref`: a registered name or a plugin whose file defines the function) applied to a
    benchmark file's schema; `run` builds the values and hands them to `check`."""

    def check(self, top: dict[str, Any]) -> dict[str, Any]:
        return self.benchmark_spec(top)

    def benchmark_spec(self, top: dict[str, Any]) -> dict[str, Any]:
        """The file's values with defaults filled, `scorer`, `method` and `chat` settled."""
        spec = self.section((), top, self.fields(), extra=("data", "generation")) or {}
        spec["data"] = self.data(top["data"]) if "data" in top else self.missing("data")
        spec["generation"] = self.generation(top.get("generation"))
        self.method(spec, top)
        row = self.first_row(spec["data"])
        if row is not None:
            self.render_first(spec, row)
        return spec

    def fields(self) -> dict[str, _Field]:
        return {
            "name": _Field(_bench_name, required=True),
            "group": _Field(_choice(registry.GROUPS, "group"), "other"),
            "description": _Field(_string, ""),
            "id": _Field(_field_name),
            "system": _Field(_template),
            "prompt": _Field(_template, required=True),
            "answer": _Field(_field_or_template),
            "choices": _Field(_choices),
            "scorer": _Field(self.scorer_ref),
            "chat": _Field(_boolean),
            "limit": _Field(_POSITIVE),
        }

    def failed(self, key: str) -> bool:
        """Whether `key` (or anything under it) already has an error."""
        return any(e.path == key or e.path.startswith((f"{key}.", f"{key}[")) for e in self.errors)

    def missing(self, key: str) -> None:
        self.error((key,), f"missing required key '{key}'")

    def data(self, value: Any) -> str | dict[str, Any] | None:
        """A local file (relative to this file), or a hub dataset as {hf, config, split}."""
        if isinstance(value, dict):
            return self.section(("data",), value, _HUB)
        problem = self.local_data(value)
        if problem is not None:
            self.problem(("data",), problem)
            return None
        return str(_resolve(value, self.folder))

    def local_data(self, value: Any) -> _Problem | None:
        if not isinstance(value, str) or not value:
            return _expected("a data file or {hf: org/name, split: ...}", value)
        path = _resolve(value, self.folder)
        if not _exists(path):
            hub = f"; a hub dataset is data: {{hf: {value}, split: test}}" if _looks_hub(value) else ""
            return _Problem(f"data file not found: {path}{hub}")
        if not path.is_file() or path.suffix not in DATA_SUFFIXES:
            return _Problem(f"expected a {', '.join(DATA_SUFFIXES)} file, got {path}")
        return None

    def generation(self, value: Any) -> dict[str, Any]:
        """Sampling defaults; only the keys given (an experiment's `eval.generation` overrides)."""
        if value is None:
            return {}
        found = self.section(("generation",), value, _SPEC_GENERATION) or {}
        return {key: v for key, v in found.items() if v is not None}

    def method(self, spec: dict[str, Any], top: dict[str, Any]) -> None:
        """`choice_index` (the default with `choices:`) scores by log-likelihood, raw text by
        default; any other scorer generates, and `choices` then only travel with the item."""
        scorer = spec.get("scorer") or (LOGLIK_SCORER if "choices" in top else DEFAULT_SCORER)
        loglik = scorer == LOGLIK_SCORER
        if loglik and "choices" not in top:
            self.error(("scorer",), f"{LOGLIK_SCORER} compares the log-likelihoods of the choices: "
                                    "add choices:")
        if loglik and "generation" in top:
            self.error(("generation",), f"nothing is generated for a log-likelihood benchmark "
                                        f"(scorer {LOGLIK_SCORER}); remove generation:")
        spec["scorer"] = self.plugin_path(scorer) if not self.failed("scorer") else scorer
        spec["method"] = "loglikelihood" if loglik else "generate"
        spec["chat"] = (not loglik) if spec.get("chat") is None else spec["chat"]

    def plugin_path(self, scorer: str) -> str:
        """A `path.py:function` plugin made absolute (relative to this file), so the worker
        loads it from any working folder."""
        from engine.evaluation.scorers import plugin

        if not plugin.is_plugin(scorer) or not plugin.is_file_target(plugin.split(scorer)[0]):
            return scorer
        target, function = plugin.split(scorer)
        return f"{_resolve(target, self.folder)}:{function}"

    def first_row(self, data: Any) -> dict[str, Any] | None:
        """Local data's first row, to render the templates with; a hub dataset is read at run time."""
        if not isinstance(data, str):
            return None
        try:
            row = first_record(Path(data))
        except BenchmarkError as exc:
            self.error(("data",), str(exc), at_value=True)
            return None
        if row is None:
            self.error(("data",), f"no rows in {data}", at_value=True)
        return row

    def render_first(self, spec: dict[str, Any], row: dict[str, Any]) -> None:
        for key in ITEM_KEYS:
            if spec.get(key) is None or self.failed(key):
                continue
            try:
                render(key, spec[key], row)
            except RowError as exc:
                self.error((key,), f"{exc.message} in the data's first row", exc.suggestion)


def first_record(path: Path) -> dict[str, Any] | None:
    """The first row of a data file, without reading the rest of a JSONL or Parquet file."""
    try:
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as f:
                line = next((line for line in f if line.strip()), None)
            row = None if line is None else json.loads(line)
        elif path.suffix == ".parquet":
            batch = next(_parquet(path).iter_batches(batch_size=1), None)
            row = batch.to_pylist()[0] if batch is not None and batch.num_rows else None
        else:
            row = next(iter(read_records(path)), None)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise BenchmarkError(f"{path}: cannot read records ({exc})") from None
    if row is not None and not isinstance(row, dict):
        raise BenchmarkError(f"{path}: expected an object per row, got {_show(row)}")
    return row


# ── loading ────────────────────────────────────────────────────────────────────────────────


def _check(path: str | Path) -> tuple[dict[str, Any], list[SpecError]]:
    """The file's values and every problem in it, sorted by line."""
    name = str(path)
    text, error = _read(name)
    if error is not None:
        return {}, [error]
    if not text.strip():
        return {}, [SpecError(name, 1, "", "empty benchmark file")]
    root, error = _compose(text, name)
    if error is not None:
        return {}, [error]
    checker = _FileChecker(name, Path(name).resolve().parent)
    try:
        spec = checker.run(root)
    except Exception as exc:  # noqa: BLE001 - the contract is: problems are SpecErrors
        return {}, [SpecError(name, 1, "", f"internal error while checking: {type(exc).__name__}: {exc}")]
    return spec, sorted(checker.errors, key=lambda e: e.line)


def check_benchmark_file(path: str | Path) -> list[SpecError]:
    """Every problem in a benchmark file; an empty list when it is valid."""
    return _check(path)[1]


def load_benchmark_file(path: str | Path) -> Benchmark:
    """The file as a Benchmark; an invalid file raises BenchmarkError with its first problem."""
    spec, errors = _check(path)
    if errors:
        more = f" (and {len(errors) - 1} more: tix check --show-prompt {path})" if len(errors) > 1 else ""
        raise BenchmarkError(f"{errors[0]}{more}")
    return _benchmark(spec, Path(path).resolve())


def _benchmark(spec: dict[str, Any], path: Path) -> Benchmark:
    data = spec["data"]
    hub = (data["hf"], data["config"], data["split"]) if isinstance(data, dict) else None
    templates = {key: spec[key] for key in ITEM_KEYS if spec.get(key) is not None}
    return Benchmark(
        spec["name"], spec["group"], spec["scorer"], "{question}", file=None if hub else data, hf=hub,
        method=spec["method"], generation=spec["generation"], chat=spec["chat"],
        description=spec["description"] or f"benchmark file, data {_data_text(data)}",
        path=str(path), templates=templates, limit=spec["limit"],
    )


def _data_text(data: str | dict[str, Any]) -> str:
    if isinstance(data, str):
        return data
    return f"hf:{data['hf']}" + (f" ({data['config']})" if data["config"] else "") + f" {data['split']}"


# ── TIX_HOME/benchmarks ────────────────────────────────────────────────────────────────────


def find_benchmark(name: str, home: Path | None = None) -> Benchmark:
    """A registered benchmark, else the workspace's benchmark file of that `name:` (read afresh
    each time, so an edited file counts from the next run on); `home` defaults to TIX_HOME."""
    if name in REGISTRY:
        return REGISTRY[name]
    files = home_benchmarks(default_home() if home is None else home)
    if name in files:
        return load_benchmark_file(files[name])
    raise BenchmarkError(unknown_benchmark(name, [*REGISTRY, *files]))



def home_files(home: Path) -> list[Path]:
    """Every `*.yaml` / `*.yml` under `home/benchmarks/` (hidden folders skipped), in path order."""
    folder = Path(home) / HOME_FOLDER
    if not folder.is_dir():
        return []
    found = (p for p in folder.rglob("*") if p.suffix in FILE_SUFFIXES and p.is_file())
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def home_benchmarks(home: Path) -> dict[str, Path]:
    """The workspace's benchmark files by their `name:` (the first file wins a name two share;
    `tix benchmarks` reports the other). Read without checking, so this stays cheap."""
    found: dict[str, Path] = {}
    for path in home_files(home):
        name = declared_name(path)
        if name is not None:
            found.setdefault(name, path)
    return found


def declared_name(path: Path) -> str | None:
    try:
        top = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = top.get("name") if isinstance(top, dict) else None
    return name if isinstance(name, str) else None


def describe_home(home: Path) -> list[dict[str, Any]]:
    """`tix benchmarks` rows of the workspace's files; a broken one is a row with its `error`
    (its first problem, one line), so one bad file never hides the others."""
    rows: list[dict[str, Any]] = []
    first: dict[str, Path] = {}
    for path in home_files(home):
        try:
            bench = load_benchmark_file(path)
            if bench.name in first:
                raise BenchmarkError(f"{path}:{_name_line(path)}: name: '{bench.name}' is already the name "
                                     f"of {first[bench.name]} (the one found by name); rename one")
            first[bench.name] = path
            rows.append(describe(bench))
        except BenchmarkError as exc:
            rows.append({"name": declared_name(path) or path.stem, "group": None, "source": f"file:{path}",
                         "scorer": None, "size": None, "description": "", "error": str(exc)})
    return rows


def _name_line(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next((n for n, line in enumerate(lines, start=1) if re.match(r"name\s*:", line)), 1)


# ── tix check --show-prompt ────────────────────────────────────────────────────────────────


def preview(path: str | Path) -> str:
    """The first item as the model will get it (before any chat template) and its gold answer,
    to read before a run: the cheapest way to catch a prompt that is not what was meant."""
    bench = load_benchmark_file(path)
    items = load_items(bench, limit=1)
    if not items:
        raise BenchmarkError(f"{path}: the data has no rows")
    item, size = items[0], describe(bench)["size"]
    count = "" if size is None else f", {size} items"
    head = f"ok: {bench.name} (group {bench.group}, scorer {bench.scorer}, {bench.method}{count})"
    return "\n".join([head, *_preview_sections(bench, item)])


def _preview_sections(bench: Benchmark, item: dict[str, Any]) -> list[str]:
    chat = "chat template applied at run time" if bench.chat else "raw text, no chat template"
    lines = [f"--- system ---\n{item['system']}"] if item.get("system") else []
    lines.append(f"--- prompt (item {item['index']}, id {item['id']}; {chat}) ---\n{item['question']}")
    answers = item.get("answers") or [item.get("answer")]
    lines.append("--- answer ---\n" + "\n".join("(none)" if a is None else str(a) for a in answers))
    if item.get("choices"):
        how = "log-likelihood of each after the prompt" if bench.method == "loglikelihood" else "in the item"
        lines.append(f"--- choices ({how}) ---")
        lines += [f"{i}: {choice}" for i, choice in enumerate(item["choices"])]
    return lines
