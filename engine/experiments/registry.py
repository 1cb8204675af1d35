"""Built-in names that experiment validation accepts without looking anything up.

They live in one place so that the spec checker, the jobs and the TUI agree on them. Each set
starts with the tiny lab (a model, a data set, a suite and a reward small enough for CI);
later issues extend them with real models, benchmarks and rewards.
"""

from __future__ import annotations

from engine.evaluation import benchmarks

BUILTIN_MODELS: set[str] = {"tiny-lab"}
"""Models tix can build itself; anything else is an HF id or a local path."""

BUILTIN_DATASETS: set[str] = {"lab/math-train"}
"""Training data sets tix ships or generates itself."""

SUITES: set[str] = set(benchmarks.SUITES)
"""Named evaluation suites (a fixed list of benchmarks with their groups)."""

BENCHMARKS: set[str] = set(benchmarks.REGISTRY)
"""Benchmarks an experiment's `eval.benchmarks` may name (`tix benchmarks` lists them)."""

BACKENDS: tuple[str, ...] = ("auto", "hf", "vllm")
"""Generation backends: auto = vLLM when importable with CUDA, else Hugging Face."""

REWARDS: set[str] = {"math"}
"""Reward functions a GRPO variant may name."""

GROUPS: tuple[str, ...] = ("math", "other", "non")
"""Benchmark groups of the transferability index, in the order reports show them."""
