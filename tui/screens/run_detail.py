"""Run detail: live training curves, a log tail that follows, and a samples browser with search.

Everything comes from the daemon: `run_metrics` (points from a step on), `run_log` (stdout,
stderr or the event story, from byte offsets) and `run_samples` (a page of scored items matching a
search). While the screen is open the app follows the run (`subscribe` with `runs`): after each
ingest the daemon sends a small `run_events` notice and the screen fetches only what is new, one
fetch at a time however fast the notices come (tui.coalesce). Curves are drawn with plotext off
the UI thread, at the size of the pane.

Keys: g curves, l logs, s samples; m shows the next four metrics; w cycles the log stream
(both, stdout, stderr, events), f toggles following, W wraps long lines; / searches the tab shown:
in the log, every match highlighted with n/N to the next/previous and a count (`3/17`); in
samples, free text plus `is:correct`, `is:wrong`, `is:unscored`, `bench:NAME`, `flag:NAME`, [ and ]
page; c cancels the run, r resumes or retries it; escape closes a search, then goes back.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Input, Log, Static, TabbedContent, TabPane

from tui.coalesce import Coalesced
from tui.format import (
    TERMINAL,
    count_label,
    duration,
    eta_seconds,
    fit,
    fit_parts,
    last_line,
    ordered_groups,
    progress_cell,
    result_line,
    run_seconds,
    slurm_job,
    slurm_queue_line,
    state_cell,
    visible,
)
from tui.messages import ConnectionChanged, RunEventsPushed, RunsPushed
from tui.run_actions import ask_cancel, resume
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.config_table import config_table
from tui.widgets.fit_table import FitColumn, FitTable
from tui.widgets.footer import FitFooter
from tui.widgets.literal import LiteralTable, literal
from tui.widgets.log_view import LogView
from tui.widgets.plotext_view import PlotextView

#: Curves shown first when a run has them (trl's names), four to a page; then the rest by name.
PREFERRED = ("loss", "reward", "kl", "learning_rate")
#: Metrics that are bookkeeping rather than curves.
HIDDEN = frozenset({"eta_seconds", "epoch", "step", "total_flos", "train_runtime"})
PAGE = 100
STREAMS = ("both", "stdout", "stderr", "events")
TABS = ("results", "curves", "logs", "samples", "config")
#: Run kinds whose page opens on what they found rather than on curves.
RESULT_KINDS = frozenset({"eval", "score", "analyse"})


#: Tabs a kind of run can never fill: an eval records no curves, a training no samples.
EMPTY_TABS = {"eval": {"curves"}, "score": {"curves"}, "analyse": {"curves", "samples"},
              "build": {"samples"}, "train": {"samples"}, "datagen": {"samples"}}


def run_tabs(run_id: str) -> tuple[str, ...]:
    """The tabs worth showing for a run (its id starts with its kind)."""
    empty = EMPTY_TABS.get(run_id.split("-", 1)[0], set())
    return tuple(tab for tab in TABS if tab not in empty)


def first_tab(run_id: str) -> str:
    """An eval or analyse run opens on its results, a build or train run on its curves (a run's
    id starts with its kind)."""
    return "results" if run_id.split("-", 1)[0] in RESULT_KINDS else "curves"


def curve_names(names: list[str]) -> list[str]:
    first = [n for n in PREFERRED if n in names]
    return first + sorted(n for n in names if n not in first and n not in HIDDEN)


def merge_points(series: dict[str, list[tuple[int, float]]], since: int | None,
                 rows: list[Any]) -> dict[str, list[tuple[int, float]]]:
    """`series` with a `run_metrics` answer's rows added. An answer asked `since_step` sends that
    step again (more of its metrics may have arrived), so each curve's points from it on are dropped
    first. New lists, never the old ones changed: a plot thread may still be drawing those."""
    out = {n: [p for p in pts if since is None or p[0] < since] for n, pts in series.items()}
    for step, name, value in rows:
        if step is not None and value is not None:
            out.setdefault(name, []).append((int(step), float(value)))
    return out


def envelope(points: list[tuple[int, float]], most: int) -> list[tuple[int, float]]:
    """At most about `most` points that keep every bucket's lowest and highest value, in step
    order, and the last point: a one-step spike in a thousand steps stays on the chart (keeping
    every k-th point drops it), as TensorBoard's and W&B's downsampling do."""
    if len(points) <= most or most < 4:
        return points
    buckets = most // 2
    size = len(points) / buckets
    out: list[tuple[int, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size): int((b + 1) * size)]
        if chunk:
            low, high = min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])
            out += sorted({low, high})
    return out if out[-1] == points[-1] else [*out, points[-1]]


def y_ticks(low: float, high: float, rows: int) -> tuple[list[float], list[str]]:
    """Tick values from the lowest to the highest point (the real range, not plotext's rounded
    one), about one every two rows (two to five), labelled to the precision their spacing needs
    (`-0.010`, `0.010`, `0.030`; scientific for very small or large values)."""
    count = max(2, min(5, rows // 2 + 1))
    values = [low + (high - low) * i / (count - 1) for i in range(count)]
    return values, tick_labels(values)


def tick_labels(values: list[float]) -> list[str]:
    step = abs(values[1] - values[0]) or 1.0
    top = max(abs(v) for v in values)
    if 1e-3 <= top < 1e5:
        decimals = max(0, 1 - math.floor(math.log10(step)))
        labels = [f"{v:.{decimals}f}" for v in values]
        return [label.lstrip("-") if float(label) == 0 else label for label in labels]
    for digits in range(2, 8):  # scientific: just enough digits to tell the ticks apart
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            break
    return labels


def short_number(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def step_ticks(first: int, last: int, most: int = 5) -> list[int]:
    """Round step numbers for the x axis (0, 50, 100...): steps are integers, so ticks are too."""
    span = max(1, last - first)
    raw = span / max(1, most - 1)
    unit = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * unit for m in (1, 2, 2.5, 5, 10) if m * unit >= raw and float(m * unit).is_integer())
    start = -(-first // step) * step
    return list(range(int(start), int(last) + 1, int(step))) or [first]


def curves_drawer(series: dict[str, list[tuple[int, float]]], names: list[str], width: int,
                  height: int = 24) -> Any:
    """A plotext draw function: up to four metrics in a grid, each titled with its last value,
    drawn as each bucket's min/max envelope with y ticks over the curve's real range."""
    cols = 1 if len(names) == 1 else 2
    rows = (len(names) + cols - 1) // cols

    def draw(figure: Any) -> None:
        # the height drawn at, not the one this was made for: after a resize the widget redraws
        # this, and a taller chart's ticks would fall on one row and overwrite each other
        plot_rows = max(2, (figure.size()[1] or height) // rows - 4)  # title, frame and x labels: four
        if len(names) > 1:
            figure.subplots(rows, cols)
        for i, name in enumerate(names):
            plot = figure.subplot(i // cols + 1, i % cols + 1) if len(names) > 1 else figure
            points = envelope(series.get(name, []), max(10, width // cols * 2))
            if points:
                draw_curve(plot, points, plot_rows)
                plot.title(f"{visible(name)} {short_number(points[-1][1])} @ {points[-1][0]}")
            else:
                plot.title(f"{visible(name)}: no points")

    return draw


def draw_curve(plot: Any, points: list[tuple[int, float]], rows: int) -> None:
    """One curve with round step ticks on x and its real range on y (a flat curve is centred)."""
    ys = [p[1] for p in points]
    plot.draw(plot.signal([p[0] for p in points], ys, marker="braille"))
    steps = step_ticks(points[0][0], points[-1][0])
    plot.ruler("x").ticks(steps, [str(s) for s in steps])
    low, high = min(ys), max(ys)
    if low == high:  # a flat curve (a constant learning rate)
        pad = abs(low) * 0.5 or 1.0
        low, high = low - pad, high + pad
    values, labels = y_ticks(low, high, rows)
    plot.ruler("y").lim(low, high)
    plot.ruler("y").ticks(values, labels)


def parse_search(text: str) -> dict[str, str]:
    """`run_samples` filters from a search box: is:correct|wrong|unscored, bench:X, flag:X, free text."""
    args: dict[str, str] = {}
    words = []
    for word in text.split():
        key, _, value = word.partition(":")
        if key == "is" and value in ("correct", "wrong", "unscored"):
            args["verdict"] = value
        elif key in ("bench", "benchmark") and value:
            args["benchmark"] = value
        elif key == "flag" and value:
            args["flag"] = value
        else:
            words.append(word)
    if words:
        args["query"] = " ".join(words)
    return args


SGR = re.compile(r"\x1b\[[0-9;:]*m")
"""An ANSI colour or text style (Select Graphic Rendition): the codes a coloured log is full of."""


def clean_log(text: str) -> str:
    """A worker's log made safe to show: of a line redrawn with carriage returns (a progress bar),
    its last version, as a terminal would show it; colour codes dropped (the Log widget shows plain
    text, and `␛[32m` on every line would bury it); every other control, an ESC sequence or OSC 52
    from a model's output included, made visible."""
    out = []
    for line in SGR.sub("", text).replace("\r\n", "\n").split("\n"):
        parts = [p for p in line.split("\r") if p]
        out.append(visible(parts[-1], lines=True) if parts else "")
    return "\n".join(out)


