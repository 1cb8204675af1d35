"""Benchmark files: a YAML file (data, Jinja prompt, answer, scorer) loads, renders and scores like
a registered benchmark; each kind of mistake is one `file:line: key: message (did you mean ...)`
line; files under TIX_HOME/benchmarks/ are found by name and listed by `tix benchmarks`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.evaluation import benchmarks
from engine.evaluation.backends import Generation
from engine.evaluation.benchfile import (
    check_benchmark_file,
    find_benchmark,
    home_benchmarks,
    load_benchmark_file,
)
from engine.evaluation.benchmarks import BenchmarkError, describe, load_items
from engine.evaluation.rescore import rescore
from engine.evaluation.samples import score_one
from engine.evaluation.scorers import get_scorer
from tests.conftest import ROOT

ROWS = [
    {"qid": "q1", "question": "What is 2+2?", "answer": "4", "options": ["3", "4", "5"], "gold": 1},
    {"qid": "q2", "question": "What is 3+3?", "answer": "6", "options": ["6", "7", "8"], "gold": 0},
    {"qid": "q3", "question": "What is 4+4?", "answer": "8", "options": ["7", "9", "8"], "gold": 2},
]
BENCH = """\
name: arith
group: math
description: small sums
data: ./arith.jsonl
id: qid
system: "You are {{ 'careful' }}."
prompt: |
  Q: {{ question }}
  A:
