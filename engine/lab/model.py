"""The tiny lab's tokenizer and model, built and pre-trained locally on CPU in about two minutes.

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


def render_prompts(questions: list[str]) -> list[str]:
    """User turns as the evaluation renders them: generation prompt with an empty think block."""
    conversations = [[{"role": "user", "content": q}] for q in questions]
    return _wrap(Tokenizer(models.BPE())).apply_chat_template(
        conversations, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )


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
    """A freshly initialised Qwen2 sized by `size`; the same seed gives the same weights.

    It trains with eager attention: on CPU, with heads this small, that is about 1.5x faster than
    the fused SDPA kernel. The choice is not saved, so loaders still get their own default.
    """
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_config(tokenizer, size))
    model.set_attn_implementation("eager")
    # Chat turns end with <|im_end|>; plain text with <|endoftext|>: stop on either, as Qwen does.
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids([IM_END, EOS])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def parameter_count(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


#: A pre-training document: (context, target). Only the target is trained on, so a chat
#: document can put its prompt in the context and a plain-text one can leave the context empty.
Document = tuple[str, str]
IGNORE = -100  # the label transformers' loss skips


def pack(tokenizer: PreTrainedTokenizerFast, documents: list[Document], block_size: int) -> torch.Tensor:
    """Documents joined by <|endoftext|> and cut into rows of (input ids, labels), no padding.

    Returns a tensor of shape (rows, 2, block_size); labels are IGNORE over each context.
    """
    contexts = tokenizer([c for c, _ in documents], add_special_tokens=False)["input_ids"]
    targets = tokenizer([t for _, t in documents], add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    labels: list[int] = []
    for context, target in zip(contexts, targets, strict=True):
        ids += [*context, *target, tokenizer.eos_token_id]
        labels += [IGNORE] * len(context) + [*target, tokenizer.eos_token_id]
    rows = len(ids) // block_size
    if rows == 0:
        raise ValueError(f"corpus of {len(ids)} tokens is shorter than one block of {block_size}")
    cut = rows * block_size
    columns = [torch.tensor(stream[:cut]).view(rows, block_size) for stream in (ids, labels)]
    return torch.stack(columns, dim=1)


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


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of `precision`: bf16 mixed precision, fp32, or `auto` (bf16 where the CPU
    has native bf16 matmuls, which makes a step about twice as fast; fp32 elsewhere)."""
    if precision == "auto":  # oneDNN's own check (private, but the one torch's CPU autocast relies on)
        precision = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    return torch.bfloat16 if precision == "bf16" else None


def pretrain(
    model: Qwen2ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    documents: list[Document],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_step: OnStep | None = None,
    block_size: int = 128,
    precision: str = "auto",
) -> list[float]:
    """Causal-LM pre-training with AdamW on packed blocks; returns the loss of every step.

    The loss covers each document's target only (see `Document`). `on_step(step, total, loss,
    tokens_per_s)` is called after each optimiser step (1-based); the loss is the batch's loss
    before that step's update, so step 1 shows the untrained model. Weights stay fp32; `precision`
    only sets the autocast dtype of the forward pass.
    """
    torch.manual_seed(seed)
    data = batches(pack(tokenizer, documents, block_size), batch_size, seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    dtype = autocast_dtype(precision)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        batch = next(data)
        loss = _train_step(model, optimiser, batch, learning_rate(step, steps, lr), dtype)
        losses.append(loss)
        if on_step is not None:
            on_step(step, steps, loss, batch[:, 0].numel() / (time.perf_counter() - start))
    model.eval()
    return losses


def _train_step(
    model: Qwen2ForCausalLM,
    optimiser: torch.optim.Optimizer,
    batch: torch.Tensor,
    lr: float,
    dtype: torch.dtype | None,
) -> float:
    """One update at learning rate `lr`, gradients clipped to norm 1 to keep tiny models stable."""
    for group in optimiser.param_groups:
        group["lr"] = lr
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss = model(input_ids=batch[:, 0], labels=batch[:, 1]).loss
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimiser.step()
    return loss.item()


def probe_step_seconds(steps: int = 10, precision: str = "auto", warmup: int = 2) -> float:
    """Seconds per pre-training step of the default tiny lab build on this CPU (its size, vocabulary,
    batch 32 of 128 tokens, `precision`), timed over `steps` steps after `warmup` untimed ones on
    random tokens: the build's cost without its tokenizer and corpus (`tix doctor` estimates the
    demo's time from it)."""
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=1024, **DEFAULT_SIZE))
    model.set_attn_implementation("eager")
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, 1024, (32, 2, 128))
    dtype = autocast_dtype(precision)
    for _ in range(warmup):
        _train_step(model, optimiser, batch, 1e-3, dtype)
    start = time.perf_counter()
    for _ in range(steps):
        _train_step(model, optimiser, batch, 1e-3, dtype)
    return (time.perf_counter() - start) / steps
