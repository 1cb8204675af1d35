"""The experiments screen: list, open, create from a template, edit with live validation, launch.

The list joins what the daemon knows (the `experiments` table: launched experiments and imported
results) with the YAML files in `./experiments` and `TIX_HOME/experiments`. The editor validates
as you type (0.3 s after the last key, in a thread) with engine/experiments/spec.py, the code behind
`tix check`, so the messages are the same `FILE:LINE: KEY.PATH: MESSAGE (did you mean 'x'?)`
lines. Launch does what `tix run FILE` does: validate, expand into runs (engine/experiments/plan.py), submit
through the daemon, and list each run id as queued or reused. Launch saves the file first, so
the runs always match what is on disk.

Keys: enter opens the highlighted experiment; ctrl+n creates one from the tiny-lab template;
ctrl+s saves; F5 launches (after a y/n confirmation); ctrl+r reloads the list; escape leaves the
editor (tab indents there).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from tui.format import count_label, visible
from tui.messages import ConnectionChanged
from tui.source import Source, SourceError
from tui.widgets.chrome import Chrome
from tui.widgets.editor import CodeEditor
from tui.widgets.footer import FitFooter

EXAMPLES = Path(__file__).resolve().parents[2] / "experiments"
"""The built-in example files shipped with tix: opened as copies, never edited in place."""
TEMPLATE = EXAMPLES / "tiny-lab.yaml"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_LINE = re.compile(r"^name:.*$", re.MULTILINE)
FALLBACK_TEMPLATE = """name: NAME
base: {model: tiny-lab}
models:
  sft: {train: {method: sft, data: lab/math-train, args: {learning_rate: 5.0e-4, max_steps: 150}}}
eval:
  suite: lab
"""
LIST_SQL = "SELECT name, path, spec FROM experiments ORDER BY name"
VALIDATE_AFTER = 0.3
MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True)
class Entry:
    """One experiment in the list: a file, a launched experiment, or both; imported ones have no file."""

    name: str
    path: Path | None
    launched: bool
    spec: str | None = None

    def label(self) -> Text:
        if self.path is None:
            return Text.assemble(("◇ ", "magenta"), visible(self.name), (" imported", "dim"))
        mark = ("● ", "green") if self.launched else ("○ ", "dim")
        example = (" example", "dim") if is_example(self.path) else ""
        return Text.assemble(mark, visible(self.name), example)


# -- files and validation (worker threads) --------------------------------------------------------
def display_name(path: Path) -> str:
    """The path as `tix check` would be given it from here: relative under the cwd, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def experiment_files(folders: list[Path]) -> dict[Path, str]:
    """Resolved path -> experiment name (the file's `name:` line, else its stem) of every YAML file."""
    found: dict[Path, str] = {}
    for folder in folders:
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []:
            try:
                match = NAME_LINE.search(path.read_text(errors="replace"))
            except OSError:
                continue
            name = match.group(0).split(":", 1)[1].strip().strip("'\"") if match else ""
            found[path.resolve()] = name or path.stem
    return found


def merge_entries(rows: list[dict[str, Any]], files: dict[Path, str]) -> list[Entry]:
    """Daemon rows and files as one list, a launched file once, sorted by name."""
    entries: dict[Any, Entry] = {}
    for r in rows:
        path = Path(r["path"]).resolve() if r["path"] else None
        entries[path or ("imported", r["name"])] = Entry(r["name"], path, True, r["spec"])
    for path, name in files.items():
        if path not in entries:
            entries[path] = Entry(name, path, False)
    return sorted(entries.values(), key=lambda e: (e.name, str(e.path)))


def check_text(text: str, filename: str) -> list[str]:
    """`tix check`'s lines for this text as file `filename` (empty when valid)."""
    from engine.experiments.spec import SpecErrors, load_experiment_text

    try:
        load_experiment_text(text, filename)
    except SpecErrors as exc:
        return [str(e) for e in exc.errors]
    return []


