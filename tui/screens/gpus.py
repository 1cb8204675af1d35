"""The Resources screen (key 6): the GPUs (utilisation and memory, which run holds each, every
process on it), each worker's CPU %, resident memory and threads, and the CPU slots.

Figures come from the daemon's `gpus` and `resources` ops (NVML, else nvidia-smi, and /proc, on
the daemon's box), asked every two seconds while the screen is shown and never while it is not.
Runs hold GPUs through the scheduler (CUDA_VISIBLE_DEVICES); a GPU the `gpus` setting adds but
the driver does not show is listed without figures.

Under the GPUs, one row per worker tix runs on this box: its CPU % (as top: 100 % is one core), its
resident memory (RSS) and threads, each summed over the worker and its children, and what it holds
(GPUs or a CPU slot). With no GPU at all (a laptop, `gpus: 0`) the screen shows the CPU slots
instead: how many, which run holds each (with the same figures), and which queued runs wait for
one; then how GPU detection works. Figures are whole or left out with a marker, never cut.

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

from tui.format import bar, count_label, fit_parts, gib, visible
from tui.messages import ConnectionChanged
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.fit_table import FitColumn, FitTable
from tui.widgets.footer import FitFooter

REFRESH_SECONDS = 2.0
CPU_KEYS = ("cpus_alloc", "cpus_idle", "cpus_total")


class GpusScreen(Screen[None]):
    """Resources: one row per GPU (index, name, utilisation and memory bars, temperature, holding
    runs), then one per worker (CPU %, RSS, threads); the CPU slots on a box without GPUs."""

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
        self.resources: dict[str, Any] | None = None
        """The last `resources` answer (None: not asked yet, or the daemon has no such op)."""
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
            info = await self.source.request("gpus")
        except SourceError as exc:
            failed = Text(visible(f" cannot ask the daemon: {exc}"), style="red")
            self.query_one("#gpu-head", Static).update(failed)
            return
        self.resources = await self.ask_resources()
        self.last = info  # set last: tests and the bench wait on it for a drawn screen
        head, body = render(self.last, (self.size.width or 80) - 2, self.resources)
        self.query_one("#gpu-head", Static).update(head)
        self.query_one("#gpu-body", Static).update(body)

    async def ask_resources(self) -> dict[str, Any] | None:
        """The workers' figures and the CPU slots; None from a daemon that predates the op."""
        try:
            return await self.source.request("resources")
        except SourceError as exc:
            self.log.warning(f"resources: {exc}")
            return None


def render(info: dict[str, Any], width: int,
           res: dict[str, Any] | None = None) -> tuple[Text, RenderableType]:
    """The head line and the body: GPUs, their processes and the workers; the CPU slots when there
    is no GPU; the cluster on Slurm."""
    if info.get("source") == "slurm":
        return slurm_head(info), slurm_body(info)
    gpus = info.get("gpus") or []
    source = {"nvml": "figures from NVML", "nvidia-smi": "figures from nvidia-smi",
              "stand-in": "figures from an NVML stand-in (TIX_FAKE_NVML)",
              "none": "no figures: neither NVML nor nvidia-smi answered"}.get(
        info.get("source", ""), str(info.get("source")))
    count = f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}"
    parts = [Text(count + (" (the gpus setting)" if info.get("override") else "")), Text(visible(source))]
    if res is not None:  # without GPUs the slots are the story: first
        parts.insert(len(parts) if gpus else 0, Text(slots_summary(res)))
    head = Text(" ").append_text(fit_parts(parts, max(20, width - 1)))
    if not gpus:
        how = visible(info.get("how", ""), lines=True)
        note = Text(f"\nno GPUs detected (how detection works)\n\n{how}", style="dim")
        return head, Group(*slot_section(res, width), note)
    return head, Group(gpu_table(gpus, width), *process_section(info), *worker_section(res, width))


def gpu_table(gpus: list[dict[str, Any]], width: int) -> Table:
    """GPUs, one a row. The figures' columns keep their whole width (bars are left out below 80
    columns); the model's name and the holders give way, so a figure is never cut."""
    bar_width = 0 if width < 78 else 10 if width < 100 else 20
    rows = [gpu_row(gpu, bar_width) for gpu in gpus]
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False, header_style="bold")
    table.add_column("GPU", no_wrap=True, overflow="ellipsis", min_width=6)
    for i, name in enumerate(("util", "memory GiB", "°C"), start=1):
        whole = max(len(name), *(Text(r[i]).cell_len if isinstance(r[i], str) else r[i].cell_len
                                 for r in rows))
        table.add_column(name, no_wrap=True, min_width=whole, justify="right" if name == "°C" else "left")
    table.add_column("held by", overflow="ellipsis", no_wrap=True, ratio=1)
    for row in rows:
        table.add_row(*row)
    return table


def gpu_row(gpu: dict[str, Any], bar_width: int) -> list[Text | str]:
    model = gpu.get("name") or ("(not detected)" if not gpu.get("detected") else "?")
    name = visible(f"{gpu['index']} {model}")
    util, used, total = gpu.get("util"), gpu.get("mem_used"), gpu.get("mem_total")
    util_cell = Text("-" if util is None else f"{with_bar(util / 100, bar_width)}{util:3.0f}%",
                     style=_load_style(util))
    mem_frac = used / total if used is not None and total else None
    mem_cell = Text("-" if mem_frac is None else f"{with_bar(mem_frac, bar_width)}{gib(used)}/{gib(total)}",
                    style=_load_style(None if mem_frac is None else mem_frac * 100))
    temp = gpu.get("temperature")
    return [Text(name[:28]), util_cell, mem_cell, "-" if temp is None else f"{temp:.0f}", holder_cell(gpu)]


