"""The GPU panel: utilisation and memory per GPU, and which run holds it.

Figures come from the daemon's `gpus` op (NVML, else nvidia-smi, on the daemon's box), asked
every two seconds while the panel is on screen and never while it is not. Runs hold GPUs through
the scheduler (CUDA_VISIBLE_DEVICES); a GPU the `gpus` setting adds but the driver does not show
is listed without figures. With no GPU at all the panel says so and how detection works.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from tui.format import bar, gib
from tui.messages import ConnectionChanged
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.footer import FitFooter

REFRESH_SECONDS = 2.0


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
            self.query_one("#gpu-head", Static).update(Text(f" cannot ask the daemon: {exc}", style="red"))
            return
        head, body = render(self.last, self.size.width or 80)
        self.query_one("#gpu-head", Static).update(head)
        self.query_one("#gpu-body", Static).update(body)


def render(info: dict[str, Any], width: int) -> tuple[Text, Table | Text]:
    """The head line and the body (a table of GPUs, or why there is none)."""
    gpus = info.get("gpus") or []
    source = {"nvml": "figures from NVML", "nvidia-smi": "figures from nvidia-smi",
              "none": "no figures: neither NVML nor nvidia-smi answered"}.get(
        info.get("source", ""), str(info.get("source")))
    count = f" {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}"
    head = Text(count + (" (the gpus setting)" if info.get("override") else "") + f" · {source}")
    if not gpus:
        return head, Text(f"no GPUs detected (how detection works)\n\n{info.get('how', '')}\n\n"
                          "Runs use CPU slots (the cpu_slots setting) on this box.")
    return head, gpu_table(gpus, width)


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
    name = f"{gpu['index']} {gpu.get('name') or ('(not detected)' if not gpu.get('detected') else '?')}"
    util, used, total = gpu.get("util"), gpu.get("mem_used"), gpu.get("mem_total")
    util_cell = Text("-" if util is None else f"{bar(util / 100, bar_width)} {util:3.0f}%",
                     style=_load_style(util))
    mem_frac = used / total if used is not None and total else None
    mem_cell = Text("-" if mem_frac is None else f"{bar(mem_frac, bar_width)} {gib(used)}/{gib(total)}",
                    style=_load_style(None if mem_frac is None else mem_frac * 100))
    temp = gpu.get("temperature")
    runs = gpu.get("runs") or []
    holders = Text(", ".join(f"{r['id']} {r.get('experiment') or '-'}/{r.get('name') or '-'}" for r in runs)
                   or "free", style="" if runs else "dim")
    return [Text(name[:28]), util_cell, mem_cell, "-" if temp is None else f"{temp:.0f}", holders]


def _load_style(percent: float | None) -> str:
    if percent is None:
        return "dim"
    return "red" if percent >= 90 else "yellow" if percent >= 50 else "green"