def verdict_mark(verdict: float | None) -> Text:
    if verdict is None:
        return Text("·", style="dim")
    return Text("✓", style="green") if verdict >= 0.5 else Text("✗", style="red")


def head_facts(run: dict[str, Any], width: int = 1_000) -> Text:
    """The head's second line: a failed run's error; else why a run waits in Slurm's queue (or that
    Slurm requeued it), what it is doing, where it was started from, its attempt and times, as many
    as fit `width` whole (a time is left out with `…`, never cut)."""
    if run.get("error") and run.get("state") != "succeeded":
        return Text(last_line(run["error"]), style="red")
    host = run.get("host")
    facts = [x for x in (
        run.get("progress_text") if run.get("state") == "running" or slurm_wait_free(run) else None,
        (f"submitted from {host}" if run.get("executor") == "slurm" else f"host {host}") if host else None,
        f"attempt {run['attempt']}" if run.get("attempt") else None,
        f"started {str(run['started_at'])[5:16]}" if run.get("started_at") else None,
        f"ended {str(run['finished_at'])[5:16]}" if run.get("finished_at") else None) if x]
    waiting = visible(slurm_queue_line(run))  # first: on a busy cluster it is the whole story of a queued run
    parts = [Text(visible(f), style="dim") for f in facts]
    return fit_parts(([Text(waiting, style="cyan")] if waiting else []) + parts, width, sep_style="dim")


