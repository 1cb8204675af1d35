"""The runs dashboard: every run with state, progress, ETA, GPUs and duration, live.

The app loads the runs once from the daemon (`status`) and then applies what the daemon pushes;
this screen only draws `app.runs`. A filter (`/`, words that must all appear in the id, name,
experiment, kind or state) and a sort (`s` cycles the column, `S` flips the order) rebuild the
table; a push patches cells in place. On the selected run: enter opens its detail (curves, logs,
samples), `l` its logs, `c` cancels it (after a question), `r` resumes a cancelled run or retries
a failed one (the same thing: the run is queued again and continues from what it recorded).
Space marks runs (a `●` before the id, the count on the summary line; escape clears the marks):
`c` and `r` then act on every marked run after one question, `C` compares two or more marked
runs (tui/screens/compare.py: curves overlaid, or eval scores with their paired deltas), and `d`
shows the configuration keys two marked runs differ in.
Runs on a Slurm cluster show their node instead of GPUs, a queued one why Slurm keeps it waiting,
and the selected one its job id.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from tui.format import (
    CUT,
    STATE_STYLES,
    STATES,
    count_label,
    duration,
    epoch,
    fit_parts,
    last_line,
    on_slurm,
    result_parts,
    run_seconds,
    slurm_job,
    slurm_queue_line,
    visible,
)
from tui.messages import RunsLoaded, RunsPushed
from tui.run_actions import DOWN, ask_cancel, dead_root, ids_line, resume, taken_down, waiting_on
from tui.screens.run_detail import RunDetailScreen
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.confirm import Answer, Confirm
from tui.widgets.footer import FitFooter
from tui.widgets.runs_table import COLUMNS, MARK, MARK_STYLE, RunsTable, layout

#: Sort columns in the order `s` cycles them, with each one's natural direction (True = descending).
SORTS: dict[str, bool] = {"created": True, "state": False, "experiment": False, "name": False, "kind": False,
                          "progress": True, "time": True}
#: Sorts whose order a push can change (so a push batch re-sorts in place).
LIVE_SORTS = frozenset({"state", "progress", "time"})
_STATE_RANK = {s: i for i, s in enumerate(("running", "queued", "failed", "cancelled", "succeeded"))}


def matches(run: dict[str, Any], terms: list[str]) -> bool:
    """Every filter word appears in the run's id, experiment, name, kind or state."""
    if not terms:
        return True
    hay = " ".join(str(run.get(k) or "") for k in ("id", "experiment", "name", "kind", "state")).lower()
    return all(t in hay for t in terms)


def sort_key(sort_by: str, now: float) -> Callable[[dict[str, Any]], Any]:
    created = lambda r: (r.get("created_at") or "", r["id"])  # noqa: E731
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "created": created,
        "state": lambda r: (_STATE_RANK.get(r.get("state"), 9), created(r)),
        "progress": lambda r: (1.0 if r.get("state") == "succeeded" else r.get("progress") or -1.0,
                               created(r)),
        "time": lambda r: (run_seconds(r, now) or -1.0, created(r)),
    }
    return keys.get(sort_by, lambda r: (str(r.get(sort_by) or ""), created(r)))


