"""The GPU panel: utilisation and memory per GPU, which run holds it, and every process on it.

Figures come from the daemon's `gpus` op (NVML, else nvidia-smi, on the daemon's box), asked
every two seconds while the panel is on screen and never while it is not. Runs hold GPUs through
the scheduler (CUDA_VISIBLE_DEVICES); a GPU the `gpus` setting adds but the driver does not show
is listed without figures. With no GPU at all the panel says so and how detection works.

GPU boxes are shared: under the GPUs, the processes on each one as nvitop lists them: tix's run
(its name and pid) first, then other users' (user, pid, memory, command). A GPU whose other users
hold more than `foreign_gpu_mib` is marked: the scheduler does not hand it out. The daemon reads
NVML and /proc; this screen only shows what it says, control characters made visible.

With `executor: slurm` the daemon's box runs nothing of tix's, so the op answers with the cluster
instead (`source: slurm`, sinfo on the daemon's side, a few seconds old at most): the panel then
shows its partitions, its nodes and tix's own jobs in the cluster, and sinfo's error line if any.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from tui.format import bar, count_label, gib, visible
from tui.messages import ConnectionChanged
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.footer import FitFooter

REFRESH_SECONDS = 2.0
CPU_KEYS = ("cpus_alloc", "cpus_idle", "cpus_total")


class GpusScreen(Screen[None]):
    """One row per GPU: index, name, utilisation bar, memory bar, temperature, holding runs."""

    DEFAULT_CSS = """
    GpusScreen #gpu-head { height: 1; padding: 0 1; background: $boost; text-wrap: nowrap;
                           text-overflow: ellipsis; }
    GpusScreen #gpu-body { padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("g", "refresh", "refresh now")]

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.last: dict[str, Any] | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static("asking the daemon…", id="gpu-head")
        with VerticalScroll():
            yield Static(id="gpu-body")
        yield FitFooter()

    def on_mount(self) -> None:
        getattr(self.app, "listen", lambda _w: None)(self)
        self._timer = self.set_interval(REFRESH_SECONDS, self.action_refresh)
        self.action_refresh()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
        self.action_refresh()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.online:
            self.action_refresh()

    @work(exclusive=True, group="gpus")
    async def action_refresh(self) -> None:
        try:
            self.last = await self.source.request("gpus")
        except SourceError as exc:
            failed = Text(visible(f" cannot ask the daemon: {exc}"), style="red")
            self.query_one("#gpu-head", Static).update(failed)
            return
        head, body = render(self.last, self.size.width or 80)
        self.query_one("#gpu-head", Static).update(head)
        self.query_one("#gpu-body", Static).update(body)


def render(info: dict[str, Any], width: int) -> tuple[Text, RenderableType]:
    """The head line and the body (a table of GPUs, or why there is none; the cluster on Slurm)."""
    if info.get("source") == "slurm":
        return slurm_head(info), slurm_body(info)
    gpus = info.get("gpus") or []
    source = {"nvml": "figures from NVML", "nvidia-smi": "figures from nvidia-smi",
              "stand-in": "figures from an NVML stand-in (TIX_FAKE_NVML)",
              "none": "no figures: neither NVML nor nvidia-smi answered"}.get(
        info.get("source", ""), str(info.get("source")))
    count = f" {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}"
    head = Text(count + (" (the gpus setting)" if info.get("override") else "") + f" · {visible(source)}")
    if not gpus:
        how = visible(info.get("how", ""), lines=True)
        return head, Text(f"no GPUs detected (how detection works)\n\n{how}\n\n"
                          "Runs use CPU slots (the cpu_slots setting) on this box.")
    return head, Group(gpu_table(gpus, width), *process_section(info))


def gpu_table(gpus: list[dict[str, Any]], width: int) -> Table:
    bar_width = 10 if width < 100 else 20
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False, header_style="bold")
    table.add_column("GPU", no_wrap=True)
    table.add_column("util", no_wrap=True)
    table.add_column("memory GiB", no_wrap=True)
    table.add_column("°C", no_wrap=True, justify="right")
    table.add_column("held by", overflow="ellipsis", no_wrap=True, ratio=1)
    for gpu in gpus:
        table.add_row(*gpu_row(gpu, bar_width))
    return table