def slurm_wait_free(run: dict[str, Any]) -> bool:
    """A queued run outside Slurm's queue: its progress text is the daemon's reason it waits (in
    Slurm's queue, slurm_queue_line says it, `requeued by Slurm` included)."""
    return run.get("state") == "queued" and not run.get("job_id")


class RunDetailScreen(Screen[None]):
    """One run: its head line, then curves, logs and samples in tabs."""

    DEFAULT_CSS = """
    RunDetailScreen #head { height: 2; padding: 0 1; background: $boost; text-wrap: nowrap;
                            text-overflow: ellipsis; }
    RunDetailScreen #detail-tabs { height: 1fr; }
    RunDetailScreen #detail-tabs > ContentSwitcher { height: 1fr; }
    RunDetailScreen TabPane { height: 1fr; padding: 0; }
    RunDetailScreen #plot { height: 1fr; }
    RunDetailScreen #curve-note, RunDetailScreen #log-head, RunDetailScreen #sample-count {
        height: 1; padding: 0 1; color: $text-muted; }
    RunDetailScreen #log { height: 1fr; }
    RunDetailScreen #log-search { display: none; }
    RunDetailScreen #log-search.-shown { display: block; }
    RunDetailScreen #sample-table { height: 45%; }
    RunDetailScreen #sample-scroll { height: 1fr; border-top: solid $panel; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "back", "back"),
        Binding("o", "tab('results')", "results", show=False),
        Binding("g", "tab('curves')", "curves", show=False),
        Binding("l", "tab('logs')", "logs", show=False),
        Binding("s", "tab('samples')", "samples", show=False),
        Binding("m", "more_curves", "more curves"),
        Binding("M", "more_curves(-1)", "previous curves", show=False),
        Binding("w", "stream", "stream"),
        Binding("f", "follow", "follow"),
        Binding("W", "wrap", "wrap", show=False),  # the log's head line shows it (80 columns keep r)
        Binding("n", "log_match(1)", "next match", show=False),
        Binding("N", "log_match(-1)", "previous match", show=False),
        Binding("slash", "search", "search"),
        Binding("left_square_bracket", "page(-1)", "prev page", show=False),
        Binding("right_square_bracket", "page(1)", "next page"),
        Binding("c", "cancel", "cancel"),
        Binding("r", "resume", "resume/retry"),
        Binding("p", "tab('config')", "config", show=False),
    ]
    #: Which tab each tab-specific action belongs to (elsewhere it is off and out of the footer).
    TAB_ACTIONS: ClassVar[dict[str, str]] = {"more_curves": "curves", "stream": "logs", "follow": "logs",
                                              "wrap": "logs", "log_match": "logs",
                                              "search": "logs samples", "page": "samples"}
    """(`search` is on two tabs, space-separated: / searches whichever is shown.)"""

    def __init__(self, source: Source, run_id: str, tab: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.run_id = run_id
        self.tabs = run_tabs(run_id)
        self.initial_tab = tab if tab in self.tabs else first_tab(run_id)
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.metric_names: list[str] = []
        self.last_step: int | None = None
        self.curve_page = 0
        self.stream = "both"
        self.offsets: dict[str, int] = {}
        self.follow = True
        self.search = ""
        self.sample_offset = 0
        self.samples: list[dict[str, Any]] = []
        self.sample_total = 0
        self.sample_result: dict[str, Any] | None = None
        self.sample_cols: dict[str, int] = {}
        """The last page of samples and the column widths it was laid out at (for a resize)."""
        self.samples_stale = False
        self._state: str | None = None
        self.load_metrics = Coalesced(self, self.fetch_metrics, "metrics")
        self.load_log = Coalesced(self, self.fetch_log, "log")
        self.load_samples = Coalesced(self, self.fetch_samples, "samples")
        self.load_results = Coalesced(self, self.fetch_results, "results")
        self.results_stale = False

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static(id="head")
        with TabbedContent(initial=self.initial_tab, id="detail-tabs"):
            with TabPane("o results", id="results"), VerticalScroll(id="results-scroll"):
                yield Static(Text("loading results…", style="dim"), id="results-view")
            with TabPane("g curves", id="curves"):
                yield PlotextView("loading metrics…", id="plot")
                yield Static(id="curve-note")
            with TabPane("l logs", id="logs"):
                yield Static(id="log-head")
                yield Input(placeholder="search the log: enter keeps it, n/N next/previous, escape closes",
                            id="log-search", compact=True)
                yield LogView(id="log", max_lines=10_000, auto_scroll=True)
            with TabPane("s samples", id="samples"):
                yield Input(placeholder="search: text  is:correct|wrong  bench:NAME  flag:NAME", id="search",
                            compact=True)
                yield Static(id="sample-count", markup=False)
                yield LiteralTable(id="sample-table", cursor_type="row")
                with VerticalScroll(id="sample-scroll"):
                    yield Static(id="sample-view")
            with TabPane("p config", id="config"), VerticalScroll(id="config-scroll") as scroll:
                scroll.styles.padding = (0, 1)
                yield Static(Text("loading the configuration…", style="dim"), id="config-view")
        yield FitFooter()

    @property
    def run(self) -> dict[str, Any]:
        return getattr(self.app, "runs", {}).get(self.run_id) or {"id": self.run_id, "state": "?"}

    def clock(self) -> float:
        return getattr(self.app, "clock", time.time)()

    def on_mount(self) -> None:
        tabs = self.query_one("#detail-tabs", TabbedContent)
        for tab in TABS:
            if tab not in self.tabs:
                tabs.hide_tab(tab)
        getattr(self.app, "listen", lambda _w: None)(self)
        getattr(self.app, "follow_run", lambda _r: None)(self.run_id)
        self.show_head()
        self.show_log_head()
        self.set_interval(1.0, self.show_head)
        self.reload()

    def on_unmount(self) -> None:
        getattr(self.app, "unfollow_run", lambda _r: None)(self.run_id)

    def reload(self) -> None:
        """Everything from scratch (on open and after the daemon comes back)."""
        self.series, self.last_step, self.offsets = {}, None, {}
        self.query_one("#log", Log).clear()
        self.load_metrics()
        self.load_log()
        self.load_samples()
        self.load_results()

    # -- pushes ----------------------------------------------------------------------------------
    def on_runs_pushed(self, message: RunsPushed) -> None:
        for run in message.runs:
            if run["id"] == self.run_id:
                self.show_head()
                if run.get("state") != self._state:  # a footer refresh recomposes it (and leaks, see
                    self._state = run.get("state")  # RunsScreen.show_selected): on state changes only
                    self.refresh_bindings()
                if run.get("state") in TERMINAL:  # the last lines were ingested with the end
                    self.load_metrics()
                    self.load_log()
                    self.load_results()

    def on_run_events_pushed(self, message: RunEventsPushed) -> None:
        for notice in message.notices:
            if notice.get("run_id") != self.run_id:
                continue
            if notice.get("metrics"):
                self.load_metrics()
            if notice.get("logs") is not None or notice.get("events"):
                self.load_log()
            if notice.get("samples"):
                self.samples_stale = True
                if self.active_tab() == "samples":
                    self.load_samples()
            if notice.get("samples") or notice.get("events"):  # scores and shifts are events
                self.results_stale = True
                if self.active_tab() == "results":
                    self.load_results()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.online:
            self.reload()

    # -- head ------------------------------------------------------------------------------------
    def show_head(self) -> None:
        run, now = self.run, self.clock()
        eta = duration(eta_seconds(run, now), short=True)
        parts = [Text(visible(run["id"]), style="bold"),  # the id names the kind
                 Text(visible(f"{run.get('experiment') or '-'}/{run.get('name') or '-'}")),
                 state_cell(run), progress_cell(run, 10), Text(f"ETA {eta}" if eta else ""),
                 Text(duration(run_seconds(run, now))),
                 Text(visible(f"GPU {run['gpus']}") if run.get("gpus") else ""),
                 Text(visible(slurm_job(run)) if run.get("job_id") else "")]
        width = max(20, (self.size.width or 80) - 2)
        line = fit_parts([p for p in parts if p.plain], width, "  ")
        line.style = "bold"  # the whole first line, as the id's
        head = Text("\n").join([line, head_facts(run, width)])
        head.no_wrap, head.overflow = True, "ellipsis"  # each line cut, never wrapped
        self.query_one("#head", Static).update(head, layout=False)

    # -- curves ----------------------------------------------------------------------------------
    async def fetch_metrics(self) -> None:
        since = self.last_step
        args: dict[str, Any] = {"id": self.run_id} | ({"since_step": since} if since is not None else {})
        try:
            result = await self.source.request("run_metrics", **args)
        except SourceError as exc:
            self.query_one("#curve-note", Static).update(Text(visible(f"metrics: {exc}"), style="red"))
            return
        self.series = merge_points(self.series, since, result["rows"])
        self.metric_names = curve_names(result["names"])
        self.last_step = result["last_step"]
        self.draw_curves()

    def draw_curves(self) -> None:
        names = self.metric_names[self.curve_page * 4: self.curve_page * 4 + 4]
        view = self.query_one("#plot", PlotextView)
        if not names:
            view.plot(None, no_curves(self.run))
        else:
            size = view.content_size
            view.plot(curves_drawer(self.series, names, size.width or 80, size.height or 20))
        pages = max(1, (len(self.metric_names) + 3) // 4)
        note = (f"{len(self.metric_names)} metrics, page {self.curve_page + 1}/{pages} (m/M: next/prev)"
                f"{f' · step {self.last_step}' if self.last_step is not None else ''}")
        self.query_one("#curve-note", Static).update(note)

    def action_more_curves(self, step: int = 1) -> None:
        """The next page of four curves (`m`), or the previous one (`M`); both wrap around."""
        pages = max(1, (len(self.metric_names) + 3) // 4)
        self.curve_page = (self.curve_page + step) % pages
        self.draw_curves()

    # -- results ---------------------------------------------------------------------------------
    async def fetch_results(self) -> None:
        self.results_stale = False
        view = self.query_one("#results-view", Static)
        try:
            result = await self.source.request("run_results", id=self.run_id)
        except SourceError as exc:
            view.update(Text(visible(f"results: {exc}", lines=True), style="red"))
            return
        view.update(results_view(self.run, result))

    # -- logs ------------------------------------------------------------------------------------
    async def fetch_log(self) -> None:
        first = not self.offsets
        try:
            result = await self.source.request("run_log", id=self.run_id, stream=self.stream,
                                               offsets=dict(self.offsets))
        except SourceError as exc:
            self.query_one("#log-head", Static).update(Text(visible(f"log: {exc}"), style="red"))
            return
        log = self.query_one("#log", Log)
        for chunk in result["chunks"]:
            self.offsets[chunk["stream"]] = chunk["offset"]
            text = clean_log(chunk["text"])
            if first and self.stream == "both" and text:
                log.write(f"── {chunk['stream']}" + (" (tail)" if chunk["start"] else "") + " ──\n")
            log.write(text, scroll_end=self.follow)
        if first and not any(c["text"] for c in result["chunks"]):
            await self.nothing_logged(log)
        if log.query_text:  # new lines can match: the count moves
            self.show_log_head()

    async def nothing_logged(self, log: Log) -> None:
        """An empty stream: `yet` while the run goes on; an ended run whose worker printed nothing
        (a build that copied the shipped base) shows what it did instead, from its events."""
        if self.run.get("state") not in TERMINAL:
            log.write(f"(nothing in {self.stream} yet)\n")
            return
        if self.stream != "both":
            log.write(f"(nothing in {self.stream})\n")
            return
        log.write("(the worker wrote nothing to stdout or stderr; what it did, from its events:)\n")
        try:
            story = await self.source.request("run_log", id=self.run_id, stream="events", offsets={})
        except SourceError:
            return
        for chunk in story["chunks"]:
            log.write(clean_log(chunk["text"]), scroll_end=self.follow)

    def show_log_head(self) -> None:
        """During a search its query and count first (`“error” 3/17`, never cut), then the streams,
        following and wrapping, as many as fit."""
        log = self.query_one("#log", LogView)
        streams = Text()
        for stream in STREAMS:
            streams.append(f" {stream} ", style="reverse bold" if stream == self.stream else "")
        parts = [streams, Text(f"f: {'following' if self.follow else 'not following'}"),
                 Text(f"W: {'wrap' if log.wrap else 'no wrap'}")]
        if log.query_text:
            found = Text(f"“{visible(log.query_text)}” ", style="bold")
            found.append(log.count_text(), style="bold yellow" if log.matches else "red")
            parts.insert(0, found)
        width = max(20, (self.size.width or 80) - 2)
        self.query_one("#log-head", Static).update(fit_parts(parts, width, " · "))

    def open_log_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.add_class("-shown")
        box.focus()

    def close_log_search(self) -> None:
        """Escape: the search box goes, the highlights with it, and the log keeps its place."""
        box = self.query_one("#log-search", Input)
        box.remove_class("-shown")
        box.value = ""
        log = self.query_one("#log", LogView)
        log.search("")
        log.focus()
        self.show_log_head()

    @on(Input.Changed, "#log-search")
    def _log_search_typed(self, event: Input.Changed) -> None:
        """Matches are highlighted as the query is typed (a 10,000-line log takes a few ms)."""
        self.query_one("#log", LogView).search(event.value)
        if event.value:
            self.stop_following()
        self.show_log_head()

    @on(Input.Submitted, "#log-search")
    def _log_search_done(self, event: Input.Submitted) -> None:
        if not event.value:
            self.close_log_search()
            return
        self.query_one("#log", LogView).focus()

    def action_log_match(self, step: int) -> None:
        """n / N: the next / previous match; following stops, so the match stays in view."""
        log = self.query_one("#log", LogView)
        if not log.query_text:
            self.notify("no search yet: / searches the log", severity="warning")
            return
        if log.next_match(step):
            self.stop_following()
        self.show_log_head()

    def stop_following(self) -> None:
        if self.follow:
            self.follow = False
            self.query_one("#log", LogView).auto_scroll = False

    def action_wrap(self) -> None:
        log = self.query_one("#log", LogView)
        log.set_wrap(not log.wrap)
        self.show_log_head()

    def action_stream(self) -> None:
        self.stream = STREAMS[(STREAMS.index(self.stream) + 1) % len(STREAMS)]
        self.offsets = {}
        self.query_one("#log", Log).clear()
        self.show_log_head()
        self.load_log()

    def action_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one("#log", Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self.show_log_head()

    # -- samples ---------------------------------------------------------------------------------
    async def fetch_samples(self) -> None:
        args = {"id": self.run_id, "limit": PAGE, "offset": self.sample_offset, **parse_search(self.search)}
        try:
            result = await self.source.request("run_samples", **args)
        except SourceError as exc:
            self.query_one("#sample-count", Static).update(Text(visible(f"samples: {exc}"), style="red"))
            return
        self.samples_stale = False
        self.samples, self.sample_total = result["rows"], result["total"]
        self.sample_result = result
        self.fill_samples(result)

    def on_resize(self) -> None:
        """The samples table's columns follow the width (the completion takes what is left)."""
        if self.sample_result is not None and sample_widths(self.size.width or 80) != self.sample_cols:
            row = self.query_one("#sample-table", DataTable).cursor_row
            self.fill_samples(self.sample_result, row)

    def fill_samples(self, result: dict[str, Any], row: int = 0) -> None:
        table = self.query_one("#sample-table", DataTable)
        widths = self.sample_cols = sample_widths(self.size.width or 80)
        table.clear(columns=True)
        for key, width in widths.items():
            table.add_column("" if key == "v" else key, key=key, width=width)
        for i, s in enumerate(self.samples):
            table.add_row(*sample_cells(s, widths), key=str(i))
        first, last = self.sample_offset + 1, self.sample_offset + len(self.samples)
        shown = f"{first}-{last}" if self.samples else "none"
        what = f" · {result['total']:,} match “{visible(self.search)}”" if self.search else ""
        more = " · ] next page" if last < self.sample_total else ""
        self.query_one("#sample-count", Static).update(
            f"{count_label(result['all'], 'sample')}{what} · showing {shown}{more}")
        if 0 < row < table.row_count:
            table.move_cursor(row=row, animate=False)
        self.show_sample(row if 0 <= row < len(self.samples) else 0)

    @on(DataTable.RowHighlighted, "#sample-table")
    def _sample_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_sample(event.cursor_row)

    def show_sample(self, index: int) -> None:
        view = self.query_one("#sample-view", Static)
        if not 0 <= index < len(self.samples):
            view.update(Text("no samples" + (" match the search" if self.search else ""), style="dim"))
            return
        view.update(sample_text(self.samples[index]))

    def action_search(self) -> None:
        """`/` searches the tab shown: the log on the logs tab, else the samples."""
        if self.active_tab() == "logs":
            self.open_log_search()
            return
        self.query_one("#detail-tabs", TabbedContent).active = "samples"
        self.query_one("#search", Input).focus()

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        self.search, self.sample_offset = event.value.strip(), 0
        self.load_samples()
        self.query_one("#sample-table", DataTable).focus()

    def action_page(self, delta: int) -> None:
        offset = self.sample_offset + delta * PAGE
        if 0 <= offset < max(self.sample_total, 1):
            self.sample_offset = offset
            self.load_samples()

    # -- tabs and actions ------------------------------------------------------------------------
    def active_tab(self) -> str:
        return self.query_one("#detail-tabs", TabbedContent).active

    def action_tab(self, tab: str) -> None:
        if tab in self.tabs:
            self.query_one("#detail-tabs", TabbedContent).active = tab

    @on(TabbedContent.TabActivated)
    def _tab_shown(self) -> None:
        tab = self.active_tab()
        if tab == "samples":
            self.query_one("#sample-table", DataTable).focus()
            if self.samples_stale:
                self.load_samples()
        elif tab == "results" and self.results_stale:
            self.load_results()
        elif tab == "logs":
            self.query_one("#log", Log).focus()
        panes = [] if self.focused is None else [n for n in self.focused.ancestors if isinstance(n, TabPane)]
        if panes and panes[0].id != tab:
            # Else Textual hands focus to a visible sibling in the hidden pane (the samples search
            # box), and that focus shows its pane again: o and p did nothing on the samples tab.
            scroll = self.query(f"#{tab}-scroll")
            self.set_focus(scroll.first() if scroll else None)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Tab actions only on their tab; cancel/resume dimmed when the run's state forbids them."""
        if not self.is_mounted:
            return True
        tab = self.TAB_ACTIONS.get(action)
        if tab is not None:
            return self.active_tab() in tab.split()
        state = self.run.get("state")
        if action == "cancel":
            return state in ("queued", "running") or None
        if action == "resume":
            return state in ("failed", "cancelled") or None
        return True

    def action_back(self) -> None:
        if self.active_tab() == "logs" and self.query_one("#log-search", Input).has_class("-shown"):
            self.close_log_search()
            return
        if isinstance(self.focused, Input):
            self.query_one("#sample-table", DataTable).focus()
            return
        self.dismiss(None)

    def action_cancel(self) -> None:
        ask_cancel(self, {**self.run, "id": self.run_id})

    def action_resume(self) -> None:
        resume(self, {**self.run, "id": self.run_id})

    # -- config (issue 25.13; tui/widgets/config_table.py draws it) -------------------------------------
    @on(TabbedContent.TabActivated)
    def _config_shown(self) -> None:
        """The configuration is fetched the first time its tab shows (it does not change)."""
        if self.active_tab() == "config" and not getattr(self, "config_asked", False):
            self.config_asked = True
            self.run_worker(self.fetch_config(), group="config")

    async def fetch_config(self) -> None:
        view = self.query_one("#config-view", Static)
        try:
            found = await self.source.request("run_config", id=self.run_id)
        except SourceError as exc:
            view.update(Text(visible(f"config: {exc}", lines=True), style="red"))
            return
        note = "" if found["started"] else "  (no spec.yaml in its folder: inputs show as from_run)"
        view.update(Group(Text(f"{len(found['keys'])} keys{note}", style="dim"), config_table(found["keys"])))


