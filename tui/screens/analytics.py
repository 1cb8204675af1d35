"""The analytics screens: the TI view and the shift view.

`TIScreen` shows every tuned model of one experiment against its base, as `tix ti` computes it
(the daemon's `ti` op, so the TUI never imports numpy): group means and TI_other / TI_non with
their 95% bootstrap intervals, coloured by sign and size (dim where the interval holds 0),
unstable ratios flagged, a per-benchmark drill-down (paired delta, interval and p), the v1/v2 and
sigma toggles, and export to the same CSV, Markdown and LaTeX that `tix ti --format` prints.

`ShiftScreen` draws what analyse runs recorded (the `shift_summary`, `pca_points` and
`token_shift_top` views through the `sql` op): per-layer PCA trajectories of the base and tuned
model on one benchmark, d per group, token KL per benchmark, the base-rank buckets of the tuned
model's tokens, and the tokens shifted most often.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Label, Select, Static, TabbedContent, TabPane

from engine.analysis import report, ti
from tui.format import visible
from tui.messages import ConnectionChanged, RunsPushed
from tui.screens.export import ExportChoice, ExportFormat, ExportScreen
from tui.source import Source, SourceError
from tui.widgets.charts import Bar, ChartView, bars_text, trajectory_text
from tui.widgets.chrome import Chrome
from tui.widgets.footer import FitFooter
from tui.widgets.grid import WholeColumnTable
from tui.widgets.literal import literal_options

TI_FORMATS = [ExportFormat("csv", "CSV", "csv"), ExportFormat("md", "Markdown", "md"),
              ExportFormat("latex", "LaTeX (booktabs)", "tex")]
UNSTABLE_MARK = "!"
LEGEND = ("[green]green[/] transfer · [red]red[/] forgetting · dim |TI| < 25 or 95% CI holding 0 · "
          "bold ≥ 100")


# -- formatting ------------------------------------------------------------------------------------
def is_missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: float | None, digits: int = 1) -> str:
    return "nan" if is_missing(value) else f"{value:.{digits}f}"


def ti_style(value: float | None, interval: list[float] | None = None) -> str:
    """Green for transfer, red for forgetting; brighter as the ratio grows (|TI| 25 and 100); dim
    when its interval holds 0 (the sign itself is not known)."""
    if is_missing(value) or value == 0:
        return "dim"
    hue = "green" if value > 0 else "red"
    size = abs(value)
    if size < 25 or holds_zero(interval):
        return f"dim {hue}"
    return hue if size < 100 else f"bold bright_{hue}"


def holds_zero(interval: list[float] | None) -> bool:
    return interval is not None and interval[0] <= 0 <= interval[1]


def signed(value: float | None, digits: int = 1) -> str:
    """`+85.7` / `-41.2`: the sign is written out, so it reads on the highlighted row (whose colours
    the cursor replaces) and without colour at all."""
    return number(value, digits) if is_missing(value) or value <= 0 else "+" + number(value, digits)


def ti_cell(value: float | None, unstable: bool, interval: list[float] | None = None) -> Text:
    """A TI ratio, signed and right-aligned, with `!` when the ratio is unstable (see the notes line)
    and its 95% interval after it (`-94.6 [-195, -41]`) when the daemon had items to resample."""
    mark = UNSTABLE_MARK if unstable else " "
    ci = f" {ti.ci_text(interval, signed=True)}" if interval is not None else ""
    return Text(signed(value) + mark + ci, style=ti_style(value, interval), justify="right")


def gain_style(gain: float | None, small: float = 1.0, interval: list[float] | None = None) -> str:
    """Green gain, red loss; dim under `small` points or when its interval holds 0 (noise on these items)."""
    if is_missing(gain) or abs(gain) < small or holds_zero(interval):
        return "dim"
    return "green" if gain > 0 else "red"


def mean_cell(group: dict[str, Any] | None) -> Text:
    """`base->model` group means, coloured by the gain, which an arrow also shows (↑ gain of a
    point or more, ↓ loss, nothing in between) for the highlighted row and for no colour."""
    if not group:
        return Text("-", style="dim")
    base, model = group.get("base"), group.get("model")
    gain = None if is_missing(base) or is_missing(model) else model - base
    arrow = "" if gain is None or abs(gain) < 1.0 else "↑" if gain > 0 else "↓"
    return Text(f"{number(base)}→{number(model)}{arrow}", style=gain_style(gain))


def mode_label(objects: list[dict[str, Any]], variant: str | None, sigma: ti.Sigma | None) -> str:
    """What the table shows: `TI v2 · σ pooled`, from the results (the experiment's defaults apply)."""
    if objects:
        return "TI " + ti.sigma_label(objects[0]).replace("v2 ", "v2 · σ ")
    shown = variant or "v2"
    return f"TI {shown}" + ("" if shown == "v1" else f" · σ {sigma if isinstance(sigma, str) else 'pooled'}")


def export_text(objects: list[dict[str, Any]], fmt: str, detail: bool = False) -> str:
    """Exactly what `tix ti --format FMT` (with `--benchmarks` for `detail`) prints for these models."""
    if detail:
        columns, rows = ti.detail_table(objects, fmt)
        text = _with_newline(report.render(columns, rows, fmt, 3), fmt)
        return text + (f"\n{ti.DETAIL_NOTE}\n" if fmt == "md" else "")
    if fmt == "csv":
        return report.render(ti.CSV_COLUMNS, ti.csv_rows(objects), fmt, 1)
    text = _with_newline(report.render(ti.HUMAN_COLUMNS, ti.human_rows(objects), fmt, 1), fmt)
    notes = ti.notes(objects)
    if fmt == "md" and notes:
        text += "\n" + "\n".join(notes) + "\n"
    return text


def _with_newline(text: str, fmt: str) -> str:
    return text if fmt == "csv" else text + "\n"


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a failed export never leaves half a table."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def export_in_thread(screen: Screen[Any], path: Path, text: str) -> None:
    """Write an export off the UI thread; the outcome is a notification (and `screen.last_export`)."""
    def write() -> None:
        try:
            write_text(path, text)
        except OSError as exc:
            screen.app.call_from_thread(screen.notify, f"export failed: {exc}", severity="error")
            return
        screen.app.call_from_thread(setattr, screen, "last_export", path)
        screen.app.call_from_thread(screen.notify, f"wrote {path}")

    screen.run_worker(write, thread=True, group="ti-export")


def ti_columns(rows: list[dict[str, Any]], width: int) -> tuple[list[str], list[list[Any]]]:
    """The TI table's column names and cells. In the paper's order (model, method, group means,
    TI_other, TI_non) when it fits `width`; else the TI columns right after the model, so the
    figures the screen is for are on screen at 60 columns and the rest is a scroll away."""
    several_bases = len({o["base_model"] for o in rows}) > 1
    names = ["model", *(["base"] if several_bases else []), "method", *ti.GROUPS, "TI_other", "TI_non"]
    cells = [[o["model"], *([o["base_model"]] if several_bases else []), o["method"] or "",
              *(mean_cell(o["groups"].get(g)) for g in ti.GROUPS),
              ti_cell(o["ti_other"], o["unstable"], o.get("ti_other_ci")),
              ti_cell(o["ti_non"], o["unstable"], o.get("ti_non_ci"))] for o in rows]
    natural = sum(max(len(name), *(cell_len(row[i]) for row in cells)) + 2 for i, name in enumerate(names))
    if natural <= width - 1:
        return names, cells
    order = [0, len(names) - 2, len(names) - 1, *range(1, len(names) - 2)]
    return [names[i] for i in order], [[row[i] for i in order] for row in cells]


def cell_len(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(visible(cell))


def export_stem(experiment: str, rows: list[dict[str, Any]]) -> str:
    """`tix-ti-lab-v2-pooled`: the file name says which TI it holds, so a v1 and a v2 export of
    one experiment are two files."""
    mode = ti.sigma_label(rows[0]).replace(" ", "-") if rows else "ti"
    return f"tix-ti-{experiment}-{mode}".replace("/", "_")


class ModelTable(WholeColumnTable):
    """The TI table: enter opens the selected model's benchmarks (shown in the footer). Wider
    than the pane, it scrolls sideways with a column its edge cuts blanked and marked `›`."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "benchmarks")]


# -- TI --------------------------------------------------------------------------------------------
class ResultsScreen(Screen[None]):
    """A screen of results computed from finished runs, kept current without polling: it loads
    when mounted, again when shown again or when the daemon comes back, and when a run of one of
    RELOAD_KINDS succeeds (the daemon's push says so)."""

    RELOAD_KINDS: ClassVar[tuple[str, ...]] = ()
    loaded: int

    def reload_results(self) -> None:
        raise NotImplementedError

    def on_mount(self) -> None:
        getattr(self.app, "listen", lambda _w: None)(self)
        self.reload_results()

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.reload_results()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.online:
            self.reload_results()

    def on_runs_pushed(self, message: RunsPushed) -> None:
        if any(r.get("state") == "succeeded" and r.get("kind") in self.RELOAD_KINDS for r in message.runs):
            self.reload_results()


class TIScreen(ResultsScreen):
    """Tuned models of one experiment against their base, with the TI of each."""

    DEFAULT_CSS = """
    TIScreen #ti-bar { height: 1; }
    TIScreen #ti-bar Label { padding: 0 1; }
    TIScreen #ti-experiment { width: 36; }
    TIScreen #ti-mode { color: $accent; text-style: bold; }
    TIScreen #ti-table { height: 1fr; }
    TIScreen #ti-notes { height: auto; max-height: 6; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "toggle_variant", "v1/v2"),
        Binding("s", "toggle_sigma", "σ"),
        Binding("e", "export", "export"),
        Binding("f", "flips", "flips"),
        Binding("r", "refresh", "refresh"),
    ]
    AUTO_FOCUS = "#ti-table"
    RELOAD_KINDS = ("eval", "score")  # new scores arrive with finished eval and score runs
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("enter", "the selected model's benchmarks (e exports them, esc back)"),
        ("tab", "the experiment selector (enter opens it)"))

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.variant: str | None = None
        """v1 or v2 as toggled; None: each experiment's `ti:` setting, else v2."""
        self.sigma: ti.Sigma | None = None
        """pooled or per-model as toggled; None: the experiment's setting, else pooled."""
        self.results: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.experiment: str | None = None
        self._options: list[str] = []
        self.loaded = 0
        """Completed loads (tests and the app wait on it)."""
        self.last_export: Path | None = None
        self.ti_first = False
        """Whether the TI columns come right after the model (a pane too narrow for the table)."""

    def compose(self) -> ComposeResult:
        yield Chrome()
        with Horizontal(id="ti-bar"):
            yield Select[str]([], prompt="experiment", compact=True, id="ti-experiment")
            yield Label("", id="ti-mode", markup=False)
        yield ModelTable(id="ti-table", cursor_type="row", zebra_stripes=True)
        yield Static("loading…", id="ti-notes")
        yield FitFooter()

    def reload_results(self) -> None:
        self.load()

    # -- data --------------------------------------------------------------------------------------
    @work(exclusive=True, group="ti-load")
    async def load(self) -> None:
        """Every experiment's TI in one request (tens of ms), filtered here by the selector."""
        try:
            done = await self.source.request("ti", variant=self.variant, sigma=self.sigma)
        except SourceError as exc:
            notes = self.query_one("#ti-notes", Static)
            notes.update(Text(visible(f"cannot load the TI: {exc}"), style="red"))
            return
        self.results, self.warnings = done["results"], done["warnings"]
        self._update_experiments()
        self.show()
        self.loaded += 1

    @property
    def experiments(self) -> list[str]:
        return list(dict.fromkeys(o["experiment"] for o in self.results))

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The selected experiment's models."""
        return [o for o in self.results if o["experiment"] == self.experiment]

    def _update_experiments(self) -> None:
        names = self.experiments
        if self.experiment not in names:
            self.experiment = names[0] if names else None
        select = self.query_one("#ti-experiment", Select)
        if names != self._options:
            self._options = names
            select.set_options(literal_options((n, n) for n in names))
        if self.experiment is not None and select.value != self.experiment:
            select.value = self.experiment

    @on(Select.Changed, "#ti-experiment")
    def _experiment_chosen(self, event: Select.Changed) -> None:
        value = chosen_value(event, self.experiment)
        if value is not None and value != self.experiment:
            self.experiment = value
            self.show()

    # -- view --------------------------------------------------------------------------------------
    def show(self) -> None:
        """Fill the table and the notes from `self.results` for the selected experiment."""
        rows = self.shown
        keep = self.selected()
        self.query_one("#ti-mode", Label).update(visible(mode_label(rows, self.variant, self.sigma)))
        table = self.query_one("#ti-table", DataTable)
        table.clear(columns=True)
        names, cells = ti_columns(rows, self.size.width or 80)
        self.ti_first = names[1] == "TI_other"
        table.add_columns(*names)
        for o, row in zip(rows, cells, strict=True):
            table.add_row(*row, key=o["model"])
        if keep is not None:  # a reload keeps the cursor on the same model
            at = next((i for i, o in enumerate(rows) if o["model"] == keep["model"]), 0)
            table.move_cursor(row=at)
        self.query_one("#ti-notes", Static).update(self._notes(rows))

    def on_resize(self) -> None:
        """Lay the table out again when the TI columns should move (see ti_columns)."""
        rows = self.shown
        if rows and (ti_columns(rows, self.size.width or 80)[0][1] == "TI_other") != self.ti_first:
            self.show()

    def _notes(self, rows: list[dict[str, Any]]) -> Text:
        if not rows:
            return Text("no tuned model with scores against its base yet "
                        "(scores come from eval runs or `tix import scores`)")
        bases = list(dict.fromkeys(str(o["base_model"]) for o in rows))
        which = (Text.assemble("against base model ", (visible(bases[0]), "bold")) if len(bases) == 1
                 else Text(f"{len(bases)} base models (column base)"))
        lines = [Text.assemble(which, " · ", Text.from_markup(LEGEND))]
        missing = sorted({str(o.get("ci_missing")) for o in rows if o.get("ci_missing")})
        if missing:
            why = ("imported scores have no items" if missing == ["no items"]
                   else f"for some models: {visible('; '.join(missing))}")
            lines.append(Text(f"no 95% intervals: {why}", style="dim"))
        for o in rows:
            if o["unstable"]:
                lines.append(Text(visible(f"{UNSTABLE_MARK} {o['model']}: unstable, {o['unstable_reason']}: "
                                          "the ratios are not meaningful"), style="yellow"))
        prefix = f"experiment {self.experiment}:"
        lines += [Text(visible(f"warning: {w}"), style="yellow")
                  for w in self.warnings if w.startswith(prefix)]
        return Text("\n").join(lines)

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one("#ti-table", DataTable)
        rows = self.shown
        if not rows or table.cursor_row < 0 or table.cursor_row >= len(rows):
            return None
        return rows[table.cursor_row]

    # -- actions -----------------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#ti-table")
    def _row_chosen(self) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        model = self.selected()
        if model is not None:
            self.app.push_screen(TIDetailScreen(model))

    def action_flips(self) -> None:
        """The selected model's items gained and lost against its base (tui/screens/flips.py)."""
        from tui.screens.flips import FlipsScreen

        model = self.selected()
        if model is None:
            self.notify("no model selected", severity="warning")
            return
        self.app.push_screen(FlipsScreen(self.source, model["experiment"], model["model"]))

    def action_toggle_variant(self) -> None:
        rows = self.shown
        current = rows[0]["variant"] if rows else (self.variant or "v2")
        self.variant = "v1" if current == "v2" else "v2"
        self.load()

    def action_toggle_sigma(self) -> None:
        """pooled -> per-model -> pooled (a fixed σ from the experiment file goes to pooled)."""
        rows = self.shown
        v2 = not rows or rows[0]["variant"] == "v2"
        current = rows[0]["sigma"] if rows and v2 else self.sigma
        if not v2:  # and nothing changes: v1 has no σ
            self.notify("σ only changes v2 (this is v1): press v for v2, then s", severity="warning")
            return
        self.sigma = "per-model" if current in (None, "pooled") else "pooled"
        self.load()

    def action_refresh(self) -> None:
        self.load()

    def action_export(self) -> None:
        rows = self.shown
        if not rows:
            self.notify("nothing to export yet", severity="warning")
            return
        title = f"Export the TI table of {self.experiment} ({mode_label(rows, self.variant, self.sigma)})"
        dialog = ExportScreen(title, TI_FORMATS, export_stem(self.experiment or "ti", rows))
        self.app.push_screen(dialog, lambda choice: self._export(choice, rows))

    def _export(self, choice: ExportChoice | None, rows: list[dict[str, Any]]) -> None:
        if choice is not None:
            export_in_thread(self, choice.path, export_text(rows, choice.format.key))


def detail_cells(row: list[Any], v2: bool, paired: dict[str, Any] | None) -> list[Any]:
    """One benchmark of the drill-down: scores, the gain (dim when its interval holds 0), the paired
    interval and p (`no items` for imported scores), the relative gain and v2's terms."""
    benchmark, group, base, score, gain, relative = row[4:10]
    interval = paired["ci"] if paired else None
    cells: list[Any] = [benchmark, group, number(base), number(score),
                        Text(f"{gain:+.1f}", style=gain_style(gain, interval=interval)),
                        Text(ti.ci_text(interval, signed=True) if paired else "no items",
                             style="dim" if not paired or holds_zero(interval) else ""),
                        Text(ti.p_text(paired["p"]) if paired else "-", justify="right"),
                        Text(number(relative * 100 if not is_missing(relative) else None), justify="right")]
    if v2:
        cells += [number(row[10], 2), number(row[11], 2), number(row[12], 2), number(row[13], 3)]
    return cells


class TIDetailScreen(ModalScreen[None]):
    """One model's benchmarks: scores, gains with their paired interval and p, and v2's terms (what
    `tix ti --benchmarks` prints)."""

    DEFAULT_CSS = """
    TIDetailScreen { align: center middle; }
    TIDetailScreen > Vertical { width: 100%; height: 100%; border: thick $primary; background: $surface; }
    TIDetailScreen #detail-head { height: auto; padding: 0 1; }
    TIDetailScreen DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "back"),
                                             Binding("e", "export", "export")]

    def __init__(self, model: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.last_export: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._head(), id="detail-head")
            yield WholeColumnTable(id="detail-table", cursor_type="row", zebra_stripes=True)
        yield FitFooter()

    def _head(self) -> Text:
        o = self.model
        mode = mode_label([o], None, None)
        head = Text.assemble((visible(o["model"]), "bold"), visible(f" vs {o['base_model']} · {mode} · "),
                             "TI_other ", ti_cell(o["ti_other"], o["unstable"], o.get("ti_other_ci")),
                             "  TI_non ", ti_cell(o["ti_non"], o["unstable"], o.get("ti_non_ci")))
        means = [Text.assemble(f"{g} ", mean_cell(o["groups"].get(g))) for g in ti.GROUPS]
        head.append("\n").append(Text("   ").join(means))
        if o["unstable"]:
            head.append(f"\n{UNSTABLE_MARK} unstable: {visible(o['unstable_reason'])}", style="yellow")
        return head

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        v2 = self.model["variant"] == "v2"
        table.add_columns("benchmark", "group", "base", "model", "gain", "95% CI", "p", "rel %",
                          *(["σ", "δ", "s", "w"] if v2 else []))
        for row in ti.detail_rows([self.model]):
            table.add_row(*detail_cells(row, v2, self.model["benchmarks"][row[4]].get("paired")))
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_export(self) -> None:
        o = self.model
        stem = f"{export_stem(o['experiment'], [o])}-{o['model']}".replace("/", "_")
        self.app.push_screen(ExportScreen(f"Export the benchmarks of {o['model']}", TI_FORMATS, stem),
                             self._export)

    def _export(self, choice: ExportChoice | None) -> None:
        if choice is not None:
            export_in_thread(self, choice.path, export_text([self.model], choice.format.key, detail=True))


# -- shift -----------------------------------------------------------------------------------------
RUNS_SQL = """SELECT s.experiment, s.model, s.run_id, max(r.created_at) AS created
FROM shift_summary s JOIN runs r ON r.id = s.run_id
GROUP BY ALL ORDER BY s.experiment, s.model, created DESC"""
SUMMARY_SQL = """SELECT scope, benchmark, "group", pca_d, logp_diff, kl, rank_shift, share_base_rank1,
       share_base_rank2_3, share_base_rank_gt3, tokens
FROM shift_summary WHERE run_id = ? ORDER BY scope, "group", benchmark"""
POINTS_SQL = """SELECT benchmark, "group", layer, base_pc1, base_pc2, tuned_pc1, tuned_pc2, shift,
       explained_pc1, explained_pc2
FROM pca_points WHERE run_id = ? ORDER BY benchmark, layer"""
TOKENS_SQL = """SELECT benchmark, "group", rank, token, count, mean_base_rank
FROM token_shift_top WHERE run_id = ? ORDER BY benchmark NULLS FIRST, "group", rank"""
GROUP_ORDER = {g: i for i, g in enumerate(ti.GROUPS)}


async def query_rows(source: Source, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a read-only query as dicts (the daemon's `sql` op)."""
    result = await source.request("sql", query=sql, params=params or [], max_rows=100_000)
    return [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]


def chosen_value(event: Select.Changed, shown: str | None) -> str | None:
    """The picked value; picking the blank prompt line puts back what was shown (and gives None),
    since a results screen always shows one experiment, model, run and benchmark."""
    if isinstance(event.value, str):
        return event.value
    if shown is not None:
        with event.select.prevent(Select.Changed):
            event.select.value = shown
    return None


def run_label(row: dict[str, Any]) -> str:
    """A run in the run selector: its creation time and the end of its id (ids are hex)."""
    return f"{str(row.get('created') or '')[5:16]} {row['run_id'][-4:]}"  # timestamps come as JSON text


def value_bars(rows: list[dict[str, Any]], label: str, value: str) -> list[Bar]:
    """A bar per row: its `label` field beside its `value` field."""
    return [Bar(str(r[label]), float(r[value]), f"{r[value]:.3g}") for r in rows]


def titled_bars(*sections: tuple[str, list[Bar]]) -> Callable[[int, int], Text]:
    """A chart of one or more titled bar lists, each label beside its own bar at any width."""
    def chart(width: int, _height: int) -> Text:
        return Text("\n\n").join(bars_text(bars, width, title) for title, bars in sections if bars)
    return chart


def trajectory_chart(points: list[dict[str, Any]], benchmark: str) -> Callable[[int, int], Text]:
    """The selected benchmark's base and tuned mean projections per layer, titled."""
    title = Text(visible(f"{benchmark}: layers L{points[0]['layer']}..L{points[-1]['layer']}"), style="bold")

    def chart(width: int, height: int) -> Text:
        return Text("\n").join([title, trajectory_text(points, width, height - 1)])
    return chart


BUCKETS = (("share_base_rank1", "rank 1", "bright_blue"), ("share_base_rank2_3", "rank 2-3", "bright_green"),
           ("share_base_rank_gt3", "rank > 3", "bright_red"))
"""The base-rank buckets: a share of each benchmark's tokens, drawn as one stacked bar."""
BUCKET_LEGEND = Text.assemble(
    "base rank of the tuned tokens: ",
    *[item for _, name, colour in BUCKETS for item in (("███ ", colour), f"{name}  ")])


def bucket_chart(labels: list[str], shares: list[list[float]]) -> Callable[[int, int], Text]:
    """Stacked bars: each benchmark's tokens split by their rank under the base model, with the
    shares written after the bar and the legend under the chart."""
    bars = [Bar(label, 1.0, "", tuple((share[i], colour, f"{100 * share[i]:.0f}%")
                                      for share, (_, _, colour) in zip(shares, BUCKETS, strict=True)))
            for i, label in enumerate(labels)]

    def chart(width: int, _height: int) -> Text:
        return Text("\n\n").join([bars_text(bars, width, "share of tokens by base rank"), BUCKET_LEGEND])
    return chart


class ShiftScreen(ResultsScreen):
    """PCA trajectories, d per group, token KL, rank buckets and most-shifted tokens of one model."""

    DEFAULT_CSS = """
    ShiftScreen #shift-bar { height: 1; }
    ShiftScreen #shift-bar Select { width: 1fr; }
    ShiftScreen #shift-bar #shift-run { width: 19; }
    ShiftScreen #shift-bar #shift-benchmark { width: 2fr; }
    ShiftScreen SelectOverlay { text-wrap: nowrap; text-overflow: ellipsis; }
    ShiftScreen #plot-pca { width: 3fr; }
    ShiftScreen #plot-layers { width: 1fr; min-width: 16; max-width: 34; padding-left: 1; }
    ShiftScreen TabPane { padding: 0 1; }
    ShiftScreen TabbedContent { height: 1fr; }
    ShiftScreen #shift-note { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    """
    RELOAD_KINDS = ("analyse",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "tab('pca')", "pca"),
        Binding("d", "tab('d')", "d"),
        Binding("k", "tab('kl')", "kl"),
        Binding("b", "tab('ranks')", "ranks"),
        Binding("t", "tab('tokens')", "tokens"),
        Binding("g", "toggle_scope", "group/bench"),
        Binding("r", "refresh", "refresh"),
    ]
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("tab", "the experiment, model, run and benchmark selectors (enter opens one)"),)

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.runs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        """(experiment, model) -> its analyse runs with results, newest first: (run id, label)."""
        self.experiment: str | None = None
        self.model: str | None = None
        self.run_id: str | None = None
        self.benchmark: str | None = None
        self.group_tokens = False
        """The tokens tab lists the selected benchmark's group instead of the benchmark."""
        self.summary: list[dict[str, Any]] = []
        self.points: list[dict[str, Any]] = []
        self.tokens: list[dict[str, Any]] = []
        self.loaded = 0

    def compose(self) -> ComposeResult:
        yield Chrome()
        with Horizontal(id="shift-bar"):
            yield Select[str]([], prompt="experiment", compact=True, id="shift-experiment")
            yield Select[str]([], prompt="model", compact=True, id="shift-model")
            yield Select[str]([], prompt="run", compact=True, id="shift-run")
            yield Select[str]([], prompt="benchmark", compact=True, id="shift-benchmark")
        with TabbedContent(initial="pca"):
            with TabPane("PCA", id="pca"), Horizontal(id="pca-plots"):
                yield ChartView("no PCA points", id="plot-pca")
                yield ChartView("", id="plot-layers")
            with TabPane("d", id="d"):
                yield ChartView("no PCA shift", id="plot-d")
            with TabPane("KL", id="kl"):
                yield ChartView("no token shift", id="plot-kl")
            with TabPane("ranks", id="ranks"):
                yield ChartView("no token shift", id="plot-ranks")
            with TabPane("tokens", id="tokens"):
                yield WholeColumnTable(id="shift-tokens", cursor_type="row", zebra_stripes=True)
        yield Static("", id="shift-note")
        yield FitFooter()

    def reload_results(self) -> None:
        self.load_runs()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_refresh(self) -> None:
        self.load_runs()

    # -- data --------------------------------------------------------------------------------------
    @work(exclusive=True, group="shift-runs")
    async def load_runs(self) -> None:
        try:
            rows = await query_rows(self.source, RUNS_SQL)
        except SourceError as exc:
            self._note(f"cannot load shift results: {exc}", "red")
            return
        self.runs = {}
        for r in rows:
            self.runs.setdefault((r["experiment"], r["model"]), []).append((r["run_id"], run_label(r)))
        if not self.runs:
            self._note("no shift results yet: analyse runs write them (`tix run` queues one per variant)")
            self.loaded += 1
            return
        experiments = list(dict.fromkeys(e for e, _ in self.runs))
        if self.experiment not in experiments:
            self.experiment = experiments[0]
        self._set_select("#shift-experiment", experiments, self.experiment)
        await self._choose_experiment()

    async def _choose_experiment(self) -> None:
        models = [m for e, m in self.runs if e == self.experiment]
        if self.model not in models:
            self.model = models[0] if models else None
        self._set_select("#shift-model", models, self.model)
        await self._choose_run()

    async def _choose_run(self) -> None:
        """The model's newest analyse run unless the user picked an earlier one of it."""
        runs = self.runs.get((self.experiment or "", self.model or ""), [])
        if self.run_id not in [run_id for run_id, _ in runs]:
            self.run_id = runs[0][0] if runs else None
        select = self.query_one("#shift-run", Select)
        with select.prevent(Select.Changed):
            select.set_options(literal_options((label, run_id) for run_id, label in runs))
            if self.run_id is not None:
                select.value = self.run_id
        await self._load_model()

    async def _load_model(self) -> None:
        run_id = self.run_id
        if run_id is None:
            return
        try:
            self.summary = await query_rows(self.source, SUMMARY_SQL, [run_id])
            self.points = await query_rows(self.source, POINTS_SQL, [run_id])
            self.tokens = await query_rows(self.source, TOKENS_SQL, [run_id])
        except SourceError as exc:
            self._note(f"cannot load run {run_id}: {exc}", "red")
            return
        benchmarks = self.benchmarks()
        if self.benchmark not in benchmarks:
            self.benchmark = benchmarks[0] if benchmarks else None
        self._set_select("#shift-benchmark", benchmarks, self.benchmark)
        self._note(f"{self.model} vs its base · analyse run {run_id}")
        self.draw_all()
        self.loaded += 1

    def benchmarks(self) -> list[str]:
        """Benchmarks in group order (math, other, non), then by name."""
        groups = {r["benchmark"]: r["group"] for r in self.summary + self.points if r["benchmark"]}
        return sorted(groups, key=lambda b: (GROUP_ORDER.get(groups[b], 9), b))

    def _set_select(self, selector: str, values: list[str], value: str | None) -> None:
        select = self.query_one(selector, Select)
        with select.prevent(Select.Changed):
            select.set_options(literal_options((v, v) for v in values))
            if value is not None:
                select.value = value

    def _note(self, text: str, style: str = "") -> None:
        self.query_one("#shift-note", Static).update(Text(visible(text), style=style))

    #: selector -> (the attribute it sets, what to reload then: the models of an experiment, the
    #: runs of a model, the results of a run; a benchmark only redraws).
    SELECTS: ClassVar[dict[str, tuple[str, str | None]]] = {
        "shift-experiment": ("experiment", "_choose_experiment"), "shift-model": ("model", "_choose_run"),
        "shift-run": ("run_id", "_load_model"), "shift-benchmark": ("benchmark", None)}

    @on(Select.Changed)
    def _selected(self, event: Select.Changed) -> None:
        attr, step = self.SELECTS.get(event.select.id or "", ("", None))
        if not attr:
            return
        value = chosen_value(event, getattr(self, attr))
        if value is None or value == getattr(self, attr):
            return
        setattr(self, attr, value)
        if step is None:
            self.draw_benchmark()
        else:
            self.reload(getattr(self, step))

    @work(exclusive=True, group="shift-runs")
    async def reload(self, step: Callable[[], Awaitable[None]]) -> None:
        await step()

    def action_toggle_scope(self) -> None:
        self.group_tokens = not self.group_tokens
        self.action_tab("tokens")
        self.draw_benchmark()

    # -- drawing -----------------------------------------------------------------------------------
    def draw_all(self) -> None:
        self.draw_benchmark()
        groups = sorted((r for r in self.summary if r["scope"] == "group" and not is_missing(r["pca_d"])),
                        key=lambda r: GROUP_ORDER.get(r["group"], 9))
        benches = [r for r in self._bench_rows() if not is_missing(r["pca_d"])]
        self.query_one("#plot-d", ChartView).show(
            titled_bars(("PCA shift d per group", value_bars(groups, "group", "pca_d")),
                        ("d per benchmark", value_bars(benches, "benchmark", "pca_d")))
            if groups or benches else None, "no PCA shift recorded for this model")
        self._draw_kl()
        self._draw_ranks()

    def _bench_rows(self) -> list[dict[str, Any]]:
        order = self.benchmarks()
        rows = [r for r in self.summary if r["scope"] == "benchmark" and r["benchmark"] in order]
        return sorted(rows, key=lambda r: order.index(r["benchmark"]))

    def _draw_kl(self) -> None:
        rows = self._bench_rows()
        metric = "kl" if any(not is_missing(r["kl"]) for r in rows) else "logp_diff"
        rows = [r for r in rows if not is_missing(r[metric])]
        title = ("token KL(tuned ‖ base) per benchmark" if metric == "kl"
                 else "mean log p_tuned - log p_base per benchmark (no full KL: vLLM backend)")
        self.query_one("#plot-kl", ChartView).show(
            titled_bars((title, value_bars(rows, "benchmark", metric)))
            if rows else None, "no token shift recorded for this model")

    def _draw_ranks(self) -> None:
        keys = [key for key, _, _ in BUCKETS]
        rows = [r for r in self._bench_rows() if all(not is_missing(r[k]) for k in keys)]
        shares = [[r[k] for r in rows] for k in keys]
        self.query_one("#plot-ranks", ChartView).show(
            bucket_chart([r["benchmark"] for r in rows], shares) if rows else None,
            "no token shift recorded for this model")

    def draw_benchmark(self) -> None:
        """The selected benchmark's PCA trajectory, its shift per layer, and most-shifted tokens."""
        points = [p for p in self.points if p["benchmark"] == self.benchmark
                  and not any(is_missing(p[k]) for k in ("base_pc1", "base_pc2", "tuned_pc1", "tuned_pc2"))]
        self.query_one("#plot-pca", ChartView).show(
            trajectory_chart(points, self.benchmark or "") if points else None,
            f"no PCA points for {self.benchmark}" if self.benchmark else "no PCA points")
        layers = [{**p, "name": f"L{p['layer']}"} for p in points if not is_missing(p.get("shift"))]
        self.query_one("#plot-layers", ChartView).show(
            titled_bars(("distance per layer", value_bars(layers, "name", "shift"))) if layers else None, "")
        scope, shown = self.shown_tokens()
        table = self.query_one("#shift-tokens", DataTable)
        table.clear(columns=True)
        # The numbers first: a long token (a repr of whatever the model emitted) is cut at the
        # pane's edge, and they would have gone with it.
        table.add_columns("rank", "count", "mean base rank",
                          f"token ({scope}; g: {'benchmark' if self.group_tokens else 'group'})")
        for t in shown:
            table.add_row(Text(str(t["rank"]), justify="right"), Text(str(t["count"]), justify="right"),
                          Text(number(t["mean_base_rank"], 2), justify="right"), repr(t["token"]))

    def shown_tokens(self) -> tuple[str, list[dict[str, Any]]]:
        """The tokens tab's scope and rows: the selected benchmark's, or (`g`) its whole group's
        (rows without a benchmark)."""
        if not self.group_tokens:
            return str(self.benchmark), [t for t in self.tokens if t["benchmark"] == self.benchmark]
        rows = self.summary + self.points
        group = next((r["group"] for r in rows if r["benchmark"] == self.benchmark), None)
        return f"group {group}", [t for t in self.tokens if t["benchmark"] is None and t["group"] == group]
