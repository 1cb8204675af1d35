"""GPU discovery for the scheduler (which GPUs) and the GPU panel (utilisation, memory, processes).

NVML first (nvidia-ml-py, no CUDA context), then `nvidia-smi` for the figures; a box with neither
has 0 GPUs. GPU boxes in labs are shared, so the daemon also asks NVML which processes hold each
GPU (`GpuWatcher`, in a thread every `gpu_poll` seconds) and takes each process's user and command
from /proc: the scheduler does not hand out a GPU that another user's job fills (see
`DaemonSettings.foreign_gpu_mib`), and the panel lists who is on it, as nvitop does.

NVML sits behind one small interface (`Nvml`: device_count, device, compute_processes, close) so
that tests on a CPU box replace only NVML: `TIX_FAKE_NVML=path.json` makes `open_nvml` return
`FakeNvml`, which reads that file at every refresh (a test edits it while the daemon runs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("tix.daemon")

#: The environment variable that swaps NVML for `FakeNvml` (a JSON file; see its docstring).
FAKE_NVML_ENV = "TIX_FAKE_NVML"
MIB = 1 << 20


def gpu_count() -> int:
    """How many GPUs this box has; 0 when none can be seen."""
    n = _nvml_count()
    if n is None:
        n = _smi_count()
    return n or 0


def schedulable(setting: int | list[int] | None) -> list[int]:
    """The GPU indices the scheduler hands out: the `gpus` setting's allowlist, the first N for a
    count, else every GPU NVML or nvidia-smi sees."""
    if isinstance(setting, list):
        return sorted(set(setting))
    return list(range(gpu_count() if setting is None else setting))


def _nvml_count() -> int | None:
    nvml = open_nvml()
    if nvml is None:
        return None
    try:
        return nvml.device_count()
    except Exception:  # noqa: BLE001 - a driver that answers init but not the count: no GPUs known
        return None
    finally:
        nvml.close()


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
             "TIX_GPUS to schedule on a different number, or on a list of GPUs (gpus: [0, 1]).")


# -- NVML behind one interface -------------------------------------------------------------------
class Nvml(Protocol):
    """What tix asks NVML; `RealNvml` asks the driver, `FakeNvml` a JSON file (tests)."""

    source: str
    """Where the figures come from, as the `gpus` op reports it: nvml or stand-in."""

    def device_count(self) -> int: ...

    def device(self, index: int) -> dict[str, Any]:
        """index, name, util (percent), mem_used and mem_total (bytes), temperature (°C); None = unknown."""
        ...

    def compute_processes(self, index: int) -> list[tuple[int, int | None]]:
        """(pid, GPU memory in bytes or None when the driver does not say) of each compute process."""
        ...

    def close(self) -> None: ...


def open_nvml() -> Nvml | None:
    """The stand-in when TIX_FAKE_NVML names a file, else the driver's NVML, else None."""
    fake = os.environ.get(FAKE_NVML_ENV)
    if fake:
        return FakeNvml(Path(fake))
    return RealNvml.open()


class RealNvml:
    """The driver's NVML through nvidia-ml-py; one init per instance, shut down by `close`."""

    source = "nvml"

    def __init__(self, lib: Any) -> None:
        self.lib = lib

    @classmethod
    def open(cls) -> RealNvml | None:
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            return None
        return cls(pynvml)

    def device_count(self) -> int:
        return int(self.lib.nvmlDeviceGetCount())

    def device(self, index: int) -> dict[str, Any]:
        return _nvml_row(self.lib, index)

    def compute_processes(self, index: int) -> list[tuple[int, int | None]]:
        handle = self.lib.nvmlDeviceGetHandleByIndex(index)
        procs = self.lib.nvmlDeviceGetComputeRunningProcesses(handle)
        return [(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory)) for p in procs]

    def close(self) -> None:
        with contextlib.suppress(self.lib.NVMLError):
            self.lib.nvmlShutdown()


