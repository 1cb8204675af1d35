"""Token shift: how the tuned model's next-token distribution moved, on its own responses (DESIGN.md 5).

Each response the tuned model gave in its evaluation (the prompt exactly as it saw it, chat
template included, then its completion) is scored by both models in one teacher-forced pass.
Per response token t (the completion's tokens only), from the two next-token distributions at
that position:

- log p_tuned(t) and log p_base(t), and the rank of t under each (1 = the most likely token;
  rank = 1 + the number of vocabulary entries strictly more likely, so ties share the better rank);
- the full-vocabulary KL(p_tuned || p_base) = sum_v p_tuned(v) (log p_tuned(v) - log p_base(v)).

Reported per benchmark: `logp_diff` = mean over tokens of (log p_tuned - log p_base) (the
sampled-token estimate of the KL, what the paper's `calculate_KL.py` averages), `kl` = mean over
positions of the full KL, `rank_shift` = mean (base rank - tuned rank), the shares of tokens
whose base rank is 1, 2-3 and > 3, the token count, and the most-shifted tokens: tokens the
tuned model produced where the base would not have put them first (base rank > 1), by count.

The completion is re-tokenised from its text (the eval records text, not ids), so a token split
can differ from what the model sampled at a few boundaries; the end-of-sequence token is not
scored (the text does not say whether the response ended on it or on a stop string).

`score_pair` (transformers, CPU or GPU, right-padded batches, vocabulary chunks bounded in
memory) is the real path; `vllm_token_scores` (prompt_logprobs) is an optional fast path on CUDA
boxes that gives log p and ranks but no full-vocabulary KL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TOP_TOKENS = 20
#: Positions whose full-vocabulary distributions are materialised at once (per model).
POSITION_CHUNK = 512
SHARES = ("share_base_rank1", "share_base_rank2_3", "share_base_rank_gt3")


@dataclass
class Response:
    """One response to score: prompt + completion token ids, and where the completion starts."""

    ids: list[int]
    start: int


@dataclass
class TokenScores:
    """Per completion token of one response: the token, its log p and rank under each model, the KL."""

    token_ids: np.ndarray
    logp_base: np.ndarray
    logp_tuned: np.ndarray
    rank_base: np.ndarray
    rank_tuned: np.ndarray
    kl: np.ndarray | None = None  # None where only sampled-token log p is known (vLLM path)


@dataclass
class TokenSummary:
    """A benchmark's (or group's) metrics, and the counts behind its most-shifted tokens."""

    metrics: dict[str, float]
    shifted: dict[int, list[float]] = field(default_factory=dict)  # token id -> [count, sum of base ranks]


def encode_response(tokenizer: Any, prompt: str, completion: str) -> Response:
    """Prompt and completion tokenised separately (so the boundary is exact), no special tokens
    added: the eval's prompt already holds the chat template's tokens as text."""
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    tail = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return Response(head + tail, max(len(head), 1))


def score_pair(base: Any, tuned: Any, responses: Sequence[Response], *, batch_size: int = 8,
               pad_id: int = 0) -> list[TokenScores]:
    """Both models' view of every response's completion tokens, in `responses` order (a response
    with no completion token gets empty arrays).

    Batches are right-padded (a causal model's real tokens never see later padding, and positions
    count from 0 as in an unpadded pass), longest responses together to waste little padding.
    """
    empty = np.zeros(0)
    out: list[TokenScores | None] = [TokenScores(empty.astype(np.int64), empty, empty, empty, empty, empty)
                                     if len(r.ids) <= r.start else None for r in responses]
    todo = [i for i, s in enumerate(out) if s is None]
    order = sorted(todo, key=lambda i: len(responses[i].ids), reverse=True)
    for begin in range(0, len(order), batch_size):
        chunk = order[begin : begin + batch_size]
        scored = _score_batch(base, tuned, [responses[i] for i in chunk], pad_id)
        for i, scores in zip(chunk, scored, strict=True):
            out[i] = scores
    return [s for s in out if s is not None]


def _score_batch(base: Any, tuned: Any, batch: list[Response], pad_id: int) -> list[TokenScores]:
    """One right-padded forward pass per model; the batch's completion positions are then scored
    together, POSITION_CHUNK at a time, and split back per response."""
    import torch

    device = next(base.parameters()).device
    width = max(len(r.ids) for r in batch)
    ids = torch.tensor([r.ids + [pad_id] * (width - len(r.ids)) for r in batch], device=device)
    mask = torch.tensor([[1] * len(r.ids) + [0] * (width - len(r.ids)) for r in batch], device=device)
    rows, cols = completion_positions(batch, device)
    with torch.inference_mode():
        targets = ids[rows, cols + 1]
        columns = chunked_stats(base, tuned, final_states(base, ids, mask)[rows, cols],
                                final_states(tuned, ids, mask)[rows, cols], targets)
    sizes = np.cumsum([len(r.ids) - r.start for r in batch])[:-1]
    split = [np.split(c, sizes) for c in (targets.cpu().numpy(), *columns)]
    return [TokenScores(*(s[i] for s in split[:5]), kl=split[5][i]) for i in range(len(batch))]


def chunked_stats(base: Any, tuned: Any, states_base: Any, states_tuned: Any,
                  targets: Any) -> list[np.ndarray]:
    """`position_stats` over (positions, width) final states, POSITION_CHUNK positions at a time,
    so that only that many full-vocabulary rows exist at once."""
    import torch

    step = POSITION_CHUNK
    parts = [position_stats(logprobs(base, states_base[i : i + step]),
                            logprobs(tuned, states_tuned[i : i + step]), targets[i : i + step])
             for i in range(0, len(targets), step)]
    if not parts:
        return [np.zeros(0)] * 5
    return [torch.cat([p[k] for p in parts]).cpu().numpy() for k in range(5)]


def completion_positions(batch: list[Response], device: Any) -> tuple[Any, Any]:
    """(row, position) of every logit that predicts a completion token: position p predicts p + 1,
    so positions start - 1 .. len - 2."""
    import torch

    rows = [torch.full((len(r.ids) - r.start,), i, dtype=torch.long) for i, r in enumerate(batch)]
    cols = [torch.arange(r.start - 1, len(r.ids) - 1) for r in batch]
    return torch.cat(rows).to(device), torch.cat(cols).to(device)


def final_states(model: Any, ids: Any, mask: Any) -> Any:
    """The last (normed) hidden states, without materialising every position's full logits."""
    return model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state


