"""An experiment's runs as a DAG (issue 25.16): build → train → eval → analyse, each run with its
state and what it waits for and why.

`tix run FILE` expands an experiment into runs whose `deps` name the runs they need
(engine/experiments/plan.py); the scheduler starts a run once all of them succeeded. When a run
sits in `queued`, the question is which of its inputs holds it up, and whether that one is
running, queued behind a slot, or failed (which took the run down with it). This screen lays the
runs out by stage, one column per stage where the terminal is wide enough (160 columns: four
stages of 38), one stacked list with a rule per stage where it is not (60 or 80 columns); each
node says its kind and name, its state in colour and in words, the runs it needs with their
states, and why it waits: the daemon's own words (`waiting for a CPU slot (2 of 2 in use)`,
through tui.screens.runs.waiting_line, the same line the runs list shows), or for a run that
ended, its error's last line (`dependency train-… cancelled`).

Data: the daemon's `status` op for the experiment's runs (reused runs linked from another
experiment included), then the app's run pushes keep each node current without polling. Keys:
arrows move between nodes, enter opens a run's detail (app.open_run), f on an eval run its
model's flips (tui/screens/flips.py), r reloads, escape goes back.
Opened with `D` on the runs list (the highlighted run's experiment) or the experiments list.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Console
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tui.format import STATE_STYLES, STATES, last_line, result_line, visible
from tui.messages import ConnectionChanged, RunsLoaded, RunsPushed
from tui.screens.runs import waiting_line
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.footer import FitFooter

STAGES = ("build", "train", "eval", "analyse", "other")
STAGE_OF = {"build": "build", "train": "train", "eval": "eval", "score": "eval", "analyse": "analyse"}
MIN_COLUMN = 26
"""Narrowest stage column (cells of text) before the stages are stacked instead of side by side."""
STATE_MARKS = {"queued": "○", "running": "◐", "succeeded": "●", "failed": "✗", "cancelled": "⊘"}


def stage(run: dict[str, Any]) -> str:
    return STAGE_OF.get(str(run.get("kind")), "other")


def by_stage(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The runs of each stage present, in creation order (a stage with no run is left out)."""
    ordered = sorted(runs, key=lambda r: (str(r.get("created_at") or ""), str(r.get("name") or ""), r["id"]))
    return {s: found for s in STAGES if (found := [r for r in ordered if stage(r) == s])}


def run_title(run: dict[str, Any]) -> str:
    return f"{run.get('kind')} {run.get('name') or '-'}"


def state_text(run: dict[str, Any]) -> Text:
    """`◐ running 60%`: a mark and the word (readable without colour), coloured by state."""
    state = str(run.get("state") or "?")
    word = "stopping" if state == "running" and run.get("cancel_requested") else state
    text = Text(f"{STATE_MARKS.get(state, '?')} {visible(word)}", style=STATE_STYLES.get(state, ""))
    if state == "running" and isinstance(run.get("progress"), (int, float)):
        text.append(f" {100 * float(run['progress']):.0f}%")
    return text


def needs_text(run: dict[str, Any], runs: dict[str, dict[str, Any]]) -> Text:
    """`← build base ●, train sft ◐`: the runs this one needs, each with its state's mark and colour."""
    if not run.get("deps"):
        return Text()
    text = Text("← ", style="dim")
    for i, dep_id in enumerate(run["deps"]):
        dep = runs.get(dep_id)
        if i:
            text.append(", ")
        if dep is None:
            text.append(f"{visible(dep_id)} (not loaded)", style="dim")
            continue
        state = str(dep.get("state"))
        text.append(visible(run_title(dep)))
        text.append(f" {STATE_MARKS.get(state, '?')}", style=STATE_STYLES.get(state, ""))
    return text


def why_text(run: dict[str, Any], runs: dict[str, dict[str, Any]]) -> Text:
    """What it waits for and why (queued), what it does (running), why it ended (failed, cancelled),
    or what it found (succeeded); empty when there is nothing to say."""
    state = run.get("state")
    if state == "queued":
        line = waiting_line(run, runs) or "waiting for the scheduler's next tick"
        return Text(visible(line), style="cyan")
    if state == "running":
        return Text(visible(run.get("progress_text") or ""), style="yellow")
    if state in ("failed", "cancelled"):
        return Text(last_line(run.get("error") or state), style="red" if state == "failed" else "dim")
    return Text(visible(result_line(run)), style="green")