def gpu_row(gpu: dict[str, Any], bar_width: int) -> list[Text | str]:
    model = gpu.get("name") or ("(not detected)" if not gpu.get("detected") else "?")
    name = visible(f"{gpu['index']} {model}")
    util, used, total = gpu.get("util"), gpu.get("mem_used"), gpu.get("mem_total")
    util_cell = Text("-" if util is None else f"{bar(util / 100, bar_width)} {util:3.0f}%",
                     style=_load_style(util))
    mem_frac = used / total if used is not None and total else None
    mem_cell = Text("-" if mem_frac is None else f"{bar(mem_frac, bar_width)} {gib(used)}/{gib(total)}",
                    style=_load_style(None if mem_frac is None else mem_frac * 100))
    temp = gpu.get("temperature")
    return [Text(name[:28]), util_cell, mem_cell, "-" if temp is None else f"{temp:.0f}", holder_cell(gpu)]


def holder_cell(gpu: dict[str, Any]) -> Text:
    """tix's runs on the GPU; else other users' memory when they fill it (blocked: not handed out) or use
    some of it; else `free`."""
    runs = gpu.get("runs") or []
    if runs:
        return Text(visible(", ".join(f"{r['id']} {r.get('experiment') or '-'}/{r.get('name') or '-'}"
                                      for r in runs)))
    others = [p for p in gpu.get("processes") or [] if not p.get("run")]
    if gpu.get("blocked"):
        users = ", ".join(dict.fromkeys(str(p.get("user")) for p in others)) or "others"
        return Text(visible(f"{users} {size(gpu.get('foreign_used'))}: blocked"), style="bold red")
    if others:
        return Text(f"free · others {size(gpu.get('foreign_used'))}", style="dim")
    return Text("free", style="dim")


# -- processes on each GPU, as nvitop lists them ---------------------------------------------------
def process_section(info: dict[str, Any]) -> list[RenderableType]:
    """A title and the process table; a line saying why there is none (no NVML, its error)."""
    title = Text("\nprocesses", style="bold underline")
    if info.get("processes_error"):
        return [title, Text(visible(f"NVML: {info['processes_error']}"), style="red")]
    if info.get("processes_age") is None:
        return [title, Text("not listed: the daemon has no NVML process list on this box", style="dim")]
    rows = [row for gpu in info.get("gpus") or [] for row in process_rows(gpu)]
    limit = info.get("foreign_gpu_mib")
    note = Text("" if limit is None else f"blocked: other users hold over {limit:.0f} MiB of the GPU, "
                "so tix does not hand it out", style="dim")
    if not rows:
        return [title, Text("no compute processes on any GPU", style="dim"), note]
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False, header_style="bold")
    for column in ("GPU", "pid", "user", "GPU mem"):
        table.add_column(column, no_wrap=True)
    table.add_column("run / command", overflow="ellipsis", no_wrap=True, ratio=1)
    for row in rows:
        table.add_row(*row)
    return [title, table, note]


def process_rows(gpu: dict[str, Any]) -> list[list[Text | str]]:
    """tix's runs first (name and pid; memory when NVML lists the worker or its children), then
    other users' processes by memory, red when they keep tix off the GPU."""
    index = str(gpu["index"])
    procs = gpu.get("processes") or []
    rows: list[list[Text | str]] = []
    for run in gpu.get("runs") or []:
        mine = [p for p in procs if p.get("run") == run["id"]]
        label = visible(f"tix {run.get('experiment') or '-'}/{run.get('name') or '-'} {run['id']}")
        for p in mine or [{"pid": run.get("pid"), "user": "-", "used": None}]:
            rows.append([index, str(p.get("pid") or "-"), visible(p.get("user") or "-"),
                         "-" if p.get("used") is None else size(p["used"]), Text(label, style="yellow")])
    held = {r["id"] for r in gpu.get("runs") or []}
    for p in procs:
        if p.get("run") in held:
            continue
        what = f"tix (ended) {p['run']}" if p.get("run") else p.get("command") or "?"
        style = "red" if gpu.get("blocked") and not p.get("run") else "dim" if p.get("run") else ""
        rows.append([index, str(p["pid"]), Text(visible(p.get("user") or "?"), style=style),
                     size(p.get("used")), Text(visible(what), style=style)])
    return rows