answer: answer
generation: {n: 2, temperature: 0.5, top_p: 0.9, max_new_tokens: 16, stop: ["\\n"]}
limit: 10
"""


def write_data(folder: Path, name: str = "arith.jsonl", rows: list[dict[str, Any]] | None = None) -> Path:
    """The rows in the format the suffix names (CSV and Parquet: list fields as JSON text)."""
    rows = ROWS if rows is None else rows
    path = folder / name
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps({"data": rows}))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_bench(folder: Path, text: str = BENCH, name: str = "arith.yaml", data: bool = True) -> Path:
    if data:
        write_data(folder)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    return [str(e) for e in check_benchmark_file(write_bench(tmp_path, text))]


# ── loading and rendering ──────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_a_file_loads_and_renders_from_each_data_format(tmp_path: Path, suffix: str) -> None:
    write_data(tmp_path, f"arith{suffix}")
    path = write_bench(tmp_path, BENCH.replace("arith.jsonl", f"arith{suffix}"), data=False)
    assert check_benchmark_file(path) == []
    bench = load_benchmark_file(path)
    items = load_items(bench)
    assert [(i["id"], i["index"], i["answer"]) for i in items] == [("q1", 0, "4"), ("q2", 1, "6"), ("q3", 2, "8")]
    first = items[0]
    assert first["question"] == "Q: What is 2+2?\nA:"  # the block's final newline is Jinja's to drop
    assert first["system"] == "You are careful."
    assert first["qid"] == "q1" and "options" in first  # the row's own fields travel with the item
    assert describe(bench)["size"] == 3


def test_the_benchmark_carries_the_file_settings(tmp_path: Path) -> None:
    path = write_bench(tmp_path)
    bench = load_benchmark_file(path)
    assert (bench.name, bench.group, bench.scorer, bench.method, bench.chat) == (
        "arith", "math", "exact_match", "generate", True)
    assert bench.generation == {"n": 2, "temperature": 0.5, "top_p": 0.9, "max_new_tokens": 16, "stop": ["\n"]}
    assert bench.limit == 10 and bench.description == "small sums"
    assert bench.path == str(path.resolve()) and bench.source == f"file:{path.resolve()}"
    assert bench.file == str(tmp_path.resolve() / "arith.jsonl")
    row = describe(bench)
    assert (row["source"], row["size"], row["scorer"]) == (f"file:{path.resolve()}", 3, "exact_match")


def test_defaults_position_ids_and_only_the_sampling_keys_given(tmp_path: Path) -> None:
    bench = load_benchmark_file(write_bench(tmp_path, "name: b\ndata: arith.jsonl\nprompt: '{{ question }}'\n"))
    assert (bench.group, bench.scorer, bench.chat, bench.generation, bench.limit) == (
        "other", "exact_match", True, {}, None)
    items = load_items(bench)
    assert [i["id"] for i in items] == ["0", "1", "2"]
    assert items[0]["answer"] == "4" and "system" not in items[0]  # no `answer:`: the row's own answer


def test_limit_caps_whatever_a_run_asks(tmp_path: Path) -> None:
    bench = load_benchmark_file(write_bench(tmp_path, BENCH.replace("limit: 10", "limit: 2")))
    assert len(load_items(bench)) == 2 and len(load_items(bench, limit=1)) == 1
    assert len(load_items(bench, limit=5)) == 2
    assert describe(bench)["size"] == 2


def test_answer_as_a_template_and_as_a_list_of_golds(tmp_path: Path) -> None:
    text = "name: b\ndata: arith.jsonl\nprompt: '{{ question }}'\nanswer: '{{ options[gold] }} ({{ qid }})'\n"
    assert [i["answer"] for i in load_items(load_benchmark_file(write_bench(tmp_path, text)))] == [
        "4 (q1)", "6 (q2)", "8 (q3)"]
    listed = load_items(load_benchmark_file(write_bench(tmp_path, text.replace("answer: '{{ options[gold] }} "
                                                                                "({{ qid }})'", "answer: options"))))
    assert listed[0]["answers"] == ["3", "4", "5"] and listed[0]["answer"] == "3"


def test_a_field_name_that_is_not_an_identifier_is_reached_through_row(tmp_path: Path) -> None:
    write_data(tmp_path, "g.jsonl", [{"Record ID": "r1", "Question text": "Why?", "Correct Answer": "Because"}])
    text = "name: b\ndata: g.jsonl\nid: Record ID\nprompt: \"{{ row['Question text'] }}\"\nanswer: Correct Answer\n"
    item = load_items(load_benchmark_file(write_bench(tmp_path, text)))[0]
    assert (item["id"], item["question"], item["answer"]) == ("r1", "Why?", "Because")


@pytest.mark.parametrize("choices", ["options", "'{{ options }}'", "'{{ [options[0], options[1], options[2]] }}'",
                                     "['{{ options[0] }}', '{{ options[1] }}', '{{ options[2] }}']"])
def test_choices_make_a_loglikelihood_benchmark(tmp_path: Path, choices: str) -> None:
    text = f"name: b\ndata: arith.jsonl\nprompt: '{{{{ question }}}}'\nanswer: gold\nchoices: {choices}\n"
    bench = load_benchmark_file(write_bench(tmp_path, text))
    assert (bench.method, bench.scorer, bench.chat) == ("loglikelihood", "choice_index", False)
    items = load_items(bench)
    assert [i["choices"] for i in items] == [r["options"] for r in ROWS]
    scorer = get_scorer("choice_index")  # the eval job passes the likeliest choice's text
    assert [scorer("4", items[0]).score, scorer("3", items[0]).score, scorer("8", items[2]).score] == [1, 0, 1]


def test_a_literal_list_of_choices_and_a_generative_scorer(tmp_path: Path) -> None:
    text = ("name: b\ndata: arith.jsonl\nprompt: 'Is {{ answer }} even?'\n"
            "answer: \"{% if answer|int % 2 == 0 %}Yes{% else %}No{% endif %}\"\n"
            "choices: ['Yes', 'No']\nscorer: mc_letter\nchat: true\n")
    bench = load_benchmark_file(write_bench(tmp_path, text))
    assert (bench.method, bench.scorer, bench.chat) == ("generate", "mc_letter", True)
    item = load_items(bench)[0]
    assert item["choices"] == ["Yes", "No"]
    assert get_scorer("mc_letter")("Answer: A", item).score == 1.0  # `Yes` is choice A


def test_a_hub_dataset_is_read_through_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []
    monkeypatch.setattr(benchmarks, "_hub_rows", lambda source: asked.append(source) or list(ROWS))
    text = "name: b\ndata: {hf: org/sums, config: easy, split: validation}\nprompt: '{{ question }}'\n"
    bench = load_benchmark_file(write_bench(tmp_path, text))
    assert bench.hf == ("org/sums", "easy", "validation") and bench.file is None
    assert len(load_items(bench)) == 3 and asked == [("org/sums", "easy", "validation")]
    assert describe(bench)["size"] is None
    default = load_benchmark_file(write_bench(tmp_path, "name: b\ndata: {hf: org/sums}\nprompt: x\n"))
    assert default.hf == ("org/sums", None, "test")


def test_a_hub_dataset_offline_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(source: Any) -> list[dict[str, Any]]:
        raise ConnectionError("Couldn't reach 'org/sums' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(benchmarks, "_hub_rows", offline)
    bench = load_benchmark_file(write_bench(tmp_path, "name: b\ndata: {hf: org/sums}\nprompt: x\n"))
    with pytest.raises(BenchmarkError) as raised:
        load_items(bench)
    message = str(raised.value)
    assert "\n" not in message and "loading org/sums from the hub failed (ConnectionError" in message
    assert "point data: at the file" in message


def test_a_run_may_point_at_another_copy(tmp_path: Path) -> None:
    bench = load_benchmark_file(write_bench(tmp_path))
    other = write_data(tmp_path, "other.csv", ROWS[:1])
    assert [i["id"] for i in load_items(bench, other)] == ["q1"]


# ── errors ─────────────────────────────────────────────────────────────────────────────────

GOOD = "name: b\ndata: ./arith.jsonl\nprompt: 'Q: {{ question }}'\n"  # lines 1-3 below


@pytest.mark.parametrize("text,expected", [
    (GOOD + "anwser: answer\n", "arith.yaml:4: anwser: unknown key 'anwser' (did you mean 'answer'?)"),
    ("data: ./arith.jsonl\nprompt: x\n", "arith.yaml:1: name: missing required key 'name'"),
    ("name: b\nprompt: x\n", "arith.yaml:1: data: missing required key 'data'"),
    ("name: b\ndata: arith.jsonl\n", "arith.yaml:1: prompt: missing required key 'prompt'"),
    ("name: My Bench\ndata: arith.jsonl\nprompt: x\n", "arith.yaml:1: name: invalid name 'My Bench'"),
    ("name: math500\ndata: arith.jsonl\nprompt: x\n", "arith.yaml:1: name: 'math500' is a registered benchmark"),
    (GOOD + "group: maths\n", "arith.yaml:4: group: unknown group 'maths': expected one of math, other, non "
                              "(did you mean 'math'?)"),
    (GOOD + "limit: ten\n", "arith.yaml:4: limit: expected an integer, got 'ten'"),
    (GOOD + "limit: 0\n", "arith.yaml:4: limit: must be >= 1, got 0"),
    (GOOD + "chat: sometimes\n", "arith.yaml:4: chat: expected true or false, got 'sometimes'"),
    (GOOD + "scorer: exact_mach\n", "arith.yaml:4: scorer: unknown scorer 'exact_mach'"),
    (GOOD + "scorer: ./grade.py:grade\n", "arith.yaml:4: scorer: scorer file not found:"),
    (GOOD + "scorer: no_such_pkg.mod:grade\n", "arith.yaml:4: scorer: scorer module 'no_such_pkg.mod' cannot"),
    (GOOD + "generation: {temprature: 0.7}\n", "arith.yaml:4: generation.temprature: unknown key 'temprature' "
                                               "(did you mean 'temperature'?)"),
    (GOOD + "generation:\n  top_p: 2\n", "arith.yaml:5: generation.top_p: must be in (0, 1], got 2"),
    (GOOD + "generation: {enable_thinking: true}\n", "arith.yaml:4: generation.enable_thinking: unknown key"),
    ("name: b\ndata: ./missing.jsonl\nprompt: x\n", "arith.yaml:2: data: data file not found:"),
    ("name: b\ndata: org/sums\nprompt: x\n", "a hub dataset is data: {hf: org/sums, split: test}"),
    ("name: b\ndata: ./arith.yaml\nprompt: x\n", "arith.yaml:2: data: expected a .jsonl, .json, .csv, .parquet file"),
    ("name: b\ndata:\n  hf: org/sums\n  splt: test\nprompt: x\n",
     "arith.yaml:4: data.splt: unknown key 'splt' (did you mean 'split'?)"),
    ("name: b\ndata: {split: test}\nprompt: x\n", "arith.yaml:2: data.hf: missing required key 'hf'"),
    (GOOD + "system: |\n  ok\n  {% if x %}\n", "arith.yaml:4: system: Jinja syntax error: Unexpected end of template"),
    ("name: b\ndata: arith.jsonl\nprompt: 'Q: {{ questoin }}'\n",
     "arith.yaml:3: prompt: 'questoin' is undefined in the data's first row (did you mean 'question'?)"),
    (GOOD + "answer: anwser\n", "arith.yaml:4: answer: no field 'anwser' in the data's first row "
                                "(did you mean 'answer'?)"),
    (GOOD + "answer: '{{ anwser }}'\n", "arith.yaml:4: answer: 'anwser' is undefined in the data's first row "
                                        "(did you mean 'answer'?)"),
    (GOOD + "id: qdi\n", "arith.yaml:4: id: no field 'qdi' in the data's first row (did you mean 'qid'?)"),
    (GOOD + "id: '{{ qid }}'\n", "arith.yaml:4: id: expected a field name"),
    (GOOD + "choices: optins\n", "arith.yaml:4: choices: no field 'optins' in the data's first row "
                                 "(did you mean 'options'?)"),
    (GOOD + "choices: question\n", "arith.yaml:4: choices: expected a list of two choices or more, got 'What is"),
    (GOOD + "choices: [yes, no]\n", "arith.yaml:4: choices: expected texts, got true (quote it)"),
    (GOOD + "scorer: choice_index\n", "arith.yaml:4: scorer: choice_index compares the log-likelihoods of the "
                                      "choices: add choices:"),
    (GOOD + "choices: options\ngeneration: {n: 4}\n", "arith.yaml:5: generation: nothing is generated for a "
                                                      "log-likelihood benchmark"),
    (GOOD + "name: c\n", "arith.yaml:4: name: duplicate key 'name' (first at line 1)"),
    ("- name: b\n", "arith.yaml:1: expected a mapping at the top level, got a list"),
    ("", "arith.yaml:1: empty benchmark file"),
    ("name: [b\n", "arith.yaml:2: not valid YAML"),
])
def test_each_mistake_is_one_line_at_its_key(tmp_path: Path, text: str, expected: str) -> None:
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, errors
    assert expected in errors[0] and errors[0].startswith(str(tmp_path / "arith.yaml")), errors[0]


def test_every_mistake_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = "name: b\ngrup: math\ndata: arith.jsonl\nprompt: '{{ questoin }}'\nanswer: anwser\nlimit: -1\n"
    errors = errors_of(tmp_path, text)
    assert [e.split(": ", 2)[1] for e in errors] == ["grup", "prompt", "answer", "limit"]
    assert [int(e.split(":")[1]) for e in errors] == [2, 4, 5, 6]


def test_an_empty_data_file_and_a_malformed_one(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    text = "name: b\ndata: {}\nprompt: x\n"
    assert "data: no rows in" in errors_of(tmp_path, text.format("empty.jsonl"))[0]
    assert "data: " in errors_of(tmp_path, text.format("bad.jsonl"))[0]
    assert "cannot read records" in errors_of(tmp_path, text.format("bad.jsonl"))[0]


def test_plugins_are_checked_made_absolute_and_score(tmp_path: Path) -> None:
    (tmp_path / "grade.py").write_text("def grade(completion, item):\n    return completion.strip() == item['qid']\n")
    bench = load_benchmark_file(write_bench(tmp_path, GOOD + "scorer: grade.py:grade\n"))
    assert bench.scorer == f"{tmp_path.resolve() / 'grade.py'}:grade" and bench.method == "generate"
    item = load_items(bench)[0]
    assert [get_scorer(bench.scorer)(text, item).score for text in ("q1", "q2")] == [1.0, 0.0]
    assert "defines no function 'grde'" in errors_of(tmp_path, GOOD + "scorer: grade.py:grde\n")[0]
    module = "engine.evaluation.scorers.choice:exact_match"
    assert load_benchmark_file(write_bench(tmp_path, GOOD + f"scorer: {module}\n")).scorer == module


def test_an_invalid_file_does_not_load_and_says_why_in_one_line(tmp_path: Path) -> None:
    path = write_bench(tmp_path, "name: b\ngrup: math\ndata: arith.jsonl\nprompt: x\nlimit: 0\n")
    with pytest.raises(BenchmarkError) as raised:
        load_benchmark_file(path)
    assert str(raised.value) == (f"{path}:2: grup: unknown key 'grup' (did you mean 'group'?) "
                                 f"(and 1 more: tix check --show-prompt {path})")


def test_a_row_that_cannot_be_rendered_is_named(tmp_path: Path) -> None:
    rows = [*ROWS[:2], {"qid": "q3", "answer": "8"}]  # the third row lacks `question`
    write_data(tmp_path, "arith.jsonl", rows)
    bench = load_benchmark_file(write_bench(tmp_path, BENCH, data=False))  # the first row is fine
    assert len(load_items(bench, limit=2)) == 2
    with pytest.raises(BenchmarkError) as raised:
        load_items(bench)
    assert str(raised.value) == f"benchmark arith ({bench.path}): row 3: prompt: 'question' is undefined"


def test_two_rows_with_one_id_are_an_error(tmp_path: Path) -> None:
    write_data(tmp_path, "arith.jsonl", [ROWS[0], ROWS[1], {**ROWS[2], "qid": "q1"}])
    bench = load_benchmark_file(write_bench(tmp_path, BENCH, data=False))
    with pytest.raises(BenchmarkError, match="rows 1 and 3 have the same id 'q1' \\(field qid\\)"):
        load_items(bench)


# ── TIX_HOME/benchmarks, tix benchmarks, tix check --show-prompt ───────────────────────────


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with two benchmark files (one in a sub-folder), a broken one and a clash."""
    home = tmp_path / "home"
    folder = home / "benchmarks"
    (folder / "sub").mkdir(parents=True)
    write_bench(folder)
    write_bench(folder / "sub", "name: mc\ndata: ./arith.jsonl\nprompt: '{{ question }}'\nchoices: options\n"
                "answer: gold\n", name="mc.yaml")
    write_bench(folder, "name: broken\ndata: ./arith.jsonl\nprompt: '{{ questoin }}'\n", name="broken.yaml",
                data=False)
    write_bench(folder, BENCH, name="zz-again.yaml", data=False)  # a second file named `arith`
    monkeypatch.setenv("TIX_HOME", str(home))
    return home