def logprobs(model: Any, states: Any) -> Any:
    """Log-softmax over the vocabulary (float32) from final hidden states, with the logit
    soft-capping some architectures (Gemma 2) apply in their own forward."""
    import torch

    logits = model.get_output_embeddings()(states).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1)


def position_stats(logp_base: Any, logp_tuned: Any, targets: Any) -> tuple[Any, ...]:
    """(log p_base, log p_tuned, rank_base, rank_tuned, KL(tuned || base)) per position (torch).

    Vocabularies padded to different sizes are compared on their common prefix, renormalised.
    """
    import torch

    common = min(logp_base.shape[-1], logp_tuned.shape[-1])
    if logp_base.shape[-1] != logp_tuned.shape[-1]:
        logp_base = torch.log_softmax(logp_base[..., :common], dim=-1)
        logp_tuned = torch.log_softmax(logp_tuned[..., :common], dim=-1)
    picked_base = logp_base.gather(-1, targets[:, None])
    picked_tuned = logp_tuned.gather(-1, targets[:, None])
    rank_base = (logp_base > picked_base).sum(-1) + 1
    rank_tuned = (logp_tuned > picked_tuned).sum(-1) + 1
    kl = (logp_tuned.exp() * (logp_tuned - logp_base)).sum(-1).clamp(min=0)
    return picked_base[:, 0].double(), picked_tuned[:, 0].double(), rank_base, rank_tuned, kl.double()


