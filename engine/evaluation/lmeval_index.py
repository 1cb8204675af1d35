"""lm-eval's task index, light: names, kinds and output types, without loading any dataset.

`tix check` resolves `{lm_eval: TASK}` entries here (did-you-mean over every task, group and
tag the installed lm-eval ships plus the entry's `include_path`), refuses perplexity tasks
(`loglikelihood_rolling`) in one line, and the planner hashes the task's files into the run id.

lm-eval's own `TaskIndex` reads ~15,000 YAML files (about 6 s here), so the index of the
installed lm-eval's tasks is cached in `TIX_HOME/cache/lm-eval-index-<version>.json` (it only
changes with lm-eval's version); a user's `include_path` is indexed afresh each time, as it
is small and may have just been edited. Imports `lm_eval.tasks` (and with it `datasets`), never
torch.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PERPLEXITY = "loglikelihood_rolling"


class LmEvalError(ValueError):
    """An lm-eval task that cannot be used as asked; the message is one line."""


@dataclass(frozen=True)
class TaskInfo:
    """One name of the index: a task, a group (of tasks) or a tag."""

    name: str
    kind: str  # task | group | tag | python
    yaml: str | None
    output_type: str | None = None
    children: tuple[str, ...] = ()  # a group's or tag's members (names)


@cache
def lm_eval_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:
        return "missing"


def index(include_path: str | None = None, home: Path | None = None) -> dict[str, TaskInfo]:
    """Every name lm-eval would resolve: the installed tasks, then `include_path` over them."""
    found = dict(_default_index(home))
    if include_path:
        folder = Path(include_path)
        if not folder.is_dir():
            raise LmEvalError(f"include_path {include_path}: no such folder")
        found.update(_build([folder]))
    return found


def _default_index(home: Path | None) -> dict[str, TaskInfo]:
    path = _cache_path(home)
    if path is not None and path.is_file():
        try:
            return {k: TaskInfo(**{**v, "children": tuple(v["children"])})
                    for k, v in json.loads(path.read_text()).items()}
        except (ValueError, TypeError, KeyError):
            pass
    from lm_eval import tasks

    built = _build([Path(tasks.__file__).parent])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({k: v.__dict__ for k, v in built.items()}))
        tmp.replace(path)
    return built


def _cache_path(home: Path | None) -> Path | None:
    home = home or Path(os.environ.get("TIX_HOME") or Path.home() / ".tix")
    return home / "cache" / f"lm-eval-index-{lm_eval_version()}.json"


def _build(paths: list[Path]) -> dict[str, TaskInfo]:
    import logging

    from lm_eval.tasks._index import Kind, TaskIndex

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    kinds = {Kind.TASK: "task", Kind.PY_TASK: "python", Kind.GROUP: "group", Kind.TAG: "tag"}
    out = {}
    for name, entry in TaskIndex.build(paths).items():
        cfg = entry.cfg or {}
        members = cfg.get("task") if entry.kind == Kind.GROUP else sorted(entry.tags)
        out[name] = TaskInfo(name, kinds.get(entry.kind, "unknown"),
                             str(entry.yaml_path) if entry.yaml_path else None, cfg.get("output_type"),
                             tuple(_member_name(m) for m in members or ()))
    return out


def _member_name(member: Any) -> str:
    if isinstance(member, dict):
        return str(member.get("task") or member.get("group") or "")
    return str(member)


def resolve(name: str, include_path: str | None = None, home: Path | None = None) -> TaskInfo:
    """The index entry of `name`, or a one-line error with the nearest names."""
    found = index(include_path, home)
    if name in found:
        return found[name]
    near = difflib.get_close_matches(name, found, n=3)
    hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
    where = f" or in {include_path}" if include_path else ""
    raise LmEvalError(f"unknown lm-eval task '{name}'{hint}: not in lm-eval {lm_eval_version()}'s tasks"
                      f"{where}; `tix benchmarks --lm-eval` lists them")


def leaves(info: TaskInfo, found: dict[str, TaskInfo]) -> list[TaskInfo]:
    """The tasks a name stands for (a group's or tag's members, recursively)."""
    if info.kind in ("task", "python"):
        return [info]
    out: list[TaskInfo] = []
    for child in info.children:
        if child in found and found[child] is not info:
            out.extend(leaves(found[child], found))
    return out


def check(name: str, include_path: str | None = None, home: Path | None = None) -> TaskInfo:
    """`resolve`, then refuse what tix cannot evaluate (perplexity tasks), in one line."""
    found = index(include_path, home)
    info = resolve(name, include_path, home)
    rolling = [t.name for t in leaves(info, found) if t.output_type == PERPLEXITY]
    if rolling:
        raise LmEvalError(f"lm-eval task '{rolling[0]}' is a perplexity task ({PERPLEXITY}), which tix "
                          "does not evaluate; run it with lm_eval directly")
    return info


def task_hash(name: str, include_path: str | None = None, home: Path | None = None) -> str:
    """A hash of every file the task reads: its YAMLs (with their includes), the Python files
    beside them, and local data files, so an edited task or data set is a new run."""
    found = index(include_path, home)
    info = resolve(name, include_path, home)
    files: set[Path] = set()
    for item in [info, *leaves(info, found)]:
        if item.yaml:
            files |= _task_files(Path(item.yaml), include_path)
    digest = hashlib.sha256(lm_eval_version().encode())
    for file in sorted(files):
        digest.update(str(file).encode())
        digest.update(file.read_bytes() if file.is_file() else b"")
    return digest.hexdigest()[:16]


def _task_files(yaml_path: Path, include_path: str | None) -> set[Path]:
    from lm_eval.tasks._yaml_loader import load_yaml

    files = {yaml_path, *yaml_path.parent.glob("*.py")}
    try:
        raw = load_yaml(yaml_path, resolve_func=False, recursive=False)
        full = load_yaml(yaml_path, resolve_func=False)
    except Exception:  # noqa: BLE001 - an unreadable YAML is lm-eval's to report when it loads
        return files
    includes = raw.get("include") or []
    for inc in [includes] if isinstance(includes, str) else includes:
        path = (yaml_path.parent / inc).resolve()
        if path.is_file() and path not in files:
            files |= _task_files(path, include_path)
    return files | _data_files(full, include_path)


def dataset_path(info: TaskInfo) -> str | None:
    """The task's `dataset_path` (an HF id, or `json` for local files), read from its YAML."""
    from lm_eval.tasks._yaml_loader import load_yaml

    if not info.yaml:
        return None
    try:
        return load_yaml(Path(info.yaml), resolve_func=False).get("dataset_path")
    except Exception:  # noqa: BLE001 - unreadable: lm-eval reports it when it loads the task
        return None


def _data_files(cfg: dict[str, Any], include_path: str | None) -> set[Path]:
    """Local `dataset_kwargs.data_files` (relative ones are read from `include_path`, where the
    worker runs lm-eval)."""
    spec = (cfg.get("dataset_kwargs") or {}).get("data_files")
    values = spec.values() if isinstance(spec, dict) else [spec] if spec else []
    names = [v for value in values for v in ([value] if isinstance(value, str) else value or [])]
    base = Path(include_path) if include_path else Path.cwd()
    paths = {(base / name).resolve() for name in names if isinstance(name, str)}
    return {p for p in paths if p.is_file()}


def listing(include_path: str | None = None, home: Path | None = None) -> list[dict[str, Any]]:
    """Rows for `tix benchmarks --lm-eval`: name, kind, output type, where it is defined."""
    found = index(include_path, home)
    return [{"name": t.name, "kind": t.kind, "output_type": t.output_type or "",
             "source": f"lm-eval:{t.yaml}" if t.yaml else f"lm-eval tag ({len(t.children)} tasks)"}
            for t in sorted(found.values(), key=lambda t: t.name)]