def test_home_benchmarks_are_found_by_name(home: Path) -> None:
    folder = home / "benchmarks"
    assert home_benchmarks(home) == {"arith": folder / "arith.yaml", "broken": folder / "broken.yaml",
                                     "mc": folder / "sub" / "mc.yaml"}
    assert find_benchmark("arith").path == str(folder / "arith.yaml")  # TIX_HOME
    assert find_benchmark("mc", home).method == "loglikelihood"
    assert find_benchmark("math500").name == "math500"  # registered names come first
    with pytest.raises(BenchmarkError, match="did you mean 'arith'"):
        find_benchmark("arth")
    with pytest.raises(BenchmarkError, match=r"broken.yaml:3: prompt: 'questoin' is undefined"):
        find_benchmark("broken")


def test_tix_benchmarks_lists_files_with_their_source_and_errors(home: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(home), "benchmarks", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["name"], r["source"]): r for r in json.loads(result.stdout)}
    folder = home / "benchmarks"
    arith = rows[("arith", f"file:{folder / 'arith.yaml'}")]
    assert (arith["group"], arith["scorer"], arith["size"], "error" not in arith) == ("math", "exact_match", 3, True)
    assert rows[("mc", f"file:{folder / 'sub' / 'mc.yaml'}")]["scorer"] == "choice_index"
    assert rows[("math500", "hf:HuggingFaceH4/MATH-500")]["group"] == "math"
    assert "prompt: 'questoin' is undefined" in rows[("broken", f"file:{folder / 'broken.yaml'}")]["error"]
    clash = rows[("arith", f"file:{folder / 'zz-again.yaml'}")]["error"]
    assert clash.startswith(f"{folder / 'zz-again.yaml'}:1: name: 'arith' is already the name of")
    table = CliRunner().invoke(cli, ["--home", str(home), "benchmarks"])
    assert table.exit_code == 0
    sources = [line.split()[2] for line in table.stdout.splitlines() if line.startswith(("arith ", "mc "))]
    assert len(sources) == 3 and all(s.startswith("file:") and len(s) <= 60 for s in sources)
    assert [s.rsplit("/", 1)[1] for s in sources] == ["arith.yaml", "mc.yaml", "zz-again.yaml"]
    assert len(table.stderr.splitlines()) == 2 and "questoin" in table.stderr
    assert not (home / "tix.sock").exists()  # no daemon