class RunsScreen(Screen[None]):
    """Every run, live; filter, sort and act on the selected one."""

    DEFAULT_CSS = """
    RunsScreen #summary { height: 1; padding: 0 1; background: $boost; text-wrap: nowrap;
                          text-overflow: ellipsis; }
    RunsScreen #selected { height: 2; padding: 0 1; color: $text-muted; text-wrap: nowrap;
                           text-overflow: ellipsis; }
    RunsScreen #filter { dock: bottom; display: none; }
    RunsScreen.-filtering #filter { display: block; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("l", "logs", "logs"),
        Binding("slash", "filter", "filter"),
        Binding("s", "sort", "sort"),
        Binding("S", "reverse", "reverse order", show=False),
        Binding("c", "cancel", "cancel"),
        Binding("r", "resume", "resume/retry"),
        Binding("escape", "clear_filter", "clear filter, then marks", show=False),
        Binding("space", "mark", "mark"),
        Binding("C", "compare", "compare marked"),
        Binding("d", "diff", "diff 2 marked (config)", show=False),
    ]
    HELP = "enter opens the selected run's detail (curves, logs, samples)."
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("enter", "open the selected run (results, curves, logs, samples)"),
        ("home / end", "the first / last run"))
    """Keys of the runs table itself, listed by `?` with the screen's."""

    filter_text: reactive[str] = reactive("", init=False)
    """Words every shown run must contain (case-insensitive)."""
    sort_by: reactive[str] = reactive("created", init=False)
    """The sort column (one of SORTS)."""
    descending: reactive[bool] = reactive(True, init=False)
    """Whether the sort runs from largest (newest) to smallest."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self._ticker: Timer | None = None
        self._filter_timer: Timer | None = None

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static(id="summary")
        yield RunsTable(self.clock, id="runs")
        yield Static(id="selected")
        yield Input(placeholder="filter: words in id, name, experiment, kind, state (esc clears)",
                    id="filter", compact=True, select_on_focus=False)
        yield FitFooter()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        return getattr(self.app, "runs", {})

    def clock(self) -> float:
        return getattr(self.app, "clock", time.time)()

    def on_mount(self) -> None:
        getattr(self.app, "listen", lambda _w: None)(self)
        self._ticker = self.set_interval(1.0, self.tick_durations)
        self.rebuild()
        self.table.focus()

    def on_screen_resume(self) -> None:
        if self._ticker is not None:
            self._ticker.resume()
        self.tick_durations()

    def on_screen_suspend(self) -> None:
        if self._ticker is not None:
            self._ticker.pause()

    def on_resize(self) -> None:
        width = self.size.width
        if self.table.cols != layout(width, self.table.nodes, self.table.need):
            self.rebuild()

    # -- data ------------------------------------------------------------------------------------
    def on_runs_loaded(self, _message: RunsLoaded) -> None:
        self.rebuild()

    def on_runs_pushed(self, message: RunsPushed) -> None:
        """Patch rows in place; add or drop rows whose filter match changed; re-sort if needed."""
        terms, table, moved = self.terms(), self.table, False
        if not table.nodes and any(map(on_slurm, message.runs)):
            self.rebuild()  # the first run on Slurm: the GPU column becomes the node column
            return
        if table.wants_wider(message.runs, self.size.width or 80):
            self.rebuild()  # a run's result is wider than the layout made room for
            return
        for run in message.runs:
            shown, wanted = run["id"] in table.shown, matches(run, terms)
            if shown and wanted:
                table.update_run(run)
                moved = moved or self.sort_by in LIVE_SORTS
            elif wanted:
                table.append_run(run)
                moved = True
            elif shown:
                table.drop_run(run["id"])
        if moved:
            table.reorder(self.row_key(), self.descending)
        self.show_summary()
        self.show_selected()

    def rebuild(self) -> None:
        """The only full redraw: on load, filter, sort and width changes."""
        terms = self.terms()
        rows = sorted((r for r in self.runs.values() if matches(r, terms)),
                      key=sort_key(self.sort_by, self.clock()), reverse=self.descending)
        arrow = "↓" if self.descending else "↑"
        header = {self.sort_column(): f"{_label(self.sort_column())}{arrow}"}
        nodes = any(map(on_slurm, self.runs.values()))
        self.table.show(rows, self.size.width or 80, header, nodes)
        self.show_summary()
        self.show_selected()

    def row_key(self) -> Callable[[str], Any]:
        key, runs = sort_key(self.sort_by, self.clock()), self.runs
        return lambda run_id: key(runs[run_id])

    def sort_column(self) -> str:
        return {"created": "id", "kind": "kind" if (self.size.width or 80) >= 96 else "id"}.get(
            self.sort_by, self.sort_by)

    def terms(self) -> list[str]:
        return self.filter_text.lower().split()

    def tick_durations(self) -> None:
        """Once a second: the time and ETA of running runs, and the selected run's `(2m58s ago)`
        (nothing else changes with the clock)."""
        table = self.table
        for run_id in table.shown:
            run = self.runs.get(run_id)
            if run is not None and run.get("state") == "running":
                table.update_run(run)
        self.show_selected()

    def loaded(self) -> bool:
        """Whether the first status has arrived: before it, "0 runs" would be a lie."""
        connected = getattr(self.app, "connected_once", None)
        return connected is None or connected.is_set()

    def show_summary(self) -> None:
        if not self.loaded():
            self.query_one("#summary", Static).update(Text("connecting to the daemon…", style="bold yellow"),
                                                      layout=False)
            return
        counts = Counter(r.get("state") for r in self.runs.values())
        text = Text(count_label(len(self.runs), "run"), style="bold")
        if self.filter_text:  # first, so 80 columns always show it
            text = Text(f"“{visible(self.filter_text)}”: {len(self.table.shown)} of {len(self.runs):,} runs",
                        style="bold reverse")
        if self.table.marked:  # right after, so 60 columns show it too
            text.append(f"  {MARK} {len(self.table.marked)} marked", style=MARK_STYLE)
        text.append(" ")
        for state in STATES:
            if counts.get(state):
                text.append(" ")
                text.append(f"{counts[state]} {state}", style=STATE_STYLES[state])
        text.append(f"  by {self.sort_by}{'↓' if self.descending else '↑'}", style="dim")
        text.no_wrap, text.overflow = True, "ellipsis"
        self.query_one("#summary", Static).update(text, layout=False)  # fixed height: no relayout

    def selected_run(self) -> dict[str, Any] | None:
        run_id = self.table.selected_id()
        return self.runs.get(run_id) if run_id else None

    def show_selected(self) -> None:
        """The selected run's two lines. The footer keeps c and r lit whatever the run's state (they
        explain themselves when they do not apply): refreshing the footer's bindings on each cursor
        move would recompose it, and Textual 8's Footer keeps every replaced key alive (a leak of
        about a thousand objects per refresh, which also slows its garbage collections)."""
        width = max(20, (self.size.width or 80) - 2)
        shown = describe(self.selected_run(), self.clock(), width, self.runs) if self.loaded() else Text(
            "the runs appear as soon as the daemon answers (it is started if it is not running)", style="dim")
        self.query_one("#selected", Static).update(shown, layout=False)

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self) -> None:
        self.show_selected()

    @on(DataTable.RowSelected, "#runs")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.open_detail(str(event.row_key.value), None)

    # -- filter and sort -------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.add_class("-filtering")
        box = self.query_one("#filter", Input)
        box.value = self.filter_text
        box.cursor_position = len(box.value)
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        """Re-filter 150 ms after the last key, so typing fast is one rebuild."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
        value = event.value
        self._filter_timer = self.set_timer(0.15, lambda: setattr(self, "filter_text", value))

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.filter_text = event.value
        self.remove_class("-filtering")
        self.table.focus()

    def action_clear_filter(self) -> None:
        """escape: while typing a filter, or with no run marked, clears the filter; else the marks."""
        if not self.has_class("-filtering") and self.table.marked:
            self.table.clear_marks(self.runs)
            self.show_summary()
            return
        self.query_one("#filter", Input).value = ""
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self.filter_text = ""
        self.remove_class("-filtering")
        self.table.focus()

    def watch_filter_text(self) -> None:
        self.rebuild()

    def action_sort(self) -> None:
        names = list(SORTS)
        self.sort_by = names[(names.index(self.sort_by) + 1) % len(names)]

    def watch_sort_by(self, sort_by: str) -> None:
        self.set_reactive(RunsScreen.descending, SORTS[sort_by])
        self.rebuild()

    def action_reverse(self) -> None:
        self.descending = not self.descending

    def watch_descending(self) -> None:
        self.rebuild()

    # -- actions on the selected run ---------------------------------------------------------------
    def action_logs(self) -> None:
        run = self.selected_run()
        if run:
            self.open_detail(run["id"], "logs")

    def open_detail(self, run_id: str, tab: str | None) -> None:
        """Open a run; `tab` None opens the tab that fits its kind (scores for an eval, ...)."""
        self.app.push_screen(RunDetailScreen(self.source, run_id, tab=tab))

    def action_cancel(self) -> None:
        marked = self.marked_runs()
        if marked:
            ask_cancel_marked(self, marked)
        else:
            ask_cancel(self, self.selected_run())

    def action_resume(self) -> None:
        marked = self.marked_runs()
        if marked:
            ask_resume_marked(self, marked)
        else:
            resume(self, self.selected_run())

    # -- marked runs -------------------------------------------------------------------------------
    def marked_runs(self) -> list[dict[str, Any]]:
        """The marked runs that still exist, in the order they were marked."""
        return [self.runs[run_id] for run_id in self.table.marked if run_id in self.runs]

    def action_mark(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.table.toggle_mark(run)
            self.show_summary()

    def action_compare(self) -> None:
        """Two or more marked runs side by side: curves overlaid, or eval scores with their deltas."""
        marked = self.marked_runs()
        if len(marked) < 2:
            self.notify(f"mark two or more runs with space to compare them ({len(marked)} marked)",
                        severity="warning")
            return
        from tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(self.source, marked))

    def action_diff(self) -> None:
        """The configuration keys two marked runs differ in."""
        marked = self.marked_runs()
        if len(marked) != 2:
            self.notify(f"mark exactly two runs with space to diff their configs ({len(marked)} marked)",
                        severity="warning")
            return
        from tui.screens.compare import DiffScreen

        self.app.push_screen(DiffScreen(self.source, marked[0]["id"], marked[1]["id"]))


