"""The runs table: one row per run, updated cell by cell as the daemon pushes run changes.

A thousand runs stay cheap because a push touches only the cells whose text changed (DataTable
re-renders only the rows on screen), a filter or sort change is the only full rebuild, and
durations are redrawn once a second for running runs only. Columns share the width: the id,
state and numbers keep theirs, experiment, name and the progress bar take what is left, and
below 96 columns the kind column folds into the id (ids start with their kind). Once a run went
to Slurm, the GPU column becomes a node column (Slurm chose the GPUs), and a queued job's
progress cell says why Slurm keeps it waiting (`pending: Resources`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from tui.format import (
    duration,
    eta_seconds,
    fit,
    on_slurm,
    progress_cell,
    queue_cell,
    result_cell,
    result_forms,
    run_seconds,
    state_cell,
    visible,
)
from tui.widgets.grid import WholeColumns


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    grow: int = 0
    most: int = 0
    wide_only: bool = False


COLUMNS = (
    Column("id", "id", 18), Column("experiment", "experiment", 9, 2, 22), Column("name", "name", 8, 2, 18),
    Column("kind", "kind", 7, wide_only=True), Column("state", "state", 9),
    Column("progress", "progress", 11, 1, 24), Column("result", "result", 10, 1, 16, wide_only=True),
    Column("eta", "ETA", 5), Column("gpus", "GPU", 4), Column("time", "time", 6),
)
WIDE = 100
#: Below WIDE the progress column also shows a finished run's result (a full bar says nothing).
NARROW_PROGRESS = "prog/result"
#: The GPU column once runs went to Slurm: their node (Slurm chose the GPUs), one cell wider (at 80
#: columns, the one cell the experiment column had spare) and growing last in each round.
NODE = Column("gpus", "node", 5, 2, 12)


SHRINK_TO = 6
"""How narrow the experiment and name columns may get to give a run's figure its whole width."""


def layout(width: int, nodes: bool = False, need: int = 0) -> list[tuple[Column, int]]:
    """Columns shown at `width` cells and their content widths (each cell adds one space);
    `nodes`: the GPU column shows nodes (some run went to Slurm); `need`: the widest result
    shown, which its column (the progress column below WIDE) gets first when it can."""
    cols = [NODE if nodes and c.key == "gpus" else c for c in COLUMNS if width >= WIDE or not c.wide_only]
    widths = {c.key: c.width for c in cols}
    spare = width - 1 - sum(widths.values()) - len(cols)  # one cell of scrollbar
    holder = "result" if "result" in widths else "progress"
    spare = make_room(widths, holder, need - widths[holder], spare)
    most = {c.key: max(c.most, widths[c.key]) for c in cols}
    growers = [c for c in cols if c.grow and widths[c.key] < most[c.key]]
    while spare > 0 and growers:
        for c in list(growers):
            if spare <= 0:
                break
            take = min(c.grow, spare, most[c.key] - widths[c.key])
            widths[c.key] += take
            spare -= take
            if widths[c.key] >= most[c.key]:
                growers.remove(c)
    fit_to_edge(cols, widths, holder, width - 1)
    return [(c, widths[c.key]) for c in cols]


PROGRESS_MIN = 6
"""The narrowest progress cell: a one-cell bar, a space and `100%`."""


def fit_to_edge(cols: list[Column], widths: dict[str, int], holder: str, view: int) -> None:
    """Narrow `holder` (progress or result) to end at the view's right edge when the edge would
    cut it: a narrower bar, or a shorter whole form of the result (result_cell), instead of
    `100%` shown as `100` (60 columns). The columns after it stay beyond the edge."""
    start = 0
    for c in cols:
        if c.key == holder:
            room = view - start - 1  # its leading space
            if PROGRESS_MIN <= room < widths[holder]:
                widths[holder] = room
            return
        start += widths[c.key] + 1