def test_rescoring_a_home_benchmark_compares_with_the_file_answer(home: Path, tmp_path: Path) -> None:
    """End to end without a model: `tix score -b arith` matches lines by the file's ids and
    exact_match compares each completion with the answer the file names."""
    gens = tmp_path / "gens.jsonl"
    lines = [{"id": "q1", "output": "4"}, {"id": "q2", "output": "The answer is 7"}, {"id": "q3", "output": "8."}]
    gens.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = rescore("arith", gens).summary
    assert (summary["n"], summary["scorer"], summary["group"]) == (3, "exact_match", "math")
    assert summary["accuracy"] == pytest.approx(200 / 3)
    bench = find_benchmark("arith")
    item = load_items(bench)[1]
    verdict = score_one(get_scorer(bench.scorer), bench, Generation("<think>hm</think> 6", 3, "stop"), item)
    assert (verdict.score, verdict.extracted) == (1.0, "6")


def test_show_prompt_prints_the_first_item(tmp_path: Path) -> None:
    path = write_bench(tmp_path)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "check", "--show-prompt", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ok: arith (group math, scorer exact_match, generate, 3 items)",
        "--- system ---", "You are careful.",
        "--- prompt (item 0, id q1; chat template applied at run time) ---", "Q: What is 2+2?", "A:",
        "--- answer ---", "4",
    ]
    assert not (tmp_path / "home" / "tix.sock").exists()


