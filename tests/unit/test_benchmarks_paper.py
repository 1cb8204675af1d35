"""The paper's 12 benchmarks (arXiv 2507.00432): loaders, prompts, generation defaults, scorers.

Checked through the path a local copy takes (`TIX_DATA_DIR` -> `load_items` -> `prompt_text` ->
the registered scorer). Real copies come from `../shared/data` (skipped when absent); the six
benchmarks without one use hand-made fixtures in their sources' own field names
(`tests/fixtures/benchmarks`). The prompts of MATH-500, IFEval and CoQA are compared with the
fully rendered inputs of the paper's own generations.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from engine.evaluation.backends import Generation
from engine.evaluation.benchmarks import (
    REGISTRY,
    SUITE_LIMITS,
    SUITES,
    BenchmarkError,
    describe,
    get_benchmark,
    load_items,
    prompt_text,
    shape_row,
    suite_entries,
)
from engine.evaluation.benchmarks_paper import decode_private_tests
from engine.evaluation.scorers import get_scorer
from tests.conftest import ROOT, SHARED_DATA, job_context

FIXTURES = ROOT / "tests" / "fixtures" / "benchmarks"
BENCH_DIR = SHARED_DATA / "benchmarks"
GEN_DIR = SHARED_DATA / "generations"
needs_shared = pytest.mark.skipif(not BENCH_DIR.is_dir(), reason=f"reference data not found at {BENCH_DIR}")
needs_generations = pytest.mark.skipif(not GEN_DIR.is_dir(), reason=f"reference generations not found at {GEN_DIR}")
PAPER = ("aime24", "aime25", "math500", "olympiadbench", "gpqa_diamond", "livecodebench_v2", "acpbench",
         "headqa", "coqa", "ifeval", "halueval", "mctaco")
FIXTURE_BENCHMARKS = ("gpqa_diamond", "livecodebench_v2", "headqa", "coqa", "halueval", "mctaco")
CHAT_HEAD, CHAT_TAIL = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
Item = dict[str, Any]


@pytest.fixture
def fixtures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TIX_DATA_DIR", str(FIXTURES))
    monkeypatch.setenv("TIX_HOME", str(tmp_path / "home"))
    return FIXTURES


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TIX_DATA_DIR", str(BENCH_DIR))
    monkeypatch.setenv("TIX_HOME", str(tmp_path / "home"))
    return BENCH_DIR


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def user_turn(rendered: str) -> str:
    """The user message inside a Qwen3 chat prompt rendered with thinking disabled."""
    assert rendered.startswith(CHAT_HEAD) and rendered.endswith(CHAT_TAIL), rendered[-120:]
    return rendered[len(CHAT_HEAD):-len(CHAT_TAIL)]


def accuracy(name: str, completions: list[str], items: list[Item]) -> float:
    scorer = get_scorer(get_benchmark(name).scorer)
    return 100 * sum(scorer(c, it).score for c, it in zip(completions, items, strict=True)) / len(items)

# ---------------------------------------------------------------------------- registry


def test_paper_suite_is_the_twelve_in_group_order() -> None:
    assert SUITES["paper"] == PAPER and set(SUITES["paper-small"]) == set(PAPER)
    groups = [get_benchmark(n).group for n in PAPER]
    assert groups == ["math"] * 4 + ["other"] * 4 + ["non"] * 4
    for name in PAPER:
        bench = get_benchmark(name)
        assert get_scorer(bench.scorer).name == bench.scorer and bench.description
        assert bench.hf or any(p.hf for p in bench.parts), name  # an online box can fetch every one


@pytest.mark.parametrize("name,temperature,n", [
    ("aime24", 0.7, 10), ("aime25", 0.7, 10), ("math500", 0.7, 1), ("gpqa_diamond", 0.7, 3),
    ("olympiadbench", 0.0, 1), ("livecodebench_v2", 0.0, 1), ("acpbench", 0.0, 1), ("coqa", 0.0, 1),
    ("ifeval", 0.0, 1), ("halueval", 0.0, 1)])
def test_generation_defaults_follow_the_paper(name: str, temperature: float, n: int) -> None:
    gen = get_benchmark(name).generation
    assert gen["max_new_tokens"] == 32768 and gen["temperature"] == temperature and gen.get("n", 1) == n
    assert gen.get("top_p", 1.0) == (0.8 if temperature else 1.0)
    assert get_benchmark(name).chat and get_benchmark(name).method == "generate"


@pytest.mark.parametrize("name", ["headqa", "mctaco"])
def test_loglikelihood_benchmarks_score_raw_text_as_lm_eval(name: str) -> None:
    bench = get_benchmark(name)
    assert bench.method == "loglikelihood" and bench.scorer == "choice_index" and not bench.chat


def test_every_registered_prompt_renders() -> None:
    """A literal brace must be doubled in a template (the old `\\boxed{}` prompts raised here)."""
    for bench in REGISTRY.values():
        text = prompt_text(bench, {"question": "QUESTION", "options": "OPTIONS"})
        assert "QUESTION" in text or "{question}" not in bench.prompt, bench.name


def test_the_registry_module_stays_light() -> None:
    code = "import sys, engine.evaluation.benchmarks; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert not {m.split(".")[0] for m in out.stdout.split()} & {"datasets", "torch", "transformers"}


def test_paper_small_limits_and_a_global_cap() -> None:
    entries = {e["name"]: e["limit"] for e in suite_entries("paper-small")}
    assert list(entries) == list(PAPER) and entries["aime24"] is None and entries["math500"] == 100
    assert all(entries[name] == limit for name, limit in SUITE_LIMITS["paper-small"].items())
    capped = {e["name"]: e["limit"] for e in suite_entries("paper-small", 20)}
    assert set(capped.values()) == {20}
    assert [e["limit"] for e in suite_entries("paper")] == [None] * 12


def test_tix_benchmarks_lists_the_twelve(fixtures: Path) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    result = CliRunner().invoke(cli, ["benchmarks", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(PAPER) <= set(rows)
    assert rows["halueval"]["size"] == 5 and rows["halueval"]["source"] == str(FIXTURES / "halueval")
    assert rows["olympiadbench"]["source"] == "hf:Hothan/OlympiadBench"  # no copy in the fixtures


# ---------------------------------------------------------------------------- real copies: maths, ACPBench


@needs_shared
@pytest.mark.parametrize("name,size", [("math500", 500), ("aime24", 30), ("aime25", 30), ("olympiadbench", 675)])
def test_maths_gold_scores_100_and_shuffled_gold_near_0(shared: Path, name: str, size: int) -> None:
    items = load_items(get_benchmark(name))
    assert len(items) == size == describe(get_benchmark(name))["size"]
    golds = [it["answer"] for it in items]
    assert accuracy(name, [f"Final Answer: \\boxed{{{g}}}" for g in golds], items) == 100
    assert accuracy(name, [f"so \\boxed{{{g}}}." for g in golds], items) == 100
    shuffled = golds[7:] + golds[:7]  # each item gets another item's gold
    wrong = accuracy(name, [f"Final Answer: \\boxed{{{g}}}" for g in shuffled], items)
    print(f"\n{name}: shuffled gold {wrong:.1f}%")
    assert wrong < 5


@needs_shared
def test_olympiadbench_gold_comes_from_the_final_answer_list(shared: Path) -> None:
    items = {it["id"]: it for it in load_items(get_benchmark("olympiadbench"))}
    raw = {str(r["id"]): r for r in read_jsonl(BENCH_DIR / "olympiadbench.jsonl")}
    assert all(isinstance(r["final_answer"], list) for r in raw.values())
    assert not any("$" in it["answer"] for it in items.values())
    with_dollars = [i for i, r in raw.items() if "$" in r["final_answer"][0]]
    assert len(with_dollars) > 200  # the case the `$` stripping exists for
    scorer = get_scorer("math_hendrycks")
    for item_id in with_dollars[:50]:
        bare = raw[item_id]["final_answer"][0].replace("$", "")
        assert scorer(f"\\boxed{{{bare}}}", items[item_id]).score == 1, item_id


@needs_shared
def test_acpbench_pools_the_seven_tasks_from_the_folder_copy(shared: Path) -> None:
    bench = get_benchmark("acpbench")
    items = load_items(bench)
    assert len(items) == 280 == describe(bench)["size"] and len({it["id"] for it in items}) == 280
    subsets = [it["subset"] for it in items]
    assert sorted(set(subsets)) == ["act_reach", "app", "just", "land", "prog", "reach", "val"]
    assert all(subsets.count(s) == 40 for s in set(subsets))
    assert len(set(subsets[:7])) == 7  # interleaved: a limit samples every task
    assert len({it["subset"] for it in load_items(bench, limit=14)}) == 7
    first = items[0]
    assert first["choices"] and len(first["choices"]) == 4 and first["answer"] in "ABCD"
    text = prompt_text(bench, first)
    assert text.startswith(first["context"]) and first["question"] in text and "A. " in text
    assert "Final Answer: X" in text


@needs_shared
def test_acpbench_gold_letter_scores_100_and_shuffled_near_chance(shared: Path) -> None:
    items = load_items(get_benchmark("acpbench"))
    golds = [it["answer"] for it in items]
    assert accuracy("acpbench", [f"Step 1: ... so it is not B.\nFinal Answer: {g}" for g in golds], items) == 100
    assert accuracy("acpbench", [f"**Final Answer**: {g}." for g in golds], items) == 100
    assert accuracy("acpbench", [f"The answer is ({g})" for g in golds], items) == 100
    other = ["ABCD"[("ABCD".index(g) + 1) % 4] for g in golds]
    assert accuracy("acpbench", [f"Final Answer: {g}" for g in other], items) == 0
    shuffled = accuracy("acpbench", [f"Final Answer: {g}" for g in golds[7:] + golds[:7]], items)
    print(f"\nacpbench: shuffled gold letters {shuffled:.1f}% (chance 25%)")
    assert shuffled < 40


@needs_shared
def test_a_folder_copy_of_other_files_is_read_by_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "acp"
    folder.mkdir()
    for name in ("app", "val"):
        (folder / f"mine_{name}.json").write_text((BENCH_DIR / "acpbench" / f"{name}.json").read_text())
    items = load_items(get_benchmark("acpbench"), folder)
    assert len(items) == 80 and {it["subset"] for it in items} == {"mine_app", "mine_val"}

# ---------------------------------------------------------------------------- prompts vs the paper's generations


@needs_generations
def test_math500_prompt_is_the_papers(shared: Path) -> None:
    from engine.lab.model import render_prompts

    bench = get_benchmark("math500")
    ours = {prompt_text(bench, it) for it in load_items(bench)}
    inputs = [row["input"] for row in read_jsonl(GEN_DIR / "UniReason-RL_hendrycks_math_500.jsonl")]
    assert len(inputs) == 500 and all(user_turn(x) in ours for x in inputs)
    assert render_prompts([user_turn(x) for x in inputs[:20]]) == inputs[:20]  # the whole chat text too


@needs_generations
def test_ifeval_prompt_is_the_papers(shared: Path) -> None:
    bench = get_benchmark("ifeval")
    ours = {prompt_text(bench, it) for it in load_items(bench)}
    inputs = [row["input"] for row in read_jsonl(GEN_DIR / "UniReason-RL_ifeval.jsonl")]
    missing = [x for x in inputs if user_turn(x) not in ours]
    assert len(inputs) == 541 and len(missing) <= 1  # one prompt was reworded between dataset versions


@needs_shared
def test_ifeval_scores_the_answer_after_the_think_block(shared: Path) -> None:
    item = next(it for it in load_items(get_benchmark("ifeval")) if it["instruction_id_list"] == [
        "punctuation:no_comma"])
    scorer = get_scorer("ifeval")
    plain = scorer("No commas here at all", item)
    thought = scorer("<think>well, hmm, commas, here</think>\nNo commas here at all", item)
    assert plain.score == thought.score == 1 and plain.metrics == thought.metrics
    assert set(plain.metrics) >= {"prompt_strict", "prompt_loose", "inst_strict", "inst_loose"}
    assert scorer("Commas, here", item).score == 0


def coqa_row_from(content: str) -> dict[str, Any]:
    """A stanfordnlp/coqa row rebuilt from a rendered prompt (story, turns, last question)."""
    story, _, rest = content.partition("\n\nQ: ")
    questions, answers = [], []
    for turn in ("\n\nQ: " + rest).split("\n\nQ: ")[1:]:
        question, _, answer = turn.partition("\n\nA:")
        questions.append(question)
        answers.append(answer.removeprefix(" "))
    answers[-1] = "(gold not in the generations file)"
    return {"story": story, "questions": questions, "answers": {"input_text": answers}}


@needs_generations
@pytest.mark.parametrize("model", ["RL", "SFT"])
def test_coqa_prompt_matches_the_papers_inputs(tmp_path: Path, model: str) -> None:
    from engine.lab.model import render_prompts

    inputs = [row["input"] for row in read_jsonl(GEN_DIR / f"UniReason-{model}_coqa.jsonl")]
    copy = tmp_path / "coqa.jsonl"
    copy.write_text("".join(json.dumps(coqa_row_from(user_turn(x))) + "\n" for x in inputs))
    bench = get_benchmark("coqa")
    items = load_items(bench, copy)
    rendered = [prompt_text(bench, it) for it in items]
    assert len(items) == 500 and rendered == [user_turn(x) for x in inputs]
    assert render_prompts(rendered[:5]) == inputs[:5]
    assert all(it["question"].endswith("\n\nA:") and it["answers"] for it in items)

# ---------------------------------------------------------------------------- GPQA


def test_gpqa_options_are_shuffled_per_item_with_the_gold_letter(fixtures: Path) -> None:
    bench = get_benchmark("gpqa_diamond")
    items = load_items(bench)
    assert len(items) == 6 and items[0]["id"] == "rec01"
    for it in items:
        options = [it["Correct Answer"], it["Incorrect Answer 1"], it["Incorrect Answer 2"], it["Incorrect Answer 3"]]
        assert sorted(it["choices"]) == sorted(options)
        assert it["choices"]["ABCD".index(it["answer"])] == it["Correct Answer"]
        text = prompt_text(bench, it)
        assert text.startswith("Return your final response within \\boxed{} and only include the letter choice")
        assert f"\nProblem: {it['Question']}\nOptions: A) {it['choices'][0]}, B) {it['choices'][1]}, " in text
        assert text.endswith(f"D) {it['choices'][3]}\nAnswer:")
    assert len({it["answer"] for it in items}) >= 2  # not the same letter for every item


def test_gpqa_shuffle_does_not_depend_on_the_hash_seed(fixtures: Path) -> None:
    code = ("from engine.evaluation.benchmarks import get_benchmark, load_items;"
            "print(''.join(i['answer'] + ''.join(c[0] for c in i['choices']) "
            "for i in load_items(get_benchmark('gpqa_diamond'))))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    here = "".join(i["answer"] + "".join(c[0] for c in i["choices"]) for i in load_items(get_benchmark("gpqa_diamond")))
    assert runs == {here + "\n"}


def test_gpqa_scores_the_last_letter(fixtures: Path) -> None:
    items = load_items(get_benchmark("gpqa_diamond"))
    golds = [it["answer"] for it in items]
    assert accuracy("gpqa_diamond", [f"I think A or B... Final: \\boxed{{{g}}}" for g in golds], items) == 100
    assert accuracy("gpqa_diamond", [f"<think>maybe A</think>The answer is ({g})." for g in golds], items) == 100
    assert accuracy("gpqa_diamond", [f"\\boxed{{{'ABCD'[('ABCD'.index(g) + 2) % 4]}}}" for g in golds], items) == 0

# ---------------------------------------------------------------------------- LiveCodeBench

STDIN_GOLD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
STDIN_WRONG = "```python\na, b = map(int, input().split())\nprint(a * b)\n```"
FUNCTIONAL_GOLD = """Use a dictionary.
```python
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
```"""
FUNCTIONAL_WRONG = """```python
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        return [0, 1]
```"""
FUNCTIONAL_SLOW = """```python
class Solution:
    def twoSum(self, nums, target):
        while True:
            pass
```"""
FUNCTIONAL_TOP_LEVEL = """```python
def two_sum(nums, target):
    for i in range(len(nums)):
        for j in range(i + 1, len(nums)):
            if nums[i] + nums[j] == target:
                return (i, j)
```"""


def test_livecodebench_loader_decodes_both_test_types(fixtures: Path) -> None:
    bench = get_benchmark("livecodebench_v2")
    stdin, functional = load_items(bench)
    assert (stdin["id"], functional["id"]) == ("abc000_a", "1")
    assert [t["testtype"] for t in stdin["tests"]] == ["stdin"] * 3 and stdin["func_name"] is None
    assert [t["testtype"] for t in functional["tests"]] == ["functional"] * 3
    assert functional["func_name"] == "twoSum" and stdin["timeout"] == functional["timeout"] == 6.0
    text = prompt_text(bench, stdin)
    assert text.startswith("Generate an executable Python function generated from the given prompt. The "
                           "function should take stdin as input") and text.endswith(stdin["question_content"])
    text = prompt_text(bench, functional)
    assert "Return the function body without invoking it at the final solution.Given an array" in text
    assert text.endswith("\nclass Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ")


def test_livecodebench_gold_passes_and_wrong_fails(fixtures: Path) -> None:
    stdin, functional = load_items(get_benchmark("livecodebench_v2"))
    scorer = get_scorer("code_tests")
    assert scorer(STDIN_GOLD, stdin).score == 1 and scorer(STDIN_WRONG, stdin).score == 0
    assert scorer(FUNCTIONAL_GOLD, functional).score == 1
    wrong = scorer(FUNCTIONAL_WRONG, functional)
    assert wrong.score == 0 and wrong.detail["error"] == "test 1: wrong answer"  # the first private test
    assert scorer(FUNCTIONAL_TOP_LEVEL, functional).score == 1  # evalchemy's fallback: the first function
    assert scorer(STDIN_GOLD, functional).score == 0  # a stdin program has nothing to call
    slow = scorer(FUNCTIONAL_SLOW, {**functional, "timeout": 1.0})
    assert slow.score == 0 and "timed out after 1.0 s" in slow.detail["error"]


def _pickled(value: Any) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(value))).decode()


class _Boom:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (print, ("the pickle ran code",))


def test_livecodebench_private_tests_accept_only_a_pickled_string(capsys) -> None:
    tests = [{"input": "1\n", "output": "1\n", "testtype": "stdin"}]
    assert decode_private_tests(_pickled(json.dumps(tests))) == tests
    assert decode_private_tests(json.dumps(tests)) == tests and decode_private_tests("") == []
    garbage = base64.b64encode(b"not zlib").decode()
    for bad in (_pickled(_Boom()), _pickled(tests), _pickled(json.dumps({"a": 1})), garbage):
        with pytest.raises(ValueError):
            decode_private_tests(bad)
    assert "ran code" not in capsys.readouterr().out
    row = {**read_jsonl(FIXTURES / "livecodebench_v2.jsonl")[0], "private_test_cases": _pickled(_Boom())}
    with pytest.raises(BenchmarkError, match=r"cannot read abc000_a .*copy of livecodebench_v2"):
        shape_row(get_benchmark("livecodebench_v2"), row)

# ---------------------------------------------------------------------------- HEAD-QA, MC-TACO


def test_headqa_choices_and_gold(fixtures: Path) -> None:
    bench = get_benchmark("headqa")
    items = load_items(bench)
    assert [it["id"] for it in items] == ["Cuaderno_2013_1_B/1", "Cuaderno_2013_1_B/2", "Cuaderno_2014_1_E/1"]
    assert items[0]["choices"] == ["mRNA", "rRNA", "tRNA", "DNA"] and items[0]["answer"] == "tRNA"
    assert items[1]["answer"] == "4" and items[1]["gold"] == 0  # a numeric choice stays a choice text
    assert prompt_text(bench, items[0]) == "Question: Which molecule carries amino acids to the ribosome?\nAnswer:"
    scorer = get_scorer("choice_index")
    assert all(scorer(it["answer"], it).score == 1 for it in items)
    assert all(scorer(c, it).score == 0 for it in items for c in it["choices"] if c != it["answer"])


def test_mctaco_is_yes_no_per_candidate_answer(fixtures: Path) -> None:
    bench = get_benchmark("mctaco")
    items = load_items(bench)
    assert [it["answer"] for it in items] == ["yes", "no", "yes", "no"]
    assert all(it["choices"] == ["no", "yes"] for it in items)
    assert prompt_text(bench, items[1]) == ("Tom brushed his teeth before going to bed.\nQuestion: How long did "
                                            "Tom brush his teeth?\nAnswer: 3 hours\nPlausible:")
    assert load_items(bench, limit=2) == items[:2]

# ---------------------------------------------------------------------------- CoQA


def test_coqa_item_is_the_story_with_its_last_question(fixtures: Path) -> None:
    bench = get_benchmark("coqa")
    first, second = load_items(bench)
    assert prompt_text(bench, first) == (
        "Anna has a red bicycle. She rides it to school every morning with her brother Ben.\n\n"
        "Q: What color is Anna's bicycle?\n\nA: red\n\nQ: Where does she ride it?\n\nA: to school\n\n"
        "Q: Who goes with her?\n\nA:")
    assert first["answers"] == ["her brother Ben"] and second["answer"] == "yes"
    assert bench.generation["stop"] == ["\nQ:"]


def test_coqa_gold_adds_the_other_annotators(fixtures: Path) -> None:
    (item,) = load_items(get_benchmark("coqa"), FIXTURES / "coqa_eleuther.jsonl")
    assert item["id"] == "story-1" and item["answers"] == ["her brother Ben", "Ben", "her brother"]
    assert item["question"] == load_items(get_benchmark("coqa"))[0]["question"]
    scorer = get_scorer("squad_f1")
    assert scorer("<think>who?</think>\nBen\nBecause the story says so.", item).score == 1
    assert scorer("Her brother.", item).score == 1
    assert scorer("Q: Who goes with her?\nA: her brother Ben", item).score < 0.5  # first line only
    assert scorer("a red bicycle", item).score == 0

# ---------------------------------------------------------------------------- HaluEval


def test_halueval_pools_its_three_subsets(fixtures: Path) -> None:
    bench = get_benchmark("halueval")
    items = load_items(bench)
    assert [it["id"] for it in items] == ["qa/0", "dialogue/0", "summarization/0", "qa/1", "dialogue/1"]
    assert [it["answer"] for it in items] == ["no", "no", "no", "yes", "yes"]
    qa, dialogue, summary = (prompt_text(bench, it) for it in items[:3])
    assert qa.startswith("I want you act as an answer judge.") and qa.endswith(
        "\n\n#Knowledge: Paris is the capital and largest city of France.\n#Question#: What is the capital of "
        "France?\n#Answer#: Paris\n#Your Judgement#:")
    assert dialogue.startswith("I want you act as a response judge.") and "\n#Dialogue History#: [Human]: " in dialogue
    assert summary.startswith("I want you act as a summary judge.") and "#Knowledge" not in summary
    assert all('MUST be "Yes" or "No"".' in t for t in (qa, dialogue, summary))
    golds = ["Yes" if it["answer"] == "yes" else "No" for it in items]
    assert accuracy("halueval", [f"{g}\nBecause..." for g in golds], items) == 100
    assert accuracy("halueval", [f"{'No' if g == 'Yes' else 'Yes'}" for g in golds], items) == 0
    assert accuracy("halueval", ["Yes or No, hard to say" for _ in golds], items) == 0


def test_halueval_raw_rows_make_one_item_per_answer(tmp_path: Path) -> None:
    folder = tmp_path / "halueval"
    folder.mkdir()
    (folder / "qa_samples.jsonl").write_text(json.dumps({
        "knowledge": "K.", "question": "Q?", "right_answer": "right", "hallucinated_answer": "made up"}) + "\n")
    items = load_items(get_benchmark("halueval"), folder)
    assert [(it["id"], it["candidate"], it["answer"]) for it in items] == [
        ("qa/0:right", "right", "no"), ("qa/0:hallucinated", "made up", "yes")]

# ---------------------------------------------------------------------------- the eval job end to end


class Oracle:
    """A backend that answers every prompt with a prepared text and prefers a prepared choice."""

    name = "oracle"
    cache_tag = "oracle:text"  # the Backend protocol: name and precision, part of the cache key

    def __init__(self, texts: dict[str, str], choices: dict[str, str]) -> None:
        self.texts, self.choices = texts, choices

    def render(self, question: str, *, chat: bool, enable_thinking: bool, system: str | None = None) -> str:
        return f"<user>{question}</user>" if chat else question

    def generate(self, prompts: list[str], params: Any) -> list[list[Generation]]:
        return [[Generation(self.texts[p], 9, "stop")] * params.n for p in prompts]

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[float]:
        return [0.0 if cont.strip() == self.choices[ctx] else -1.0 for ctx, cont in pairs]

    def close(self) -> None: ...


def oracle(right: bool) -> Oracle:
    """Gold answers in each benchmark's expected form (`right`), or wrong ones."""
    texts, choices = {}, {}
    code = {("abc000_a", True): STDIN_GOLD, ("abc000_a", False): STDIN_WRONG,
            ("1", True): FUNCTIONAL_GOLD, ("1", False): FUNCTIONAL_WRONG}
    for name in FIXTURE_BENCHMARKS:
        bench = get_benchmark(name)
        for it in load_items(bench):
            prompt = Oracle.render(Oracle({}, {}), prompt_text(bench, it), chat=bench.chat, enable_thinking=False)
            if bench.method == "loglikelihood":
                choices[prompt] = it["answer"] if right else next(c for c in it["choices"] if c != it["answer"])
            elif name == "gpqa_diamond":
                texts[prompt] = f"\\boxed{{{it['answer'] if right else 'ABCD'['ABCD'.index(it['answer']) - 1]}}}"
            elif name == "coqa":
                texts[prompt] = f"{it['answer'] if right else 'a purple cat'}\nQ: next?"
            elif name == "halueval":
                texts[prompt] = "Yes" if (it["answer"] == "yes") == right else "No"
            else:
                texts[prompt] = code[(it["id"], right)]
    return Oracle(texts, choices)


