"""The shared renderer: the same rows as a table, CSV, Markdown, LaTeX and strict JSON."""

from __future__ import annotations

import json

import pytest

from engine.analysis.report import FORMATS, render

COLUMNS = ["model", "group", "score", "ok"]
ROWS = [["a|b", "math_x", 12.345, True], ["c & d", "50%", float("nan"), False], ["e", None, None, None]]


def test_table_rounds_only_when_asked() -> None:
    assert render(COLUMNS, ROWS, "table", digits=1).splitlines() == [
        "model  group   score  ok",
        "-----  ------  -----  -----",
        "a|b    math_x  12.3   true",
        "c & d  50%     nan    false",
        "e",
    ]
    assert "12.345" in render(COLUMNS, ROWS, "table")


def test_csv_keeps_full_numbers_and_booleans() -> None:
    assert render(COLUMNS, ROWS, "csv").splitlines() == [
        "model,group,score,ok", "a|b,math_x,12.345,true", "c & d,50%,nan,false", "e,,,"]


def test_markdown_escapes_pipes_and_right_aligns_numbers() -> None:
    lines = render(COLUMNS, ROWS, "md", digits=2).splitlines()
    assert lines[:3] == ["| model | group | score | ok |", "| --- | --- | ---: | --- |",
                         "| a\\|b | math_x | 12.35 | true |"]


def test_latex_escapes_specials_and_draws_arrows() -> None:
    out = render(["model", "math"], [["a_b & c", "10.0 -> 20.0"], ["50%", "#1"]], "latex")
    assert out.splitlines() == ["\\begin{tabular}{ll}", "\\toprule", "model & math \\\\", "\\midrule",
                                "a\\_b \\& c & 10.0 $\\to$ 20.0 \\\\", "50\\% & \\#1 \\\\", "\\bottomrule",
                                "\\end{tabular}"]


def test_json_is_strict_with_nan_as_null() -> None:
    got = json.loads(render(COLUMNS, ROWS, "json"))
    assert got[1] == {"model": "c & d", "group": "50%", "score": None, "ok": False}


def test_unknown_format() -> None:
    assert FORMATS == ("table", "csv", "md", "latex", "json")
    with pytest.raises(ValueError, match="unknown format"):
        render(COLUMNS, ROWS, "xlsx")
