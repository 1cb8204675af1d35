"""`tix doctor`'s GPU path: on this CPU box for real, the GPU-present branch with torch's CUDA
calls (and NVML) replaced, and the accelerate configs from folders made in tmp."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from engine import doctor
from engine.daemon import gpus
from engine.doctor import Doctor, Skip
from engine.workspace import Workspace

needs_cpu_box = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-box output")
H100 = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=80 * 2**30, major=9, minor=0)
V100 = SimpleNamespace(name="Tesla V100-SXM2-32GB", total_memory=32 * 2**30, major=7, minor=0)


def row(check: str, status: str, detail: str) -> dict[str, Any]:
    return {"check": check, "status": status, "detail": detail, "seconds": 0.0, "required": False}


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch with CUDA 12.4 and an H100 and a V100, as far as the doctor asks."""
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: [H100, V100][i])


@needs_cpu_box
def test_cpu_box_says_why_and_still_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = Doctor(Workspace.resolve(tmp_path / "home"), as_json=False)
    doctor.gpu_checks(doc)
    doc.check("GPU path", lambda: doctor.gpu_path(doc.results), required=False)
    lines = capsys.readouterr().out.splitlines()
    assert [r["check"] for r in doc.results] == ["cuda", "nvml / nvidia-smi", "vllm", "accelerate", "deepspeed",
                                                 "accelerate configs", "GPU path"]
    assert len(lines) == 7 and lines[-1].startswith("--    GPU path ") and "not available here: " in lines[-1]
    path = doc.results[-1]
    assert path["status"] == "--" and path["detail"].startswith("not available here: ")
    if not torch.version.cuda:
        assert f"torch {torch.__version__} is a CPU-only build" in path["detail"]
    assert not doc.failed()  # the GPU path is not required
    rows = {r["check"]: r for r in doc.results}
    assert rows["accelerate"]["status"] == "ok" and rows["accelerate"]["detail"].startswith("accelerate ")
    assert rows["nvml / nvidia-smi"]["status"] in ("--", "ok")


def test_a_cuda_build_without_a_usable_gpu_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert doctor.cuda_unavailable(torch) == "CUDA_VISIBLE_DEVICES='' hides every GPU"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")

    def no_driver() -> None:
        raise RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU")

    monkeypatch.setattr(torch.cuda, "init", no_driver)
    assert doctor.cuda_unavailable(torch).endswith("(CUDA 12.4): Found no NVIDIA driver on your system")


def test_gpus_are_listed_with_capability_and_bf16(two_gpus: None) -> None:
    detail = doctor.cuda()
    assert detail.startswith("2 GPU(s), torch ") and "with CUDA 12.4: " in detail
    assert "0: NVIDIA H100 80GB HBM3 80 GiB, sm_90, bf16" in detail
    assert "1: Tesla V100-SXM2-32GB 32 GiB, sm_70, no bf16" in detail


def test_gpus_torch_uses_but_the_scheduler_cannot_see_fail(two_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "gpu_stats", lambda: ([], "none"))
    with pytest.raises(RuntimeError, match=r"torch sees 2 GPU\(s\) but the scheduler sees none"):
        doctor.gpu_visibility()
    monkeypatch.setattr(gpus, "gpu_stats", lambda: ([{"index": 0, "name": "NVIDIA H100"}], "nvml"))
    assert doctor.gpu_visibility() == "1 GPU(s) via nvml: 0: NVIDIA H100"


def test_gpu_path_ready_or_what_is_missing() -> None:
    results = [row("cuda", "ok", "2 GPU(s), torch 2.8 with CUDA 12.8: 0: H100 ..."),
               row("nvml / nvidia-smi", "ok", "2 GPU(s) via nvml: 0: H100"), row("vllm", "ok", "vllm 0.23.0"),
               row("accelerate", "ok", "accelerate 1.15.0"), row("deepspeed", "ok", "deepspeed 0.18.0"),
               row("accelerate configs", "ok", "zero3 (DEEPSPEED), fsdp (FSDP) in configs/accelerate")]
    assert doctor.gpu_path(results) == ("ready: 2 GPU(s), torch 2.8 with CUDA 12.8; vllm 0.23.0, "
                                        "accelerate 1.15.0, deepspeed 0.18.0")
    results[4] = row("deepspeed", "--", "deepspeed not installed (needed for the zero3 config)")
    with pytest.raises(RuntimeError, match=r"^CUDA works, but deepspeed: deepspeed not installed"):
        doctor.gpu_path(results)


def test_gpu_path_when_the_driver_sees_gpus_torch_cannot_use() -> None:
    results = [row("cuda", "--", "torch 2.8+cpu is a CPU-only build"),
               row("nvml / nvidia-smi", "ok", "8 GPU(s) via nvml: 0: H100")]
    with pytest.raises(Skip, match=r"^not available here: torch 2.8\+cpu is a CPU-only build; yet 8 GPU\(s\) via nvml$"):
        doctor.gpu_path(results)


def test_accelerate_configs(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(RuntimeError) as absent:
        doctor.accelerate_configs(missing)
    assert str(absent.value) == f"zero3.yaml missing; fsdp.yaml missing in {missing} (no such folder)"
    (tmp_path / "zero3.yaml").write_text("distributed_type: DEEPSPEED\nnum_processes: 8\n")
    (tmp_path / "fsdp.yaml").write_text("distributed_type: FSDP\n")
    (tmp_path / "ddp.yaml").write_text("distributed_type: MULTI_GPU\n")
    assert doctor.accelerate_configs(tmp_path) == f"zero3 (DEEPSPEED), fsdp (FSDP), ddp (MULTI_GPU) in {tmp_path}"
    (tmp_path / "fsdp.yaml").write_text("distributed_type: [FSDP\n")
    (tmp_path / "ddp.yaml").write_text("- a list\n")
    (tmp_path / "zero3.yaml").write_text("distributed_type: FSDP\n")
    with pytest.raises(RuntimeError) as broken:
        doctor.accelerate_configs(tmp_path)
    problems = str(broken.value)
    assert "zero3.yaml has distributed_type FSDP, expected DEEPSPEED" in problems
    assert "fsdp.yaml is not valid YAML" in problems and "ddp.yaml is not a YAML mapping" in problems


def test_the_shipped_configs_parse() -> None:
    assert doctor.accelerate_configs().startswith("zero3 (DEEPSPEED), fsdp (FSDP)")


def test_imports_that_print_keep_json_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "noisy_gpu_lib.py").write_text("print('[INFO] detecting accelerator')\n__version__ = '0.1'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert doctor.package("noisy_gpu_lib", "tests") == "noisy_gpu_lib 0.1"
    assert capsys.readouterr().out == ""
    with pytest.raises(Skip, match="not_a_package not installed"):
        doctor.package("not_a_package", "tests")


def test_lab_precision_follows_the_cpu_and_the_probe_times_real_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.lab import model

    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert doctor.lab_precision().startswith("bf16" if native else "fp32")
    assert torch.backends.cpu.get_cpu_capability() in doctor.lab_precision()
    per_step = model.probe_step_seconds(steps=2, warmup=1)
    assert 0.001 < per_step < 30
    monkeypatch.setattr(model, "probe_step_seconds", lambda steps: 0.55)  # the AVX2 box of the fits
    # 220 s there: the demo measured with AVX2 emulated, scaled by the probes' ratio
    assert "about 4 min" in doctor.demo_estimate()
    from engine.lab import shipping

    monkeypatch.setattr(shipping, "SHIPPED", shipping.SHIPPED / "nowhere")
    assert "about 13 min" in doctor.demo_estimate()  # without the shipped base: the build first