@pytest.mark.parametrize("right", [True, False])
def test_eval_job_scores_the_fixture_benchmarks(fixtures: Path, tmp_path: Path, monkeypatch, right: bool) -> None:
    from engine.jobs import eval as eval_job

    monkeypatch.setattr(eval_job, "load_backend", lambda ref, kind: oracle(right))
    params = {"model": "oracle", "benchmarks": [{"name": n} for n in FIXTURE_BENCHMARKS]}
    result = eval_job.run(job_context(tmp_path, "eval", params))
    scores = {name: s["metrics"]["accuracy"] for name, s in result["scores"].items()}
    assert scores == {name: 100.0 if right else 0.0 for name in FIXTURE_BENCHMARKS}
    halu = result["scores"]["halueval"]
    assert halu["n"] == 5 and {k: v for k, v in halu["metrics"].items() if k.startswith("accuracy_")} == {
        f"accuracy_{s}": 100.0 if right else 0.0 for s in ("qa", "dialogue", "summarization")}
    assert result["scores"]["gpqa_diamond"]["samples"] == 18  # avg@3
    assert result["scores"]["coqa"]["metrics"]["f1"] == (100.0 if right else 0.0)


def test_pooled_score_weighs_each_subset_by_its_size(fixtures: Path) -> None:
    from engine.jobs.eval import score_one

    bench = get_benchmark("halueval")
    scorer = get_scorer(bench.scorer)
    items = load_items(bench)  # qa 2, dialogue 2, summarization 1
    verdicts = [score_one(scorer, bench, Generation("Yes" if (it["subset"] == "qa") == (it["answer"] == "yes")
                                                    else "No", 1, "stop"), it) for it in items]
    metrics = scorer.aggregate(verdicts)
    assert metrics["accuracy_qa"] == 100 and metrics["accuracy_dialogue"] == metrics["accuracy_summarization"] == 0
    assert metrics["accuracy"] == 40  # 2 of 5 items, not the mean of the three subsets (33.3)


def test_rescoring_a_pooled_benchmark_counts_each_parts_items(fixtures: Path, tmp_path: Path) -> None:
    """`tix score` on saved HaluEval answers: the per-subset accuracies are over that subset's items."""
    from engine.evaluation.rescore import rescore

    items = load_items(get_benchmark("halueval"))
    lines = [{"id": it["id"], "output": "Yes" if it["answer"] == "yes" else "No"} for it in items]
    generations = tmp_path / "halu.jsonl"
    generations.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = rescore("halueval", generations).summary
    assert summary["n"] == 5 and summary["accuracy"] == 100
    assert summary["metric_items"] == {"accuracy_qa": 2, "accuracy_dialogue": 2, "accuracy_summarization": 1}