def make_room(widths: dict[str, int], holder: str, want: int, spare: int) -> int:
    """Widen `holder` by `want` cells from the spare width, then from the experiment and name
    columns (down to SHRINK_TO), but only when that fits the whole figure; the spare left."""
    if want <= 0:
        return spare
    names = ("experiment", "name")
    slack = max(0, spare) + sum(max(0, widths[k] - SHRINK_TO) for k in names if k in widths)
    if want > slack:
        return spare  # a shorter form of the figure shows instead (result_cell)
    take = min(want, max(0, spare))
    widths[holder] += take
    spare, want = spare - take, want - take
    for key in (k for k in names if k in widths):
        cut = min(want, max(0, widths[key] - SHRINK_TO))
        widths[key] -= cut
        widths[holder] += cut
        want -= cut
    return spare


def result_need(runs: Iterable[dict[str, Any]]) -> int:
    """The width of the widest result among `runs` (0 when none has one)."""
    return max((len(forms[0]) for forms in map(result_forms, runs) if forms), default=0)


MARK = "●"
MARK_STYLE = "bold magenta"


def cells(run: dict[str, Any], cols: list[tuple[Column, int]], now: float,
          marked: bool = False) -> list[Text]:
    """The row of one run, each cell a space then its text cut to the column width (a result
    is never cut: a shorter whole form of it shows, see result_cell). A marked run's id cell starts
    with MARK instead of the space (no column's width changes) and its id is coloured."""
    out = []
    folded = not any(col.key == "result" for col, _ in cols)
    for col, width in cols:
        finished = folded and col.key == "progress" and run.get("state") == "succeeded"
        shows_result = col.key == "result" or (finished and bool(result_forms(run)))
        value = result_cell(run, width) if shows_result else _cell(run, col.key, width, now)
        text = value if isinstance(value, Text) else Text(fit(value, width))
        text.truncate(width, overflow="ellipsis")
        if marked and col.key == "id":
            text.stylize(MARK_STYLE)
            out.append(Text(MARK, style=MARK_STYLE) + text)
        else:
            out.append(Text(" ") + text)
    return out


def _cell(run: dict[str, Any], key: str, width: int, now: float) -> str | Text:
    if key == "state":
        return state_cell(run)
    if key == "progress":
        waiting = queue_cell(run, width)
        return Text(visible(waiting), style="cyan") if waiting else progress_cell(run, width)
    if key == "eta":
        return duration(eta_seconds(run, now), short=True)
    if key == "time":
        return duration(run_seconds(run, now))
    if key == "gpus":
        if on_slurm(run):
            return run.get("node") or ""
        return run.get("gpus") or ("" if run.get("state") in ("queued", "cancelled") else "cpu")
    return str(run.get(key) or "")


