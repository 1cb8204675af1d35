"""Quitting never loses an edit: with an unsaved experiment buffer, q / ctrl+q / the palette ask
first (save / discard / stay), and a refused quit leaves the buffer as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList, TextArea

from tests.tui.conftest import connected, make_app, run_app
from tests.tui.recorded import Recorded
from tests.tui.screen_support import until
from tui.screens.experiments import ExperimentsScreen, template_text
from tui.widgets.quit_guard import QuitGuard

EDIT = ("seed: 0", "seed: 7")


def edited_experiment(pilot: Pilot[Any], home: Path) -> Any:
    """Open TIX_HOME/experiments/guarded.yaml in the editor, change it, and leave the editor."""

    async def go() -> ExperimentsScreen:
        await pilot.press("2")
        screen = await until(pilot, lambda: isinstance(pilot.app.screen, ExperimentsScreen) and pilot.app.screen)
        await until(pilot, lambda: any(e.name == "guarded" for e in screen.entries))
        options = screen.query_one("#exp-list", OptionList)
        options.focus()
        options.highlighted = [e.name for e in screen.entries].index("guarded")
        await pilot.press("enter")
        await until(pilot, lambda: screen.path == (home / "guarded.yaml").resolve())
        editor = screen.query_one("#exp-editor", TextArea)
        editor.text = editor.text.replace(*EDIT)
        await until(pilot, lambda: "[modified]" in str(screen.query_one("#exp-title").render()))
        await pilot.press("escape")  # out of the editor: `q` is the app's key again
        return screen

    return go()


@pytest.mark.parametrize("quit_key", ["q", "ctrl+q", "palette"])
def test_refused_quit_keeps_the_buffer_and_discard_quits(recorded: Recorded, quit_key: str) -> None:
    folder = recorded.ws.home / "experiments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guarded.yaml").write_text(template_text("guarded"))
    app = make_app(recorded.ws)

    async def press_quit(pilot: Pilot[Any]) -> None:
        if quit_key == "palette":
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            await pilot.press(*"quit")
            await pilot.pause(0.3)
            await pilot.press("enter")
        else:
            await pilot.press(quit_key)

    async def scenario(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        screen = await edited_experiment(pilot, folder)
        text = screen.editor.text
        await press_quit(pilot)
        guard = await until(pilot, lambda: isinstance(pilot.app.screen, QuitGuard) and pilot.app.screen)
        assert "guarded.yaml" in str(guard.query_one("#question").render())
        await pilot.press("escape")  # stay
        await until(pilot, lambda: pilot.app.screen is screen)
        assert not app._exit and screen.dirty and screen.editor.text == text
        await press_quit(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, QuitGuard))
        await pilot.press("d")  # discard and quit
        await until(pilot, lambda: app._exit, what="exit")

    run_app(app, scenario)
    assert (folder / "guarded.yaml").read_text() == template_text("guarded")


def test_save_and_quit_writes_the_buffer(recorded: Recorded) -> None:
    folder = recorded.ws.home / "experiments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guarded.yaml").write_text(template_text("guarded"))
    app = make_app(recorded.ws)

    async def scenario(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        await edited_experiment(pilot, folder)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(pilot.app.screen, QuitGuard))
        await pilot.press("s")
        await until(pilot, lambda: app._exit, what="exit")

    run_app(app, scenario)
    assert EDIT[1] in (folder / "guarded.yaml").read_text()


def test_quit_without_unsaved_buffers_does_not_ask(recorded: Recorded) -> None:
    app = make_app(recorded.ws)

    async def scenario(pilot: Pilot[Any]) -> None:
        await connected(pilot)
        await pilot.press("q")
        await until(pilot, lambda: app._exit, what="exit")
        assert not isinstance(pilot.app.screen, QuitGuard)

    run_app(app, scenario)
