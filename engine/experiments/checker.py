"""The machinery that checks a hand-written YAML file strictly: values built from the node tree
with the line of every key and value, strict sections with defaults, did-you-mean hints, and
one line per problem as `FILE:LINE: KEY.PATH: MESSAGE (did you mean 'x'?)`.

Experiment files (engine.experiments.spec) and benchmark files (engine.evaluation.benchfile)
are checked by subclasses of `_Checker`, which define `check(top)` for their own schema. This
module imports neither of them (the experiment checker names benchmark files, and benchmark
files are checked like experiments), so neither depends on the other through it.

PyYAML's `safe_load` forgets line numbers and silently keeps the last of two duplicate keys,
so we `yaml.compose` the node tree and build the Python values ourselves.

    text, error = _read(path)              # error: a SpecError, or None
    root, error = _compose(text, path)
    checker = MyChecker(path, folder)      # subclasses _Checker, defines check(top)
    values = checker.run(root)             # checker.errors: every problem
"""

from __future__ import annotations

import copy
import datetime
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCI_FLOAT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")
_HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_LOCAL_PREFIXES = ("/", "./", "../", "~")
_MAX_NODES = 100_000
"""Values built per file; bounds alias expansion ("billion laughs") to a clear error."""


# ── errors ─────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SpecError:
    """One problem in a checked file (experiment or benchmark), at a 1-based line and a dotted key path."""

    file: str
    line: int
    path: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        """Exactly one line, `FILE:LINE: KEY.PATH: MESSAGE (did you mean 'x'?)`."""
        where = f"{self.path}: " if self.path else ""
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return " ".join(f"{self.file}:{self.line}: {where}{self.message}{hint}".splitlines())


class SpecErrors(Exception):
    """Every problem found in one file, so the user fixes them in one pass."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors: list[SpecError] = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class _Problem(NamedTuple):
    message: str
    suggestion: str | None = None


class _TooLarge(Exception):
    """Raised when building values exceeds `_MAX_NODES`."""


def _read(path: str) -> tuple[str, SpecError | None]:
    """The file's text, or the one error that says why it cannot be read."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return "", SpecError(path, 1, "", "file not found")
    except IsADirectoryError:
        return "", SpecError(path, 1, "", "is a directory, expected an experiment YAML file")
    except OSError as exc:
        return "", SpecError(path, 1, "", f"cannot read file: {exc.strerror or exc}")
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return "", SpecError(path, line, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")


def _compose(text: str, filename: str) -> tuple[Node | None, SpecError | None]:
    """The YAML node tree, or an error for text that is not YAML or holds no experiment."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, SpecError(filename, line, "", f"not valid YAML: {_yaml_problem(exc)}")
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return None, SpecError(filename, line, "", f"not valid YAML: character #x{code:04x} is not allowed")
    except yaml.YAMLError as exc:
        return None, SpecError(filename, 1, "", f"not valid YAML: {exc}")
    except RecursionError:
        return None, SpecError(filename, 1, "", "not valid YAML: nested too deeply")
    if root is None or (root.tag == _NULL_TAG and root.value == ""):
        return None, SpecError(filename, 1, "", "empty experiment file")
    if not isinstance(root, MappingNode):
        got = "a list" if isinstance(root, SequenceNode) else repr(root.value)
        return None, SpecError(filename, _line(root), "", f"expected a mapping at the top level, got {got}")
    return root, None


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem and context as one phrase, e.g. "... (while parsing a flow sequence at line 2)"."""
    problem, context = exc.problem or "syntax error", exc.context
    if not context:
        return problem
    if problem.startswith("but "):  # "expected a single document in the stream, but found another document"
        return f"{context}, {problem}"
    where = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
    return f"{problem} ({context}{where})"


def _line(node: Node) -> int:
    return node.start_mark.line + 1


# ── small value checks: each returns None or the problem ───────────────────────────────────

Check = Callable[[Any], _Problem | None]


def _is_int(value: Any) -> bool:
    """YAML `true` is a bool, and a bool is never an integer here."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _show(value: Any) -> str:
    """A value as the user wrote it, short enough for a one-line message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, datetime.date):  # YAML reads an unquoted 2024-01-01 as a date
        return f"the date {value} (quote it for a string)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _expected(what: str, value: Any) -> _Problem:
    return _Problem(f"expected {what}, got {_show(value)}")


def _string(value: Any) -> _Problem | None:
    return None if isinstance(value, str) else _expected("a string", value)


def _mapping_check(value: Any) -> _Problem | None:
    return None if isinstance(value, dict) else _expected("a mapping", value)


