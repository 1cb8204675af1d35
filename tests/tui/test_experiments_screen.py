"""The experiments screen against a real daemon: list, open, validate as `tix check` does, create
from the template, save, and launch as `tix run` does (the runs stay queued behind a probe run
that holds the only CPU slot, so nothing heavy starts)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static, TextArea

from engine.client.connection import Client
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import ROOT, wait_until
from tests.tui.screen_support import HostApp, import_scores, settle, until, workspace, write_scores_csv
from tui.screens.experiments import (
    EXAMPLES,
    ConfirmScreen,
    ExperimentsScreen,
    NewExperimentScreen,
    template_text,
)

BROKEN = """name: broken
base: {model: tiny-lab}
modles:
  sft: {train: {method: sft, data: lab/math-train}}
eval: {suite: lab, generation: {temperature: hot}}
"""

SNAPSHOT_FILE = """# A small experiment (the snapshot's file: fixed, unlike the tiny-lab template)
name: mini
base: {model: tiny-lab, seed: 0}
models:
  sft: {train: {method: sft, data: lab/math-train, args: {max_steps: 20}}}
eval: {suite: lab}
ti: {variant: v2, sigma: pooled}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Path]]:
    """A daemon with one imported experiment, and a folder with a valid and a broken file."""
    tmp = tmp_path_factory.mktemp("experiments")
    folder = tmp / "files"
    folder.mkdir()
    (folder / "mini.yaml").write_text(template_text("mini"))
    (folder / "broken.yaml").write_text(BROKEN)
    with workspace(tmp / "home") as ws:
        ws.ensure()
        with Client(ws) as client:
            import_scores(client, write_scores_csv(tmp / "scores.csv"))
        yield ws, folder


def drive(ws: Workspace, folders: list[Path], scenario: Callable[[Pilot[Any]], Awaitable[None]],
          size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        app = HostApp(ws, lambda source: ExperimentsScreen(source, folders))
        async with app.run_test(size=size) as pilot:
            screen = await until(pilot, lambda: isinstance(pilot.app.screen, ExperimentsScreen) and pilot.app.screen)
            await until(pilot, lambda: screen.entries)
            await scenario(pilot)
    asyncio.run(main())


def screen_of(pilot: Pilot[Any]) -> ExperimentsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ExperimentsScreen)
    return screen


async def open_entry(pilot: Pilot[Any], name: str) -> ExperimentsScreen:
    """Highlight `name` in the list and press enter; wait until its file is checked."""
    screen = screen_of(pilot)
    options = screen.query_one("#exp-list", OptionList)
    options.focus()
    options.highlighted = [e.name for e in screen.entries].index(name)
    await pilot.press("enter")
    await until(pilot, lambda: screen.path is not None and screen.path.stem == name and screen.errors is not None)
    return screen


def check_lines(path: Path) -> list[str]:
    """What `tix check PATH` prints for an invalid file (stderr, one line per problem)."""
    result = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    return result.stderr.splitlines()


def shown_check(screen: ExperimentsScreen) -> str:
    return str(screen.query_one("#exp-check", Static).render())


def test_list_open_and_validate_like_tix_check(home: tuple[Workspace, Path]) -> None:
    ws, folder = home
    expected = check_lines(folder / "broken.yaml")
    assert any("modles" in line and "did you mean 'models'" in line for line in expected)

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = screen_of(pilot)
        labels = [str(o.prompt) for o in screen.query_one(OptionList).options]
        assert labels == ["○ broken", "◇ lab imported", "○ mini"]
        await open_entry(pilot, "broken")
        assert screen.errors == expected and shown_check(screen) == "\n".join(expected)
        await open_entry(pilot, "mini")
        assert screen.errors == [] and shown_check(screen).startswith("✓ valid")
        editor = screen.query_one("#exp-editor", TextArea)
        editor.text = editor.text.replace("  seed: 0", "  seed: zero")  # a typo, as typed
        line = editor.text.splitlines().index("  seed: zero") + 1
        await until(pilot, lambda: screen.errors)
        assert screen.errors[0].startswith(f"{folder / 'mini.yaml'}:{line}: base.seed: ")
        assert screen.errors[0] in shown_check(screen) and "[modified]" in str(screen.query_one("#exp-title").render())
        options = screen.query_one(OptionList)
        options.focus()
        options.highlighted = 0
        await pilot.press("enter")  # unsaved changes: a warning, the file stays open
        await pilot.pause(0.2)
        assert screen.path == folder / "mini.yaml" and screen.dirty
        await pilot.press("enter")  # again: discard and open
        await until(pilot, lambda: screen.path == folder / "broken.yaml")
        options.highlighted = 1
        await pilot.press("enter")  # imported: nothing to open
        await pilot.pause(0.2)
        assert screen.path == folder / "broken.yaml"

    drive(ws, [folder], scenario)
    assert (folder / "mini.yaml").read_text() == template_text("mini")  # never saved


