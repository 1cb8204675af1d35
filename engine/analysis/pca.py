"""PCA shift: how far a tuned model's hidden representations moved from its base's (DESIGN.md 5).

As the paper's code (arXiv 2507.00432, `analyse_PCA_Shift.py`) does it: K texts of a benchmark,
raw (no chat template), truncated to T tokens and left-padded to the longest of the K; for every
layer (0 = the embeddings, then each block's output, as `output_hidden_states` gives them) the
hidden states are mean-pooled over positions into one feature vector per text; PCA(2) is fitted
on the BASE model's features; both models' features are projected on those two components
(plain dot products, uncentred, as the paper does; centring would cancel in m' - m anyway);
m and m' are the mean projections (2-vectors) of base and tuned; and

    d = || mean over layers of (m'_l - m_l) ||_2

Pooling `paper` averages every position, padding included (what `hs.mean(dim=1)` does in the
paper's code: a text's feature then depends on how much padding it got, identically for both
models, since they see the same padded inputs); `masked` averages the real tokens only.

Component signs: an SVD component is defined up to its sign, and d averages (m' - m) over layers
before the norm, so the sign convention matters. Like scikit-learn's PCA (1.5 and later), each
component's largest-magnitude loading is made positive.

Everything here but `hidden_features` is numpy on arrays, testable without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

POOLINGS = ("paper", "masked")
#: Fewer texts leave the second component undefined (two centred points span one direction).
MIN_ITEMS = 3


@dataclass
class LayerPoint:
    """One layer's mean projections on the base's two principal components."""

    layer: int
    base: np.ndarray  # m: mean (PC1, PC2) of the base model's features
    tuned: np.ndarray  # m': mean (PC1, PC2) of the tuned model's features
    explained: np.ndarray  # explained-variance ratio of PC1 and PC2 on the base features

    @property
    def shift(self) -> float:
        """||m' - m|| at this layer."""
        return float(np.linalg.norm(self.tuned - self.base))


@dataclass
class PcaShift:
    """Per-layer points (for plots) and the distance d."""

    points: list[LayerPoint]
    d: float


def pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """(texts, positions, width) hidden states -> (texts, width) features.

    Written with operations numpy arrays and torch tensors share, so the job pools on the model's
    device and the tests pool numpy arrays with the very same code.
    """
    if pooling == "paper":
        return hidden.mean(axis=1)
    if pooling == "masked":
        counts = mask.sum(axis=1)[..., None]
        return (hidden * mask[..., None]).sum(axis=1) / (counts + (counts == 0))
    raise ValueError(f"unknown pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")


def fit_pca2(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two leading principal components (2, width) of (texts, width) features, and their
    explained-variance ratios, by SVD of the centred features (no scikit-learn needed)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < MIN_ITEMS or x.shape[1] < 2:
        raise ValueError(f"PCA(2) needs at least {MIN_ITEMS} texts of width >= 2, got shape {x.shape}")
    _, singular, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    components = vt[:2] * _signs(vt[:2])[:, None]
    variance = singular**2
    total = variance.sum()
    ratio = variance[:2] / total if total > 0 else np.zeros(2)
    return components, ratio


def _signs(components: np.ndarray) -> np.ndarray:
    """+1/-1 per component so that its largest-magnitude loading is positive (scikit-learn's rule)."""
    largest = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]
    return np.where(largest < 0, -1.0, 1.0)


def layer_point(layer: int, base: np.ndarray, tuned: np.ndarray) -> LayerPoint:
    """Fit PCA(2) on the base features of one layer, project both models' features on it."""
    components, ratio = fit_pca2(base)
    m = (np.asarray(base, dtype=np.float64) @ components.T).mean(axis=0)
    m_tuned = (np.asarray(tuned, dtype=np.float64) @ components.T).mean(axis=0)
    return LayerPoint(layer, m, m_tuned, ratio)


def pca_shift(base: Sequence[np.ndarray], tuned: Sequence[np.ndarray], layers: Sequence[int]) -> PcaShift:
    """Per-layer points and d from per-layer (texts, width) features of base and tuned models."""
    if not (len(base) == len(tuned) == len(layers)) or not layers:
        raise ValueError(f"need one feature array per layer for both models: got {len(base)} base, "
                         f"{len(tuned)} tuned, {len(layers)} layers")
    points = [layer_point(layer, b, t) for layer, b, t in zip(layers, base, tuned, strict=True)]
    return PcaShift(points, distance(points))


def distance(points: Sequence[LayerPoint]) -> float:
    """d = || mean over layers of (m' - m) ||_2."""
    return float(np.linalg.norm(np.mean([p.tuned - p.base for p in points], axis=0)))


def resolve_layers(layers: Any, count: int) -> list[int]:
    """`"all"` or a list of hidden-state indices (0 = embeddings) checked against the model's `count`."""
    if layers in (None, "all"):
        return list(range(count))
    bad = [i for i in layers if not isinstance(i, int) or not 0 <= i < count]
    if bad:
        raise ValueError(f"pca_shift.layers: no layer {bad[0]} in this model (layers 0-{count - 1}, "
                         "0 = embeddings)")
    return sorted(set(layers))


def left_padded(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> tuple[list[list[int]], int]:
    """Token ids of each text truncated to `max_tokens` (the tokenizer's own special tokens, as
    the paper's code gets them), and the common padded width: the longest of all the texts, so
    every text gets the padding it would get in the paper's single batch."""
    ids = [tokenizer(t, truncation=True, max_length=max_tokens)["input_ids"] for t in texts]
    return ids, max((len(i) for i in ids), default=0)


def hidden_features(model: Any, tokenizer: Any, texts: Sequence[str], *, max_tokens: int, pooling: str,
                    layers: Any = "all", batch_size: int = 16) -> tuple[list[int], list[np.ndarray]]:
    """Pooled features of `texts` per layer: (layer indices, one (texts, width) array per layer).

    Batches are left-padded to the width of the whole set, so batching changes nothing (with
    RoPE and the attention mask, real tokens' states do not depend on the padding's length).
    """
    import torch

    ids, width = left_padded(tokenizer, texts, max_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = next(model.parameters()).device
    chosen: list[int] | None = None
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(ids), batch_size):
        rows = ids[start : start + batch_size]
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        with torch.inference_mode():  # the decoder alone: the same states, no vocabulary projection
            states = model.get_decoder()(input_ids=input_ids, attention_mask=mask,
                                         output_hidden_states=True).hidden_states
        chosen = resolve_layers(layers, len(states)) if chosen is None else chosen
        chunks.append([pool(states[i].float(), mask, pooling).cpu().numpy() for i in chosen])
    _check_finite(chunks)
    return chosen or [], [np.concatenate([c[j] for c in chunks]) for j in range(len(chosen or []))]


def _check_finite(chunks: list[list[np.ndarray]]) -> None:
    if not all(np.isfinite(a).all() for chunk in chunks for a in chunk):
        raise ValueError("pca_shift: the model produced non-finite hidden states (NaN or inf)")