class FakeNvml:
    """NVML's stand-in for tests on a CPU box: GPUs and their processes from a JSON file.

    `{"gpus": [{"name": "H100", "mem_total_mib": 81559, "mem_used_mib": null, "util": 3,
    "temperature": 31, "processes": [{"pid": 4242, "used_mib": 62000}]}]}`. The file is read again
    at each `device_count` (once a refresh), so a test changes the process list while the daemon
    runs. A listed pid that has exited (no /proc entry, or a zombie) is left out, as NVML drops it; the
    memory used defaults to the live processes' sum. A missing or broken file raises (NVML errors
    do too), which the watcher reports.
    """

    source = "stand-in"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gpus: list[dict[str, Any]] = []

    def device_count(self) -> int:
        self.gpus = list(json.loads(self.path.read_text()).get("gpus") or [])
        return len(self.gpus)

    def device(self, index: int) -> dict[str, Any]:
        gpu = self.gpus[index]
        used = gpu.get("mem_used_mib")
        if used is None:
            used = sum(m or 0 for _, m in self.compute_processes(index)) / MIB
        total = gpu.get("mem_total_mib")
        return {"index": index, "name": gpu.get("name", "Stand-in GPU"), "util": gpu.get("util"),
                "mem_used": int(used * MIB), "mem_total": None if total is None else int(total * MIB),
                "temperature": gpu.get("temperature")}

    def compute_processes(self, index: int) -> list[tuple[int, int | None]]:
        listed = self.gpus[index].get("processes") or []
        return [(int(p["pid"]), None if p.get("used_mib") is None else int(p["used_mib"] * MIB))
                for p in listed if _running(int(p["pid"]))]

    def close(self) -> None:
        self.gpus = []


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie's GPU memory is already freed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] != "Z"


# -- who a process is: /proc ---------------------------------------------------------------------
@dataclass(frozen=True)
class ProcInfo:
    """A process as /proc shows it; `lineage` is itself, its ancestors and its session leader."""

    user: str
    command: str
    lineage: frozenset[int]


def proc_info(pid: int) -> ProcInfo:
    """User (from the real uid), command line and lineage of `pid`. A pid with no /proc entry (it
    exited, or lives in another PID namespace, as in a container) is user `?`, command empty."""
    base = Path(f"/proc/{pid}")
    try:
        uid = _real_uid((base / "status").read_text())
        command = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ProcInfo("?", "", frozenset({pid}))
    return ProcInfo(user_name(uid), command[:300], frozenset({pid, *_ancestry(pid)}))


def _real_uid(status: str) -> int | None:
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def user_name(uid: int | None) -> str:
    """The login name of `uid`, else the number (a user of a container's host has no entry here)."""
    if uid is None:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _ancestry(pid: int, depth: int = 64) -> list[int]:
    """Parents up to init and the session leader: a tix worker leads its own session, so its
    children (accelerate ranks, vLLM engine cores) are recognised even if re-parented."""
    found: list[int] = []
    current = pid
    for _ in range(depth):
        fields = _stat_fields(current)
        if fields is None:
            break
        ppid, session = fields
        if current == pid and session > 0:
            found.append(session)
        if ppid <= 1:
            break
        found.append(ppid)
        current = ppid
    return found