def sample_widths(width: int) -> dict[str, int]:
    """Column widths of the samples table at `width` cells (the completion takes the rest)."""
    item = 8 if width < 100 else 14 if width < 150 else 22  # the item id widens with the terminal
    fixed = {"v": 1, "benchmark": 14 if width < 100 else 22, "item": item, "answer": 8, "gold": 8, "flags": 8}
    rest = width - sum(fixed.values()) - 2 * (len(fixed) + 1) - 2
    return {**fixed, "completion": max(10, rest)}


def sample_cells(s: dict[str, Any], widths: dict[str, int]) -> list[Text | str]:
    """One sample as table cells; the item id keeps only what tells it apart (the column beside it
    names the benchmark)."""
    bench, item = str(s.get("benchmark") or ""), str(s.get("item_id") or "")
    item = item_part(item, bench)
    return [verdict_mark(s.get("verdict")), fit(bench, widths["benchmark"]), fit(item, widths["item"]),
            fit(str(s.get("extracted") if s.get("extracted") is not None else "-"), widths["answer"]),
            fit(str(s.get("gold") if s.get("gold") is not None else "-"), widths["gold"]),
            Text(fit(",".join(s.get("flags") or []), widths["flags"]), style="yellow"),
            fit(s.get("completion") or "", widths["completion"])]


