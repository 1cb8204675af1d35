"""Generation backends behind one interface: vLLM on CUDA boxes, Hugging Face transformers elsewhere.

`load_backend` picks vLLM when it is importable and CUDA is present (unless told otherwise),
else transformers. Both render prompts with the model's chat template (passing
`enable_thinking` to templates that use it) or raw, generate n samples per prompt with
temperature / top_p / max_new_tokens / stop strings, report a finish reason and token counts
per sample, and score log-likelihoods of answer choices. Heavy imports happen inside the
backend modules, which only workers load.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample; part of the generation cache key."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()

    def key(self) -> dict[str, Any]:
        return {**asdict(self), "stop": list(self.stop)}


@dataclass
class Generation:
    """One sampled completion: `finish_reason` is `stop` (EOS or a stop string) or `length`."""

    text: str
    tokens: int
    finish_reason: str
    prompt_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelRef:
    """What to load: a local folder or a hub id (with revision), plus backend options."""

    path: str
    revision: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def render(self, question: str, *, chat: bool, enable_thinking: bool, system: str | None = None) -> str:
        """The exact prompt text the model sees."""

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        """`params.n` generations per prompt, in prompt order."""

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Sum of log p(continuation | context) for each (context, continuation)."""

    def close(self) -> None: ...


def vllm_available() -> bool:
    """vLLM importable and a CUDA device visible (checked without importing vllm)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def load_backend(model: ModelRef, kind: str = "auto") -> Backend:
    """`kind`: auto (vLLM when possible), vllm or hf. An unknown kind or missing vLLM is a ValueError."""
    if kind not in ("auto", "vllm", "hf"):
        raise ValueError(f"unknown backend {kind!r}: expected auto, vllm or hf")
    if kind == "vllm" or (kind == "auto" and vllm_available()):
        if not vllm_available():
            raise ValueError("backend vllm needs the `vllm` package (pip install 'tix[gpu]') and a CUDA GPU")
        from engine.evaluation.backends.vllm import VLLMBackend

        return VLLMBackend(model)
    from engine.evaluation.backends.hf import HFBackend

    return HFBackend(model)