def _stat_fields(pid: int) -> tuple[int, int] | None:
    """(ppid, session) from /proc/PID/stat; the command may hold spaces and parentheses."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    return int(rest[1]), int(rest[3])


# -- the snapshot the scheduler and the panel read -----------------------------------------------
@dataclass(frozen=True)
class GpuProcess:
    """One compute process on one GPU; `used` None when the driver does not report its memory."""

    gpu: int
    pid: int
    used: int | None
    user: str
    command: str
    lineage: frozenset[int]

    def owned_by(self, pids: set[int]) -> bool:
        """True when the process is one of `pids`, runs under one of them, or shares its session."""
        return not self.lineage.isdisjoint(pids)


@dataclass(frozen=True)
class GpuSnapshot:
    """NVML's answer at `taken` (monotonic seconds): devices as `Nvml.device` rows, and processes."""

    taken: float
    source: str
    devices: tuple[dict[str, Any], ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    error: str | None = None

    def device_used(self, index: int) -> int | None:
        row = next((d for d in self.devices if d["index"] == index), None)
        return None if row is None else row.get("mem_used")


def take_snapshot(nvml: Nvml | None) -> GpuSnapshot:
    """Every GPU's figures and compute processes now; an NVML error becomes the snapshot's `error`."""
    now = time.monotonic()
    if nvml is None:
        return GpuSnapshot(now, "none")
    try:
        devices = [nvml.device(i) for i in range(nvml.device_count())]
        listed = [(d["index"], pid, used) for d in devices
                  for pid, used in nvml.compute_processes(d["index"])]
    except Exception as exc:  # noqa: BLE001 - NVML's errors, a stand-in's bad file: reported, retried
        return GpuSnapshot(now, nvml.source, error=f"{type(exc).__name__}: {exc}")
    infos = {pid: proc_info(pid) for pid in {pid for _, pid, _ in listed}}
    processes = tuple(GpuProcess(gpu, pid, used, infos[pid].user, infos[pid].command, infos[pid].lineage)
                      for gpu, pid, used in listed)
    return GpuSnapshot(now, nvml.source, tuple(devices), processes)


class GpuWatcher:
    """Asks NVML every `interval` seconds in its own thread and keeps the last answer.

    The daemon's event loop never waits on NVML (a busy driver can take a second) or on /proc:
    the scheduler and the `gpus` op read `latest`, at most `interval` seconds old. NVML is opened
    once and kept; after an error it is closed and opened again a little later.
    """

    REOPEN_SECONDS = 30.0

    def __init__(self, interval: float, opener: Callable[[], Nvml | None] = open_nvml) -> None:
        self.interval = max(0.05, interval)
        self.opener = opener
        self.latest: GpuSnapshot | None = None
        """The last answer (None until the first one); replaced whole, so readers need no lock."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tix-gpu-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        nvml: Nvml | None = None
        next_open = 0.0
        try:
            while not self._stop.is_set():
                if nvml is None and time.monotonic() >= next_open:
                    nvml, next_open = self.opener(), time.monotonic() + self.REOPEN_SECONDS
                snapshot = take_snapshot(nvml)
                if snapshot.error and (self.latest is None or self.latest.error != snapshot.error):
                    log.warning("asking NVML about GPU processes failed: %s", snapshot.error)
                self.latest = snapshot
                if snapshot.error and nvml is not None and nvml.source == "nvml":
                    nvml.close()
                    nvml = None
                self._stop.wait(self.interval)
        finally:
            if nvml is not None:
                nvml.close()


# -- foreign processes: what the scheduler decides on --------------------------------------------
def foreign_processes(snapshot: GpuSnapshot, tix_pids: set[int]) -> dict[int, list[GpuProcess]]:
    """Per GPU, the processes that are none of tix's workers (nor their children), most memory first."""
    found: dict[int, list[GpuProcess]] = {}
    for proc in snapshot.processes:
        if not proc.owned_by(tix_pids):
            found.setdefault(proc.gpu, []).append(proc)
    for procs in found.values():
        procs.sort(key=lambda p: -(p.used or 0))
    return found


def held_bytes(procs: Iterable[GpuProcess], device_used: int | None) -> int:
    """GPU memory `procs` hold together. A process whose memory the driver does not report counts
    as holding all the GPU's used memory: tix cannot tell, so it assumes the worst."""
    total = 0
    for proc in procs:
        total += proc.used if proc.used is not None else (device_used or 0)
    return total


def blocked_gpus(snapshot: GpuSnapshot, tix_pids: set[int], limit_mib: float) -> dict[int, list[GpuProcess]]:
    """GPUs whose foreign processes hold more than `limit_mib` MiB, with those processes."""
    return {gpu: procs for gpu, procs in foreign_processes(snapshot, tix_pids).items()
            if held_bytes(procs, snapshot.device_used(gpu)) > limit_mib * MIB}


def size_text(n: int | None) -> str:
    """61 GiB, 2.5 GiB, 800 MiB, ? (a process whose memory the driver does not report)."""
    if n is None:
        return "? GiB"
    if n >= 10 * (1 << 30):
        return f"{n / (1 << 30):.0f} GiB"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / MIB:.0f} MiB"


def waiting_text(blocked: dict[int, list[GpuProcess]], held: list[int]) -> str:
    """Why a run waits for GPUs: `waiting: GPU 3 used by alice (pid 4242, 61 GiB)`, then the GPUs
    tix's own runs hold."""
    parts = [f"GPU {gpu} used by {_who(procs)}" for gpu, procs in sorted(blocked.items())]
    if held:
        gpus = ", ".join(map(str, sorted(held)))
        parts.append(f"GPU{'s' if len(held) > 1 else ''} {gpus} held by tix runs")
    return "waiting: " + ("; ".join(parts) or "no GPU free")


def _who(procs: list[GpuProcess], shown: int = 2) -> str:
    who = ", ".join(f"{p.user} (pid {p.pid}, {size_text(p.used)})" for p in procs[:shown])
    return who + (f" and {len(procs) - shown} more" if len(procs) > shown else "")


# -- figures for the panel when the watcher has none ---------------------------------------------
def gpu_stats() -> tuple[list[dict[str, Any]], str]:
    """Utilisation and memory per GPU now, and where they came from (nvml, nvidia-smi or none).

    Each row: index, name, util (percent), mem_used and mem_total (bytes), temperature (°C);
    a value the driver does not report is None. Called in a thread by the daemon (nvidia-smi
    may take a while on a busy box).
    """
    rows, source = _nvml_stats()
    if rows is not None:
        return rows, source
    rows = _smi_stats()
    if rows is not None:
        return rows, "nvidia-smi"
    return [], "none"


def _nvml_stats() -> tuple[list[dict[str, Any]] | None, str]:
    nvml = open_nvml()
    if nvml is None:
        return None, "none"
    try:
        return [nvml.device(i) for i in range(nvml.device_count())], nvml.source
    except Exception:  # noqa: BLE001 - NVML refused: try nvidia-smi
        return None, "none"
    finally:
        nvml.close()


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
