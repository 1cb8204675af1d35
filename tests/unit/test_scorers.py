"""Scorers on synthetic cases: extraction edge cases, each equivalence mode, the flags."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

from engine.evaluation.scorers import NO_ANSWER, SCORERS, UNCLOSED_THINK, Verdict, get_scorer
from engine.evaluation.scorers.choice import extract_letter, last_number, yes_or_no
from engine.evaluation.scorers.ifeval import aggregate_ifeval
from engine.evaluation.scorers.maths import extract_answer, is_equiv, last_boxed, strip_string, verify_equiv
from engine.evaluation.scorers.text import f1, normalize_answer
from engine.evaluation.scorers.textutil import first_line, normalise_space, strip_think
from tests.conftest import ROOT

MINE = ["math_verify", "math_hendrycks", "mc_letter", "exact_match", "numeric", "yes_no_first_line",
        "squad_f1", "ifeval"]


def score(name: str, completion: str, **item: Any) -> Verdict:
    return get_scorer(name)(completion, {"id": "x", "question": "q", **item})


def test_every_scorer_is_registered_with_a_version() -> None:
    for name in MINE:
        assert SCORERS[name].version == "1" and SCORERS[name].description


def test_importing_the_scorers_loads_no_heavy_library() -> None:
    code = "import sys, engine.evaluation.scorers; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert not loaded & {"torch", "transformers", "trl", "sympy", "math_verify", "lm_eval", "nltk"}

# ---------------------------------------------------------------------------- textutil


@pytest.mark.parametrize(("text", "expected"), [
    ("plain answer", ("plain answer", False)),
    ("<think>scratch</think>\n\nThe answer", ("The answer", False)),
    ("scratch the template opened</think> 42", ("42", False)),
    ("<think>a</think><think>b</think> last", ("last", False)),
    ("<think>never closed \\boxed{5}", ("", True)),
    ("<think>a</think> early <think> reopened", ("", True)),
])
def test_strip_think(text: str, expected: tuple[str, bool]) -> None:
    assert strip_think(text) == expected


def test_first_line_and_spaces() -> None:
    assert first_line("\n\n  Paris.  \nBecause...") == "Paris."
    assert normalise_space(" a\t b\n\nc\u00a0d ") == "a b c d"

# ---------------------------------------------------------------------------- maths extraction


@pytest.mark.parametrize(("text", "expected"), [
    ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("nested \\boxed{\\sqrt{\\frac{a^{2}}{b}}} end", "\\sqrt{\\frac{a^{2}}{b}}"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("\\fbox{7}", "7"),
    ("$\\boxed 5$", "5"),
    ("sets \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("complete \\boxed{3} then cut \\boxed{\\frac{1}{", "3"),
    ("unicode \\boxed{π√2 ≈ 4.44}", "π√2 ≈ 4.44"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("**Final Answer:** $12$.", "12"),
    ("Final Answer:\n\\[ x = 3 \\]", "x = 3"),
    ("Therefore the answer is 42.", "42"),
])
def test_extract_answer(text: str, expected: str) -> None:
    found = extract_answer(text)
    assert found is not None and found[0] == expected


@pytest.mark.parametrize("text", ["no answer at all", "empty \\boxed{}", "cut off \\boxed{\\frac{1}{2",
                                  "so the answer is supposed to be an integer, but"])
def test_extract_nothing(text: str) -> None:
    assert extract_answer(text) is None


def test_last_boxed_ignores_longer_macros() -> None:
    assert last_boxed("\\boxedanswer{3}") is None

# ---------------------------------------------------------------------------- maths equivalence

HALF = ["\\frac{1}{2}", "0.5", "\\dfrac12", "1/2", ".5", "\\tfrac{1}{2}"]


@pytest.mark.parametrize("pred", HALF)
@pytest.mark.parametrize("mode", ["math_hendrycks", "math_verify"])
def test_a_half_is_a_half_in_both_modes(mode: str, pred: str) -> None:
    verdict = score(mode, f"\\boxed{{{pred}}}", answer="\\frac{1}{2}")
    assert verdict.score == 1.0 and verdict.extracted == pred and not verdict.flags


@pytest.mark.parametrize(("pred", "gold", "hendrycks", "verify"), [
    ("0.25", "\\frac{1}{4}", False, True),  # Hendrycks special-cases 0.5 only
    ("\\frac{1}{3}", "0.33", False, False),
    ("x = 5", "5", True, True),
    ("10\\%", "10", True, True),
    ("90^\\circ", "90", True, True),
    ("12 \\text{ cm}", "12", True, True),
    ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True, True),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", False, True),
    ("2x+1", "1+2x", False, True),
    ("7", "8", False, False),
])
def test_modes_differ_where_expected(pred: str, gold: str, hendrycks: bool, verify: bool) -> None:
    assert is_equiv(pred, gold) is hendrycks
    assert verify_equiv(pred, gold) is verify


def test_hendrycks_normalisation_steps() -> None:
    assert strip_string("\\dfrac{3}{4}") == "\\frac{3}{4}"
    assert strip_string("\\sqrt3") == "\\sqrt{3}"
    assert strip_string("\\frac1{72}") == "\\frac{1}{72}"
    assert strip_string("k = \\left( 1, 2 \\right)") == "(1,2)"
    assert strip_string("3/4") == "\\frac{3}{4}"
    assert is_equiv("1\\text{ m}\\text{ s}", "1\\text{ m}\\text{ s}")  # two units: raw equality


@pytest.mark.parametrize("mode", ["math_hendrycks", "math_verify"])
def test_maths_flags(mode: str) -> None:
    missing = score(mode, "I could not finish", answer="3")
    assert missing.extracted is None and missing.flags == [NO_ANSWER] and missing.score == 0
    unclosed = score(mode, "<think>maybe \\boxed{3}", answer="3")
    assert unclosed.flags == [UNCLOSED_THINK, NO_ANSWER] and unclosed.score == 0
    closed = score(mode, "<think>maybe \\boxed{4}</think> so \\boxed{3}", answer="3")
    assert closed.score == 1 and closed.detail == {"form": "boxed"}


def test_math_verify_runs_outside_the_main_thread() -> None:
    results: list[float] = []

    def run() -> None:  # signal-based timeouts would raise ValueError here
        results.append(score("math_verify", "\\boxed{2/4}", answer="0.5").score)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert results == [1.0]

# ---------------------------------------------------------------------------- mc_letter


@pytest.mark.parametrize(("text", "expected"), [
    ("The answer is (B).", "B"),
    ("Answer: C", "C"),
    ("I pick **C** because...", "C"),
    ("A is tempting, but D", "D"),
    ("$\\boxed{\\text{(A)}}$", "A"),
    ("A good question. Answer: B", "B"),
    ("Apple and Banana", None),
])
def test_extract_letter(text: str, expected: str | None) -> None:
    assert extract_letter(text, "ABCD") == expected


def test_mc_letter_letters_follow_the_choices() -> None:
    ten = [str(i) for i in range(10)]
    assert score("mc_letter", "Answer: J", answer="J", choices=ten).score == 1
    assert score("mc_letter", "Answer: E", answer="A", choices=["w", "x", "y", "z"]).flags == [NO_ANSWER]
    assert score("mc_letter", "(B)", answer="Paris", choices=["London", "Paris"]).score == 1
    assert score("mc_letter", "(b) it is", answer="B").extracted is None

# ---------------------------------------------------------------------------- exact, numeric, yes/no


def test_exact_match() -> None:
    assert score("exact_match", "  Hello   World. ", answer="hello world").score == 1
    assert score("exact_match", "42", answers=["41", "42"]).score == 1
    assert score("exact_match", "4 2", answer="42").score == 0
    assert score("exact_match", "   ", answer="x").flags == [NO_ANSWER]


@pytest.mark.parametrize(("text", "value"), [
    ("costs 1,234.50 dollars", 1234.5), ("−3 degrees", -3.0), ("about .5", 0.5), ("2e-3 or 7", 7.0),
    ("got 3.", 3.0), ("none", None),
])
def test_last_number(text: str, value: float | None) -> None:
    assert last_number(text) == value


def test_numeric_tolerance() -> None:
    assert score("numeric", "so 1000000.5", answer="1000000").score == 1  # 5e-7 relative
    assert score("numeric", "so 1000.5", answer="1000").score == 0
    assert score("numeric", "#### 18", answer="$18").score == 1
    assert score("numeric", "no digits", answer="3").flags == [NO_ANSWER]


@pytest.mark.parametrize(("line", "said"), [
    ("Yes, it is.", "yes"), ("NO.", "no"), ("Yes or no? No.", None), ("Nobody knows", None),
    ("Yesterday, maybe", None),
])
def test_yes_or_no(line: str, said: str | None) -> None:
    assert yes_or_no(line) == said


def test_yes_no_reads_the_first_line_only() -> None:
    assert score("yes_no_first_line", "Yes\nNo, wait", answer="Yes").score == 1
    assert score("yes_no_first_line", "Hmm.\nYes", answer="Yes").flags == [NO_ANSWER]
    assert score("yes_no_first_line", "No, it contains no hallucination.", answer="No").score == 1

# ---------------------------------------------------------------------------- squad_f1


def test_squad_normalisation() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert normalize_answer("Café") == "café"


def test_squad_f1_cases() -> None:
    exact = score("squad_f1", "The Eiffel Tower.", answer="Eiffel Tower")
    assert exact.score == 1 and exact.metrics == {"em": 1.0, "f1": 1.0}
    partial = score("squad_f1", "in Paris France", answer="Paris")
    assert partial.score == pytest.approx(0.5) and partial.metrics["em"] == 0
    best = score("squad_f1", "blue", answers=["red", "Blue!", "sky blue"])
    assert best.metrics == {"em": 1.0, "f1": 1.0}
    assert score("squad_f1", "Paris\nBecause it is the capital", answer="Paris").score == 1
    assert f1("the", "a") == 1.0 and f1("the", "paris") == 0.0  # empty after normalisation
    assert score("squad_f1", "", answer="x").flags == [NO_ANSWER]

# ---------------------------------------------------------------------------- ifeval


def ifeval_item(ids: list[str], kwargs: list[dict[str, Any]], prompt: str = "Write.") -> dict[str, Any]:
    return {"key": 1, "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs}


def test_ifeval_strict_and_loose() -> None:
    item = ifeval_item(["punctuation:no_comma", "length_constraints:number_sentences"],
                       [{}, {"relation": "at least", "num_sentences": 3, "extra": None}])
    strict_ok = get_scorer("ifeval")("One. Two. Three.", item)
    assert strict_ok.score == 1 and strict_ok.metrics["inst_strict"] == 1
    intro = get_scorer("ifeval")("Sure, here it is:\nOne. Two. Three.", item)
    assert intro.metrics["prompt_strict"] == 0 and intro.metrics["inst_strict"] == 0.5
    assert intro.metrics["prompt_loose"] == 1  # loose drops the first line


def test_ifeval_word_tokenize_and_language_run_offline() -> None:
    item = ifeval_item(["change_case:capital_word_frequency", "language:response_language"],
                       [{"capital_relation": "at least", "capital_frequency": 2}, {"language": "en"}])
    verdict = get_scorer("ifeval")("This is VERY IMPORTANT news for everyone in the city today.", item)
    assert verdict.detail is not None and verdict.detail["strict"] == [True, True]


def test_ifeval_is_deterministic_for_a_random_fallback() -> None:
    item = ifeval_item(["keywords:letter_frequency"], [{"letter": "#", "let_frequency": 3,
                                                        "let_relation": "at least"}])
    text = "the quick brown fox jumps over the lazy dog " * 2
    assert len({get_scorer("ifeval")(text, item).score for _ in range(5)}) == 1


def test_ifeval_empty_response_follows_nothing() -> None:
    verdict = get_scorer("ifeval")("<think>never done", ifeval_item(["punctuation:no_comma"], [{}]))
    assert verdict.score == 0 and verdict.flags == [UNCLOSED_THINK, NO_ANSWER]


def test_ifeval_aggregate_is_micro_over_instructions() -> None:
    def made(strict: float, n: int) -> Verdict:
        return Verdict(float(strict == 1), metrics={"prompt_strict": float(strict == 1), "prompt_loose": 1.0,
                                                    "inst_strict": strict, "inst_loose": 1.0,
                                                    "n_instructions": float(n)})
    out = aggregate_ifeval([made(1.0, 1), made(1 / 3, 3)])
    assert out["prompt_strict"] == out["accuracy"] == 50.0
    assert out["inst_strict"] == pytest.approx(50.0)  # (1 + 1) / 4, not the mean of 1 and 1/3
    assert out["inst_loose"] == 100.0