def _boolean(value: Any) -> _Problem | None:
    return None if isinstance(value, bool) else _expected("true or false", value)


def _bounds_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if hi is None:
        return f"> {lo}" if lo_open else f">= {lo}"
    if lo is None:
        return f"< {hi}" if hi_open else f"<= {hi}"
    return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _within(value: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    above = lo is None or (value > lo if lo_open else value >= lo)
    below = hi is None or (value < hi if hi_open else value <= hi)
    return above and below


def _number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False, integer: bool = False) -> Check:
    """A check for an integer or any number, optionally within bounds."""

    def check(value: Any) -> _Problem | None:
        if not (_is_int(value) if integer else _is_number(value)):
            return _expected("an integer" if integer else "a number", value)
        if not _within(value, lo, hi, lo_open, hi_open):
            return _Problem(f"must be {_bounds_text(lo, hi, lo_open, hi_open)}, got {value}")
        return None

    return check


def _integer(minimum: int | None = None) -> Check:
    return _number(minimum, integer=True)


def _suggest(word: str, options: Iterable[str]) -> str | None:
    """The nearest valid name, for "did you mean" hints."""
    matches = difflib.get_close_matches(word, sorted(options), n=1)
    return matches[0] if matches else None


def _choice(options: Iterable[str], what: str) -> Check:
    """A check for one of a fixed set of names, suggesting the nearest on a typo."""
    valid = tuple(options)

    def check(value: Any) -> _Problem | None:
        if not isinstance(value, str):
            return _expected("a string", value)
        if value not in valid:
            message = f"unknown {what} '{value}': expected one of {', '.join(valid)}"
            return _Problem(message, _suggest(value, valid))
        return None

    return check


def _any(value: Any) -> _Problem | None:
    return None


def _strings(value: Any) -> _Problem | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return None
    return _expected("a list of non-empty strings", value)


# ── paths ──────────────────────────────────────────────────────────────────────────────────


def _exists(path: Path) -> bool:
    """Path.exists, but a name the OS rejects (too long, NUL byte) simply does not exist."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _resolve(ref: str, folder: Path) -> Path:
    path = Path(ref).expanduser()
    return (path if path.is_absolute() else folder / path).resolve()


def _local_path(ref: str, folder: Path) -> Path | None:
    """The path `ref` names: explicit (`./x`, `/x`, `~/x`) or a bare name that exists."""
    if ref.startswith(_LOCAL_PREFIXES):
        return _resolve(ref, folder)
    if ref and _exists(folder / ref):
        return _resolve(ref, folder)
    return None


# ── the schema ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Field:
    """One key of a mapping: how to check it, its default, and whether ints become floats."""

    check: Check = _any
    default: Any = None
    required: bool = False
    to_float: bool = False


_POSITIVE = _integer(1)
#: Unset sampling keys stay None: each benchmark then uses its own default (AIME avg@10 ...).
_GENERATION = {
    "max_new_tokens": _Field(_POSITIVE),
    "temperature": _Field(_number(0), to_float=True),
    "top_p": _Field(_number(0, 1, lo_open=True), to_float=True),
    "n": _Field(_POSITIVE),
    "enable_thinking": _Field(_boolean, False),
    "seed": _Field(_integer(), 0),
    "stop": _Field(_strings),
}


def _dotted(path: KeyPath) -> str:
    """("eval", "benchmarks", 1, "name") -> "eval.benchmarks[1].name"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# ── the checker ────────────────────────────────────────────────────────────────────────────


