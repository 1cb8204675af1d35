"""The flips view: a tuned model against its base, item by item (issue 25.14).

A score tells how many items moved, not which. `FlipsScreen` shows, per benchmark, the items the
tuned model gained (base wrong, tuned right) and lost (base right, tuned wrong), the net and
McNemar's exact p: the rows `tix flips` prints, from the daemon's `flips` op, which reads the same
`flip_summary` and `flips` views (engine/analysis/flip_items.py), so the two cannot disagree.
Under the summary, the flipped items of the highlighted benchmark (`all`: every benchmark's);
enter on one opens `FlipItemScreen`: the prompt once, then the base's and the tuned model's
completions side by side, each headed by its verdict and extracted answer, in one scrolling pane.

Opened with `f` on a model row of the TI view. Everything from data goes through `visible`: a
completion that holds an ESC sequence shows it as `␛[2J` instead of clearing the screen.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine.analysis.ti import p_text
from tui.format import visible
from tui.messages import ConnectionChanged, RunsPushed
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.footer import FitFooter
from tui.widgets.grid import WholeColumnTable

ALL = "all"
"""The summary's last row: every benchmark together (its item list holds every flipped item)."""
SUMMARY_HEADERS = ("benchmark", "items", "gained", "lost", "net", "McNemar p")
ITEM_HEADERS = ("change", "base", "tuned", "item", "benchmark")
CHANGE_STYLES = {"gained": "green", "lost": "red"}
MAX_ITEMS = 1_000
"""Rows of the item list at most: a paper-scale model flips thousands of items (5,705 at a quarter of
the paper's suite; 156 ms to fill a table with them, on the UI thread), and a list that long is
read per benchmark anyway; the head line says how many more there are."""
EMPTY = "no items to compare (needs samples of a tuned model's and its base's eval runs)"


def verdict_text(value: float | None) -> str:
    """A verdict as written: 1, 0, or a mean over samples (`0.667`), `-` when unscored."""
    return "-" if value is None else f"{value:.3g}"


