"""`tix doctor` on this box: every check runs; those that do not apply say so."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_doctor_reports_every_check(tix) -> None:
    result = tix("doctor", "--json", timeout=300)
    assert result.returncode == 0, result.stdout
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert set(checks) == {"versions", "cuda", "vllm", "disk", "micro model", "generate: hf", "generate: vllm",
                           "train: sft (1 step)", "train: grpo (1 step)"}
    assert all(checks[c]["status"] == "ok" for c in ("versions", "disk", "micro model", "generate: hf",
                                                     "train: sft (1 step)", "train: grpo (1 step)"))
    assert "trl 1." in checks["versions"]["detail"]
    import torch

    if not torch.cuda.is_available():
        assert checks["cuda"]["status"] == "--" and checks["generate: vllm"]["status"] == "--"
    text = tix("doctor", "--quick")
    assert text.returncode == 0 and "generate: hf" in text.stdout and "train:" not in text.stdout
