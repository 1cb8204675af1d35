"""The tiny lab: a small model, tokenizer and task corpus built locally, with no download.

`corpus` makes seeded question/answer tasks in three groups (maths, other reasoning,
non-reasoning); `model` trains a byte-level BPE tokenizer and pre-trains a Qwen2 of about a
million parameters on them. The `build` job (engine.jobs.build) ties the two together.
"""

from __future__ import annotations

from typing import Any

#: Qwen2Config fields of the default tiny model (about 0.9M parameters with 1024 tokens). It lives
#: here, free of torch, so that resolving and hashing build parameters stays cheap.
DEFAULT_SIZE: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 384,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