def item_part(item: str, bench: str) -> str:
    """`basic_arithmetic-12` of `lab_basic_arithmetic` -> `12`: drop the longest tail of the
    benchmark's name (whole `_` words) that starts the id, with its separator."""
    words = bench.split("_")
    for start in range(len(words)):
        prefix = "_".join(words[start:])
        if prefix and len(item) > len(prefix) + 1 and item.startswith(prefix) and item[len(prefix)] in "-/:_":
            return item[len(prefix) + 1:]
    return item


def sample_facts(s: dict[str, Any]) -> list[str]:
    """` verdict 0.0556`, `13 tokens`, `stop`: what is known of a sample, numbers as a person reads
    them (a mean verdict of 18 samples is 0.0556, not 0.05555555555555555), nothing for unknowns."""
    facts = [f" verdict {short_number(float(s['verdict']))}" if s.get("verdict") is not None else " unscored"]
    if s.get("tokens") is not None:
        facts.append(f"{s['tokens']} tokens")
    if s.get("finish_reason"):
        facts.append(str(s["finish_reason"]))
    return facts


def no_curves(run: dict[str, Any]) -> str:
    """Why the curves tab is empty: still loading, not started, or what the run did instead."""
    result = run.get("result") if isinstance(run.get("result"), dict) else {}
    if run.get("state") not in TERMINAL:
        return "no metrics yet"
    if result.get("shipped"):
        return shipped_line(run)
    if run.get("kind") == "build" and result.get("reused"):
        return ("no curves: this run trained nothing, it reused a finished build (an identical earlier one, "
                "or the base shipped with tix); l shows what it did")
    return "no metrics recorded for this run"