# -- cancel and resume the marked runs ----------------------------------------------------------------
def ask_cancel_marked(screen: RunsScreen, marked: list[dict[str, Any]]) -> None:
    """One question for every marked run that can be cancelled (a running one needs `y`, as one
    alone does); the toast counts what the daemon did with each."""
    live = [r for r in marked if r.get("state") in ("queued", "running")]
    ended = len(marked) - len(live)
    if not live:
        screen.notify(f"none of the {len(marked)} marked runs is queued or running: nothing to cancel",
                      severity="warning")
        return
    ids = [r["id"] for r in live]
    after = sorted({w for r in live for w in waiting_on(screen.runs, r["id"])} - set(ids))
    running = sum(r["state"] == "running" for r in live)
    lines = [f"Cancel {count_label(len(live), 'marked run')}: {ids_line(ids)}?"]
    if running:
        lines.append(f"{running} running: stopped with SIGTERM.")
    if after:
        lines.append(f"{count_label(len(after), 'run')} waiting for them will be cancelled too: "
                     f"{ids_line(after)}.")
    if ended:
        lines.append(f"{ended} marked already ended: left as {'it is' if ended == 1 else 'they are'}.")
    answers = (Answer("y", f"cancel {len(live)}", True), Answer("n", "keep them", False))
    screen.app.push_screen(Confirm("\n".join(lines), answers), lambda yes: yes and screen.run_worker(
        cancel_marked(screen, live, ended, len(after)), group="actions"))


