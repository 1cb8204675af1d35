"""Rows into items for benchmark files (engine.evaluation.benchfile): Jinja templates over a row.

A benchmark file names, per item key, a Jinja template or a field of the row: `id` a field,
`system` and `prompt` templates, `answer` a field or a template (markup `{{ }}` / `{% %}` makes
it a template), `choices` a field holding a list, a template whose text is a list (read as
lm-eval reads `doc_to_choice`), or a list of texts and templates. A template sees the row's
fields by name and the whole row as `row` (for names that are not identifiers:
`{{ row['Record ID'] }}`).

Templates run in Jinja's immutable sandbox (benchmark files are shared like data) with
StrictUndefined (a misspelt field must not render as an empty prompt that scores as wrong).
This module imports nothing of tix, so the benchmark registry (which renders the items) and
the benchmark-file checker (which renders the first row) both use it without a cycle; jinja2
loads on the first template compiled.
"""

from __future__ import annotations

import ast
import difflib
import functools
import json
import re
from collections.abc import Iterable
from typing import Any

_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")


class RowError(ValueError):
    """Why a row cannot be rendered: the item key, what went wrong, and the nearest field name."""

    def __init__(self, message: str, suggestion: str | None = None, key: str = "") -> None:
        self.key, self.message, self.suggestion = key, message, suggestion
        hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
        super().__init__(f"{key + ': ' if key else ''}{message}{hint}")


def is_template(text: str) -> bool:
    """`answer:` and `choices:` hold a field name unless they contain Jinja markup."""
    return "{{" in text or "{%" in text


@functools.lru_cache(maxsize=256)
def compiled(source: str) -> Any:
    """A template compiled once per process and rendered once per row; raises jinja2's
    TemplateSyntaxError for a template that does not compile."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined).from_string(source)


def render_item(templates: dict[str, Any], row: dict[str, Any], index: int) -> dict[str, Any]:
    """A row as an item: its fields plus `id` (the `id` field, else the position), `question`
    (the rendered prompt), `answer`, `system` and `choices`, and `index`. A list answer is
    several gold answers (`answers`, the first also as `answer`). Raises RowError."""
    made = {key: render_key(key, ref, row) for key, ref in templates.items()}
    item = {**row, "id": str(made.get("id", index)), "question": made["prompt"], "index": index}
    answer = made.get("answer", row.get("answer"))
    if isinstance(answer, list | tuple) and answer:
        item["answers"], answer = [str(a) for a in answer], answer[0]
    item["answer"] = None if answer is None else str(answer)
    if "system" in made:
        item["system"] = made["system"] or None
    if "choices" in made:
        item["choices"] = made["choices"]
    return item


def render_key(key: str, ref: Any, row: dict[str, Any]) -> Any:
    """One item value from a row; a failure is a RowError naming the key."""
    try:
        return render(key, ref, row)
    except RowError as exc:
        raise RowError(exc.message, exc.suggestion, key) from None


def render(key: str, ref: Any, row: dict[str, Any]) -> Any:
    """One item value: `id` is a field, `answer` a field or text, `choices` a list of texts,
    `system` and `prompt` text."""
    if key == "choices":
        return _choices(ref, row)
    if key == "id":
        return _field(ref, row, required=True)
    if key == "answer" and not is_template(ref):
        return _field(ref, row)
    return _text(ref, row)


def _field(name: str, row: dict[str, Any], required: bool = False) -> Any:
    if name not in row:
        raise RowError(f"no field '{name}'", _nearest(name, row))
    if required and row[name] in (None, ""):
        raise RowError(f"field '{name}' is empty")
    return row[name]


def _text(source: str, row: dict[str, Any]) -> str:
    try:
        return compiled(source).render({"row": row, **row})
    except Exception as exc:  # noqa: BLE001 - whatever a template raises is one line about the row
        found = _UNDEFINED.match(str(getattr(exc, "message", "") or ""))
        if found:
            raise RowError(f"'{found[1]}' is undefined", _nearest(found[1], row)) from None
        raise RowError(f"cannot render: {type(exc).__name__}: {exc}") from None


def _choices(ref: str | list[Any], row: dict[str, Any]) -> list[str]:
    if isinstance(ref, list):
        return [_text(c, row) if isinstance(c, str) and is_template(c) else str(c) for c in ref]
    value = _text(ref, row) if is_template(ref) else _field(ref, row)
    if isinstance(value, str):
        value = _literal_list(value)
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise RowError(f"expected a list of two choices or more, got {_short(value)}")
    return [str(choice) for choice in value]


def _literal_list(text: str) -> Any:
    """A Python or JSON list written as text (a rendered template, a CSV cell), else the text."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        try:
            return json.loads(text)
        except ValueError:
            return text


def _nearest(name: str, fields: Iterable[Any]) -> str | None:
    found = difflib.get_close_matches(name, sorted(str(f) for f in fields), n=1)
    return found[0] if found else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