def with_bar(fraction: float, width: int) -> str:
    """A bar and a space before a figure; nothing where there is no room for bars."""
    return f"{bar(fraction, width)} " if width else ""


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


# -- workers: CPU %, RSS and threads; the CPU slots ------------------------------------------------
WORKER_COLUMNS = ("CPU %", "RSS", "threads", "holds", "pid", "procs")
CPU_NOTE = "CPU %: 100 = one core busy; RSS and threads summed over each worker and its children"


def slots_summary(res: dict[str, Any]) -> str:
    """`CPU slots 1 of 2 in use · 2 cores`."""
    return (f"CPU slots {res.get('cpu_slots_used', 0)} of {res.get('cpu_slots', 0)} in use"
            f" · {count_label(int(res.get('cores') or 0), 'core')}")


def worker_section(res: dict[str, Any] | None, width: int) -> list[RenderableType]:
    """Under the GPUs: a title and one row per worker with its figures and what it holds."""
    title = Text("\nworkers", style="bold underline")
    if res is None:
        return [title, Text("not listed: the daemon has no `resources` op (an older daemon?)", style="dim")]
    workers = res.get("workers") or []
    if not workers:
        return [title, Text("no worker running", style="dim")]
    rows = [[run_label(w), *figure_cells(w), Text(holds(w)), Text(str(w.get("pid") or "-")),
             Text(str(w.get("processes") or "-"))] for w in workers]
    columns = [FitColumn("run", "left"), *(FitColumn(c, "left" if c == "holds" else "right")
                                           for c in WORKER_COLUMNS)]
    return [title, FitTable(columns, rows), Text(CPU_NOTE, style="dim")]


def slot_section(res: dict[str, Any] | None, width: int) -> list[RenderableType]:
    """Without GPUs: one row per CPU slot (the run holding it and its figures, or free), the
    workers outside the slots, then the queued runs that wait for a slot."""
    title = Text("CPU slots", style="bold underline")
    if res is None:
        return [title, Text("not listed: the daemon has no `resources` op (an older daemon?)", style="dim")]
    workers = res.get("workers") or []
    in_slots = [w for w in workers if w.get("cpu_slot")]
    slots = max(int(res.get("cpu_slots") or 0), len(in_slots))
    rows = [slot_row(i + 1, in_slots[i] if i < len(in_slots) else None) for i in range(slots)]
    columns = [FitColumn("slot · run", "left"), *(FitColumn(c) for c in ("CPU %", "RSS", "threads", "share",
                                                                         "pid"))]
    note = Text(f"{CPU_NOTE}; share: the cores the daemon gives it (OMP_NUM_THREADS)", style="dim")
    out: list[RenderableType] = [title, FitTable(columns, rows), note]
    others = [w for w in workers if not w.get("cpu_slot")]
    if others:
        out += worker_section({**res, "workers": others}, width)
    return out + waiting_section(res.get("waiting") or [])


def slot_row(slot: int, worker: dict[str, Any] | None) -> list[Text]:
    if worker is None:
        return [Text(f"{slot} free", style="dim"), *(Text("-", style="dim") for _ in range(5))]
    label = Text(f"{slot} ").append_text(run_label(worker))
    share = worker.get("thread_share")
    return [label, *figure_cells(worker), Text("-" if share is None else str(share)),
            Text(str(worker.get("pid") or "-"))]


def waiting_section(waiting: list[dict[str, Any]], most: int = 12) -> list[RenderableType]:
    """Queued runs that wait for a CPU slot, each with the scheduler's reason; the others counted."""
    for_slot = [r for r in waiting if str(r.get("progress_text") or "").startswith("waiting for a CPU slot")]
    title = Text(f"\nwaiting for a slot: {len(for_slot)}", style="bold underline")
    lines: list[RenderableType] = [title]
    for r in for_slot[:most]:
        lines.append(Text.assemble(run_label(r), ("  " + visible(r.get("progress_text") or ""), "dim")))
    if len(for_slot) > most:
        lines.append(Text(f"and {len(for_slot) - most} more", style="dim"))
    rest = len(waiting) - len(for_slot)
    if rest:
        lines.append(Text(f"{count_label(rest, 'other queued run')} {'waits' if rest == 1 else 'wait'} for "
                          "other runs (the runs screen says which)", style="dim"))
    return lines


def run_label(run: dict[str, Any]) -> Text:
    return Text(visible(f"{run.get('id')} {run.get('experiment') or '-'}/{run.get('name') or '-'}"),
                style="yellow" if run.get("state") == "running" else "")


def figure_cells(worker: dict[str, Any]) -> list[Text]:
    """CPU %, RSS and threads; `?` when the worker is not on this box or has just exited."""
    cpu, rss, threads = worker.get("cpu_percent"), worker.get("rss"), worker.get("threads")
    return [Text("?" if cpu is None else f"{cpu:.0f}" if cpu >= 10 else f"{cpu:.1f}", style=_cpu_style(cpu)),
            Text(size(rss)), Text("?" if threads is None else str(threads))]


def holds(worker: dict[str, Any]) -> str:
    gpus = worker.get("gpus") or []
    if gpus:
        return f"GPU {','.join(str(g) for g in gpus)}"
    return "CPU slot" if worker.get("cpu_slot") else "-"


def _cpu_style(cpu: float | None) -> str:
    return "dim" if cpu is None else "bold" if cpu >= 50 else ""


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
    """61 GiB, 2.5 GiB, 800 MiB, 1.8 MiB (a small worker's RSS); `?` where nothing is known."""
    if n is None:
        return "?"
    if n < 10 << 20:
        return f"{n / (1 << 20):.1f} MiB"
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
