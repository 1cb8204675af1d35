"""The daemon going away and coming back while the app runs; and the TUI process staying light
(it never imports torch, transformers, trl, vllm or duckdb)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

from textual.pilot import Pilot

from engine.client.connection import Client, start_daemon
from tests.conftest import ROOT, wait_until
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import Recorded
from tui.screentext import screen_text
from tui.widgets.chrome import BANNER_TEXT, STOPPED_TEXT, Chrome


def banner_shown(pilot: Pilot[Any]) -> bool:
    chromes = pilot.app.screen.query(Chrome)
    return bool(chromes) and chromes.first().has_class("-offline") and BANNER_TEXT in screen_text(pilot.app)


def test_banner_while_the_daemon_is_away_then_reconnect_and_reload(recorded: Recorded) -> None:
    ws = recorded.ws

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        assert not banner_shown(pilot)
        with Client(ws, autostart=False) as client:
            client.request("shutdown")
        await until(pilot, lambda: stopped_banner_shown(pilot), what="banner after the daemon stopped")
        wait_until(lambda: not ws.socket.exists(), timeout=10)
        with Client(ws) as client:  # another terminal starts a daemon (the app joins it), cancels a run
            client.request("cancel", target=recorded.ids["eval_rl"])
        await until(pilot, lambda: not banner_shown(pilot) and not stopped_banner_shown(pilot), timeout=20,
                    what="banner gone after reconnect")
        await until(pilot, lambda: app.runs[recorded.ids["eval_rl"]]["state"] == "cancelled",
                    what="runs reloaded after reconnect")
        # a second outage, a crash this time: the app starts the daemon again by itself, as the CLI does
        app.source.autostart = True
        old_pid = ws.lock.read_text()
        os.kill(int(old_pid), signal.SIGKILL)
        await until(pilot, lambda: banner_shown(pilot), what="the reconnecting banner after a crash")
        await until(pilot, lambda: ws.lock.read_text() not in ("", old_pid) and app.source.connected
                    and not banner_shown(pilot), timeout=20, what="reconnected to a daemon the app started")

    start_daemon(ws)
    run_app(make_app(ws, autostart=False), scenario)


def stopped_banner_shown(pilot: Pilot[Any]) -> bool:
    return STOPPED_TEXT in screen_text(pilot.app)


def test_a_deliberate_stop_waits_for_r(recorded: Recorded) -> None:
    """`tix daemon stop` under an open TUI: no daemon is started behind the user's back; the banner
    says so and `r` starts one. The daemon's log has one INFO line for the stop, no traceback."""
    ws = recorded.ws

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        before = len(ws.log.read_text())  # building the recorded workspace stopped a daemon too
        result = subprocess.run([sys.executable, "-m", "engine.cli", "--home", str(ws.home), "daemon", "stop"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        await until(pilot, lambda: stopped_banner_shown(pilot), what="the stopped banner")
        assert "tix daemon stop" in screen_text(pilot.app)
        await pilot.pause(3 * app.retry_seconds)
        assert not ws.socket.exists() and not app.source.connected  # nothing restarted it
        log = ws.log.read_text()[before:]
        assert "Traceback" not in log and "ERROR" not in log
        assert sum("stopping (tix daemon stop" in line and " INFO " in line for line in log.splitlines()) == 1
        await pilot.press("r")
        await until(pilot, lambda: app.source.connected and not banner_shown(pilot)
                    and not stopped_banner_shown(pilot), timeout=20, what="started again by r")
        assert app.runs  # reloaded

    run_app(make_app(ws), scenario)


HYGIENE = textwrap.dedent("""
    import asyncio, json, sys
    from engine.workspace import Workspace
    from tui.app import TixApp

    async def main(home, run_id):
        app = TixApp(Workspace.resolve(home))
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.wait_for(app.connected_once.wait(), 30)
            app.open_run(run_id)
            await pilot.pause(1.0)
            for key in "23456":
                await pilot.press("escape", key)
                await pilot.pause(0.3)
            await app.source.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
""")


def test_tui_process_imports_no_ml_library_and_no_duckdb(recorded: Recorded) -> None:
    """Every screen opened, curves drawn: still none of the heavy modules in the process."""
    out = subprocess.run([sys.executable, "-c", HYGIENE, str(recorded.ws.home), recorded.ids["rl"]],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "textual" in loaded and "plotext" in loaded
    assert not loaded & {"torch", "transformers", "trl", "vllm", "duckdb", "numpy", "pyarrow"}


def test_cold_start_paints_connecting_then_the_runs(recorded: Recorded) -> None:
    """No daemon yet: the first frame already has the tabs and says it is connecting (never
    "0 runs ... no run selected"); the runs replace it when the first status arrives."""

    async def scenario(pilot: Pilot[Any]) -> None:
        app = pilot.app
        first = screen_text(app)  # before yielding to the loop: a pause could let the status land first
        assert "1 Runs" in first and "connecting to the daemon…" in first
        assert "0 runs" not in first and "no run selected" not in first
        await until(pilot, lambda: "10 runs" in screen_text(app), what="runs after the first status")
        assert "connecting" not in screen_text(app)

    run_app(make_app(recorded.ws), scenario)
