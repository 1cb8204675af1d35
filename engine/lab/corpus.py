"""A procedural, seeded, offline corpus of simple question/answer tasks in three groups.

The groups mirror arXiv 2507.00432: `math` (multi-digit arithmetic), `other` (reasoning that is
not maths: comparisons, sequences, counting) and `non` (non-reasoning: copying, reversing,
capitalising, reading facts about made-up objects). Everything is generated from one
`random.Random(seed)`, so the same seed always gives the same items on any machine.

The interface is kept small on purpose (`corpus(seed, n)`, plus `items` for callers that need
the question and answer apart) so that the generators can later be swapped for `reasoning-gym`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

GROUPS = ("math", "other", "non")

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "purple", "orange")
_PLACES = ("sea", "forest", "desert", "city", "cave", "mountain", "river", "garden")


@dataclass(frozen=True)
class Item:
    """One task: its group, its generator's name, the question and the expected answer."""

    group: str
    task: str
    question: str
    answer: str

    @property
    def text(self) -> str:
        """The plain pre-training rendering (no chat template)."""
        return f"Question: {self.question}\nAnswer: {self.answer}"


def _number(rng: random.Random, lo_digits: int, hi_digits: int) -> int:
    digits = rng.randint(lo_digits, hi_digits)
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def _word(rng: random.Random, lo: int = 2, hi: int = 3) -> str:
    """A pronounceable made-up word, so no task leans on knowledge of real English."""
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.randint(lo, hi)))


# --- maths ------------------------------------------------------------------------------


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = _number(rng, 1, 4), _number(rng, 1, 4)
    return f"What is {a} + {b}?", str(a + b)


def _sub(rng: random.Random) -> tuple[str, str]:
    a, b = _number(rng, 1, 4), _number(rng, 1, 4)
    return f"What is {a} - {b}?", str(a - b)


def _mul(rng: random.Random) -> tuple[str, str]:
    a, b = _number(rng, 1, 3), _number(rng, 1, 2)
    return f"What is {a} * {b}?", str(a * b)


# --- other reasoning ----------------------------------------------------------------------


def _larger(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(range(1000), 2)
    return f"Which number is larger, {a} or {b}?", str(max(a, b))


def _sequence(rng: random.Random) -> tuple[str, str]:
    start, step = rng.randint(0, 50), rng.randint(1, 12)
    terms = [start + step * i for i in range(rng.randint(3, 5))]
    shown = ", ".join(map(str, terms))
    return f"What comes next in the sequence {shown}?", str(terms[-1] + step)


def _count_letter(rng: random.Random) -> tuple[str, str]:
    word = _word(rng, 3, 5)
    letter = rng.choice(word)
    return f"How many times does the letter {letter} appear in {word}?", str(word.count(letter))


# --- non-reasoning ------------------------------------------------------------------------


def _copy(rng: random.Random) -> tuple[str, str]:
    word = _word(rng)
    return f"Repeat the word {word}.", word


def _reverse(rng: random.Random) -> tuple[str, str]:
    word = _word(rng)
    return f"Write the word {word} backwards.", word[::-1]


def _capitalise(rng: random.Random) -> tuple[str, str]:
    word = _word(rng)
    return f"Write the word {word} in capital letters.", word.upper()


def _fact(rng: random.Random) -> tuple[str, str]:
    """Read a fact about a made-up object from the question itself (reading, not recall)."""
    name, colour, place = _word(rng), rng.choice(_COLOURS), rng.choice(_PLACES)
    story = f"The {name} is {colour} and lives in the {place}."
    if rng.random() < 0.5:
        return f"{story} What colour is the {name}?", colour
    return f"{story} Where does the {name} live?", place


Generator = Callable[[random.Random], tuple[str, str]]

#: group -> (task name, generator) pairs; `items` cycles groups, then tasks within a group.
TASKS: dict[str, tuple[tuple[str, Generator], ...]] = {
    "math": (("add", _add), ("sub", _sub), ("mul", _mul)),
    "other": (("larger", _larger), ("sequence", _sequence), ("count_letter", _count_letter)),
    "non": (("copy", _copy), ("reverse", _reverse), ("capitalise", _capitalise), ("fact", _fact)),
}


def items(seed: int, n: int, groups: tuple[str, ...] = GROUPS) -> list[Item]:
    """`n` tasks, groups equally common, tasks cycled within a group; deterministic for `seed`."""
    unknown = sorted(set(groups) - set(TASKS))
    if unknown or not groups:
        raise ValueError(f"unknown or no groups {unknown or groups!r} (known: {', '.join(GROUPS)})")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        group = groups[i % len(groups)]
        name, make = TASKS[group][(i // len(groups)) % len(TASKS[group])]
        out.append(Item(group, name, *make(rng)))
    return out


def corpus(seed: int, n: int) -> list[str]:
    """`n` plain question/answer texts over all three groups; deterministic for `seed`."""
    return [item.text for item in items(seed, n)]