def test_create_from_template_and_save(home: tuple[Workspace, Path]) -> None:
    ws, folder = home
    target = ws.home / "experiments" / "mylab.yaml"

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = screen_of(pilot)
        await pilot.press("ctrl+n")
        dialog = await until(pilot, lambda: isinstance(pilot.app.screen, NewExperimentScreen) and pilot.app.screen)
        await pilot.press(*"mylab")
        await until(pilot, lambda: dialog.query_one("#new-path", Input).value == str(target))
        await pilot.press("enter")
        await until(pilot, lambda: pilot.app.screen is screen and screen.path == target and screen.errors == [])
        assert target.read_text() == template_text("mylab") and "name: mylab\n" in target.read_text()
        await until(pilot, lambda: "mylab" in [e.name for e in screen.entries])
        editor = screen.query_one("#exp-editor", TextArea)
        editor.text = editor.text.replace("seed: 0", "seed: 1")
        assert screen.dirty
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not screen.dirty)
        await pilot.press("ctrl+n")
        dialog = await until(pilot, lambda: isinstance(pilot.app.screen, NewExperimentScreen) and pilot.app.screen)
        await pilot.press(*"mylab", "enter")  # exists already: refused in the dialog
        await until(pilot, lambda: "exists already" in str(dialog.query_one("#new-error").render()))
        await pilot.press("escape")

    drive(ws, [folder, ws.home / "experiments"], scenario)
    assert "seed: 1" in target.read_text()


def test_launch_queues_runs_as_tix_run_does(home: tuple[Workspace, Path]) -> None:
    ws, _ = home
    path = ws.home / "experiments" / "launch.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(template_text("launch"))
    blocker = make_run("probe", "blocker", "blocker", {"label": "blocker", "steps": 600, "sleep": 0.1}, [])
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[blocker])
        wait_until(lambda: client.request("run", id=blocker["id"])["state"] == "running", 30)

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = await open_entry(pilot, "launch")
        await pilot.press("f5")
        confirm = await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen) and pilot.app.screen)
        question = str(confirm.question)
        assert question.startswith("Launch launch: 8 runs, 8 to run\n")
        # a box with CPU slots only (TIX_GPUS=0): runs that ask for a GPU take a CPU slot (issue 25.5)
        assert "work: 1 build (CPU), 2 train (CPU), 3 eval (CPU), 2 analyse (CPU)" in question
        assert "this box has no GPUs: runs that ask for one take a CPU slot (1 here)" in question
        await pilot.press("y")
        await until(pilot, lambda: screen.launched)
        await pilot.press("f5")  # again: everything is known to the daemon now
        confirm = await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen) and pilot.app.screen)
        assert str(confirm.question).startswith("Launch launch: 8 runs, 0 to run, reused: 8 queued\n")
        assert "work: nothing new" in str(confirm.question)
        await pilot.press("n")
        output = str(screen.query_one("#exp-output", Static).render())
        assert output.startswith(f"launched launch: {len(screen.launched)} runs, 0 reused")
        assert all(f"{item['id']} queued" in output for item in screen.launched)
        await until(pilot, lambda: any(e.name == "launch" and e.launched for e in screen.entries))

    try:
        drive(ws, [ws.home / "experiments"], scenario)
        run = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(path)], capture_output=True,
                             text=True, cwd=ROOT, timeout=60)
        assert run.returncode == 0, run.stderr
        again = [line.split() for line in run.stdout.splitlines()]
        with Client(ws) as client:
            states = {r["id"]: r["state"] for r in client.request("status", experiment="launch")}
        assert len(again) == len(states) >= 6  # build, train x2, eval x3, analyse x2
        assert all(words[1:] == ["queued", "(reused)"] and states[words[0]] == "queued" for words in again)
    finally:
        with Client(ws) as client:
            client.request("cancel", target="launch")
            client.request("cancel", target=blocker["id"])


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_experiments_snapshot(ws: Workspace, tmp_path: Path, snap_compare: Any, size: tuple[int, int],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # files are named relative to the cwd: `files/mini.yaml` on every run
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "mini.yaml").write_text(SNAPSHOT_FILE)

    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, ExperimentsScreen) and pilot.app.screen.entries)
        screen = await open_entry(pilot, "mini")
        screen.query_one(TextArea).cursor_blink = False
        screen.query_one(TextArea).text = SNAPSHOT_FILE.replace("seed: 0", "seed: zero")
        await until(pilot, lambda: screen.errors)

    app = HostApp(ws, lambda source: ExperimentsScreen(source, [folder]))
    assert snap_compare(app, terminal_size=size, run_before=settle(ready))


def test_a_built_in_example_opens_as_a_copy_in_tix_home(home: tuple[Workspace, Path]) -> None:
    """Saving an opened example must never change the installation: it is copied first."""
    ws, _folder = home
    shipped = EXAMPLES / "tiny-lab.yaml"
    before = shipped.read_bytes()
    copy = ws.home / "experiments" / "tiny-lab.yaml"

    async def scenario(pilot: Pilot[Any]) -> None:
        screen = screen_of(pilot)
        assert "○ tiny-lab example" in [str(o.prompt) for o in screen.query_one(OptionList).options]
        await open_entry(pilot, "tiny-lab")
        assert screen.path == copy.resolve() and screen.origin == shipped
        assert "copy of example tiny-lab.yaml" in str(screen.query_one("#exp-title").render())
        editor = screen.query_one("#exp-editor", TextArea)
        editor.text = editor.text.replace("max_steps: 150", "max_steps: 151")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not screen.dirty)

    drive(ws, [EXAMPLES], scenario)
    assert shipped.read_bytes() == before
    assert "max_steps: 151" in copy.read_text()
    copy.unlink()