def node_lines(run: dict[str, Any], runs: dict[str, dict[str, Any]], width: int, console: Console) -> Text:
    """A node's text wrapped to `width` cells: title, state and id, what it needs, why."""
    head = Text.assemble((visible(run_title(run)), "bold"), "  ", state_text(run), "  ",
                         (visible(run["id"]), "dim"))
    parts = [head, needs_text(run, runs), why_text(run, runs)]
    lines: list[Text] = []
    for part in parts:
        if part.plain:
            lines.extend(part.wrap(console, max(8, width)))
    return Text("\n").join(lines)


def summary_text(experiment: str, runs: list[dict[str, Any]]) -> Text:
    """`tiny-lab · 9 runs: 4 succeeded, 1 running ...` in state colours."""
    text = Text.assemble((visible(experiment), "bold"), f" · {len(runs)} run{'s' if len(runs) != 1 else ''}")
    counts = {s: sum(1 for r in runs if r.get("state") == s) for s in STATES}
    shown = [(f"{n} {s}", STATE_STYLES[s]) for s, n in counts.items() if n]
    if shown:
        text.append(": ")
        for i, (words, style) in enumerate(shown):
            text.append(", " if i else "")
            text.append(words, style=style)
    return text


def created_by(app: Any, experiment: str, known: set[str]) -> list[dict[str, Any]]:
    """Runs the app knows that `experiment` created but that are not linked to it (the `status` op's
    filter reads the links; a run submitted outside `tix run` has only its own experiment field)."""
    runs: dict[str, dict[str, Any]] = getattr(app, "runs", {})
    return [r for r in runs.values() if r.get("experiment") == experiment and r["id"] not in known]