class RunsTable(WholeColumns, DataTable[Text]):
    """DataTable of runs keyed by run id; `show` lays out, `update_run` patches one row. Below 80
    columns it scrolls sideways, and a column the edge would cut shows as `›` (WholeColumns)."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "select_cursor", "open", show=True),
        Binding("home", "first_run", "first run", show=False),
        Binding("end", "last_run", "last run", show=False),
    ]

    def action_first_run(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_run(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
    DEFAULT_CSS = "RunsTable { height: 1fr; scrollbar-size-vertical: 1; }"

    def __init__(self, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", cell_padding=0, zebra_stripes=False, **kwargs)
        self._shrink_caches()
        self.clock = clock
        self.cols: list[tuple[Column, int]] = []
        self.nodes = False  # whether the GPU column shows nodes (see `layout`)
        self.need = 0  # the widest result shown (see `layout`)
        self.shown: dict[str, list[Text]] = {}
        self.marked: dict[str, None] = {}
        """Marked runs (space), in the order they were marked; kept across filters and sorts."""

    def _shrink_caches(self) -> None:
        """DataTable keeps up to 10,000 rendered cells and 1,000 rows and lines; a screen shows a few
        dozen rows, and any cell update makes every entry stale anyway. The full caches hold
        hundreds of thousands of small objects that each of Python's full garbage collections walks
        (a 250-400 ms pause with 1,000 runs, bench/tui.py); caches sized to a screen or two do not."""
        from textual.cache import LRUCache

        self._cell_render_cache = LRUCache(1000)
        self._row_render_cache = LRUCache(200)
        self._row_renderable_cache = LRUCache(200)
        self._line_cache = LRUCache(200)

    def show(self, runs: Iterable[dict[str, Any]], width: int, header: dict[str, str] | None = None,
             nodes: bool = False) -> None:
        """Rebuild every row (filter, sort or width change), keeping the cursor on its run."""
        selected = self.selected_id()
        runs = list(runs)
        self.clear(columns=True)
        self.nodes, self.need = nodes, result_need(runs)
        self.cols = layout(width, nodes, self.need)
        for col, w in self.cols:
            folded = col.key == "progress" and not any(c.key == "result" for c, _ in self.cols)
            label = (header or {}).get(col.key, NARROW_PROGRESS if folded else col.label)
            self.add_column(Text(" " + fit(label, w), style="bold"), key=col.key, width=w + 1)
        now = self.clock()
        self.shown = {}
        for run in runs:
            row = cells(run, self.cols, now, run["id"] in self.marked)
            self.shown[run["id"]] = row
            self.add_row(*row, key=run["id"])
        self.select(selected)

    def wants_wider(self, runs: Iterable[dict[str, Any]], width: int) -> bool:
        """Whether a pushed run's result is wider than the layout made room for, and a new
        layout would give it more (a rebuild then shows it whole)."""
        need = max(self.need, result_need(runs))
        return need > self.need and layout(width, self.nodes, need) != self.cols

    def update_run(self, run: dict[str, Any]) -> None:
        """Patch the cells of a shown run whose text changed."""
        old = self.shown.get(run["id"])
        if old is None:
            return
        kept = []
        now, marked = self.clock(), run["id"] in self.marked
        for (col, _w), before, after in zip(self.cols, old, cells(run, self.cols, now, marked), strict=True):
            if before != after:
                self.update_cell(run["id"], col.key, after)
            kept.append(after if before != after else before)  # the table holds `before` otherwise
        self.shown[run["id"]] = kept

    def append_run(self, run: dict[str, Any]) -> None:
        row = cells(run, self.cols, self.clock(), run["id"] in self.marked)
        self.shown[run["id"]] = row
        self.add_row(*row, key=run["id"])

    def drop_run(self, run_id: str) -> None:
        if self.shown.pop(run_id, None) is not None:
            self.remove_row(run_id)

    def reorder(self, key: Callable[[str], Any], reverse: bool) -> None:
        """Sort rows in place by `key(run_id)`, the cursor staying on its run."""
        selected = self.selected_id()
        owner = {id(row[0]): run_id for run_id, row in self.shown.items()}  # id cell -> its run
        self.sort("id", key=lambda cell: key(owner[id(cell)]), reverse=reverse)
        self.select(selected)

    def toggle_mark(self, run: dict[str, Any]) -> bool:
        """Mark or unmark a shown run (its id cell redrawn); whether it is marked now."""
        if run["id"] in self.marked:
            del self.marked[run["id"]]
        else:
            self.marked[run["id"]] = None
        self.update_run(run)
        return run["id"] in self.marked

    def clear_marks(self, runs: dict[str, dict[str, Any]]) -> int:
        """Unmark every run (the shown ones redrawn); how many were marked."""
        count, was = len(self.marked), list(self.marked)
        self.marked.clear()
        for run_id in was:
            if run_id in runs:
                self.update_run(runs[run_id])
        return count

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except CellDoesNotExist:
            return None

    def select(self, run_id: str | None) -> None:
        if run_id is not None and run_id in self.shown:
            self.move_cursor(row=self.get_row_index(run_id), animate=False, scroll=True)
