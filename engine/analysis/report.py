"""Rows rendered as a terminal table, CSV, Markdown, LaTeX or JSON: one renderer for every command.

`tix sql`, `tix ti`, `tix shift`, `tix flips` and `tix health` all print through `render`, so a
table pasted into a paper (`--format latex`) or a notebook (`--format csv`) looks the same
whichever command made it. Floats are rounded to `digits` in the human formats (table, md,
latex) and kept whole in csv and json; NaN prints as `nan` for humans and `null` in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

FORMATS = ("table", "csv", "md", "latex", "json")
MAX_CELL = 60


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, digits: int | None = None) -> str:
    """The rows in format `fmt`; `digits` rounds floats in table, md and latex (None: as they are)."""
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](list(columns), [list(r) for r in rows], digits)


SIGNIFICANT = 6
"""Significant digits of a float in a grid: enough to compare scores, never 17 digits of noise."""


def readable_number(value: float) -> str:
    """A float for a human: 6 significant digits with trailing zeros dropped (57.99999999999999 ->
    58, 0.123456789 -> 0.123457), the integer part whole (1234567.891 -> 1234568), scientific
    notation only for the very small and very large."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -4 or magnitude >= 15:
        return f"{value:.{SIGNIFICANT - 1}e}"
    text = f"{value:.{max(0, SIGNIFICANT - 1 - magnitude)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def cell(value: Any, digits: int | None = None, limit: int | None = MAX_CELL) -> str:
    """One value as text for a human: None empty, floats rounded, long text cut with `...`."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and digits is not None:
        text = f"{value:.{digits}f}"
    else:
        text = value if isinstance(value, str) else json.dumps(value)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def table(columns: list[str], rows: Iterable[list[Any]], digits: int | None = None) -> str:
    """Space-aligned columns under a dashed rule (numbers left-aligned like everything else)."""
    cells = [[cell(v, digits) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def to_csv(columns: list[str], rows: list[list[Any]], digits: int | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_csv_cell(v) for v in r] for r in rows])
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (str, int, float)):
        return value
    return json.dumps(value)


def markdown(columns: list[str], rows: list[list[Any]], digits: int | None = None) -> str:
    """A GitHub table; numeric columns right-aligned, `|` escaped."""
    align = ["---:" if _numeric(rows, i) else "---" for i in range(len(columns))]
    lines = ["| " + " | ".join(_md(c) for c in columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md(cell(v, digits, None)) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}"}


def latex(columns: list[str], rows: list[list[Any]], digits: int | None = None) -> str:
    """A booktabs tabular (\\usepackage{booktabs}); numeric columns right-aligned."""
    spec = "".join("r" if _numeric(rows, i) else "l" for i in range(len(columns)))
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(tex(c) for c in columns) + r" \\",
             "\\midrule"]
    lines += [" & ".join(tex(cell(v, digits, None)) for v in r) + r" \\" for r in rows]
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"])


def tex(text: str) -> str:
    """LaTeX-escaped text; `->` (base -> model cells) becomes an arrow."""
    parts = text.split("->")
    return r" $\to$ ".join("".join(LATEX_SPECIALS.get(ch, ch) for ch in p).strip() for p in parts)


def _numeric(rows: list[list[Any]], i: int) -> bool:
    values = [r[i] for r in rows if r[i] is not None and r[i] != ""]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def to_json(columns: list[str], rows: list[list[Any]], digits: int | None = None) -> str:
    return dumps([dict(zip(columns, r, strict=True)) for r in rows])


def dumps(value: Any) -> str:
    """Strict JSON (NaN and infinities become null), indented like the rest of tix's output."""
    return json.dumps(clean(value), indent=1)


def clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


RENDERERS: dict[str, Callable[[list[str], list[list[Any]], int | None], str]] = {
    "table": table, "csv": to_csv, "md": markdown, "latex": latex, "json": to_json,
}
