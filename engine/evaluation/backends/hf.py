"""Hugging Face transformers backend: batched `generate` with left padding, on CPU or CUDA (bf16).

Prompts are sorted by length before batching (less padding), and results are put back in
prompt order. Stop strings use transformers' own `stop_strings` support; the returned text
ends before the stop string, as vLLM's does.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.evaluation.backends import Generation, ModelRef, SamplingParams


class HFBackend:
    """A causal LM and its tokenizer; options: batch_size, dtype (auto|float32|bfloat16), device."""

    name = "hf"

    def __init__(self, ref: ModelRef) -> None:
        opts = ref.options
        self.device = opts.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = int(opts.get("batch_size", 32 if self.device == "cuda" else 16))
        self.tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=ref.revision, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            ref.path, revision=ref.revision, dtype=_dtype(opts.get("dtype", "auto"), self.device)
        ).to(self.device).eval()
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.cache_tag = f"hf:{str(self.model.dtype).removeprefix('torch.')}"

    def render(self, question: str, *, chat: bool, enable_thinking: bool, system: str | None = None) -> str:
        return render_prompt(self.tokenizer, question, chat=chat, enable_thinking=enable_thinking,
                             system=system)

    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[list[Generation]] = [[] for _ in prompts]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self._generate_batch([prompts[i] for i in chunk], params)
            for i, gens in zip(chunk, batch, strict=True):
                results[i] = gens
        return results

    def _generate_batch(self, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.device)
        torch.manual_seed(params.seed)
        out = self.model.generate(**enc, **self._generate_kwargs(params))
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        per = params.n if params.temperature > 0 else 1  # greedy samples are identical: decode once
        return [[self._finish(new[p * per + (k if per > 1 else 0)], params, prompt_lens[p])
                 for k in range(params.n)] for p in range(len(prompts))]

    def _generate_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens,
                                  "num_return_sequences": params.n if params.temperature > 0 else 1,
                                  "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self.eos_ids}
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kwargs

    def _finish(self, ids: list[int], params: SamplingParams, prompt_tokens: int) -> Generation:
        """Cut at the first EOS, then at the first stop string; decide the finish reason."""
        end = next((i for i, t in enumerate(ids) if t in self.eos_ids), None)
        tokens = ids[: end] if end is not None else [t for t in ids if t != self.tokenizer.pad_token_id]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        finish = "stop" if end is not None else "length"
        for stop in params.stop:
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        return Generation(text, len(tokens), finish, int(prompt_tokens))

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[float]:
        return [ll for ll, _ in self.loglikelihood_greedy(pairs)]

    @torch.inference_mode()
    def loglikelihood_greedy(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(summed log p, whether every continuation token is the argmax): lm-eval's answer to a
        loglikelihood request."""
        out = []
        for start in range(0, len(pairs), self.batch_size):
            out.extend(self._loglikelihood_batch(pairs[start : start + self.batch_size]))
        return out

    def _loglikelihood_batch(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """Right-padded forward pass; sums the continuation tokens' log-probabilities."""
        encoded = [(self._ids(ctx), self._ids(ctx + cont)) for ctx, cont in pairs]
        width = max(len(full) for _, full in encoded)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([full + [pad] * (width - len(full)) for _, full in encoded], device=self.device)
        mask = (ids != -1).long()
        for row, (_, full) in enumerate(encoded):
            mask[row, len(full) :] = 0
        logprobs = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        sums = []
        for row, (ctx, full) in enumerate(encoded):
            start = _common_prefix(ctx, full)
            positions = torch.arange(max(start, 1), len(full), device=self.device)
            targets = ids[row, positions]
            greedy = bool((logprobs[row, positions - 1].argmax(dim=-1) == targets).all())
            sums.append((float(logprobs[row, positions - 1, targets].sum()), greedy))
        return sums

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def render_prompt(tokenizer: Any, question: str, *, chat: bool, enable_thinking: bool,
                  system: str | None = None) -> str:
    """Chat template (with `enable_thinking` for templates that read it) or the raw question."""
    if not chat or not getattr(tokenizer, "chat_template", None):
        return question
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=enable_thinking)


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n