def shipped_line(run: dict[str, Any]) -> str:
    """A build that copied the base shipped in the package instead of pre-training it."""
    result = run.get("result") or {}
    files = result.get("checked_files")
    checked = f"all {files} files' sha256 checked" if files else "every file's sha256 checked"
    name = Path(str(result.get("model_path") or "")).name or "the shipped base"
    return (f"no curves: this run copied the shipped base {name} ({checked}) instead of pre-training "
            "it; `rebuild: true` under `base:` trains it here")


def sample_text(s: dict[str, Any]) -> Text:
    """A whole sample: where it is from, its verdict and flags, then prompt, completion, answer."""
    text = Text()
    text.append(visible(f"{s.get('benchmark')} · {s.get('item_id')} · sample {s.get('sample_idx')} · "),
                style="bold")
    text.append_text(verdict_mark(s.get("verdict")))
    text.append(visible(" · ".join(sample_facts(s))))
    if s.get("flags"):
        text.append(visible(f" · flags: {', '.join(s['flags'])}"), style="yellow")
    for title, key in (("prompt", "prompt"), ("completion", "completion"), ("extracted answer", "extracted"),
                       ("gold answer", "gold")):
        text.append(f"\n{title}\n", style="bold cyan")
        text.append(visible(s.get(key), lines=True) if s.get(key) is not None else "(none)")
    return text


