"""GPU discovery for the scheduler (count) and the GPU panel (utilisation, memory).

NVML first (nvidia-ml-py, no CUDA context), then `nvidia-smi`; a box with neither has 0 GPUs.
"""

from __future__ import annotations

import shutil
import subprocess


def gpu_count() -> int:
    """How many GPUs this box has; 0 when none can be seen."""
    n = _nvml_count()
    if n is None:
        n = _smi_count()
    return n or 0


def _nvml_count() -> int | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None


def _smi_count() -> int | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))
