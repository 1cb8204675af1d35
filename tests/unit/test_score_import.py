"""`tix import`: a scores CSV or an lm-eval JSON is validated whole, every bad line named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.analysis.imports import ImportErrors, parse_group_options, read_lm_eval, read_scores_csv
from tests.conftest import SHARED_DATA

HEADER = "model,base_model,method,benchmark,group,score\n"
GOOD = HEADER + """base,,base,m1,math,20
base,,base,o1,other,50
tuned,base,sft,m1,math,30
tuned,base,sft,o1,other,45.5
"""


def write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ImportErrors) as caught:
        read_scores_csv(path)
    return caught.value.lines


def test_a_good_file_gives_models_in_order_and_scores(tmp_path: Path) -> None:
    table = read_scores_csv(write(tmp_path, GOOD))
    assert [m["model"] for m in table.models] == ["base", "tuned"]
    assert table.models[0] == {"model": "base", "base_model": None, "method": "base", "position": 2}
    assert table.models[1]["base_model"] == "base" and table.models[1]["position"] == 4
    assert table.scores[3] == {"model": "tuned", "benchmark": "o1", "group": "other", "value": 45.5,
                               "metric": "score", "line": 5}


def test_columns_in_any_order_with_spaces_and_a_bom(tmp_path: Path) -> None:
    text = "\ufeffscore, group ,benchmark,method,base_model,model\n20,math,m1,base,,b\n30,math,m1,rl,b,t\n"
    table = read_scores_csv(write(tmp_path, text))
    assert [s["value"] for s in table.scores] == [20.0, 30.0]


def test_missing_and_unknown_columns_are_refused_at_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "model,base_model,method,benchmark,grup\nx,,b,m1,math\n")
    assert errors_of(path) == [f"{path}:1: unknown column 'grup' (did you mean 'group'?)",
                               f"{path}:1: missing columns group, score (expected model, base_model, "
                               "method, benchmark, group, score)"]


def test_every_malformed_row_is_refused_line_by_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + """tuned,base,sft,n1,non
tuned,base,sft,n2,non,abc
tuned,base,sft,n3,non,101
tuned,base,sft,n4,nonn,5
orphan,nobody,sft,m1,math,3
tuned,base,sft,m1,math,31
base,,base,n5,non,-0.5
tuned,base,rl,n6,non,7
tuned,base,sft,o1,math,1
""")
    assert errors_of(path) == [
        f"{path}:6: expected 6 fields, got 5",
        f"{path}:7: score 'abc' is not a number",
        f"{path}:8: score 101 is outside 0-100 (scores are percentages)",
        f"{path}:9: unknown group 'nonn': expected one of math, other, non (did you mean 'non'?)",
        f"{path}:10: base_model 'nobody' has no rows in this file",
        f"{path}:11: duplicate row for model 'tuned', benchmark 'm1' (first on line 4)",
        f"{path}:12: score -0.5 is outside 0-100 (scores are percentages)",
        f"{path}:13: model 'tuned' has method 'rl' here but 'sft' on line 4",
        f"{path}:14: duplicate row for model 'tuned', benchmark 'o1' (first on line 5)",
    ]


def test_group_conflicts_self_bases_and_empty_fields(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "other,base,rl,o1,math,40\nself,self,rl,m1,math,40\n,base,rl,m1,math,nan\n")
    assert errors_of(path) == [
        f"{path}:6: benchmark 'o1' is in group 'math' here but 'other' on line 3",
        f"{path}:7: model 'self' names itself as its base_model",
        f"{path}:8: empty model",
        f"{path}:8: score 'nan' is not a finite number",
    ]


def test_empty_files_and_missing_files(tmp_path: Path) -> None:
    assert errors_of(write(tmp_path, "")) == [f"{tmp_path / 's.csv'}:1: empty file: expected a header line "
                                              "model,base_model,method,benchmark,group,score"]
    assert errors_of(write(tmp_path, HEADER, "h.csv")) == [f"{tmp_path / 'h.csv'}:1: no score rows after the header"]
    assert errors_of(tmp_path / "nope.csv") == [f"{tmp_path / 'nope.csv'}: no such file"]


def test_a_model_sharing_no_benchmark_with_its_base(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "b,,base,m1,math,10\nt,b,rl,m2,math,20\n")
    assert errors_of(path) == [f"{path}:3: model 't' shares no benchmark with its base 'b'"]


def test_the_paper_table_reads_cleanly() -> None:
    path = SHARED_DATA / "paper_table1_scores.csv"
    if not path.exists():
        pytest.skip(f"{path} not here (reference data lives in ../shared/data)")
    table = read_scores_csv(path)
    assert len(table.models) == 4 and len(table.scores) == 48
    assert {m["base_model"] for m in table.models} == {None, "Qwen3-14B-Base"}


LM_EVAL = {
    "results": {
        "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.75, "exact_match_stderr,strict-match": 0.01},
        "ifeval": {"prompt_level_strict_acc,none": 0.5, "inst_level_strict_acc,none": 0.6},
        "mmlu": {"acc,none": 0.6},
        "mmlu_anatomy": {"acc,none": 0.4},
        "mystery": {"acc,none": 0.3},
    },
    "group_subtasks": {"mmlu": ["mmlu_anatomy"]},
}


def test_lm_eval_results_become_percent_scores(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(LM_EVAL), "r.json")
    table = read_lm_eval(path, "m", "base", "rl", parse_group_options(("mystery=other",)), None)
    got = {s["benchmark"]: (s["group"], s["value"], s["metric"]) for s in table.scores}
    assert got == {"gsm8k": ("math", 75.0, "exact_match,strict-match"),
                   "ifeval": ("non", 50.0, "prompt_level_strict_acc,none"),
                   "mmlu": ("other", 60.0, "acc,none"), "mystery": ("other", 30.0, "acc,none")}
    assert table.models == [{"model": "m", "base_model": "base", "method": "rl", "position": None}]


def test_lm_eval_tasks_without_a_group_or_metric_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(LM_EVAL), "r.json")
    with pytest.raises(ImportErrors) as caught:
        read_lm_eval(path, "m", None, None, {}, None)
    assert caught.value.lines == [f"{path}: task 'mystery': no group known; pass --group mystery=math|other|non"]
    with pytest.raises(ImportErrors) as caught:
        read_lm_eval(path, "m", None, None, {"mystery": "non"}, "f1,none")
    assert len(caught.value.lines) == 4 and "no metric 'f1,none'" in caught.value.lines[0]
    with pytest.raises(ValueError, match="TASK=GROUP"):
        parse_group_options(("gsm8k:maths",))