async def cancel_marked(screen: RunsScreen, live: list[dict[str, Any]], ended: int, after: int) -> None:
    """Queued runs first: a running one's end cancels the runs waiting for it, and a marked one
    among them would then count as already ended rather than cancelled."""
    cancelled = stopping = gone = 0
    refused: list[str] = []
    for run in sorted(live, key=lambda r: r["state"] == "running"):
        try:
            done = await screen.source.request("cancel", target=run["id"])
        except SourceError as exc:
            refused.append(f"{run['id']}: {exc}")
            continue
        if not done:
            gone += 1
        elif run["state"] == "running":
            stopping += 1
        else:
            cancelled += 1
    parts = [f"cancelled {cancelled}" if cancelled else "",
             f"stopping {stopping} (SIGTERM sent)" if stopping else "",
             f"{ended + gone} already ended" if ended + gone else "",
             f"{after} waiting for them will be cancelled" if after and (cancelled or stopping) else ""]
    note = ", ".join(p for p in parts if p) or "nothing cancelled"
    if refused:
        note += f"; refused {len(refused)}: {refused[0]}"
    screen.notify(visible(note), severity="error" if refused else "information")


def ask_resume_marked(screen: RunsScreen, marked: list[dict[str, Any]]) -> None:
    """One question for every marked run that is failed or cancelled; a run whose dependency is down
    is resumed through that dependency (alone it would be cancelled again at once)."""
    down = [r for r in marked if r.get("state") in DOWN]
    others = len(marked) - len(down)
    if not down:
        screen.notify(f"none of the {len(marked)} marked runs is failed or cancelled: nothing to resume",
                      severity="warning")
        return
    targets: dict[str, dict[str, Any]] = {}
    for run in down:
        root = dead_root(screen.runs, run) or run
        targets.setdefault(root["id"], root)
    ids = list(targets)
    taken = sorted({t for i in ids for t in taken_down(screen.runs, i)} - set(ids))
    lines = [f"Resume {count_label(len(ids), 'run')}: {ids_line(ids)}?"]
    if set(ids) - {r["id"] for r in down}:
        lines.append("(a marked run waits for one of them that is down: it goes first)")
    if taken:
        lines.append(f"Their ends took down {count_label(len(taken), 'run')}: {ids_line(taken)}.")
    if others:
        lines.append(f"{others} marked not failed or cancelled: left as "
                     f"{'it is' if others == 1 else 'they are'}.")
    answers = ((Answer("y", f"resume them and those {len(taken)}", True), Answer("o", "only them", False))
               if taken else (Answer("y", f"resume {len(ids)}", False),)) + (Answer("n", "no", None),)
    screen.app.push_screen(Confirm("\n".join(lines), answers), lambda choice: choice is not None and
                           screen.run_worker(resume_marked(screen, list(targets.values()), choice, others),
                                             group="actions"))


