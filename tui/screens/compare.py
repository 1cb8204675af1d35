"""Compare marked runs (`C` on the runs screen) and diff two runs' configurations (`d`).

CompareScreen has up to two tabs:
- curves (training, build and other runs that log metrics): one metric at a time with every
  marked run overlaid in its own colour (tui/widgets/overlay_chart.py), legend under the plot.
  `/` opens a metric picker with search (a GRPO run logs about 27 metrics): typing filters the
  names, enter picks; `m`/`M` step through them. `e` toggles EMA smoothing and `E` cycles its
  weight (shown in the note, as W&B and TensorBoard show theirs); `y` toggles a log y axis (values
  <= 0 are left out and the note counts them). Points come from `run_metrics`, one request per run;
  every FOLLOW_S seconds a running run's new points are fetched from its last step on.
- scores (eval and score runs): each run's accuracy per benchmark side by side, then the paired
  difference of each marked model from its base per benchmark with its 95 % CI, p and q, as the
  daemon's `paired_deltas` view holds them (engine/analysis/paired.py computes them; nothing is
  recomputed here), from the `compare_evals` op (engine/daemon/compare_ops.py).

DiffScreen shows the configuration keys two runs differ in (`run_diff`, engine/analysis/rundiff.py),
the same rows `tix diff` prints. tui/widgets/config_table.py draws the keys (the run detail's config tab too).
Every value from the data is shown through `visible()`; numbers are never cut (FitTable drops a
column with a marker; long values fold onto more lines).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from tui.format import count_label, visible
from tui.screens.run_detail import curve_names, merge_points
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.config_table import config_table
from tui.widgets.fit_table import FitColumn, FitTable
from tui.widgets.footer import FitFooter
from tui.widgets.overlay_chart import WEIGHTS, Curve, legend, note, overlay_drawer
from tui.widgets.plotext_view import PlotextView

#: Run kinds whose numbers are scores per benchmark (the scores tab); the others log curves.
SCORE_KINDS = frozenset({"eval", "score"})
#: Run kinds with neither (an analysis's results are on its own page).
NEITHER = frozenset({"analyse"})
#: Seconds between fetches of a running compared run's new points.
FOLLOW_S = 3.0


def run_label(run: dict[str, Any]) -> str:
    """How a run is named in a legend or a header: its name, then its id (names repeat across
    experiments)."""
    return f"{run.get('name') or '-'} {run['id']}"


def matching(names: list[str], text: str) -> list[str]:
    """The metric names containing every word of `text` (case-insensitive)."""
    words = text.lower().split()
    return [n for n in names if all(w in n.lower() for w in words)]


class CompareScreen(Screen[None]):
    """Marked runs side by side: curves overlaid, or eval scores with their paired deltas."""

    DEFAULT_CSS = """
    CompareScreen #compare-head { height: 1; padding: 0 1; background: $boost; text-wrap: nowrap;
                                  text-overflow: ellipsis; }
    CompareScreen #compare-tabs { height: 1fr; }
    CompareScreen #compare-tabs > ContentSwitcher { height: 1fr; }
    CompareScreen TabPane { height: 1fr; padding: 0; }
    CompareScreen #overlay { height: 1fr; }
    CompareScreen #overlay-note { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap;
                                  text-overflow: ellipsis; }
    CompareScreen #picker { height: auto; max-height: 12; display: none; border-bottom: solid $panel; }
    CompareScreen.-picking #picker { display: block; }
    CompareScreen #metric-list { height: auto; max-height: 10; }
    CompareScreen #scores-scroll { padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "back", "back"),
        Binding("g", "tab('curves')", "curves", show=False),
        Binding("o", "tab('scores')", "scores", show=False),
        Binding("slash", "pick", "pick metric"),
        Binding("m", "step(1)", "next metric"),
        Binding("M", "step(-1)", "previous metric", show=False),
        Binding("e", "smooth", "EMA"),
        Binding("E", "weight", "EMA weight", show=False),
        Binding("y", "log_y", "log y"),
    ]
    TAB_ACTIONS: ClassVar[dict[str, str]] = {"pick": "curves", "step": "curves", "smooth": "curves",
                                              "weight": "curves", "log_y": "curves"}

    def __init__(self, source: Source, runs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.source = source
        self.runs = runs
        self.curve_runs = [r for r in runs if r.get("kind") not in SCORE_KINDS | NEITHER]
        self.score_runs = [r for r in runs if r.get("kind") in SCORE_KINDS]
        self.series: dict[str, dict[str, list[tuple[int, float]]]] = {}
        """run id -> metric -> points."""
        self.names: list[str] | None = None
        """Metric names of every compared run (None until the first answers)."""
        self.last_step: dict[str, int] = {}
        self.fetching = False
        self.metric = ""
        self.smoothing = 0.0
        self.weight = WEIGHTS[0]
        self.log_y = False
        self.evals: dict[str, Any] | None = None

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static(self.head(), id="compare-head")
        first = "curves" if self.curve_runs or not self.score_runs else "scores"
        with TabbedContent(initial=first, id="compare-tabs"):
            if self.curve_runs or not self.score_runs:
                with TabPane("g curves", id="curves"):
                    with Vertical(id="picker"):
                        yield Input(placeholder="metric: words in its name (enter picks, esc closes)",
                                    id="metric-search", compact=True)
                        yield OptionList(id="metric-list")
                    yield PlotextView("loading metrics…", id="overlay")
                    yield Static(id="overlay-note")
            if self.score_runs:
                with TabPane("o scores", id="scores"), VerticalScroll(id="scores-scroll"):
                    yield Static(Text("loading scores…", style="dim"), id="scores-view")
        yield FitFooter()

    def head(self) -> Text:
        parts = [f"comparing {count_label(len(self.runs), 'run')}"]
        if self.curve_runs and self.score_runs:
            parts.append(f"{len(self.curve_runs)} with curves, {len(self.score_runs)} with scores")
        skipped = len(self.runs) - len(self.curve_runs) - len(self.score_runs)
        if skipped:
            parts.append(f"{skipped} analyse (results on its page)")
        text = Text(" · ".join(parts), style="bold")
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def on_mount(self) -> None:
        if self.query("#overlay"):
            self.run_worker(self.fetch_metrics(), group="compare", exclusive=True)
            self.set_interval(FOLLOW_S, self.follow)
        if self.score_runs:
            self.run_worker(self.fetch_scores(), group="compare-scores", exclusive=False)

    # -- curves ----------------------------------------------------------------------------------
    def follow(self) -> None:
        """Every FOLLOW_S seconds while a compared run is running: fetch its new points (from its
        last step on, as the run detail does) and redraw when any arrived."""
        runs = getattr(self.app, "runs", {})
        live = [r for r in self.curve_runs if (runs.get(r["id"]) or r).get("state") == "running"]
        if live and self.names is not None and not self.fetching:
            self.run_worker(self.fetch_metrics(live), group="compare", exclusive=True)

    async def fetch_metrics(self, runs: list[dict[str, Any]] | None = None) -> None:
        """All points of every compared run (`runs` None), or the new points of `runs`."""
        if not self.curve_runs:
            self.query_one("#overlay", PlotextView).plot(None, "no marked run logs curves")
            return
        runs = self.curve_runs if runs is None else runs
        self.fetching = True
        try:
            answers = await asyncio.gather(*(self.source.request("run_metrics", id=r["id"], **(
                {"since_step": self.last_step[r["id"]]} if r["id"] in self.last_step else {})) for r in runs),
                return_exceptions=True)
        finally:
            self.fetching = False
        problems, changed = [], False
        for run, answer in zip(runs, answers, strict=True):
            if isinstance(answer, SourceError):
                problems.append(f"{run['id']}: {answer}")
                continue
            if isinstance(answer, BaseException):
                raise answer
            changed = self.take(run["id"], answer) or changed
        first, before = self.names is None, self.names
        self.names = curve_names(sorted({n for s in self.series.values() for n in s} | set(self.names or [])))
        self.metric = self.metric or (self.names[0] if self.names else "")
        if problems and first:
            self.notify(visible(f"metrics: {problems[0]}"), severity="error")
        if self.names != before:  # a new metric: the picker lists it (its highlight moves only then)
            self.fill_picker(self.query_one("#metric-search", Input).value)
        if first or changed:
            self.draw()

    def take(self, run_id: str, answer: dict[str, Any]) -> bool:
        """Store a `run_metrics` answer (points from its since_step on replace those); whether any
        point is new."""
        since = self.last_step.get(run_id)
        self.series[run_id] = merge_points(self.series.get(run_id, {}), since, answer["rows"])
        if answer.get("last_step") is not None:
            self.last_step[run_id] = int(answer["last_step"])
        return bool(answer["rows"]) and answer.get("last_step") != since

    def curves(self) -> list[Curve]:
        return [Curve(run_label(r), self.series.get(r["id"], {}).get(self.metric, []))
                for r in self.curve_runs]

    def draw(self) -> None:
        view = self.query_one("#overlay", PlotextView)
        note_line = self.query_one("#overlay-note", Static)
        if not self.metric:
            view.plot(None, "none of the marked runs has logged a metric yet")
            note_line.update("")
            return
        curves = self.curves()
        width = max(20, (view.content_size.width or self.size.width or 80))
        state = (self.metric, self.smoothing, self.log_y)

        def report(dropped: int) -> None:  # in the plot's thread
            self.app.call_from_thread(self.show_note, state, dropped)

        view.plot(overlay_drawer(curves, self.smoothing, self.log_y, width, view.content_size.height or 12,
                                 report), "no points", caption=legend(curves, width))
        self.show_note(state, None)

    def show_note(self, state: tuple[str, float, bool], dropped: int | None) -> None:
        """The line under the legend; `dropped` (values a log axis left out) once the plot knows it."""
        if state != (self.metric, self.smoothing, self.log_y) or not self.is_mounted:
            return  # a newer plot is on its way
        width = max(20, self.size.width or 80)
        keys = "  / pick · m next · e EMA · E weight · y log"
        names = self.names or [self.metric]
        line = note(self.metric, self.smoothing, self.log_y, dropped, names.index(self.metric), len(names))
        shown = line + keys if len(line + keys) <= width else line
        self.query_one("#overlay-note", Static).update(Text(shown))

    def fill_picker(self, text: str) -> None:
        found = matching(self.names or [], text)
        picker = self.query_one("#metric-list", OptionList)
        picker.clear_options()
        picker.add_options([Option(visible(n), id=n) for n in found] or [Option("(no metric matches)",
                                                                                 disabled=True)])
        if found:
            picker.highlighted = found.index(self.metric) if self.metric in found else 0

    def action_pick(self) -> None:
        self.add_class("-picking")
        box = self.query_one("#metric-search", Input)
        box.focus()

    @on(Input.Changed, "#metric-search")
    def _search_typed(self, event: Input.Changed) -> None:
        self.fill_picker(event.value)

    @on(Input.Submitted, "#metric-search")
    def _search_done(self) -> None:
        picker = self.query_one("#metric-list", OptionList)
        if picker.highlighted is not None:
            option = picker.get_option_at_index(picker.highlighted)
            if option.id:
                self.choose(option.id)
                return
        self.close_picker()

    @on(OptionList.OptionSelected, "#metric-list")
    def _option_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.choose(event.option.id)

    def on_key(self, event: Any) -> None:
        """Up and down in the search box move through the list it filters."""
        if self.has_class("-picking") and isinstance(self.focused, Input) and event.key in ("up", "down"):
            picker = self.query_one("#metric-list", OptionList)
            (picker.action_cursor_up if event.key == "up" else picker.action_cursor_down)()
            event.stop()

    def choose(self, metric: str) -> None:
        self.metric = metric
        self.close_picker()
        self.draw()

    def close_picker(self) -> None:
        self.remove_class("-picking")
        self.query_one("#overlay", PlotextView).focus()

    def action_step(self, delta: int) -> None:
        if self.names:
            self.metric = self.names[(self.names.index(self.metric) + delta) % len(self.names)]
            self.draw()

    def action_smooth(self) -> None:
        self.smoothing = 0.0 if self.smoothing else self.weight
        self.draw()

    def action_weight(self) -> None:
        """The next EMA weight (and smoothing on)."""
        self.weight = WEIGHTS[(WEIGHTS.index(self.weight) + 1) % len(WEIGHTS)]
        self.smoothing = self.weight
        self.draw()

    def action_log_y(self) -> None:
        self.log_y = not self.log_y
        self.draw()

    def on_resize(self) -> None:
        if self.metric:
            self.draw()

    # -- scores ----------------------------------------------------------------------------------
    async def fetch_scores(self) -> None:
        view = self.query_one("#scores-view", Static)
        try:
            self.evals = await self.source.request("compare_evals", ids=[r["id"] for r in self.score_runs])
        except SourceError as exc:
            view.update(Text(visible(f"scores: {exc}", lines=True), style="red"))
            return
        view.update(scores_view(self.evals))

    # -- tabs ------------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        if self.query(f"TabPane#{tab}"):
            self.query_one("#compare-tabs", TabbedContent).active = tab

    @on(TabbedContent.TabActivated)
    def _tab_shown(self) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_mounted:
            return True
        tab = self.TAB_ACTIONS.get(action)
        if tab is not None:
            return self.query_one("#compare-tabs", TabbedContent).active == tab
        return True

    def action_back(self) -> None:
        if self.has_class("-picking"):
            self.close_picker()
            return
        self.dismiss(None)


# -- the scores tab ---------------------------------------------------------------------------------
def points(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def p_text(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def scores_table(evals: dict[str, Any]) -> FitTable:
    """Benchmarks down, one column per run: its accuracy (percent) on the benchmark."""
    runs = evals["runs"]
    benches: dict[str, str | None] = {}
    for run in runs:
        for s in run["scores"]:
            benches.setdefault(s["benchmark"], s.get("group"))
    columns = [FitColumn("benchmark", "left"), FitColumn("group", "left")] + [
        FitColumn(escape(visible(f"{r.get('model') or '-'}"))) for r in runs]  # FitTable reads markup
    rows = []
    for bench, group in benches.items():
        cells = [Text(visible(bench)), Text(visible(group or ""), style="dim")]
        for run in runs:
            found = next((s for s in run["scores"] if s["benchmark"] == bench), None)
            cells.append(Text(points(found["accuracy"]) if found else "–"))
        rows.append(cells)
    return FitTable(columns, rows)


class Narrowing:
    """A FitTable that, where its label column would be cut below `keep` cells, first leaves out its
    least needed columns from the right (q, then p, then n), naming them under the table: a delta
    and its CI matter more than the benchmark's name being cut, and the name more than q."""

    def __init__(self, columns: list[FitColumn], rows: list[list[Text]], keep: int = 20,
                 spare: int = 3) -> None:
        self.columns, self.rows, self.keep, self.spare = columns, rows, keep, spare

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        need = min(self.keep, max([len(self.columns[0].name), *(r[0].cell_len for r in self.rows)]))
        for drop in range(self.spare + 1):
            count = len(self.columns) - drop
            table = FitTable(self.columns[:count], [r[:count] for r in self.rows])
            widths, shown = table.fit(options.max_width)
            if (widths[0] >= need and shown == count) or drop == self.spare:
                break
        yield table
        if drop:
            left = ", ".join(c.name for c in self.columns[count:])
            yield Text(f"› {left}: not shown at this width (a wider terminal shows them)", style="dim")


def deltas_table(deltas: list[dict[str, Any]]) -> Narrowing:
    """One row per model and benchmark: the paired difference from its base, its 95 % CI, n, p, q."""
    columns = [FitColumn("benchmark", "left"), FitColumn("Δ"), FitColumn("95% CI"),
               FitColumn("n"), FitColumn("p"), FitColumn("q")]
    rows = []
    for d in deltas:
        label = d["benchmark"]
        ci = "–" if d["ci_low"] is None else f"[{points(d['ci_low'], True)}, {points(d['ci_high'], True)}]"
        style = "green" if (d["ci_low"] or 0) > 0 else "red" if (d["ci_high"] or 0) < 0 else ""
        n = "–" if d["n"] is None else str(d["n"])
        rows.append([Text(visible(label)), Text(points(d["delta"], True), style=style), Text(ci), Text(n),
                     Text(p_text(d["p"])), Text(p_text(d["q"]))])
    return Narrowing(columns, rows)


def scores_view(evals: dict[str, Any]) -> Group:
    """Scores side by side, then the paired deltas (or why there are none)."""
    runs = evals["runs"]
    heads = [Text("accuracy (%) per benchmark", style="bold")]
    heads += [Text(visible(f"{r.get('model') or '-'}: {r['id']} ({r.get('experiment') or '-'})"), style="dim")
              for r in runs]
    parts: list[Any] = [*heads, scores_table(evals), Text("")]
    parts.append(Text("paired difference from the base (points; paired_deltas)", style="bold"))
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in evals["deltas"]:
        pairs.setdefault((d["model"], d["base_model"]), []).append(d)
    for (model, base), rows in pairs.items():
        parts.append(Text(visible(f"{model} − {base}"), style="bold cyan"))
        parts.append(deltas_table(rows))
    if evals["deltas"]:
        parts.append(Text("green: the CI is above 0, red: below; a CI across 0 is not a difference",
                          style="dim"))
    else:
        parts.append(Text("none: the marked models are bases, or their bases have no items in common yet",
                          style="dim"))
    return Group(*parts)


# -- configuration ------------------------------------------------------------------------------------
class DiffScreen(Screen[None]):
    """The configuration keys two runs differ in, with both values."""

    DEFAULT_CSS = """
    DiffScreen #diff-head { height: 2; padding: 0 1; background: $boost; text-wrap: nowrap;
                            text-overflow: ellipsis; }
    DiffScreen #diff-scroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "back", "back")]

    def __init__(self, source: Source, left: str, right: str) -> None:
        super().__init__()
        self.source = source
        self.left, self.right = left, right
        self.found: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static(Text(visible(f"config diff: {self.left} vs {self.right}"), style="bold"), id="diff-head")
        with VerticalScroll(id="diff-scroll"):
            yield Static(Text("loading…", style="dim"), id="diff-view")
        yield FitFooter()

    def on_mount(self) -> None:
        self.run_worker(self.fetch(), group="diff")

    async def fetch(self) -> None:
        view = self.query_one("#diff-view", Static)
        try:
            self.found = await self.source.request("run_diff", left=self.left, right=self.right)
        except SourceError as exc:
            view.update(Text(visible(f"diff: {exc}", lines=True), style="red"))
            return
        rows, same = self.found["rows"], self.found["same"]
        head = Text(visible(f"config diff: {self.left} vs {self.right}"), style="bold")
        head.append(f"\n{count_label(len(rows), 'differing key')}, {same} equal (left out)", style="dim")
        self.query_one("#diff-head", Static).update(head)
        view.update(config_table(rows, ("key", self.left, self.right)) if rows
                    else Text("the two runs' configurations are the same", style="dim"))

    def action_back(self) -> None:
        self.dismiss(None)
