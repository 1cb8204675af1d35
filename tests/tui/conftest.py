"""TUI test fixtures: a workspace of recorded runs (tests/tui/recorded.py) served by a real daemon,
and helpers to drive the app with Textual's pilot from synchronous tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.workspace import Workspace
from tests.tui.recorded import NOW_TS, Recorded, build_workspace
from tests.tui.screen_support import until
from tui.app import TixApp


@pytest.fixture
def recorded(ws: Workspace) -> Iterator[Recorded]:
    """The recorded runs in the test's workspace; the daemon starts when the app connects."""
    rec = build_workspace(ws)
    yield rec
    rec.stop_worker()


def make_app(ws: Workspace, **kwargs: Any) -> TixApp:
    """The app with the recorded workspace's fixed clock (durations and ETAs never move)."""
    return TixApp(ws, clock=lambda: NOW_TS, **kwargs)


async def connected(pilot: Pilot[Any]) -> TixApp:
    app = pilot.app
    assert isinstance(app, TixApp)
    await asyncio.wait_for(app.connected_once.wait(), 30)
    await until(pilot, lambda: app.screen.query("RunsTable") and app.screen.query_one("RunsTable").row_count,
                what="runs shown")
    return app


def run_app(app: TixApp, scenario: Callable[[Pilot[Any]], Awaitable[None]],
            size: tuple[int, int] = (80, 24)) -> None:
    """Run `scenario` against the app headless at `size`, from a synchronous test."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)
            await app.source.close()

    asyncio.run(main())