def size(n: int | None) -> str:
    """61 GiB, 2.5 GiB, 800 MiB; `?` where the driver does not say."""
    if n is None:
        return "?"
    if n >= 10 << 30:
        return f"{n / (1 << 30):.0f} GiB"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / (1 << 20):.0f} MiB"


# -- on Slurm: the cluster, as sinfo shows it, and tix's jobs in it --------------------------------
def slurm_head(info: dict[str, Any]) -> Text:
    """Counts of partitions, nodes (each once), GPUs free and used, and tix's jobs."""
    total = {"nodes": 0, "gpus": 0, "gpus_used": 0, "gpus_free": 0, **(info.get("totals") or {})}
    parts, jobs = info.get("partitions") or [], info.get("jobs") or []
    return Text(f" Slurm · {count_label(len(parts), 'partition')} · {count_label(total['nodes'], 'node')}"
                f" · GPUs {total['gpus_free']} free, {total['gpus_used']} used of {total['gpus']}"
                f" · {count_label(len(jobs), 'tix job')}")


def slurm_body(info: dict[str, Any]) -> Group:
    """sinfo's error line (if any), then partitions, nodes and tix's jobs, each under a title."""
    error = info.get("error")
    parts: list[RenderableType] = [Text(visible(error, lines=True), style="red")] if error else []
    if info.get("partitions"):
        parts += [Text("partitions", style="bold underline"), partition_table(info["partitions"]),
                  Text("\nnodes", style="bold underline"), node_table(info.get("nodes") or [])]
    parts.append(Text("\ntix jobs", style="bold underline"))
    parts.append(job_table(info["jobs"]) if info.get("jobs") else Text("none in the cluster", style="dim"))
    return Group(*parts)


def _slurm_table(*columns: str) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    return table


def partition_table(partitions: list[dict[str, Any]]) -> Table:
    table = _slurm_table("partition", "avail", "nodes", "state", "GPUs free/total", "used")
    for p in partitions:
        states = ", ".join(f"{n} {state}" for state, n in (p.get("states") or {}).items())
        table.add_row(visible(p["name"] + ("*" if p.get("default") else "")),
                      Text(visible(p["avail"]), style="" if p["avail"] == "up" else "red"), str(p["nodes"]),
                      visible(states),
                      Text(f"{p['gpus_free']}/{p['gpus']}", style=_free_style(p["gpus_free"], p["gpus"])),
                      str(p["gpus_used"]))
    return table


def node_table(nodes: list[dict[str, Any]]) -> Table:
    table = _slurm_table("node", "partitions", "state", "GPUs used/total", "CPUs alloc/idle/total", "gres")
    for n in nodes:
        cpus = "/".join("?" if (v := n.get(k)) is None else str(v) for k in CPU_KEYS)
        table.add_row(visible(n["name"]), visible(",".join(n.get("partitions") or [])), visible(n["state"]),
                      f"{n['gpus_used']}/{n['gpus']}", cpus, Text(visible(n.get("gres") or ""), style="dim"))
    return table


def job_table(jobs: list[dict[str, Any]]) -> Table:
    table = _slurm_table("run", "job", "state", "node / reason", "experiment/name")
    for j in jobs:
        state = (j.get("slurm_state") or j.get("state") or "?").lower()
        table.add_row(visible(j["run"]), visible(j.get("job_id") or "-"),
                      Text(visible(state), style="bold yellow" if state == "running" else "cyan"),
                      visible(j.get("node") or j.get("reason") or "-"),
                      visible(f"{j.get('experiment') or '-'}/{j.get('name') or '-'}"))
    return table


def _free_style(free: int, total: int) -> str:
    return "dim" if not total else "green" if free else "yellow"


def _load_style(percent: float | None) -> str:
    if percent is None:
        return "dim"
    return "red" if percent >= 90 else "yellow" if percent >= 50 else "green"
