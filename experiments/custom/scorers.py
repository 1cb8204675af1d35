"""Scorer plugins for experiments/custom-benchmarks.yaml: plain functions `(completion, item)`.

tix loads this file in the evaluation worker; its hash is part of the run id, so editing a
scorer re-scores. Return a bool or a number in [0, 1], optionally with the extracted answer.
"""


def reversed_word(completion: str, item: dict) -> tuple[bool, str]:
    """The first word of the completion equals the gold reversal, case and spaces ignored."""
    words = completion.split()
    answer = words[0].lower() if words else ""
    return answer == item["answer"].lower(), answer