def test_show_prompt_shows_choices_raw_text(tmp_path: Path) -> None:
    path = write_bench(tmp_path, "name: mc\ndata: arith.jsonl\nprompt: '{{ question }}'\nchoices: options\n"
                                 "answer: gold\n")
    result = CliRunner().invoke(cli, ["check", "--show-prompt", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "(item 0, id 0; raw text, no chat template)" in out and "scorer choice_index, loglikelihood" in out
    assert out.endswith("--- answer ---\n1\n--- choices (log-likelihood of each after the prompt) ---\n"
                        "0: 3\n1: 4\n2: 5\n")


def test_show_prompt_reports_errors_and_exits_2(tmp_path: Path) -> None:
    good = write_bench(tmp_path)
    bad = write_bench(tmp_path, "name: b\ndata: arith.jsonl\nprompt: '{{ questoin }}'\ngrup: x\n", name="bad.yaml")
    result = CliRunner().invoke(cli, ["check", "--show-prompt", str(good), str(bad)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{bad}:3: prompt: 'questoin' is undefined in the data's first row (did you mean 'question'?)",
        f"{bad}:4: grup: unknown key 'grup' (did you mean 'group'?)",
    ]
    assert result.stdout.startswith("ok: arith")
    refused = CliRunner().invoke(cli, ["check", "--show-prompt", "--plan", str(good)])
    assert refused.exit_code == 2 and "--show-prompt takes benchmark files" in refused.stderr


def test_loading_stays_light() -> None:
    """Checking a file loads no Jinja until a template is compiled, and never torch or datasets."""
    code = ("import sys; from engine.evaluation import benchfile; print(' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert not {m.split(".")[0] for m in out.stdout.split()} & {"jinja2", "datasets", "torch", "transformers"}


def test_an_experiment_entry_uses_the_file(tmp_path: Path) -> None:
    """The experiment checker reports a file's own problems at its own lines, and the eval job
    takes the file's sampling defaults under the experiment's and renders its items."""
    from engine.experiments.spec import check_file
    from engine.jobs.eval import make_task

    write_bench(tmp_path, "name: b\ndata: arith.jsonl\nprompt: x\nlimt: 3\n", name="bad.yaml")
    write_bench(tmp_path, BENCH, data=False)
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: e\nbase: {model: tiny-lab}\neval:\n  benchmarks:\n    - {file: ./bad.yaml}\n")
    assert [str(e) for e in check_file(exp)] == [
        f"{tmp_path / 'bad.yaml'}:4: limt: unknown key 'limt' (did you mean 'limit'?)"]
    task = make_task({"file": str(tmp_path / "arith.yaml")}, {"temperature": 0.0}, None)
    assert (task.sampling.n, task.sampling.temperature, task.sampling.max_new_tokens) == (2, 0.0, 16)
    assert (task.group, task.scorer, len(task.items)) == ("math", "exact_match", 3)
    assert task.items[0]["system"] == "You are careful."