def plan_text(text: str, path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The experiment record and runs `tix run PATH` submits, for this text saved at `path`."""
    from engine.experiments.plan import content_hash, plan_experiment
    from engine.experiments.spec import load_experiment_text

    exp = load_experiment_text(text, str(path.resolve()))
    record = {"name": exp.name, "path": str(exp.path), "spec": exp.text, "spec_hash": content_hash(exp.text)}
    return record, plan_experiment(exp)


def is_example(path: Path) -> bool:
    return path.resolve().parent == EXAMPLES


def example_copy(example: Path, folder: Path) -> tuple[Path, str, str]:
    """The user's copy of a built-in example in `folder` (made now unless it exists), its text
    and what happened: saving must never change the installation."""
    target = folder / example.name
    if target.exists():
        return target.resolve(), target.read_text(), f"opened your copy {target} of the built-in example"
    text = example.read_text()
    write_text(target, text)
    return target.resolve(), text, f"built-in example copied to {target}: edits and saves go there"


def launch_question(record: dict[str, Any], runs: list[dict[str, Any]], states: dict[str, str],
                    saving: bool, box: dict[str, Any] | None = None) -> Text:
    """What F5 is about to do: how many runs are new, how many are reused (and in what state),
    and the work the new ones ask for, by kind with their GPUs, before the user says yes."""
    fresh = [r for r in runs if states.get(r["id"], "failed") in ("failed", "cancelled")]
    fresh_ids = {r["id"] for r in fresh}
    reused: dict[str, int] = {}
    for r in runs:
        if r["id"] not in fresh_ids:
            reused[states[r["id"]]] = reused.get(states[r["id"]], 0) + 1
    again = sum(1 for r in fresh if r["id"] in states)
    text = Text(f"Launch {visible(record['name'])}: {count_label(len(runs), 'run')}, ", style="bold")
    text.append(f"{len(fresh)} to run" + (f" ({again} failed or cancelled, queued again)" if again else ""))
    if reused:
        text.append(", reused: " + ", ".join(f"{n} {state}" for state, n in sorted(reused.items())))
    text.append("\nwork: " + visible(work_summary(fresh, box) or "nothing new"))
    if box_note := cpu_box_note(fresh, box):
        text.append("\n" + box_note, style="dim")
    if saving:
        text.append("\n(saves the file first)")
    return text


def work_summary(runs: list[dict[str, Any]], box: dict[str, Any] | None = None) -> str:
    """`1 build (CPU), 2 train x 1 GPU, 3 eval x 1 GPU`: kinds in pipeline order with their GPUs.
    `box` is the daemon's `ping`: on a box without GPUs (local executor) every run takes a CPU
    slot, whatever it asks for, and says so."""
    groups: dict[tuple[str, int], int] = {}
    for r in runs:
        key = (r["kind"], gpus_used(r, box))
        groups[key] = groups.get(key, 0) + 1
    order = {kind: i for i, kind in enumerate(("build", "datagen", "train", "eval", "analyse"))}
    parts = []
    for (kind, gpus), n in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        parts.append(f"{n} {kind}" + (f" x {gpus} GPU{'s' if gpus > 1 else ''}" if gpus else " (CPU)"))
    return ", ".join(parts)


def cpu_only(box: dict[str, Any] | None) -> bool:
    """Whether the daemon runs everything on CPU slots (no GPUs here, and no cluster to ask)."""
    return box is not None and not box.get("gpus") and box.get("executor", "local") != "slurm"


def gpus_used(run: dict[str, Any], box: dict[str, Any] | None) -> int:
    return 0 if cpu_only(box) else int(run.get("gpus_needed") or 0)


def cpu_box_note(runs: list[dict[str, Any]], box: dict[str, Any] | None) -> str:
    """On a box without GPUs, why runs that ask for GPUs show as CPU work."""
    if not cpu_only(box) or not any(r.get("gpus_needed") for r in runs):
        return ""
    slots = box.get("cpu_slots") if box else None
    return f"this box has no GPUs: runs that ask for one take a CPU slot ({slots or '?'} here)"


def template_text(name: str) -> str:
    """The tiny-lab experiment (its comments explain every section) renamed to `name`."""
    try:
        text = TEMPLATE.read_text()
    except OSError:
        text = FALLBACK_TEMPLATE
    return NAME_LINE.sub(f"name: {name}", text, count=1)


def write_text(path: Path, text: str) -> None:
    """Create the folder when needed; write through a temporary file so a crash keeps the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# -- dialogs ---------------------------------------------------------------------------------------
class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y or enter confirms, n or escape declines."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 64; max-width: 100%; height: auto; border: thick $warning;
                               background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("y,enter", "answer(True)", "yes"),
                                             Binding("n,escape", "answer(False)", "no")]

    def __init__(self, question: Text | str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            yield Label("[b]y[/b] launch · [b]n[/b] cancel")
        yield FitFooter()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class NewExperimentScreen(ModalScreen[Path | None]):
    """Name and path of a new experiment; the path follows the name until edited."""

    DEFAULT_CSS = """
    NewExperimentScreen { align: center middle; }
    NewExperimentScreen > Vertical { width: 72; max-width: 100%; height: auto; border: thick $primary;
                                     background: $surface; padding: 0 1; }
    NewExperimentScreen #new-error { color: $error; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self._auto_path = True

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]New experiment[/b] from the tiny-lab template")
            yield Label("name:")
            yield Input(placeholder="my-experiment", id="new-name")
            yield Label("file (enter creates it):")
            yield Input(str(self.folder / "NAME.yaml"), id="new-path")
            yield Label("", id="new-error", markup=False)
        yield FitFooter()

    @on(Input.Changed, "#new-name")
    def _name_changed(self, event: Input.Changed) -> None:
        if self._auto_path:
            name = event.value.strip() or "NAME"
            self.query_one("#new-path", Input).value = str(self.folder / f"{name}.yaml")

    @on(Input.Changed, "#new-path")
    def _path_changed(self, event: Input.Changed) -> None:
        name = self.query_one("#new-name", Input).value.strip() or "NAME"
        self._auto_path = event.value == str(self.folder / f"{name}.yaml")

    @on(Input.Submitted)
    def _submit(self) -> None:
        name = self.query_one("#new-name", Input).value.strip()
        path = Path(self.query_one("#new-path", Input).value.strip()).expanduser()
        problem = (f"bad name {name!r}: letters, digits, '.', '_' and '-'" if not NAME.fullmatch(name)
                   else f"{path} exists already" if path.exists() else None)
        if problem:
            self.query_one("#new-error", Label).update(problem)
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- the screen ------------------------------------------------------------------------------------
class ExperimentsScreen(Screen[None]):
    """The list on the left; the editor, its validation and the last launch on the right."""

    DEFAULT_CSS = """
    ExperimentsScreen #exp-list { width: 24; height: 1fr; border-right: solid $primary-darken-2; }
    ExperimentsScreen #exp-title { height: 1; padding: 0 1; background: $boost; }
    ExperimentsScreen #exp-editor { height: 1fr; }
    ExperimentsScreen #exp-check { height: auto; max-height: 6; padding: 0 1; }
    ExperimentsScreen #exp-output { height: auto; max-height: 7; padding: 0 1; }
    ExperimentsScreen #exp-output.-empty { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new", "new"),
        Binding("ctrl+s", "save", "save"),
        Binding("f5", "launch", "launch"),
        Binding("ctrl+r", "refresh", "reload list"),
    ]
    AUTO_FOCUS = "#exp-list"
    EXTRA_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("enter (list)", "open the experiment"),
        ("escape", "leave the editor (tab indents in it)"),
        ("y / n", "confirm or cancel a launch"),
        ("D (list)", "the highlighted experiment's runs as a DAG"))

    def __init__(self, source: Source, folders: list[Path] | None = None) -> None:
        super().__init__()
        self.source = source
        self.folders = folders if folders is not None else [Path.cwd() / "experiments",
                                                             source.ws.home / "experiments"]
        """Where experiment files are looked for (new ones go to TIX_HOME/experiments)."""
        self.entries: list[Entry] = []
        self.path: Path | None = None
        """The open file (None: nothing open)."""
        self.saved_text = ""
        self.errors: list[str] | None = None
        """The open text's validation lines (None: not checked yet)."""
        self.launched: list[dict[str, Any]] = []
        self._validate_timer: Timer | None = None
        self._generation = 0
        self._refused_text: str | None = None  # the text F5 last refused to launch
        self._discard_for: Path | None = None
        self.origin: Path | None = None
        """The built-in example the open file was copied from (shown in the header)."""

    @property
    def editor(self) -> TextArea:
        return self.query_one("#exp-editor", TextArea)

    @property
    def dirty(self) -> bool:
        return self.path is not None and self.editor.text != self.saved_text

    def compose(self) -> ComposeResult:
        yield Chrome()
        with Horizontal():
            yield OptionList(id="exp-list")
            with Vertical():
                yield Static("enter opens an experiment · ctrl+n creates one", id="exp-title")
                yield CodeEditor.code_editor("", language="yaml", id="exp-editor", read_only=True,
                                           placeholder="the experiment opens here")
                yield Static("", id="exp-check")
                yield Static("", id="exp-output", classes="-empty")
        yield FitFooter()

    def on_mount(self) -> None:
        getattr(self.app, "listen", lambda _w: None)(self)
        getattr(self.app, "keep_buffers", lambda _w: None)(self)
        self.load_list()

    def on_screen_resume(self) -> None:
        self.load_list()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.online:
            self.load_list()

    def action_refresh(self) -> None:
        self.load_list()

    # -- the list ----------------------------------------------------------------------------------
    @work(exclusive=True, group="exp-list")
    async def load_list(self, select: Path | None = None) -> None:
        try:
            result = await self.source.request("sql", query=LIST_SQL, max_rows=10_000)
            rows = [dict(zip(result["columns"], r, strict=True)) for r in result["rows"]]
        except SourceError as exc:
            rows = []
            self.notify(f"cannot list launched experiments: {exc}", severity="warning")
        files = await asyncio.to_thread(experiment_files, self.folders)
        self.entries = merge_entries(rows, files)
        options = self.query_one("#exp-list", OptionList)
        options.clear_options()
        options.add_options([Option(e.label()) for e in self.entries])  # Text: literal
        wanted = select or self.path
        at = next((i for i, e in enumerate(self.entries) if e.path == wanted), 0 if self.entries else None)
        options.highlighted = at

    def dag_experiment(self) -> str | None:
        """The highlighted experiment, for D (its runs as a DAG: tui/screens/dag.py)."""
        at = self.query_one("#exp-list", OptionList).highlighted
        return self.entries[at].name if at is not None and at < len(self.entries) else None

    @on(OptionList.OptionSelected, "#exp-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.open(self.entries[event.option_index])

    def open(self, entry: Entry) -> None:
        if entry.path is None:
            self.notify(f"{entry.name} holds imported results: there is no experiment file to edit "
                        "(see the TI view)", severity="warning")
            return
        if self.dirty and entry.path != self.path and self._discard_for != entry.path:
            self._discard_for = entry.path
            self.notify(f"unsaved changes in {display_name(self.path or entry.path)}: ctrl+s saves them, "
                        "enter again discards them", severity="warning")
            return
        self._discard_for = None
        self.read_entry(entry)

    @work(exclusive=True, group="exp-open")
    async def read_entry(self, entry: Entry) -> None:
        assert entry.path is not None
        if is_example(entry.path):
            await self.open_example(entry.path)
            return
        try:
            text = await asyncio.to_thread(entry.path.read_text)
            note = None
        except OSError as exc:
            if entry.spec is None:
                self.notify(f"cannot read {entry.path}: {exc}", severity="error")
                return
            text, note = entry.spec, "the file is gone: this is the spec stored at launch (ctrl+s saves it)"
        self.origin = None
        self.show_file(entry.path, text, saved=note is None)
        if note:
            self.notify(note, severity="warning")

    async def open_example(self, example: Path) -> None:
        """A built-in example opens as the user's copy in TIX_HOME/experiments (the header says so)."""
        try:
            folder = self.source.ws.home / "experiments"
            path, text, note = await asyncio.to_thread(example_copy, example, folder)
        except OSError as exc:
            self.notify(f"cannot copy the example {example}: {exc}", severity="error")
            return
        self.origin = example
        self.show_file(path, text)
        self.load_list(select=path)
        self.notify(note)

    def show_file(self, path: Path, text: str, saved: bool = True) -> None:
        self.path = path
        self.saved_text = text if saved else ""
        self.errors = None
        editor = self.editor
        editor.read_only = False
        editor.load_text(text)
        editor.focus()
        self._title()
        self.validate_now()

    def _title(self) -> None:
        if self.path is None:
            return
        mark = Text(" [modified]", style="yellow") if self.dirty else Text("")
        origin = Text(f"  copy of example {self.origin.name}", style="dim") if self.origin else Text("")
        title = Text.assemble((visible(display_name(self.path)), "bold"), mark, origin)
        self.query_one("#exp-title", Static).update(title)

    # -- validation --------------------------------------------------------------------------------
    @on(TextArea.Changed, "#exp-editor")
    def _edited(self) -> None:
        if self.path is None:
            return
        self._title()
        if self._validate_timer is not None:
            self._validate_timer.stop()
        self._validate_timer = self.set_timer(VALIDATE_AFTER, self.validate_now)

    def validate_now(self) -> None:
        if self.path is not None:
            self._generation += 1
            self.validate(self.editor.text, display_name(self.path), self._generation)

    @work(thread=True, exclusive=True, group="exp-validate")
    def validate(self, text: str, filename: str, generation: int) -> None:
        errors = check_text(text, filename)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._validated, errors, generation)

    def _validated(self, errors: list[str], generation: int, launching: bool = False) -> None:
        """Show the check's lines under the editor; `launching`: F5 was refused for them, which
        the first line says (a toast would sit over the very lines it is about)."""
        if generation != self._generation or not self.is_attached:
            return  # the text changed since (a newer check is on its way), or the screen is gone
        self.errors = errors
        # A re-check of the text F5 refused (a typing pause's timer firing after F5) keeps saying so.
        launching = launching or (self._refused_text is not None and self._refused_text == self.editor.text)
        try:
            check = self.query_one("#exp-check", Static)
        except NoMatches:  # the app is shutting down
            return
        if not errors:
            check.update(Text("✓ valid (same checks as `tix check`)", style="green"))
            return
        shown = [Text(visible(e, lines=True), style="red") for e in errors[:MAX_ERRORS_SHOWN]]
        if launching:
            what = "this problem" if len(errors) == 1 else f"these {len(errors)} problems"
            shown.insert(0, Text(f"F5: not launched; fix {what} first", style="bold red"))
        if len(errors) > MAX_ERRORS_SHOWN:
            shown.append(Text(f"… and {len(errors) - MAX_ERRORS_SHOWN} more", style="red"))
        check.update(Text("\n").join(shown))

    # -- save and create ---------------------------------------------------------------------------
    def unsaved(self) -> list[str]:
        """The open file when it has unsaved edits (the app asks before quitting)."""
        return [display_name(self.path)] if self.path is not None and self.dirty else []

    async def save_all(self) -> bool:
        """Save the open file now (quitting with `save`); False, with a toast, when it cannot be."""
        if self.path is None or not self.dirty:
            return True
        return await self.save(self.path, self.editor.text).wait() is True

    def action_save(self) -> None:
        if self.path is not None:
            self.save(self.path, self.editor.text)

    @work(exclusive=True, group="exp-save")
    async def save(self, path: Path, text: str) -> bool:
        try:
            await asyncio.to_thread(write_text, path, text)
        except OSError as exc:
            self.notify(f"cannot save {path}: {exc}", severity="error")
            return False
        if path == self.path:
            self.saved_text = text
            self._title()
        self.notify(f"saved {display_name(path)}")
        return True

    def action_new(self) -> None:
        self.app.push_screen(NewExperimentScreen(self.source.ws.home / "experiments"), self._create)

    def _create(self, path: Path | None) -> None:
        if path is not None:
            self.create(path)

    @work(exclusive=True, group="exp-save")
    async def create(self, path: Path) -> None:
        text = template_text(path.stem)
        try:
            await asyncio.to_thread(write_text, path, text)
        except OSError as exc:
            self.notify(f"cannot create {path}: {exc}", severity="error")
            return
        self.origin = None
        self.show_file(path.resolve(), text)
        self.load_list(select=path.resolve())
        self.notify(f"created {display_name(path)} from the tiny-lab template")

    # -- launch ------------------------------------------------------------------------------------
    def action_launch(self) -> None:
        if self.path is None:
            self.notify("open an experiment first", severity="warning")
            return
        self.launch(self.path, self.editor.text)

    @work(exclusive=True, group="exp-launch")
    async def launch(self, path: Path, text: str) -> None:
        """Validate, plan, confirm, save, submit: `tix run PATH` with a question first."""
        errors = await asyncio.to_thread(check_text, text, display_name(path))
        if errors:
            self._generation += 1
            self._refused_text = text
            self._validated(errors, self._generation, launching=True)  # said there, not in a toast over it
            return
        record, runs = await asyncio.to_thread(plan_text, text, path)
        states = await self.known_states([r["id"] for r in runs])
        box = await self.box()
        question = launch_question(record, runs, states, text != self.saved_text, box)
        if not await self.app.push_screen_wait(ConfirmScreen(question)):
            return
        if text != self.saved_text:
            try:
                await asyncio.to_thread(write_text, path, text)
            except OSError as exc:
                self.notify(f"cannot save {path}: {exc}", severity="error")
                return
            self.saved_text = text
            self._title()
        try:
            queued = await self.source.request("submit", experiment=record, runs=runs)
        except SourceError as exc:
            self.notify(f"launch failed: {exc}", severity="error")
            return
        self.show_launch(record["name"], queued)
        self.load_list()

    async def box(self) -> dict[str, Any] | None:
        """The daemon's `ping` (GPUs, CPU slots, executor): what the runs will run on."""
        try:
            return await self.source.request("ping")
        except SourceError:
            return None

    async def known_states(self, ids: list[str]) -> dict[str, str]:
        """The state of each planned run the daemon already has (identical runs share an id)."""
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        try:
            query = f"SELECT id, state FROM runs WHERE id IN ({marks})"
            result = await self.source.request("sql", query=query, params=ids, max_rows=len(ids))
        except SourceError:
            return {}
        return {row[0]: row[1] for row in result["rows"]}

    def show_launch(self, name: str, queued: list[dict[str, Any]]) -> None:
        """What `tix run` prints (each run id, its state, reused or not), compacted to fit 80x24."""
        self.launched = queued
        reused = sum(1 for item in queued if item["reused"])
        head = Text(f"launched {visible(name)}: {len(queued)} runs, {reused} reused\n", style="bold")
        items = [Text.assemble(visible(item["id"]), " ",
                               (visible(item["state"]) + (" (reused)" if item["reused"] else ""),
                                "dim" if item["reused"] else "green"))
                 for item in queued]
        output = self.query_one("#exp-output", Static)
        output.update(head + Text(" · ").join(items))
        output.remove_class("-empty")
