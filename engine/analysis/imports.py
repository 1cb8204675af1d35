"""Reading published results for `tix import`: a scores CSV, or lm-evaluation-harness output JSON.

Everything is checked here, on the client, before anything reaches the daemon, so a bad file
is refused whole with one line per problem (`FILE:LINE: what is wrong`) and nothing is stored.

CSV columns (a header line, any order): `model, base_model, method, benchmark, group, score`.
`score` is a percent in 0-100; `group` is `math`, `other` or `non`; a base model's rows leave
`base_model` empty and every `base_model` must name a model with rows in the same file. One row
per model and benchmark; a model keeps one base model and method, a benchmark one group.

This module is light (csv, json, re): the CLI and the daemon both import it.
"""

from __future__ import annotations

import csv
import difflib
import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GROUPS = ("math", "other", "non")
COLUMNS = ("model", "base_model", "method", "benchmark", "group", "score")
NAME = re.compile(r"[A-Za-z0-9._-]+")

#: lm-eval task name patterns -> group, for tasks the tix registry does not know (`--group` overrides).
LM_EVAL_GROUPS = {
    "gsm8k*": "math", "minerva_math*": "math", "hendrycks_math*": "math", "math500*": "math",
    "aime*": "math", "olympiadbench*": "math",
    "gpqa*": "other", "headqa*": "other", "acpbench*": "other", "mmlu*": "other", "arc_*": "other",
    "livecodebench*": "other", "humaneval*": "other", "mbpp*": "other",
    "coqa*": "non", "mc_taco*": "non", "mctaco*": "non", "ifeval*": "non", "halueval*": "non",
    "truthfulqa*": "non", "hellaswag*": "non",
}
#: lm-eval metric keys tried in order when `--metric` is not given (values 0-1, stored as percent).
LM_EVAL_METRICS = ("acc,none", "exact_match,strict-match", "exact_match,flexible-extract",
                   "exact_match,none", "prompt_level_strict_acc,none", "pass@1,none", "pass_at_1,none",
                   "em,none", "f1,none", "acc_norm,none")


class ImportErrors(Exception):
    """Every problem found in a file, one `FILE:LINE: message` per line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class ScoreTable:
    """Validated models (in file order) and score rows, ready for the daemon's import op."""

    models: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)

    def request(self, experiment: str, source: str, whole_experiment: bool) -> dict[str, Any]:
        return {"experiment": experiment, "source": source, "models": self.models, "scores": self.scores,
                "whole_experiment": whole_experiment}


def check_experiment_name(name: str) -> str | None:
    """Why an experiment name is unusable, or None (same rule as experiment files)."""
    if NAME.fullmatch(name):
        return None
    return f"bad experiment name {name!r}: use letters, digits, '.', '_', '-'"


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- CSV ------------------------------------------------------------------------------------------
def read_scores_csv(path: Path) -> ScoreTable:
    """The validated table of a scores CSV; raises ImportErrors listing every bad line."""
    lines = _read_lines(path)
    reader = csv.reader(lines)
    header = next(reader, None)
    header_errors = _check_header(header)
    if header_errors:
        raise ImportErrors([f"{path}:1: {e}" for e in header_errors])
    assert header is not None
    checker = _CsvChecker(path, [h.strip() for h in header])
    for row in reader:
        checker.row(reader.line_num, row)
    return checker.finish()


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImportErrors([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportErrors([f"{path}: cannot read: {exc}"]) from None
    if not text.strip():
        raise ImportErrors([f"{path}:1: empty file: expected a header line {','.join(COLUMNS)}"])
    return text.splitlines()


def _check_header(header: list[str] | None) -> list[str]:
    names = [h.strip() for h in header or []]
    errors = [f"unknown column {n!r}{suggest(n, COLUMNS)}" for n in names if n not in COLUMNS]
    errors += [f"column {n!r} appears twice" for n in sorted({n for n in names if names.count(n) > 1})]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        errors.append(f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)} "
                      f"(expected {', '.join(COLUMNS)})")
    return errors