async def resume_marked(screen: RunsScreen, targets: list[dict[str, Any]], dependants: bool,
                        others: int) -> None:
    resumed, again, queued = 0, 0, set[str]()
    refused: list[str] = []
    for run in targets:
        if run["id"] in queued:  # an earlier one's dependants took it along
            continue
        try:
            done = await screen.source.request("resume", id=run["id"], dependants=dependants)
        except SourceError as exc:
            refused.append(f"{run['id']}: {exc}")
            continue
        resumed += 1
        more = [i for i in done.get("dependants") or [] if i not in queued]
        again += len(more)
        queued.update(more)
    parts = [f"resumed {resumed} (queued again)" if resumed else "nothing resumed",
             f"with {count_label(again, 'run')} their ends took down" if again else "",
             f"{others} not failed or cancelled" if others else ""]
    note = ", ".join(p for p in parts if p)
    if refused:
        note += f"; refused {len(refused)}: {refused[0]}"
    screen.notify(visible(note), severity="error" if refused else "information")



def describe(run: dict[str, Any] | None, now: float, width: int = 1_000,
             runs: dict[str, dict[str, Any]] | None = None) -> Text:
    """Two lines about the selected run: what it is doing, and its error when it has one; each
    line keeps the facts that fit `width` whole (a figure or a time is left out, never cut)."""
    if run is None:
        return Text("no run selected", style="dim")
    head = [Text(visible(run["id"]), style="bold"),
            Text(visible(f"{run.get('experiment') or '-'}/{run.get('name') or '-'}  {run.get('kind')}"))]
    if run.get("job_id"):  # before the rest: where a cluster run is matters more than when it started
        head.append(Text(visible(slurm_job(run))))
    if run.get("progress_text") and run.get("state") == "running":  # a queued run's is on the next line
        head.append(Text(visible(run["progress_text"])))
    if run.get("started_at"):
        head.append(Text(f"started {str(run['started_at'])[5:16]}"))
    if run.get("attempt", 0) > 1:
        head.append(Text(f"attempt {run['attempt']}"))
    text = Text("\n").join([fit_parts(head, width, "  "), second_line(run, now, width, runs or {})])
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def second_line(run: dict[str, Any], now: float, width: int, runs: dict[str, dict[str, Any]]) -> Text:
    """The error of a failed run, why a queued one waits, or what a finished one found and when."""
    if run.get("error") and run.get("state") not in ("running", "succeeded"):
        return Text(last_line(run["error"]), style="red")
    if waiting := slurm_queue_line(run) or waiting_line(run, runs):
        return Text(visible(waiting), style="cyan")
    if not run.get("finished_at"):
        return Text()
    ended = epoch(run["finished_at"])
    ago = duration(now - ended) if ended else ""
    when = Text(f"ended {str(run['finished_at'])[5:16]}" + (f" ({ago} ago)" if ago else ""))
    found = [Text(visible(part), style="green") for part in result_parts(run)]
    if not found:
        return when
    # what it found first (it is why the user selected a finished run), the time once it fits
    line = fit_parts(found, width)
    rest = width - len(line) - 2
    return line + (Text("  ") + when if len(when) <= rest and not line.plain.endswith(CUT) else Text())


def waiting_line(run: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    """Why a queued run waits: the daemon's word (`waiting for a CPU slot (2 of 2 in use)`,
    `waiting for train-1a2b (running)`, another user's job on the GPU); from a daemon that does
    not say, the dependencies that have not succeeded yet (never one that has)."""
    if run.get("state") != "queued":
        return ""
    if run.get("progress_text"):
        return str(run["progress_text"])
    pending = [f"{dep} ({runs[dep].get('state')})" if dep in runs else dep
               for dep in run.get("deps") or [] if (runs.get(dep) or {}).get("state") != "succeeded"]
    return f"waiting for {', '.join(pending)}" if pending else ""


def _label(key: str) -> str:
    return next(c.label for c in COLUMNS if c.key == key)