# -- results ---------------------------------------------------------------------------------------
def results_view(run: dict[str, Any], result: dict[str, Any]) -> Group:
    """An eval's scores (accuracy ± stderr, n, health per benchmark, then group means), an
    analyse run's shift summary, or what any other run reported when it ended."""
    parts: list[Any] = []
    if result["benchmarks"]:
        parts += score_parts(result["benchmarks"], run.get("state") == "running")
    if result["shift"]:
        parts += shift_parts(result["shift"])
    if not parts:
        parts.append(no_results(run))
    return Group(*parts)


SCORE_COLUMNS = ("benchmark", "group", "acc", "±se", "n", "no ans", "trunc", "think")
SCORE_KEY = ("acc: accuracy % (yellow: so far) · ±se: its standard error over items · no ans, trunc, think: "
             "share of outputs with no answer, cut at the token limit, a <think> left open")
HEALTH = ("no_answer", "truncated", "unclosed_think")


def score_parts(rows: list[dict[str, Any]], running: bool) -> list[Any]:
    """The scores table (numbers whole at any width: FitTable), the group means and the key."""
    columns = [FitColumn(n, "left" if n in ("benchmark", "group") else "right") for n in SCORE_COLUMNS]
    cells = []
    live = False
    for r in rows:
        accuracy = r["accuracy"] if r["accuracy"] is not None else r["live"]
        live |= r["accuracy"] is None and accuracy is not None
        cells.append([literal(r["benchmark"]), literal(r["group"] or "-"),
                      Text("-" if accuracy is None else f"{accuracy:.1f}",
                           style="yellow" if r["accuracy"] is None else "bold"),
                      Text("-" if r["stderr"] is None else f"{r['stderr']:.1f}"),
                      Text(str(r["n"] or r["items"] or 0)),
                      *(health_cell(r[k], r["outputs"]) for k in HEALTH)])
    parts: list[Any] = [FitTable(columns, cells), group_means_line(rows)]
    if live:
        going = "the run is going on" if running else "the run ended before scoring them"
        parts.append(Text(f"yellow: accuracy so far, from the samples scored until now ({going})",
                          style="yellow"))
    parts.append(Text(SCORE_KEY, style="dim"))
    return parts