def signed(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


def right(text: str, style: str = "") -> Text:
    return Text(text, style=style, justify="right")


def summary_cells(row: dict[str, Any]) -> list[Any]:
    """A benchmark's counts as `tix flips` prints them (p through the same p_text)."""
    net = int(row["net"])
    return [row["benchmark"], right(str(row["items"])),
            right(str(row["gained"]), "green" if row["gained"] else ""),
            right(str(row["lost"]), "red" if row["lost"] else ""),
            right(signed(net), "green" if net > 0 else "red" if net < 0 else "dim"),
            right(p_text(row["mcnemar_p"]))]


def total_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every benchmark summed (no p: McNemar's test is per benchmark here, as in `tix flips`)."""
    return {"benchmark": ALL, **{k: sum(int(r[k]) for r in rows) for k in ("items", "gained", "lost", "net")},
            "mcnemar_p": None}


def item_cells(item: dict[str, Any]) -> list[Any]:
    change = str(item["change"])
    return [Text(visible(change), style=CHANGE_STYLES.get(change, "")),
            right(verdict_text(item["base_verdict"])), right(verdict_text(item["model_verdict"])),
            item["item_id"], item["benchmark"]]


class FlipsScreen(Screen[None]):
    """One tuned model's gained and lost items per benchmark; enter on an item compares the outputs."""

    DEFAULT_CSS = """
    FlipsScreen #flips-head { height: auto; padding: 0 1; background: $boost; }
    FlipsScreen #flips-summary { height: auto; max-height: 40%; }
    FlipsScreen #flips-items-head { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    FlipsScreen #flips-items { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "back"),
        Binding("r", "refresh", "refresh"),
    ]
    AUTO_FOCUS = "#flips-summary"
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("up / down", "a benchmark: its flipped items show below (all: every one)"),
        ("enter, tab", "from the summary to its items; on an item: base and tuned outputs side by side"))

    def __init__(self, source: Source, experiment: str, model: str) -> None:
        super().__init__()
        self.source = source
        self.experiment = experiment
        self.model = model
        self.data: dict[str, Any] | None = None
        """The `flips` op's answer (None until loaded)."""
        self.shown_items: list[dict[str, Any]] = []
        self.loaded = 0
        """Completed loads (tests wait on it)."""

    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static(Text(visible(f"{self.model}: loading flips…")), id="flips-head")
        yield WholeColumnTable(id="flips-summary", cursor_type="row", zebra_stripes=True)
        yield Static("", id="flips-items-head")
        yield WholeColumnTable(id="flips-items", cursor_type="row", zebra_stripes=True)
        yield FitFooter()

    def on_mount(self) -> None:
        getattr(self.app, "listen", lambda _w: None)(self)
        self.load()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.online:
            self.load()

    def on_runs_pushed(self, message: RunsPushed) -> None:
        if any(r.get("state") == "succeeded" and r.get("kind") in ("eval", "score") for r in message.runs):
            self.load()

    @work(exclusive=True, group="flips-load")
    async def load(self) -> None:
        try:
            self.data = await self.source.request("flips", experiment=self.experiment, model=self.model)
        except SourceError as exc:
            why = Text(visible(f"cannot load the flips: {exc}"), style="red")
            self.query_one("#flips-head", Static).update(why)
            return
        self.show()
        self.loaded += 1

    @property
    def benchmarks(self) -> list[dict[str, Any]]:
        return list(self.data["benchmarks"]) if self.data else []

    def show(self) -> None:
        """Fill the head and the summary (keeping the highlighted benchmark), then the item list."""
        assert self.data is not None
        rows = self.benchmarks
        self.query_one("#flips-head", Static).update(self._head(rows))
        table = self.query_one("#flips-summary", DataTable)
        keep = self.selected_benchmark()
        table.clear(columns=True)
        table.add_columns(*SUMMARY_HEADERS)
        for row in [*rows, total_row(rows)] if rows else []:
            table.add_row(*summary_cells(row), key=row["benchmark"])
        names = [r["benchmark"] for r in rows] + [ALL]
        if keep in names:
            table.move_cursor(row=names.index(keep))
        self.show_items()

    def _head(self, rows: list[dict[str, Any]]) -> Text:
        d = self.data or {}
        head = Text.assemble((visible(self.model), "bold"),
                             visible(f" vs {d.get('base_model')} · {self.experiment}"))
        if not rows:
            return head.append(f"\n{EMPTY}", style="yellow")
        total = total_row(rows)
        return head.append(f" · {total['gained']} gained, {total['lost']} lost, net {signed(total['net'])} "
                           f"over {len(rows)} benchmark{'s' if len(rows) != 1 else ''}")

    def selected_benchmark(self) -> str | None:
        table = self.query_one("#flips-summary", DataTable)
        names = [r["benchmark"] for r in self.benchmarks] + [ALL]
        return names[table.cursor_row] if self.benchmarks and 0 <= table.cursor_row < len(names) else None

    def show_items(self) -> None:
        """The flipped items of the highlighted benchmark, gained first."""
        which = self.selected_benchmark()
        items = [i for i in (self.data or {}).get("items", []) if which in (ALL, i["benchmark"])]
        self.shown_items = items[:MAX_ITEMS]
        table = self.query_one("#flips-items", DataTable)
        table.clear(columns=True)
        table.add_columns(*ITEM_HEADERS)
        for item in self.shown_items:
            table.add_row(*item_cells(item))
        label = "every benchmark" if which == ALL else which or "-"
        note = " (enter: both outputs side by side)" if items else ""
        if len(items) > MAX_ITEMS:
            note = f", the first {MAX_ITEMS:,} shown (pick a benchmark for the rest){note}"
        self.query_one("#flips-items-head", Static).update(
            Text(visible(f"{len(items):,} flipped item{'s' if len(items) != 1 else ''} of {label}{note}")))

    @on(DataTable.RowHighlighted, "#flips-summary")
    def _benchmark_highlighted(self) -> None:
        if self.data is not None:
            self.show_items()

    @on(DataTable.RowSelected, "#flips-summary")
    def _benchmark_chosen(self) -> None:
        if self.shown_items:
            self.query_one("#flips-items", DataTable).focus()

    @on(DataTable.RowSelected, "#flips-items")
    def _item_chosen(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.shown_items):
            self.open_item(self.shown_items[event.cursor_row])

    def open_item(self, item: dict[str, Any]) -> None:
        self.app.push_screen(FlipItemScreen(self.source, self.experiment, self.model, item))

    def action_back(self) -> None:
        self.dismiss(None)

    def action_refresh(self) -> None:
        self.load()


class FlipItemScreen(Screen[None]):
    """One item: its prompt once, then the base's and the tuned model's completions side by side."""

    DEFAULT_CSS = """
    FlipItemScreen #pair-head { height: auto; padding: 0 1; background: $boost; }
    FlipItemScreen #pair-scroll { height: 1fr; }
    FlipItemScreen #pair-prompt { height: auto; padding: 0 1; border-bottom: solid $panel; }
    FlipItemScreen #pair-sides { height: auto; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "back", "back")]
    AUTO_FOCUS = "#pair-scroll"
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("up / down, pgup / pgdn", "scroll the prompt and both completions"),)

    def __init__(self, source: Source, experiment: str, model: str, item: dict[str, Any]) -> None:
        super().__init__()
        self.source = source
        self.experiment = experiment
        self.model = model
        self.item = item
        self.pair: dict[str, Any] | None = None
        """The `flip_item` op's answer (None until loaded)."""

    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static(self._head(), id="pair-head")
        with VerticalScroll(id="pair-scroll"):
            yield Static(Text("loading…"), id="pair-prompt")
            yield Static("", id="pair-sides")
        yield FitFooter()

    def _head(self) -> Text:
        i = self.item
        change = str(i["change"])
        return Text.assemble((visible(i["item_id"]), "bold"), visible(f" · {i['benchmark']} · "),
                             (visible(change), CHANGE_STYLES.get(change, "")),
                             " (base right, tuned wrong)" if change == "lost"
                             else " (base wrong, tuned right)")

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="flip-item")
    async def load(self) -> None:
        i = self.item
        try:
            self.pair = await self.source.request("flip_item", experiment=self.experiment, model=self.model,
                                                  benchmark=i["benchmark"], item_id=i["item_id"],
                                                  model_run=i.get("model_run"), base_run=i.get("base_run"))
        except SourceError as exc:
            why = Text(visible(f"cannot load the item: {exc}"), style="red")
            self.query_one("#pair-prompt", Static).update(why)
            return
        self.show()

    def show(self) -> None:
        assert self.pair is not None
        p = self.pair
        said = visible(p["prompt"] if p["prompt"] is not None else "-", lines=True)
        prompt = Text.assemble(("prompt", "bold"), "\n", said)
        if p.get("gold") is not None:
            prompt.append("\ngold ", style="bold").append(visible(p["gold"]))
        self.query_one("#pair-prompt", Static).update(prompt)
        self.query_one("#pair-sides", Static).update(sides_table(p))

    def action_back(self) -> None:
        self.dismiss(None)


def sides_table(pair: dict[str, Any]) -> Table:
    """Base | tuned in two equal columns with a rule between them; a row per part, so the heads
    line up whatever the length of either completion."""
    table = Table(box=box.MINIMAL, show_header=False, show_edge=False, expand=True, padding=(0, 1),
                  pad_edge=False)
    table.add_column(ratio=1)
    table.add_column(ratio=1)
    table.add_row(side_head("base", pair["base"]), side_head("tuned", pair["model"]))
    table.add_row("", "")
    table.add_row(side_samples(pair["base"]), side_samples(pair["model"]))
    return table


def side_head(role: str, side: dict[str, Any]) -> Text:
    """Who it is, its item verdict (right or wrong) and the run it comes from."""
    ok = side["correct"]
    return Text.assemble((f"{role}: ", "bold"), (visible(side["name"]), "bold"),
                         "\n", (("right" if ok else "wrong") + f" · verdict {verdict_text(side['verdict'])}",
                                "green" if ok else "red"),
                         ("\n" + visible(side["run_id"]), "dim"))


def side_samples(side: dict[str, Any]) -> Text:
    """Each sample of one model: its verdict, extracted answer, length and flags, then its completion."""
    text = Text()
    if not side["samples"]:
        return text.append("no samples recorded", style="yellow")
    for n, s in enumerate(side["samples"]):
        text.append(f"{chr(10) * 2 if n else ''}#{s['sample_idx']} ", style="bold")
        good = (s["verdict"] or 0) >= 0.5
        text.append(f"verdict {verdict_text(s['verdict'])}", style="green" if good else "red")
        answer = visible(s["extracted"]) if s["extracted"] is not None else "-"
        text.append(" · answer ").append(answer, style="bold")
        facts = [f"{s['tokens']} tokens" if s["tokens"] is not None else "",
                 visible(s["finish_reason"] or ""), visible(" ".join(s["flags"]))]
        if any(facts):
            text.append(" · " + " · ".join(f for f in facts if f), style="dim")
        text.append("\n").append(visible(s["completion"] if s["completion"] is not None else "-", lines=True))
    return text