class DagTable(DataTable[Any]):
    """The grid of nodes; enter on a node opens its run (shown in the footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "open run")]


class DagScreen(Screen[None]):
    """One experiment's runs by stage, each with its state and what it waits for and why."""

    DEFAULT_CSS = """
    DagScreen #dag-head { height: auto; padding: 0 1; background: $boost; }
    DagScreen #dag { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "back"),
        Binding("f", "flips", "flips"),
        Binding("r", "refresh", "reload"),
    ]
    AUTO_FOCUS = "#dag"
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("arrows", "move between runs (columns are stages where the terminal is wide)"),
        ("enter", "open the run's detail"),
        ("f (on an eval run)", "the model's flips: items gained and lost against its base"))

    def __init__(self, source: Source, experiment: str) -> None:
        super().__init__()
        self.source = source
        self.experiment = experiment
        self.runs: dict[str, dict[str, Any]] = {}
        """The experiment's runs by id, then runs they need from elsewhere (shown, not laid out)."""
        self.members: list[str] = []
        """Ids of the experiment's own runs (the nodes)."""
        self.cells: dict[tuple[int, int], str] = {}
        """Table coordinate -> run id of the node drawn there."""
        self.columns = 0
        """Stage columns of the current layout (1: stacked)."""
        self.loaded = 0
        """Completed loads (tests wait on it)."""

    def compose(self) -> ComposeResult:
        yield Chrome()
        yield Static(Text(visible(f"{self.experiment}: loading runs…")), id="dag-head")
        yield DagTable(id="dag", cursor_type="cell", show_row_labels=False)
        yield FitFooter()

    def on_mount(self) -> None:
        getattr(self.app, "listen", lambda _w: None)(self)
        self.load()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.online:
            self.load()

    def on_runs_loaded(self, _message: RunsLoaded) -> None:
        self.load()

    def on_runs_pushed(self, message: RunsPushed) -> None:
        """Update the nodes pushed; a new run of this experiment (a launch, a resume) reloads."""
        if any(r.get("experiment") == self.experiment and r["id"] not in self.runs for r in message.runs):
            self.load()
            return
        changed = [r for r in message.runs if r["id"] in self.runs]
        for run in changed:
            self.runs[run["id"]] = run
        if changed and self.loaded:
            self.show()

    @work(exclusive=True, group="dag-load")
    async def load(self) -> None:
        try:
            linked = await self.source.request("status", experiment=self.experiment)
            runs = [*linked, *created_by(self.app, self.experiment, {r["id"] for r in linked})]
            outside = sorted({d for r in runs for d in r.get("deps") or []} - {r["id"] for r in runs})
            extra = await self.source.request("status", ids=outside) if outside else []
        except SourceError as exc:
            head = Text(visible(f"cannot load the runs of {self.experiment}: {exc}"), style="red")
            self.query_one("#dag-head", Static).update(head)
            return
        self.members = [r["id"] for r in runs]
        self.runs = {r["id"]: r for r in [*extra, *runs]}
        self.show()
        self.loaded += 1

    def on_resize(self) -> None:
        if self.loaded:
            self.show()

    # -- layout ---------------------------------------------------------------------------------
    def show(self) -> None:
        """Lay the nodes out for the current width, keeping the cursor on the same run."""
        members = [self.runs[i] for i in self.members if i in self.runs]
        head = summary_text(self.experiment, members)
        if not members:
            head.append("\nno runs yet (F5 in the experiments editor launches them)", style="yellow")
        self.query_one("#dag-head", Static).update(head)
        table = self.query_one("#dag", DataTable)
        keep = self.selected_id()
        table.clear(columns=True)
        self.cells = {}
        stages = by_stage(members)
        width = max(20, (self.size.width or 80) - 2)
        per_column = width // max(1, len(stages)) - 2  # a cell's padding takes a cell each side
        if len(stages) > 1 and per_column >= MIN_COLUMN:
            self._side_by_side(table, stages, per_column)
        else:
            self._stacked(table, stages, width - 2)
        at = next((c for c, run_id in self.cells.items() if run_id == keep), None)
        at = at or min(self.cells, default=None)
        if at is not None:
            table.move_cursor(row=at[0], column=at[1])

    def _side_by_side(self, table: DataTable[Any], stages: dict[str, list[dict[str, Any]]],
                      width: int) -> None:
        """A column per stage, left to right as the work flows; row i holds each stage's i-th run."""
        self.columns = len(stages)
        for name, runs in stages.items():
            table.add_column(Text(f"{name} ({len(runs)}) →" if name != list(stages)[-1] else
                                  f"{name} ({len(runs)})", style="bold"), width=width)
        console = self.app.console
        for row in range(max(len(r) for r in stages.values())):
            cells = []
            for col, runs in enumerate(stages.values()):
                if row < len(runs):
                    cells.append(node_lines(runs[row], self.runs, width, console))
                    self.cells[(row, col)] = runs[row]["id"]
                else:
                    cells.append(Text(""))
            table.add_row(*cells, height=max(len(c.plain.split("\n")) for c in cells) + 1)

    def _stacked(self, table: DataTable[Any], stages: dict[str, list[dict[str, Any]]], width: int) -> None:
        """One column: a rule per stage, then its runs (a narrow terminal scrolls down the DAG)."""
        self.columns = 1
        table.add_column(Text("stages: " + " → ".join(stages), style="bold"), width=width)
        console = self.app.console
        row = 0
        for name, runs in stages.items():
            rule = f"── {name} ({len(runs)}) "
            table.add_row(Text(rule + "─" * max(0, width - len(rule)), style="bold"), height=1)
            row += 1
            for run in runs:
                text = node_lines(run, self.runs, width, console)
                table.add_row(text, height=len(text.plain.split("\n")) + 1)
                self.cells[(row, 0)] = run["id"]
                row += 1

    # -- actions --------------------------------------------------------------------------------
    def selected_id(self) -> str | None:
        table = self.query_one("#dag", DataTable)
        cursor = table.cursor_coordinate
        return self.cells.get((cursor.row, cursor.column))

    @on(DataTable.CellSelected, "#dag")
    def _chosen(self, event: DataTable.CellSelected) -> None:
        run_id = self.cells.get((event.coordinate.row, event.coordinate.column))
        if run_id is not None:
            self.app.open_run(run_id)  # type: ignore[attr-defined]

    def select(self, run_id: str) -> bool:
        """Put the cursor on `run_id`'s node (tests, and a caller that opens the DAG at a run)."""
        at = next((c for c, found in self.cells.items() if found == run_id), None)
        if at is not None:
            self.query_one("#dag", DataTable).cursor_coordinate = Coordinate(*at)
        return at is not None

    def action_flips(self) -> None:
        """f on an eval or score run of a tuned model: its items gained and lost against its base
        (tui/screens/flips.py); the daemon says why for a base model."""
        from tui.screens.flips import FlipsScreen

        run = self.runs.get(self.selected_id() or "")
        if run is None or stage(run) != "eval" or not run.get("name"):
            self.notify("f compares a tuned model's items with its base: select an eval run",
                        severity="warning")
            return
        self.app.push_screen(FlipsScreen(self.source, self.experiment, str(run["name"])))

    def action_back(self) -> None:
        self.dismiss(None)

    def action_refresh(self) -> None:
        self.load()


def experiment_of(screen: Screen[Any]) -> str | None:
    """The experiment a screen has selected, for `D`: the experiments list asks the screen
    (`dag_experiment`), the runs list gives its highlighted run (`selected_run`), whose experiment
    is the one that created it; None where nothing is selected."""
    if callable(chosen := getattr(screen, "dag_experiment", None)):
        return chosen()
    if callable(selected := getattr(screen, "selected_run", None)):
        run = selected()
        return str(run["experiment"]) if run and run.get("experiment") else None
    return None