def health_cell(count: int | None, outputs: int | None) -> Text:
    """The share of a benchmark's outputs with a problem: red from 10 %, dim when none."""
    if not outputs:
        return Text("-", style="dim")
    share = 100 * (count or 0) / outputs
    return Text(f"{share:.0f}%", style="red" if share >= 10 else "" if count else "dim")


def group_means_line(rows: list[dict[str, Any]]) -> Text:
    """Mean accuracy per group over its benchmarks (each benchmark weighs the same), as TI uses."""
    by_group: dict[str, list[float]] = {}
    for r in rows:
        value = r["accuracy"] if r["accuracy"] is not None else r["live"]
        if value is not None and r["group"]:
            by_group.setdefault(str(r["group"]), []).append(float(value))
    means = ordered_groups({g: sum(v) / len(v) for g, v in by_group.items()})
    text = Text("group means  ", style="bold")
    text.append(visible("   ".join(f"{g} {v:.1f}" for g, v in means) or "-"))
    return text


def shift_parts(rows: list[dict[str, Any]]) -> list[Any]:
    """The shift summary per group, then per benchmark; numbers whole at any width (FitTable)."""
    columns = [FitColumn("group / benchmark", "left"),
               *(FitColumn(name) for name in ("PCA d", "KL", "rank shift", "Δ log p", "tokens"))]
    cells = []
    for r in rows:
        label = literal(r["group"] or "-", style="bold") if r["scope"] == "group" else \
            literal(f"  {r['benchmark']} ({r['group'] or '-'})")
        cells.append([label, *(Text("-", style="dim") if r[k] is None else Text(readable(r[k]))
                               for k in ("pca_d", "kl", "rank_shift", "logp_diff", "tokens"))])
    key = ("PCA d: distance between base and tuned hidden states on the base model's PCs; KL and rank "
           "shift: how the output distribution moved (README, Shift)")
    return [FitTable(columns, cells), Text(key, style="dim")]


def readable(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.4g}"


def no_results(run: dict[str, Any]) -> Text:
    line = result_line(run)
    if line and (run.get("result") or {}).get("shipped"):
        copied = shipped_line(run).removeprefix("no curves: ")
        return Text.assemble((visible(line), "green"), "\n", (copied, "dim"))
    if line:
        return Text(visible(line), style="green")
    if run.get("state") in ("queued", "running"):
        what = "scores" if run["id"].startswith("eval") else "results"
        return Text(f"no {what} yet: they appear here as the run records them", style="dim")
    return Text("this run recorded no scores or shift results", style="dim")
