"""GPU discovery for the scheduler (count) and the GPU panel (utilisation, memory).

NVML first (nvidia-ml-py, no CUDA context), then `nvidia-smi`; a box with neither has 0 GPUs.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable
from typing import Any


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


#: How tix finds GPUs, for the `gpus` op and the TUI's GPU panel when none are seen.
DETECTION = ("tix asks NVML (the nvidia-ml-py package, no CUDA context), else runs `nvidia-smi`; "
             "a box where neither answers has no GPUs. Set `gpus` in TIX_HOME/config.yaml or "
             "TIX_GPUS to schedule on a different number.")


def gpu_stats() -> tuple[list[dict[str, Any]], str]:
    """Utilisation and memory per GPU now, and where they came from (nvml, nvidia-smi or none).

    Each row: index, name, util (percent), mem_used and mem_total (bytes), temperature (°C);
    a value the driver does not report is None. Called in a thread by the daemon (nvidia-smi
    may take a while on a busy box).
    """
    rows = _nvml_stats()
    if rows is not None:
        return rows, "nvml"
    rows = _smi_stats()
    if rows is not None:
        return rows, "nvidia-smi"
    return [], "none"


def _nvml_stats() -> list[dict[str, Any]] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        return [_nvml_row(pynvml, i) for i in range(int(pynvml.nvmlDeviceGetCount()))]
    except pynvml.NVMLError:
        return None
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _nvml_row(pynvml: Any, index: int) -> dict[str, Any]:
    """One GPU's figures; each query on its own, since some boards refuse one of them."""
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)

    def ask(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except pynvml.NVMLError:
            return None

    name = ask(lambda: pynvml.nvmlDeviceGetName(handle))
    util = ask(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    memory = ask(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
    temperature = ask(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
    return {"index": index, "name": name.decode() if isinstance(name, bytes) else name,
            "util": None if util is None else float(util),
            "mem_used": None if memory is None else int(memory.used),
            "mem_total": None if memory is None else int(memory.total),
            "temperature": None if temperature is None else float(temperature)}


_SMI_FIELDS = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu"


def _smi_stats() -> list[dict[str, Any]] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={_SMI_FIELDS}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [row for line in out.splitlines() if (row := parse_smi_line(line))]


def parse_smi_line(line: str) -> dict[str, Any] | None:
    """A row from one line of `nvidia-smi --query-gpu` CSV (memory in MiB; '[N/A]' = unknown)."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 6 or not parts[0].isdigit():
        return None

    def number(text: str, scale: float = 1.0) -> float | None:
        try:
            return float(text) * scale
        except ValueError:
            return None

    used, total = number(parts[3], 1 << 20), number(parts[4], 1 << 20)
    return {"index": int(parts[0]), "name": parts[1], "util": number(parts[2]),
            "mem_used": None if used is None else int(used),
            "mem_total": None if total is None else int(total), "temperature": number(parts[5])}
