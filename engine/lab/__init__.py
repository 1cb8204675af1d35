"""The tiny lab: a small model, tokenizer and task corpus built locally, with no download.

`data` defines the lab tasks (reasoning-gym generators at tiny-model difficulty, in three groups:
maths, other reasoning, non-reasoning) and splits them by seed into evaluation items, the maths
tuning set and pre-training items; `corpus` renders the pre-training items as documents; `model`
trains a byte-level BPE tokenizer and pre-trains a Qwen2 on them. The `build` job
(engine.jobs.build) ties them together; `demo` is `tix demo`. Workers import `model` (torch);
the benchmark registry imports `data` (light: reasoning-gym loads when items are drawn).
"""

from __future__ import annotations

from typing import Any

#: Qwen2Config fields of the default tiny model (0.92M parameters with 1024 tokens). It lives here,
#: free of torch, so that resolving and hashing build parameters stays cheap. Small on purpose: on
#: 2 CPU cores the skills appear after about 4M training tokens whatever the width, so the fastest
#: model per token is the one that learns most in two minutes (a 1.9M or 3.2M model scored lower
#: on every group in the same time).
DEFAULT_SIZE: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 384,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
