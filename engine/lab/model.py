"""The tiny lab's tokenizer and model, built and pre-trained locally on CPU in about a minute.

Everything here is offline on purpose: the machine may have no internet, so the tokenizer is
trained with the `tokenizers` library and the model is a freshly initialised Qwen2. Both are
ordinary Hugging Face objects, so every later job (trl training, HF or vLLM generation) treats
the tiny lab exactly like a real Qwen checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from engine.lab import DEFAULT_SIZE

EOS = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_START, THINK_END = "<think>", "</think>"
SPECIAL_TOKENS = [EOS, IM_START, IM_END]
#: Added as single tokens but not "special", as in Qwen3: decoding with
#: `skip_special_tokens=True` must keep them so that answer extraction can split on `</think>`.
THINK_TOKENS = [THINK_START, THINK_END]

#: Qwen2's pre-tokenizer split: single digits (\p{N}) keep arithmetic learnable for a tiny model.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: Qwen3-style ChatML. The last assistant turn always carries a think block (empty when there is
#: no `reasoning_content`), and `enable_thinking=False` pre-fills that empty block in the
#: generation prompt, so training and generation agree on where the answer starts.
#: `{% generation %}` marks assistant tokens for `return_assistant_tokens_mask` (trl's
#: `assistant_only_loss`).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}"
    "{%- if loop.last %}"
    "{{- '<think>\\n' + (message.reasoning_content or '').strip('\\n') + '\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{{- message.content.lstrip('\\n') + '<|im_end|>' }}"
    "{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def build_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of `vocab_size` tokens trained on `texts`, ChatML-ready."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(THINK_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    return _wrap(backend)


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    """The transformers view of `backend`: left padding, so batched generation lines up."""
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS,
        pad_token=EOS,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=DEFAULT_SIZE["max_position_embeddings"],
    )


def render_chat(conversations: list[list[dict[str, str]]]) -> list[str]:
    """Conversations as CHAT_TEMPLATE text, before any tokenizer is trained (to train one on them)."""
    return _wrap(Tokenizer(models.BPE())).apply_chat_template(conversations, tokenize=False)


def model_config(tokenizer: PreTrainedTokenizerFast, size: dict[str, Any] | None = None) -> Qwen2Config:
    """A Qwen2Config of `DEFAULT_SIZE` updated with `size`; unknown fields are a ValueError."""
    fields = {**DEFAULT_SIZE, **(size or {})}
    unknown = sorted(k for k in fields if not hasattr(Qwen2Config(), k))
    if unknown:
        raise ValueError(f"unknown model size field(s): {', '.join(unknown)}")
    eos, pad = tokenizer.convert_tokens_to_ids([EOS, EOS])
    return Qwen2Config(vocab_size=len(tokenizer), eos_token_id=eos, pad_token_id=pad, **fields)


def build_model(
    tokenizer: PreTrainedTokenizerFast, size: dict[str, Any] | None, seed: int
) -> Qwen2ForCausalLM:
    """A freshly initialised Qwen2 sized by `size`; the same seed gives the same weights."""
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_config(tokenizer, size))
    # Chat turns end with <|im_end|>; plain text with <|endoftext|>: stop on either, as Qwen does.
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids([IM_END, EOS])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def parameter_count(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def pack(tokenizer: PreTrainedTokenizerFast, texts: list[str], block_size: int) -> torch.Tensor:
    """`texts` joined by <|endoftext|> and cut into `block_size` rows: no padding is trained on."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    stream = [tok for row in ids for tok in (*row, tokenizer.eos_token_id)]
    rows = len(stream) // block_size
    if rows == 0:
        raise ValueError(f"corpus of {len(stream)} tokens is shorter than one block of {block_size}")
    return torch.tensor(stream[: rows * block_size]).view(rows, block_size)


def batches(blocks: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of rows, reshuffled every epoch from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(blocks), generator=gen)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield blocks[order[start : start + batch_size]]
        if len(order) < batch_size:
            yield blocks[order]


def learning_rate(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay to 10% of `peak`."""
    warmup = max(1, total // 10)
    if step <= warmup:
        return peak * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


OnStep = Callable[[int, int, float, float], None]


def pretrain(
    model: Qwen2ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    texts: list[str],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_step: OnStep | None = None,
    block_size: int = 128,
) -> list[float]:
    """Causal-LM pre-training with AdamW on packed blocks; returns the loss of every step.

    `on_step(step, total, loss, tokens_per_s)` is called after each optimiser step (1-based);
    the loss is the batch's loss before that step's update, so step 1 shows the untrained model.
    """
    torch.manual_seed(seed)
    data = batches(pack(tokenizer, texts, block_size), batch_size, seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        batch = next(data)
        loss = _train_step(model, optimiser, batch, learning_rate(step, steps, lr))
        losses.append(loss)
        if on_step is not None:
            on_step(step, steps, loss, batch.numel() / (time.perf_counter() - start))
    model.eval()
    return losses


def _train_step(
    model: Qwen2ForCausalLM, optimiser: torch.optim.Optimizer, batch: torch.Tensor, lr: float
) -> float:
    """One update at learning rate `lr`, gradients clipped to norm 1 to keep tiny models stable."""
    for group in optimiser.param_groups:
        group["lr"] = lr
    loss = model(input_ids=batch, labels=batch).loss
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimiser.step()
    return loss.item()
