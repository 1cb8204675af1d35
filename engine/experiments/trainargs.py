"""The fields of the installed trl's `SFTConfig` and `GRPOConfig`, read without importing trl.

Experiment files pass `args:` straight to trl, so validation must know which fields the
installed version has and what types they take. Importing trl (and with it transformers and
torch) costs seconds, too slow for a CLI that checks a file on every keystroke of a TUI, so we
find the source files with `importlib.util.find_spec` (which does not import a top-level
package) and read the dataclass bodies with `ast`, following the base classes
(`SFTConfig` -> `_BaseConfig` -> transformers' `TrainingArguments`).

Annotations are reduced to a `FieldType`: the plain kinds a YAML value can have, plus
`Literal` values. Anything we cannot read (an enum, a config class) accepts any value, so that
an unusual annotation never turns a valid file into an invalid one.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

CONFIG_HOMES: dict[str, tuple[str, str, str]] = {
    "sft": ("trl", "trainer/sft_config.py", "SFTConfig"),
    "grpo": ("trl", "trainer/grpo_config.py", "GRPOConfig"),
}
"""Per method: the package, the file inside it and the config class."""

_KNOWN_HOMES: dict[str, tuple[str, str]] = {
    "TrainingArguments": ("transformers", "training_args.py"),
    "_BaseConfig": ("trl", "trainer/base_config.py"),
}
"""Where a base class lives when its import points at a lazy package `__init__`."""

_KINDS_BY_NAME = {
    "int": "int", "float": "float", "bool": "bool", "str": "str", "list": "list",
    "List": "list", "Sequence": "list", "tuple": "list", "dict": "dict", "Dict": "dict",
    "Mapping": "dict", "None": "none", "NoneType": "none", "Any": "any",
}
_UNIONS = {"Union", "Optional"}


@dataclass(frozen=True)
class FieldType:
    """What a field accepts: plain kinds ("int", "float", ..., "none", "any") and literals.

    `item` is the element type of a list, when the annotation says (`list[str]`).
    """

    kinds: frozenset[str] = frozenset({"any"})
    literals: tuple[Any, ...] = ()
    item: FieldType | None = None
    annotation: str = ""


ANY = FieldType()


def config_fields(method: str) -> dict[str, FieldType]:
    """Field name -> type of trl's config class for `method` ("sft" or "grpo").

    Raises RuntimeError when trl (or transformers) is not installed or its layout is not one
    we can read, and ValueError for an unknown method.
    """
    if method not in CONFIG_HOMES:
        raise ValueError(f"unknown training method {method!r}: expected one of {sorted(CONFIG_HOMES)}")
    return dict(_config_fields(method))


@cache
def _config_fields(method: str) -> dict[str, FieldType]:
    package, relpath, name = CONFIG_HOMES[method]
    return _class_fields(package_dir(package) / relpath, name)


@cache
def package_dir(package: str) -> Path:
    """The source folder of an installed top-level package, found without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.origin:
        raise RuntimeError(
            f"{package} is not installed in this Python environment ({sys.executable}): "
            "training arguments cannot be checked; install trl"
        )
    return Path(spec.origin).parent


@cache
def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise RuntimeError(f"cannot read {path}: {exc}") from exc


def _class_fields(path: Path, name: str) -> dict[str, FieldType]:
    """Fields of class `name` in `path`, bases first so that subclasses override them."""
    module = _parse(path)
    cls = _find_class(module, name)
    if cls is None:
        raise RuntimeError(f"class {name} not found in {path}: unsupported trl/transformers layout")
    fields: dict[str, FieldType] = {}
    for base in reversed(cls.bases):
        fields.update(_base_fields(path, module, base))
    for stmt in cls.body:
        if _is_field(stmt):
            fields[stmt.target.id] = _from_node(stmt.annotation)
    return fields