class _CsvChecker:
    """Collects every row's problems, then the problems only the whole file shows."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path, self.header = path, header
        self.errors: list[tuple[int, str]] = []
        self.models: dict[str, dict[str, Any]] = {}  # model -> {base_model, method, position}
        self.rows: dict[tuple[str, str], int] = {}  # (model, benchmark) -> line
        self.groups: dict[str, tuple[str, int]] = {}  # benchmark -> (group, line)
        self.scores: list[dict[str, Any]] = []
        self.bases: list[tuple[int, str, str]] = []  # (line, model, base_model)
        self.names: set[str] = set()  # models on any row, malformed ones too (no cascade of errors)

    def error(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    def row(self, line: int, values: list[str]) -> None:
        if not any(v.strip() for v in values):
            return
        if len(values) != len(self.header):
            self.error(line, f"expected {len(self.header)} fields, got {len(values)}")
            return
        rec = {k: v.strip() for k, v in zip(self.header, values, strict=True)}
        self.names.add(rec["model"])
        problems = _row_problems(rec)
        for p in problems:
            self.error(line, p)
        if not problems:
            self._record(line, rec)

    def _record(self, line: int, rec: dict[str, str]) -> None:
        model, bench, group = rec["model"], rec["benchmark"], rec["group"]
        if (model, bench) in self.rows:
            self.error(line, f"duplicate row for model {model!r}, benchmark {bench!r} "
                             f"(first on line {self.rows[(model, bench)]})")
            return
        self.rows[(model, bench)] = line
        first_group = self.groups.setdefault(bench, (group, line))
        if first_group[0] != group:
            self.error(line, f"benchmark {bench!r} is in group {group!r} here but {first_group[0]!r} "
                             f"on line {first_group[1]}")
        self._model(line, model, rec["base_model"] or None, rec["method"] or None)
        self.scores.append({"model": model, "benchmark": bench, "group": group,
                            "value": float(rec["score"]), "metric": "score", "line": line})

    def _model(self, line: int, model: str, base: str | None, method: str | None) -> None:
        known = self.models.setdefault(model, {"model": model, "base_model": base, "method": method,
                                               "position": line})
        for key, value in (("base_model", base), ("method", method)):
            if known[key] != value:
                self.error(line, f"model {model!r} has {key} {value or ''!r} here but {known[key] or ''!r} "
                                 f"on line {known['position']}")
        if base:
            self.bases.append((line, model, base))

    def finish(self) -> ScoreTable:
        for line, _model, base in self.bases:
            if base not in self.names:
                self.error(line, f"base_model {base!r} has no rows in this file"
                                 f"{suggest(base, list(self.models))}")
        self._check_overlap()
        if not self.errors and not self.scores:
            self.error(1, "no score rows after the header")
        if self.errors:
            raise ImportErrors([f"{self.path}:{n}: {m}" for n, m in sorted(self.errors, key=lambda e: e[0])])
        return ScoreTable(list(self.models.values()), self.scores)

    def _check_overlap(self) -> None:
        """A tuned model must share a benchmark with its base, or it has no TI at all."""
        benches: dict[str, set[str]] = {}
        for model, bench in self.rows:
            benches.setdefault(model, set()).add(bench)
        for m in self.models.values():
            base = m["base_model"]
            if base in benches and not benches[m["model"]] & benches[base]:
                self.error(m["position"], f"model {m['model']!r} shares no benchmark with its base {base!r}")


def _row_problems(rec: dict[str, str]) -> list[str]:
    """What is wrong with one row on its own (empty list: nothing)."""
    problems = [f"empty {key}" for key in ("model", "benchmark", "group", "score") if not rec[key]]
    if rec["group"] and rec["group"] not in GROUPS:
        problems.append(f"unknown group {rec['group']!r}: expected one of {', '.join(GROUPS)}"
                        f"{suggest(rec['group'], GROUPS)}")
    if rec["score"]:
        problems += _score_problems(rec["score"])
    if rec["model"] and rec["model"] == rec["base_model"]:
        problems.append(f"model {rec['model']!r} names itself as its base_model")
    return problems


def _score_problems(text: str) -> list[str]:
    try:
        value = float(text)
    except ValueError:
        return [f"score {text!r} is not a number"]
    if not math.isfinite(value):
        return [f"score {text!r} is not a finite number"]
    if not 0 <= value <= 100:
        return [f"score {text} is outside 0-100 (scores are percentages)"]
    return []


# -- lm-evaluation-harness ------------------------------------------------------------------------
def read_lm_eval(path: Path, model: str, base_model: str | None, method: str | None,
                 groups: dict[str, str], metric: str | None) -> ScoreTable:
    """One model's scores from an lm-eval results JSON (`results` -> task -> `metric,filter`).

    Tasks that are subtasks of a group in the file are skipped (the group's aggregate is kept);
    each task's group comes from `groups` (--group), the tix registry, then LM_EVAL_GROUPS.
    """
    results = _lm_eval_results(path)
    subtasks = {t for subs in (_load_json(path).get("group_subtasks") or {}).values() for t in subs}
    errors, scores = [], []
    for task, entry in results.items():
        if task in subtasks or not isinstance(entry, dict):
            continue
        row, problem = _lm_eval_row(task, entry, groups, metric)
        if problem:
            errors.append(f"{path}: task {task!r}: {problem}")
        else:
            scores.append({**row, "model": model})
    if not errors and not scores:
        errors.append(f"{path}: no task results found under `results`")
    if errors:
        raise ImportErrors(errors)
    entry = {"model": model, "base_model": base_model, "method": method, "position": None}
    return ScoreTable([entry], scores)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImportErrors([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportErrors([f"{path}: cannot read: {exc}"]) from None
    except ValueError as exc:
        raise ImportErrors([f"{path}: not valid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise ImportErrors([f"{path}: expected a JSON object with `results`"])
    return data


def _lm_eval_results(path: Path) -> dict[str, Any]:
    results = _load_json(path).get("results")
    if not isinstance(results, dict):
        raise ImportErrors([f"{path}: no `results` object: is this lm-eval's results_*.json?"])
    return results


def _lm_eval_row(task: str, entry: dict[str, Any], groups: dict[str, str],
                 metric: str | None) -> tuple[dict[str, Any], str | None]:
    key = metric if metric else next((k for k in LM_EVAL_METRICS if _number(entry.get(k))), None)
    if key is None or not _number(entry.get(key)):
        found = ", ".join(k for k in entry if _number(entry.get(k)) and "stderr" not in k) or "none"
        return {}, f"no metric {metric or 'known'!r} (numeric keys: {found}); pass --metric"
    group = groups.get(task) or lm_eval_group(task)
    if group is None:
        return {}, f"no group known; pass --group {task}=math|other|non"
    value = 100.0 * float(entry[key])
    if not 0 <= value <= 100:
        return {}, f"{key} = {entry[key]} is not a fraction in 0-1"
    return {"benchmark": task, "group": group, "value": value, "metric": key, "line": None}, None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def lm_eval_group(task: str) -> str | None:
    """A task's group: the tix benchmark registry by name, else the LM_EVAL_GROUPS patterns."""
    from engine.evaluation.benchmarks import REGISTRY

    if task in REGISTRY:
        return REGISTRY[task].group
    return next((g for pattern, g in LM_EVAL_GROUPS.items() if fnmatch.fnmatch(task, pattern)), None)


def parse_group_options(values: tuple[str, ...]) -> dict[str, str]:
    """`--group TASK=GROUP` options as a dict; raises ValueError with a one-line reason."""
    out = {}
    for text in values:
        task, sep, group = text.partition("=")
        if not sep or not task.strip() or group.strip() not in GROUPS:
            raise ValueError(f"--group {text!r}: expected TASK=GROUP with GROUP one of {', '.join(GROUPS)}")
        out[task.strip()] = group.strip()
    return out
