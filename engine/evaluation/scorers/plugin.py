"""Scorer plugins: a user's function `(completion: str, item: dict) -> verdict` as a tix scorer.

Named `path/to/file.py:function` (a file, made absolute by the planner relative to the
experiment or benchmark file) or `package.module:function` (importable in the worker). The
function returns a bool, a number in [0, 1], or a pair `(verdict, extracted_answer)`; it may
also return a `Verdict`. Loading happens in the worker (never in the daemon or the TUI); the
file's SHA-256 is part of the run id (engine.experiments.plan), so an edited scorer is a new run.

An exception inside the function never kills the run: that item becomes an error sample
(verdict 0, flag `scorer_error`, the message in its `detail.error`) and the run's log says how
many items errored. Errored items count as wrong in the score, so two models stay compared on
the same items.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.evaluation.scorers.base import SCORER_ERROR, Scorer, Verdict, mean_metrics

PLUGIN = re.compile(r"^(?P<target>[^:]+):(?P<function>[A-Za-z_]\w*)$")


class PluginError(ValueError):
    """A scorer plugin that cannot be found or loaded; the message is one line."""


def is_plugin(name: str) -> bool:
    """`file.py:function` or `package.module:function` (registered names have no colon)."""
    return bool(PLUGIN.match(name))


def split(name: str) -> tuple[str, str]:
    match = PLUGIN.match(name)
    if match is None:
        raise PluginError(f"scorer plugin '{name}': expected path.py:function or package.module:function")
    return match["target"], match["function"]


def is_file_target(target: str) -> bool:
    return target.endswith(".py")


def problem(name: str, folder: Path) -> str | None:
    """What is wrong with a plugin reference, checked without running the user's code: the file
    exists and defines the function (read with `ast`), or the module can be found."""
    target, function = split(name)
    if is_file_target(target):
        path = (folder / Path(target).expanduser()).resolve()
        if not path.is_file():
            return f"scorer file not found: {path}"
        try:
            tree = ast.parse(path.read_text(), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            return f"{path}: cannot parse ({exc})"
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        names = defined | {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                           if isinstance(t, ast.Name)}
        return None if function in names else f"{path} defines no function '{function}'"
    try:
        found = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        found = None
    return None if found is not None else f"scorer module '{target}' cannot be imported"


def file_hash(name: str) -> str | None:
    """SHA-256 (16 hex digits) of a file plugin's source; None for a module plugin."""
    target, _ = split(name)
    path = Path(target)
    if not is_file_target(target) or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load(name: str) -> Scorer:
    """The plugin as a registered-like `Scorer`, its version the file's hash (or 'module')."""
    target, function = split(name)
    module = _load_file(Path(target)) if is_file_target(target) else _import(target)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise PluginError(f"scorer plugin '{name}': no function '{function}' in {target}")
    return Scorer(name, file_hash(name) or "module", _guarded(fn), mean_metrics,
                  (fn.__doc__ or "").strip().split("\n")[0])


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise PluginError(f"scorer file not found: {path}")
    module_name = f"tix_scorer_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"scorer file {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module failing at import is one line
        raise PluginError(f"scorer file {path} failed to load ({type(exc).__name__}: {exc})") from None
    return module


def _import(target: str) -> Any:
    try:
        return importlib.import_module(target)
    except Exception as exc:  # noqa: BLE001 - as above
        message = f"{type(exc).__name__}: {exc}"
        raise PluginError(f"scorer module '{target}' failed to import ({message})") from None


def _guarded(fn: Callable[..., Any]) -> Callable[[str, dict[str, Any]], Verdict]:
    """The user's function, its return value made a Verdict and its exceptions an error sample."""

    def score(completion: str, item: dict[str, Any]) -> Verdict:
        try:
            return to_verdict(fn(completion, item))
        except Exception as exc:  # noqa: BLE001 - a plugin's bug fails the item, never the run
            message = f"{type(exc).__name__}: {exc}"
            return Verdict(0.0, None, [SCORER_ERROR], {}, {"error": message[:2000]})

    return score


def to_verdict(value: Any) -> Verdict:
    """bool, a number in [0, 1], (verdict, extracted) or a Verdict; anything else is an error."""
    if isinstance(value, Verdict):
        return value
    extracted = None
    if isinstance(value, tuple) and len(value) == 2:
        value, extracted = value
    unit = isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0
    if isinstance(value, bool) or unit:
        score = float(value)
    else:
        raise TypeError(f"a scorer returns a bool or a number in [0, 1] (optionally with the extracted "
                        f"answer), got {value!r:.80}")
    return Verdict(score, None if extracted is None else str(extracted))