def summarise(scores: Sequence[TokenScores]) -> TokenSummary:
    """One benchmark's token-shift metrics (every completion token weighs the same)."""
    if not scores or not sum(len(s.token_ids) for s in scores):
        return TokenSummary({"tokens": 0})
    cat = {name: np.concatenate([getattr(s, name) for s in scores])
           for name in ("token_ids", "logp_base", "logp_tuned", "rank_base", "rank_tuned")}
    rank = cat["rank_base"]
    metrics = {"logp_diff": float(np.mean(cat["logp_tuned"] - cat["logp_base"])),
               "rank_shift": float(np.mean(rank - cat["rank_tuned"])),
               "share_base_rank1": float(np.mean(rank == 1)),
               "share_base_rank2_3": float(np.mean((rank >= 2) & (rank <= 3))),
               "share_base_rank_gt3": float(np.mean(rank > 3)),
               "tokens": len(rank)}
    if all(s.kl is not None for s in scores):
        metrics["kl"] = float(np.mean(np.concatenate([s.kl for s in scores])))
    return TokenSummary(metrics, shifted_counts(cat["token_ids"], rank))


def shifted_counts(token_ids: np.ndarray, rank_base: np.ndarray) -> dict[int, list[float]]:
    """token id -> [times produced with base rank > 1, sum of those base ranks]."""
    counts: dict[int, list[float]] = {}
    for token, rank in zip(token_ids[rank_base > 1].tolist(), rank_base[rank_base > 1].tolist(), strict=True):
        entry = counts.setdefault(int(token), [0, 0.0])
        entry[0] += 1
        entry[1] += float(rank)
    return counts


def combine(summaries: Sequence[TokenSummary]) -> TokenSummary:
    """A group's summary: each benchmark's rates weigh the same (as benchmarks do in TI), token
    counts add up, and the shifted-token counts are merged."""
    scored = [s for s in summaries if s.metrics.get("tokens")]
    metrics: dict[str, float] = {"tokens": sum(int(s.metrics.get("tokens", 0)) for s in summaries)}
    for name in ("logp_diff", "kl", "rank_shift", *SHARES):
        values = [s.metrics[name] for s in scored if name in s.metrics]
        if values and len(values) == len(scored):
            metrics[name] = float(np.mean(values))
    shifted: dict[int, list[float]] = {}
    for s in scored:
        for token, (count, rank_sum) in s.shifted.items():
            entry = shifted.setdefault(token, [0, 0.0])
            entry[0] += count
            entry[1] += rank_sum
    return TokenSummary(metrics, shifted)


def top_tokens(shifted: dict[int, list[float]], decode: Callable[[int], str],
               n: int = TOP_TOKENS) -> list[dict[str, Any]]:
    """The `n` most often shifted tokens: most frequent first, then the higher mean base rank."""
    ranked = sorted(shifted.items(), key=lambda kv: (-kv[1][0], -kv[1][1] / kv[1][0], kv[0]))[:n]
    return [{"token": decode(token), "count": int(count), "mean_base_rank": rank_sum / count}
            for token, (count, rank_sum) in ranked]


def vllm_token_scores(model: str, responses: Sequence[Response], *, revision: str | None = None,
                      **options: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(log p, rank) of every completion token under `model`, from vLLM's `prompt_logprobs`.

    Optional fast path for large models (vLLM imported here, lazily; on CUDA or vLLM's CPU build,
    with the vLLM backend's defaults per device). It scores one model at a time, so it cannot
    give the full-vocabulary KL; `from_vllm` pairs two of these.
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from engine.evaluation.backends.vllm import engine_args, make_llm, prepare_environment

    prepare_environment(options)
    llm = make_llm(engine_args(model, {"gpu_memory_utilization": 0.4, **options}, revision=revision))
    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=r.ids) for r in responses], params)
    results = []
    for response, output in zip(responses, outputs, strict=True):
        positions = range(response.start, len(response.ids))
        entries = [output.prompt_logprobs[i][response.ids[i]] for i in positions]
        results.append((np.array([e.logprob for e in entries], dtype=np.float64),
                        np.array([e.rank for e in entries], dtype=np.int64)))
    del llm
    return results


def from_vllm(responses: Sequence[Response], base: Sequence[tuple[np.ndarray, np.ndarray]],
              tuned: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[TokenScores]:
    """TokenScores (without KL) from two `vllm_token_scores` results over the same responses."""
    return [TokenScores(np.array(r.ids[r.start :], dtype=np.int64), b[0], t[0], b[1], t[1])
            for r, b, t in zip(responses, base, tuned, strict=True)]