def _find_class(module: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in module.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _is_field(stmt: ast.stmt) -> bool:
    """An annotated class attribute is a dataclass field, unless it is a ClassVar."""
    if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
        return False
    node = stmt.annotation
    target = node.value if isinstance(node, ast.Subscript) else node
    return _name_of(target) != "ClassVar"


def _base_fields(path: Path, module: ast.Module, base: ast.expr) -> dict[str, FieldType]:
    """Fields contributed by one base class; `object`, `Generic[...]` and friends add none."""
    name = _name_of(base)
    if name is None or name in {"object", "Generic", "ABC"}:
        return {}
    if _find_class(module, name) is not None:
        return _class_fields(path, name)
    return _class_fields(*_locate_import(path, module, name))


def _locate_import(path: Path, module: ast.Module, name: str) -> tuple[Path, str]:
    """The file and class name that `name` was imported from in `module`."""
    for stmt in module.body:
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    source = _module_file(path, stmt.module, stmt.level)
                    if source is not None and _find_class(_parse(source), alias.name):
                        return source, alias.name
                    return _known_home(alias.name, path)
    return _known_home(name, path)


def _known_home(name: str, path: Path) -> tuple[Path, str]:
    if name not in _KNOWN_HOMES:
        raise RuntimeError(f"cannot find base class {name} used in {path}: unsupported layout")
    package, relpath = _KNOWN_HOMES[name]
    return package_dir(package) / relpath, name


def _module_file(path: Path, dotted: str | None, level: int) -> Path | None:
    """The source file of an import, relative (`from .x import`) or under trl/transformers."""
    parts = dotted.split(".") if dotted else []
    if level:
        folder = path.parent
        for _ in range(level - 1):
            folder = folder.parent
    elif parts and parts[0] in {"trl", "transformers"}:
        folder, parts = package_dir(parts[0]), parts[1:]
    else:
        return None
    target = folder.joinpath(*parts)
    for candidate in (target.with_suffix(".py") if parts else None, target / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _name_of(node: ast.expr) -> str | None:
    """`X` for `X` and for `mod.X`; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


INTEGRATIONS_HOME = ("transformers", "integrations/integration_utils.py", "INTEGRATION_TO_CALLBACK")
"""Where transformers maps each `report_to` name to its callback (the names it accepts)."""

REPORT_TO_WORDS = ("none", "all")
"""`report_to` values that name no integration: nothing (tix's default), or every installed one."""


@cache
def report_integrations() -> tuple[str, ...]:
    """The tracker names the installed transformers accepts in `report_to` (wandb, tensorboard,
    mlflow, trackio, ...), read from its source: the keys of `INTEGRATION_TO_CALLBACK`.

    Raises RuntimeError when transformers is missing or the mapping is not where we look."""
    package, relpath, name = INTEGRATIONS_HOME
    path = package_dir(package) / relpath
    for stmt in _parse(path).body:
        if _assigns(stmt, name) and isinstance(stmt.value, ast.Dict):
            keys = [k for k in stmt.value.keys if isinstance(k, ast.Constant)]
            return tuple(k.value for k in keys if isinstance(k.value, str))
    raise RuntimeError(f"{name} not found in {path}: unsupported transformers layout")


def _assigns(stmt: ast.stmt, name: str) -> bool:
    """Whether `stmt` is `name = ...` or `name: T = ...` at module level."""
    if isinstance(stmt, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets)
    return isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name


def unknown_integrations(value: Any) -> list[str]:
    """The names in a `report_to` value (a name or a list of names) transformers does not know."""
    names = [value] if isinstance(value, str) else list(value or [])
    known = set(report_integrations())
    if len(names) > 1:  # "none" and "all" only make sense alone
        return [n for n in names if n not in known]
    return [n for n in names if n not in known and n not in REPORT_TO_WORDS]


def field_type(annotation: str) -> FieldType:
    """The FieldType of an annotation written as source text, e.g. "int | None"."""
    try:
        return _from_node(ast.parse(annotation, mode="eval").body)
    except SyntaxError:
        return ANY


def _from_node(node: ast.expr) -> FieldType:
    text = ast.unparse(node)
    kinds, literals, item = _collect(node)
    return FieldType(frozenset(kinds), tuple(literals), item, text)


def _collect(node: ast.expr) -> tuple[set[str], list[Any], FieldType | None]:
    """Kinds, literal values and list item type of one annotation node (unions flattened)."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):  # a string annotation: "int | None"
            parsed = field_type(node.value)
            return set(parsed.kinds), list(parsed.literals), parsed.item
        return ({"none"} if node.value is None else {"any"}), [], None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _merge([node.left, node.right])
    if isinstance(node, ast.Subscript):
        return _collect_subscript(node)
    return {_KINDS_BY_NAME.get(_name_of(node) or "", "any")}, [], None


def _collect_subscript(node: ast.Subscript) -> tuple[set[str], list[Any], FieldType | None]:
    name = _name_of(node.value) or ""
    args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    if name in _UNIONS:
        kinds, literals, item = _merge(args)
        return (kinds | {"none"} if name == "Optional" else kinds), literals, item
    if name == "Literal":
        values = [a.value for a in args if isinstance(a, ast.Constant)]
        return (set() if len(values) == len(args) else {"any"}), values, None
    kind = _KINDS_BY_NAME.get(name, "any")
    item = _from_node(args[0]) if kind == "list" and name != "tuple" else None
    return {kind}, [], item


def _merge(nodes: list[ast.expr]) -> tuple[set[str], list[Any], FieldType | None]:
    kinds: set[str] = set()
    literals: list[Any] = []
    item = None
    for node in nodes:
        more_kinds, more_literals, more_item = _collect(node)
        kinds |= more_kinds
        literals += more_literals
        item = item or more_item
    return kinds, literals, item


def check_value(ftype: FieldType, value: Any) -> str | None:
    """None when `value` fits `ftype`, else what was expected ("a number", "an integer or null").

    An int is fine for a float field; a bool is not an int (YAML `true` for `num_train_epochs`
    is a mistake, even though Python would accept it).
    """
    if "any" in ftype.kinds or _fits(ftype, value):
        return None
    return describe(ftype)


def _fits(ftype: FieldType, value: Any) -> bool:
    if any(type(value) is type(lit) and value == lit for lit in ftype.literals):
        return True
    kind = _kind_of(value)
    if kind == "int" and "float" in ftype.kinds:
        return True
    if kind == "list" and "list" in ftype.kinds and ftype.item is not None:
        return all(check_value(ftype.item, v) is None for v in value)
    return kind in ftype.kinds


def _kind_of(value: Any) -> str:
    """The FieldType kind of a plain YAML value."""
    if value is None:
        return "none"
    for kind, python_type in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, python_type):
            return kind
    if isinstance(value, (list, tuple)):
        return "list"
    return "dict" if isinstance(value, dict) else "other"


_DESCRIPTIONS = {
    "bool": "true or false", "str": "a string", "list": "a list",
    "dict": "a mapping", "none": "null",
}


def describe(ftype: FieldType) -> str:
    """Human words for a FieldType, used in error messages: "an integer or null"."""
    words = []
    if "float" in ftype.kinds:
        words.append("a number")
    elif "int" in ftype.kinds:
        words.append("an integer")
    for kind in ("bool", "str", "list", "dict"):
        if kind in ftype.kinds:
            words.append(_list_words(ftype) if kind == "list" else _DESCRIPTIONS[kind])
    words += [_literal_word(v) for v in ftype.literals]
    if "none" in ftype.kinds:
        words.append("null")
    return _join_or(words) or "anything"


def _list_words(ftype: FieldType) -> str:
    if ftype.item is None or "any" in ftype.item.kinds:
        return "a list"
    return f"a list (each {describe(ftype.item)})"


def _literal_word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _join_or(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]