class _Checker:
    """Builds the values of one file from its YAML nodes, then validates them section by section
    (`check`, which a subclass defines for its file's schema).

    `lines` maps each key path to (line of the key, line of its value), so any later error can
    point at the right place; a missing key points at the mapping that lacks it.
    """

    def __init__(self, filename: str, folder: Path) -> None:
        self.file = filename
        self.folder = folder
        self.errors: list[SpecError] = []
        self.lines: dict[KeyPath, tuple[int, int]] = {}
        self.unreadable: set[KeyPath] = set()
        self.constructor = yaml.constructor.SafeConstructor()
        self.budget = _MAX_NODES

    # reporting

    def error(self, path: KeyPath, message: str, suggestion: str | None = None, *,
              at_value: bool = False) -> None:
        """Report at the key's line, or its value's line for a wrong value (never twice per value)."""
        if path in self.unreadable:
            return
        known = path
        while known not in self.lines:
            known = known[:-1]
        key_line, value_line = self.lines[known]
        line = value_line if at_value and known == path else key_line
        self.errors.append(SpecError(self.file, line, _dotted(path), message, suggestion))

    def problem(self, path: KeyPath, problem: _Problem) -> None:
        self.error(path, problem.message, problem.suggestion, at_value=True)

    # building values from nodes

    def run(self, root: MappingNode) -> dict[str, Any]:
        self.lines[()] = (_line(root), _line(root))
        try:
            value = self.build(root, ())
        except (_TooLarge, RecursionError):
            self.error((), "too many values (aliases expanding?) or nested too deeply")
            return {}
        return self.check(value)

    def check(self, top: dict[str, Any]) -> dict[str, Any]:
        """The file's values, checked, with defaults filled in; errors go to `self.errors`."""
        raise NotImplementedError

    def build(self, node: Node, path: KeyPath) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooLarge
        if isinstance(node, MappingNode):
            return self.build_mapping(node, path)
        if isinstance(node, SequenceNode):
            return self.build_sequence(node, path)
        return self.build_scalar(node, path)

    def build_sequence(self, node: SequenceNode, path: KeyPath) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = (_line(item), _line(item))
            items.append(self.build(item, (*path, index)))
        return items

    def build_mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        """Keys must be strings and unique; a duplicate is reported and its value ignored."""
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.build_key(key_node, path)
            if key is None:
                continue
            if key in values:
                first = self.lines[(*path, key)][0]
                message = f"duplicate key '{key}' (first at line {first})"
                self.errors.append(SpecError(self.file, _line(key_node), _dotted((*path, key)), message))
                continue
            self.lines[(*path, key)] = (_line(key_node), _line(value_node))
            values[key] = self.build(value_node, (*path, key))
        return values

    def build_key(self, node: Node, path: KeyPath) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _STR_TAG:
            return node.value
        if node.tag == _MERGE_TAG:
            message = "merge keys (<<) are not supported; repeat the keys instead"
        elif isinstance(node, ScalarNode):
            message = f"keys must be strings, got {node.value!r} (quote it)"
        else:
            kind = "list" if isinstance(node, SequenceNode) else "mapping"
            message = f"keys must be strings, got a {kind}"
        self.errors.append(SpecError(self.file, _line(node), _dotted(path), message))
        return None

    def build_scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        """YAML 1.1 scalars, except that plain `1e-5` is a float (PyYAML would make it a string)."""
        if node.tag == _STR_TAG and node.style is None and _SCI_FLOAT.match(node.value):
            return float(node.value)
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            self.error(path, f"cannot read value: {getattr(exc, 'problem', None) or exc}", at_value=True)
            self.unreadable.add(path)
            return None

    # generic validation

    def mapping(self, path: KeyPath, value: Any, allowed: Iterable[str] | None) -> dict[str, Any] | None:
        """`value` if it is a mapping (reporting keys not in `allowed`), else None."""
        if not isinstance(value, dict):
            self.problem(path, _expected("a mapping", value))
            return None
        if allowed is not None:
            valid = tuple(allowed)
            for key in value:
                if key not in valid:
                    self.unknown_key((*path, key), key, valid)
        return value

    def unknown_key(self, path: KeyPath, key: str, valid: tuple[str, ...]) -> None:
        suggestion = _suggest(key, valid)
        message = f"unknown key '{key}'" + ("" if suggestion else f" (valid keys: {', '.join(valid)})")
        self.error(path, message, suggestion)

    def section(self, path: KeyPath, value: Any, fields: dict[str, _Field],
                extra: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """A mapping of simple fields, defaults filled; `extra` keys are the caller's to check."""
        found = self.mapping(path, value, (*fields, *extra))
        if found is None:
            return None
        return {key: self.field((*path, key), found, key, spec) for key, spec in fields.items()}

    def field(self, path: KeyPath, found: dict[str, Any], key: str, spec: _Field) -> Any:
        if key not in found:
            if spec.required:
                self.error(path, f"missing required key '{key}'")
            return copy.deepcopy(spec.default)
        value = found[key]
        problem = spec.check(value)
        if problem is not None:
            self.problem(path, problem)
        return float(value) if spec.to_float and _is_int(value) else value


    def scorer_ref(self, value: Any) -> _Problem | None:
        """A registered scorer's name, or a plugin `file.py:function` / `package.module:function`."""
        from engine.evaluation.scorers import plugin
        from engine.evaluation.scorers.names import SCORER_NAMES

        if isinstance(value, str) and plugin.is_plugin(value):
            found = plugin.problem(value, self.folder)
            return None if found is None else _Problem(found)
        problem = _choice(SCORER_NAMES, "scorer")(value)
        if problem is not None and isinstance(value, str):
            return _Problem(f"{problem.message}, or a plugin path.py:function", problem.suggestion)
        return problem
