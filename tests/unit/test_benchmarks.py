"""The benchmark registry: sources, normalisation, local copies, reasoning-gym tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.evaluation.benchmarks import (
    REGISTRY,
    SUITES,
    BenchmarkError,
    describe,
    get_benchmark,
    load_items,
    read_records,
)
from engine.evaluation.scorers import get_scorer
from tests.conftest import SHARED_DATA

BENCH_DIR = SHARED_DATA / "benchmarks"
needs_shared = pytest.mark.skipif(not BENCH_DIR.is_dir(), reason=f"reference data not found at {BENCH_DIR}")


def test_every_suite_names_registered_benchmarks_with_known_scorers() -> None:
    for suite, names in SUITES.items():
        for name in names:
            bench = REGISTRY[name]
            assert bench.group in ("math", "other", "non"), suite
            assert get_scorer(bench.scorer).name == bench.scorer


def test_unknown_benchmark_suggests_the_nearest() -> None:
    with pytest.raises(BenchmarkError, match="did you mean 'math500'"):
        get_benchmark("math50")


def test_local_files_in_three_formats(tmp_path: Path) -> None:
    rows = [{"problem": "1+1?", "answer": 2, "unique_id": "a"}, {"problem": "2+2?", "answer": "4", "unique_id": "b"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "m.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "m.csv").write_text("problem,answer,unique_id\n1+1?,2,a\n2+2?,4,b\n")
    bench = get_benchmark("math500")
    for name in ("m.jsonl", "m.json", "m.csv"):
        items = load_items(bench, tmp_path / name)
        assert [(i["id"], i["question"], i["answer"], i["index"]) for i in items] == [
            ("a", "1+1?", "2", 0), ("b", "2+2?", "4", 1)], name
    (tmp_path / "bad.json").write_text('{"rows": 3}')
    with pytest.raises(BenchmarkError, match="expected a list of objects"):
        read_records(tmp_path / "bad.json")
    with pytest.raises(BenchmarkError, match="no such file"):
        load_items(bench, tmp_path / "missing.jsonl")


@pytest.mark.parametrize("name,copy", [("aime24", "aime24.jsonl"), ("halueval", "halueval")])  # a file, a folder
def test_offline_box_without_a_copy_gets_one_line(monkeypatch, tmp_path: Path, name: str, copy: str) -> None:
    monkeypatch.setenv("TIX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(BenchmarkError) as err:
        load_items(get_benchmark(name))
    assert f"no local copy of {copy}" in str(err.value) and "\n" not in str(err.value)


@needs_shared
@pytest.mark.parametrize("name,size", [("math500", 500), ("aime24", 30), ("aime25", 30), ("ifeval", 541)])
def test_shared_copies_load_and_gold_answers_score_100(monkeypatch, name: str, size: int) -> None:
    monkeypatch.setenv("TIX_DATA_DIR", str(BENCH_DIR))
    bench = get_benchmark(name)
    items = load_items(bench)
    assert len(items) == size and describe(bench)["size"] == size
    assert all(it["question"] for it in items)
    if name != "ifeval":
        scorer = get_scorer(bench.scorer)
        assert all(scorer(f"so \\boxed{{{it['answer']}}}", it).score == 1.0 for it in items)


def test_humaneval_comes_from_the_package() -> None:
    items = load_items(get_benchmark("humaneval"))
    assert len(items) == 164 and items[0]["id"] == "HumanEval/0" and "def " in items[0]["question"]


@pytest.mark.parametrize("name", SUITES["reasoning-gym"])
def test_reasoning_gym_tasks_use_their_own_verifier(name: str) -> None:
    items = load_items(get_benchmark(name), limit=20)
    assert len(items) == 20 and items == load_items(get_benchmark(name), limit=20)  # seeded
    scorer = get_scorer("reasoning_gym")
    assert all(scorer(f"thinking...\n<answer>{it['answer']}</answer>", it).score == 1.0 for it in items)
    wrong = [scorer("<answer>certainly not this</answer>", it).score for it in items]
    assert sum(wrong) / len(wrong) < 0.2
    assert scorer("", items[0]).flags == ["no_answer"]


def test_lab_items_are_seeded_and_disjoint_from_the_pretraining_corpus() -> None:
    from engine.lab.corpus import items as pretraining_items

    items = load_items(get_benchmark("lab_basic_arithmetic"))
    assert items == load_items(get_benchmark("lab_basic_arithmetic")) and len(items) == 100
    questions = {it["question"] for it in items}
    assert not questions & {it.question for it in pretraining_items(0, 20000)}


@pytest.mark.parametrize("name", SUITES["lab"])
def test_lab_tasks_use_reasoning_gym_verifiers(name: str) -> None:
    bench = get_benchmark(name)
    items = load_items(bench)
    assert bench.scorer == "reasoning_gym" and bench.chat and bench.generation["temperature"] == 0.0
    scorer = get_scorer(bench.scorer)
    assert all(scorer(it["answer"], it).score == 1.0 for it in items)
    assert sum(scorer("certainly not this", it).score for it in items) / len(items) < 0.2


def test_lab_choice_benchmark_has_yes_no_choices() -> None:
    items = load_items(get_benchmark("lab_syllogism_choice"))
    assert all(it["choices"] == ["Yes", "No"] and it["answer"] in it["choices"] for it in items)
    assert get_scorer("choice_index")(items[0]["answer"], items[0]).score == 1.0
