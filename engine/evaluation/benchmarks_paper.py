"""The item shapers and prompts of the paper's benchmarks (arXiv 2507.00432, "Does Math
Reasoning Improve General LLM Capabilities?"), kept apart so `engine.evaluation.benchmarks` stays a registry.

A shaper turns one source row, in the source's own field names (a Hugging Face row or a line of
a local copy), into the item(s) tix scores: it adds `question` (the text the prompt template
receives), `answer` (gold) and whatever the scorer reads (`choices`, `answers`, `tests`...).
Rows keep their source fields; a shaper overwrites a source field only where the source uses a
normalised name for something else (MC-TACO's and HaluEval's `answer` is the answer being
judged; it moves to `candidate` before `answer` becomes the gold). Each shaper returns a list:
HaluEval's raw configs hold two answers per row.

Where the paper's own harness (its lm-eval fork and evalchemy) fixes a prompt, the prompt is that
one; the module docstrings of `engine.evaluation.benchmarks` and the report explain the few departures.
Light on purpose: only the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import pickletools
import random
import zlib
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]
Shaper = Callable[[Row], list[Row]]

# ---------------------------------------------------------------------------- prompts

#: The paper's maths prompt (its lm-eval tasks for MATH-500, AIME and OlympiadBench; the real
#: MATH-500 generations in the shared data were rendered from exactly this text).
MATH_PROMPT = ("Solve the following math problem. Present the final answer in the format: "
               "Final Answer: \\boxed{{your_answer}}.\nProblem: {question}\nAnswer:")

#: evalchemy's GPQA-Diamond prompt, which the paper ran; `options` is "A) .., B) .., C) .., D) ..".
GPQA_PROMPT = ("Return your final response within \\boxed{{}} and only include the letter choice "
               "(A, B, C, or D) as your final response.\nProblem: {question}\nOptions: {options}\nAnswer:")

#: ACPBench: context, then the question with its lettered choices (as the source writes them).
ACP_PROMPT = ("{context}\n\n{question}\n\nThink step by step, then end with \"Final Answer: X\", "
              "where X is the letter of the correct choice.")

#: lm-eval's HEAD-QA and MC-TACO contexts; the choices are scored as continuations (" " + choice).
HEADQA_PROMPT = "Question: {question}\nAnswer:"
MCTACO_PROMPT = "{sentence}\nQuestion: {question}\nAnswer: {candidate}\nPlausible:"

#: evalchemy's LiveCodeBench instructions, glued to the problem statement as evalchemy does.
LCB_STDIN = ("Generate an executable Python function generated from the given prompt. The function "
             "should take stdin as input and print the output. "
             "Simply call the function after the definition.")
LCB_FUNCTIONAL = ("Generate an executable Python function generated from the given prompt. Return the "
                  "function body without invoking it at the final solution.")
LCB_TIMEOUT = 6.0  # seconds per test, as LiveCodeBench and evalchemy

_HALU_END = ("You should try your best to determine if the {thing} contains non-factual or hallucinated "
             "information according to the above hallucination types. The answer you give MUST be "
             "\"Yes\" or \"No\"\".")
#: The paper's HaluEval judge instructions (its lm-eval fork, after RUCAIBox/HaluEval's
#: evaluate.py): one worked example per subset, then the item. The stray quote at the very end
#: is the paper's, kept so the prompt is token for token the one it scored.
HALU_INSTRUCTIONS = {
    "qa": (
        "I want you act as an answer judge. Given a question and an answer, your objective is to "
        "determine if the provided answer contains non-factual or hallucinated information. You SHOULD "
        "give your judgement based on the following hallucination types and the world knowledge.\n\n"
        "You are trying to determine if the answer misunderstands the question context and intention.\n"
        "#Question#: What is a rare breed of dog that was derived as a variant of Rat Terrier, Shiloh "
        "Shepherd dog or American Hairless Terrier?\n#Answer#: American Hairless Terrier\n"
        "#Your Judgement#: No\n\n" + _HALU_END.format(thing="answer")),
    "dialogue": (
        "I want you act as a response judge. Given a dialogue history and a response, your objective is "
        "to determine if the provided response contains non-factual or hallucinated information. You "
        "SHOULD give your judgement based on the following hallucination types and the world knowledge.\n\n"
        "You are trying to determine if the true entity in the response is replaced with a highly similar "
        "entity.\n#Dialogue History#: [Human]: Could you recommand movies similar to The Dark Knight? "
        "[Assistant]: The sequel to Batman Begins is The Dark Knight. [Human]: Okay. Who is the director "
        "of The Dark Knight and any other movies from him not related to Batman?\n#Response#: Christopher "
        "Nolan was the director. He also directed insomnia and inception.\n#Your Judgement#: No\n\n"
        + _HALU_END.format(thing="response")),
    "summarization": (
        "I want you act as a summary judge. Given a document and a summary, your objective is to determine "
        "if the provided summary contains non-factual or hallucinated information. You SHOULD give your "
        "judgement based on the following hallucination types and the world knowledge.\n\n"
        "You are trying to determine if the summary is factual but some information cannot be directly "
        "inferred or entailed from the document.\n#Document#: The panther chameleon was found on Monday "
        "by a dog walker in the wooded area at Marl Park. It had to be put down after X-rays showed all of "
        "its legs were broken and it had a deformed spine. RSPCA Cymru said it was an \"extremely sad "
        "example of an abandoned and neglected exotic pet\". Inspector Selina Chan said: \"It is a "
        "possibility that the owners took on this animal but were unable to provide the care he needs and "
        "decided to release him to the wild. \"We are urging potential owners of exotic animals to "
        "thoroughly research what is required in the care of the particular species before taking one on. "
        "\"Potential owners need to make sure they can give their animal the environment it needs and they "
        "have the facilities, time, financial means and long-term commitment to maintain a good standard "
        "of care, as required under the Animal Welfare Act 2006.\" She added it was illegal to release "
        "non-native species into the wild.\n#Summary#: A chameleon that was found in a Cardiff park has "
        "been put down after being abandoned and neglected by its owners.\n#Your Judgement#: Yes\n\n"
        + _HALU_END.format(thing="summary")),
}

# ---------------------------------------------------------------------------- maths


def olympiadbench(row: Row) -> list[Row]:
    """Gold from `final_answer`, a list (["$3$"]): its parts joined by ", ", every `$` removed.

    The `$` must go: the MATH normalisation keeps a bare `$`, so `\\boxed{3}` would never equal
    "$3$" (the paper's own scorer compares against the raw first element and so misses them).
    """
    final = row.get("final_answer")
    parts = final if isinstance(final, list) else [final] if final is not None else []
    return [{**row, "answer": ", ".join(str(p).replace("$", "").strip() for p in parts)}]

# ---------------------------------------------------------------------------- GPQA

GPQA_OPTIONS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def stable_seed(*parts: Any) -> int:
    """A seed from text that is the same in every process (`hash()` is salted per process)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return int(digest[:16], 16)


def gpqa(row: Row) -> list[Row]:
    """Options A-D shuffled by a seed of the item's own (Record ID, else question); gold letter kept.

    evalchemy seeds every item with the same Random(42), which puts the correct answer under the
    same letter for all 198 questions; a per-item seed spreads it, deterministically.
    """
    options = [str(row[key]).strip() for key in GPQA_OPTIONS]
    order = list(range(4))
    random.Random(stable_seed("gpqa", row.get("Record ID") or row["Question"])).shuffle(order)
    choices = [options[i] for i in order]
    letters = "ABCD"
    options_text = ", ".join(f"{letter}) {text}" for letter, text in zip(letters, choices, strict=True))
    return [{**row, "question": row["Question"], "choices": choices, "answer": letters[order.index(0)],
             "options": options_text}]

# ---------------------------------------------------------------------------- LiveCodeBench

MAX_TESTS_BYTES = 512 << 20  # a decompressed private-test blob larger than this is refused
#: The only pickle opcodes needed to pickle one str, at any protocol. Nothing that imports,
#: calls or builds an object is allowed, so the pickle cannot run code.
_STR_OPCODES = frozenset({"PROTO", "FRAME", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                          "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "STOP"})


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only a pickled str is accepted")


def decode_private_tests(blob: Any) -> list[dict[str, Any]]:
    """LiveCodeBench's `private_test_cases`: base64 of zlib of a pickled JSON string.

    Pickle because that is how the dataset ships them (to keep the hub viewer light). Unpickling
    untrusted data can run arbitrary code, so the blob is accepted only if it is exactly that
    format: every opcode is checked to be one that builds a str (no GLOBAL, REDUCE, BUILD...),
    the unpickler refuses any class lookup besides, and the result must be a str holding a JSON
    list. Plain JSON (a mirror that already decoded them) is accepted too.
    """
    if isinstance(blob, list):
        return blob
    text = str(blob or "").strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    tests = json.loads(_unpickle_str(_inflate(base64.b64decode(text))))
    if not isinstance(tests, list):
        raise ValueError("private tests are not a JSON list")
    return tests


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, MAX_TESTS_BYTES)
    except zlib.error as exc:
        raise ValueError(f"private tests are not zlib data ({exc})") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"private tests larger than {MAX_TESTS_BYTES >> 20} MiB once decompressed")
    return raw


def _unpickle_str(raw: bytes) -> str:
    """The str a pickle holds, after checking that building one str is all the pickle does."""
    bad = {op.name for op, _, _ in pickletools.genops(raw)} - _STR_OPCODES
    if bad:
        raise ValueError(f"private tests are not a pickled string (opcodes {sorted(bad)})")
    try:
        value = _NoGlobals(io.BytesIO(raw)).load()
    except (pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"private tests are not a pickled string ({exc})") from None
    if not isinstance(value, str):
        raise ValueError("private tests are not a pickled string")
    return value


def _json_field(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else default
    return default if value is None else value


def livecodebench(row: Row) -> list[Row]:
    """Public + private tests (as LiveCodeBench grades), the call name for functional problems,
    and evalchemy's prompt; a functional problem's starter code follows the statement so that the
    model knows the method the tests call (evalchemy leaves it out and guesses the name)."""
    public = _json_field(row.get("public_test_cases"), [])
    tests = public + decode_private_tests(row.get("private_test_cases"))
    func_name = _json_field(row.get("metadata"), {}).get("func_name")
    functional = bool(func_name) or any(t.get("testtype") == "functional" for t in tests)
    starter = str(row.get("starter_code") or "")
    question = (LCB_FUNCTIONAL if functional else LCB_STDIN) + str(row["question_content"])
    if functional and starter.strip():
        question += "\n" + starter
    return [{**row, "question": question, "tests": tests, "func_name": func_name,
             "timeout": LCB_TIMEOUT, "answer": None}]

# ---------------------------------------------------------------------------- ACPBench, HEAD-QA, MC-TACO


def acpbench(row: Row) -> list[Row]:
    """`choices` as the list of option texts (the source has {text, label}); gold is the letter."""
    choices = row.get("choices")
    texts = choices.get("text") if isinstance(choices, dict) else choices
    return [{**row, "choices": list(texts or []), "answer": str(row["answer"]).strip()}]


def headqa(row: Row) -> list[Row]:
    """Choices in answer-id order; gold is the text of the answer whose id is `ra` (lm-eval: ra - 1)."""
    answers = row["answers"]
    if isinstance(answers, str):
        answers = json.loads(answers)
    answers = sorted(answers, key=lambda a: int(a["aid"]))
    choices = [str(a["atext"]) for a in answers]
    gold = [int(a["aid"]) for a in answers].index(int(row["ra"]))
    item_id = f"{row.get('name', 'headqa')}/{row.get('qid')}" if row.get("qid") is not None else None
    shaped = {**row, "question": row["qtext"], "choices": choices, "answer": choices[gold], "gold": gold}
    return [{**shaped, "id": item_id} if item_id else shaped]


def mctaco(row: Row) -> list[Row]:
    """lm-eval's MC-TACO: one yes/no item per (question, candidate answer) row, label 1 = yes."""
    label = str(row["label"]).strip().lower()
    gold = "yes" if label in ("1", "yes", "true") else "no"
    return [{**row, "candidate": row["answer"], "choices": ["no", "yes"], "answer": gold,
             "gold": int(gold == "yes")}]

# ---------------------------------------------------------------------------- CoQA


def _texts(field: Any) -> list[str]:
    """A list of strings, whether the source gives a list or {"input_text": [...]}."""
    if isinstance(field, dict):
        field = field.get("input_text", [])
    return [str(x) for x in field or []]


def coqa(row: Row) -> list[Row]:
    """One item per story, as lm-eval: the story, every earlier turn answered, the last question.

    Text: story, blank line, then `Q: ..\\n\\nA: ..\\n\\n` per earlier turn and `Q: ..\\n\\nA:`.
    Gold: the last turn's answer plus the additional annotators' answers for that turn (the
    EleutherAI copy has them; stanfordnlp's has one answer), without case-insensitive repeats.
    """
    questions, answers = _texts(row["questions"]), _texts(row["answers"])
    turn = len(questions) - 1
    history = "".join(f"Q: {q}\n\nA: {a}\n\n" for q, a in zip(questions[:turn], answers[:turn], strict=True))
    golds = [answers[turn]]
    for extra in (row.get("additional_answers") or {}).values():
        more = _texts(extra)
        if len(more) > turn and more[turn].lower() not in (g.lower() for g in golds):
            golds.append(more[turn])
    return [{**row, "question": f"{row['story']}\n\n{history}Q: {questions[turn]}\n\nA:",
             "answer": golds[0], "answers": golds}]

# ---------------------------------------------------------------------------- HaluEval

#: subset -> (judged field in the *_samples configs, (right, hallucinated) fields in the raw ones)
HALU_FIELDS = {"qa": ("answer", ("right_answer", "hallucinated_answer")),
               "dialogue": ("response", ("right_response", "hallucinated_response")),
               "summarization": ("summary", ("right_summary", "hallucinated_summary"))}


def halu_subset(row: Row) -> str:
    """The row's subset: its `subset` tag, else recognised from its fields."""
    if row.get("subset") in HALU_FIELDS:
        return str(row["subset"])
    if "document" in row:
        return "summarization"
    return "dialogue" if "dialogue_history" in row else "qa"


def halu_text(subset: str, row: Row, judged: str) -> str:
    """The paper's HaluEval prompt for one (context, judged text) pair."""
    body = {"qa": f"#Knowledge: {row.get('knowledge', '')}\n#Question#: {row.get('question', '')}\n"
                  f"#Answer#: {judged}",
            "dialogue": f"#Knowledge: {row.get('knowledge', '')}\n#Dialogue History#: "
                        f"{row.get('dialogue_history', '')}\n#Response#: {judged}",
            "summarization": f"#Document#: {row.get('document', '')}\n#Summary#: {judged}"}[subset]
    return f"{HALU_INSTRUCTIONS[subset]}\n\n{body}\n#Your Judgement#:"


def halueval(row: Row) -> list[Row]:
    """A `*_samples` row (what the paper scored) is one item, gold its `hallucination` yes/no.

    A raw row (configs qa, dialogue, summarization: a right and a hallucinated answer) becomes
    two items, one per answer, ids suffixed `:right` and `:hallucinated`; the samples configs
    are those rows with one of the two drawn at random, so the two sets differ.
    """
    subset = halu_subset(row)
    judged_field, pair = HALU_FIELDS[subset]
    if "hallucination" in row:
        return [_halu_item(subset, row, str(row.get(judged_field, "")), str(row["hallucination"]), None)]
    right, wrong = (str(row.get(f, "")) for f in pair)
    return [_halu_item(subset, row, right, "no", "right"),
            _halu_item(subset, row, wrong, "yes", "hallucinated")]


def _halu_item(subset: str, row: Row, judged: str, gold: str, suffix: str | None) -> Row:
    item = {**row, "subset": subset, "candidate": judged, "question": halu_text(subset, row, judged),
            "answer": gold.strip().lower()}
    if suffix:
        item["id"] = f"{row.get('id', '')}:{suffix}"
    return item


SHAPERS: dict[str, Shaper] = {
    "olympiadbench": olympiadbench, "gpqa": gpqa, "livecodebench": livecodebench, "acpbench": acpbench,
    "headqa": headqa, "mctaco": mctaco, "coqa": coqa, "halueval": halueval,
}

