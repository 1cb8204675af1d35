"""`tix doctor` on this box: every check runs; those that do not apply say so."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow
GPU_CHECKS = ("cuda", "nvml / nvidia-smi", "vllm", "accelerate", "deepspeed", "accelerate configs", "generate: vllm",
              "GPU path")


def test_doctor_reports_every_check(tix) -> None:
    result = tix("doctor", "--json", timeout=300)
    assert result.returncode == 0, result.stdout
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert set(checks) == {"versions", "cuda", "nvml / nvidia-smi", "vllm", "accelerate", "deepspeed",
                           "accelerate configs", "disk", "lab precision", "demo estimate", "micro model",
                           "generate: hf", "generate: vllm", "train: sft (1 step)", "train: grpo (1 step)",
                           "GPU path"}
    assert list(checks)[-1] == "GPU path" and not any(checks[c]["required"] for c in GPU_CHECKS)
    assert all(checks[c]["status"] == "ok" for c in ("versions", "disk", "micro model", "generate: hf",
                                                     "train: sft (1 step)", "train: grpo (1 step)",
                                                     "lab precision", "demo estimate"))
    assert "`tix demo` about" in checks["demo estimate"]["detail"]
    assert "trl 1." in checks["versions"]["detail"]
    import torch

    if not torch.cuda.is_available():
        assert checks["cuda"]["status"] == "--" and checks["generate: vllm"]["status"] == "--"
        assert checks["GPU path"]["status"] == "--"
        assert checks["GPU path"]["detail"].startswith("not available here: ")
    text = tix("doctor", "--quick")
    assert text.returncode == 0 and "generate: hf" in text.stdout and "train:" not in text.stdout
    assert "lab precision" in text.stdout and "demo estimate" not in text.stdout  # the probe trains
    assert text.stdout.strip().splitlines()[-1].split()[1:3] == ["GPU", "path"]
