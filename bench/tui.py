"""The TUI's figures: cold start to the first painted frame, frame times of the runs dashboard with
1,000 runs and with 20 of them streaming 50 events/s each, and the TUI process's memory.

A workspace of 1,000 runs (the recorded tiny-lab runs of tests/tui/recorded.py plus finished
probe runs) is served by a real daemon, started first as it would already be on a box in use.

- Cold start: `tix` is started in a private tmux server at 80x24; the clock runs from just before
  the process starts to the first capture showing the tab bar (first painted frame) and to the
  one showing the 1,000 runs (dashboard loaded). RSS of that process once loaded. Then again with
  no daemon running, so the TUI starts it (the first `tix` of the day). Without tmux, the same app
  runs headless in a subprocess and reports when its first frame is rendered.
- Frame time: the app runs headless in this process at 80x24 against the same daemon. A frame is
  Textual's screen update (layout, render of the dirty regions, hand-off to the driver), timed
  around `Screen._on_timer_update`; handling a push batch (patching rows) is timed separately.
  Idle: the cursor moving through the 1,000 rows. Streaming: pushes for 20 running runs, each
  changing 50 times a second, injected into the app's push queue for 5 s (the daemon itself
  coalesces to one push per run per tick, so this is 10-25 times what it would send).

Run: `make bench` or `python bench/tui.py [--runs N] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before bench/, where this file would shadow the `tui` package

from engine.client.connection import Client  # noqa: E402
from engine.workspace import Workspace  # noqa: E402


def prepare(runs: int) -> Workspace:
    """The workspace, built in this process (it imports DuckDB; the measured TUI runs elsewhere)."""
    from tests.tui.recorded import build_workspace

    home = Path(tempfile.mkdtemp(prefix="tix-bench-tui-")) / "home"
    os.environ.update({"TIX_HOME": str(home), "TIX_IDLE_TIMEOUT": "120", "TIX_GPUS": "0", "TIX_TICK": "0.5"})
    ws = Workspace.resolve(home)
    build_workspace(ws, extra_runs=max(0, runs - 10), live=False)
    with Client(ws) as client:
        assert len(client.request("status")) == runs
    return ws


# -- cold start ----------------------------------------------------------------------------------
def cold_start_tmux(ws: Workspace, runs: int) -> dict[str, float]:
    socket, tix = f"tix-bench-{os.getpid()}", str(Path(sys.executable).with_name("tix"))
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    env = " ".join(f"{k}={os.environ[k]}" for k in ("TIX_HOME", "TIX_IDLE_TIMEOUT", "TIX_GPUS"))
    t0 = time.perf_counter()
    subprocess.run([*tmux, "new-session", "-d", "-s", "b", "-x", "80", "-y", "24",
                    f"env TERM=xterm-256color {env} {tix}"], check=True)
    try:
        first = wait_pane(tmux, lambda text: "1 Runs" in text) - t0
        loaded = wait_pane(tmux, lambda text: f"{runs:,} runs" in text) - t0
        time.sleep(1.0)
        rss = tui_rss(tmux)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    return {"first_frame_s": first, "loaded_s": loaded, "rss_mib": rss}


def wait_pane(tmux: list[str], seen: Callable[[str], bool], timeout: float = 60) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        text = subprocess.run([*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True).stdout
        if seen(text):
            return time.perf_counter()
        time.sleep(0.005)
    raise TimeoutError("the TUI never showed what was expected")


def tui_rss(tmux: list[str]) -> float:
    pane = int(subprocess.run([*tmux, "display", "-p", "-t", "b", "#{pane_pid}"], capture_output=True,
                              text=True, check=True).stdout)
    procs = [psutil.Process(pane), *psutil.Process(pane).children(recursive=True)]
    tui = [p for p in procs if "python" in p.name().lower() or "tix" in " ".join(p.cmdline())]
    return max(p.memory_info().rss for p in tui) / (1 << 20)


HEADLESS = """
import asyncio, sys, time, psutil
t0 = float(sys.argv[1])
from engine.workspace import Workspace
from tui.app import TixApp
async def main():
    app = TixApp(Workspace.resolve())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        first = time.time() - t0
        await asyncio.wait_for(app.connected_once.wait(), 60)
        await pilot.pause(0.5)
        print(first, time.time() - t0, psutil.Process().memory_info().rss / (1 << 20))
        await app.source.close()
asyncio.run(main())
"""


def cold_start_headless() -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", HEADLESS, str(time.time())], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    return {"first_frame_s": float(out[0]), "loaded_s": float(out[1]), "rss_mib": float(out[2])}


# -- frame times ---------------------------------------------------------------------------------
class Timings:
    """Wraps a method of a class to record how long each call takes (ms)."""

    def __init__(self, cls: type, name: str, only: Callable[[Any], bool] = lambda _self: True) -> None:
        self.samples: list[float] = []
        self.on = False
        original = getattr(cls, name)

        def timed(obj: Any, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(obj, *args, **kwargs)
            finally:
                if self.on and only(obj):
                    self.samples.append((time.perf_counter() - t) * 1000)

        setattr(cls, name, timed)

    def take(self) -> list[float]:
        out, self.samples = self.samples, []
        return out


async def frame_times(ws: Workspace, seconds: float) -> dict[str, Any]:
    from textual.screen import Screen

    from tui.app import TixApp
    from tui.screens.runs import RunsScreen

    frames = Timings(Screen, "_on_timer_update", lambda s: isinstance(s, RunsScreen))
    batches = Timings(RunsScreen, "on_runs_pushed")
    app = TixApp(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(app.connected_once.wait(), 60)
        await pilot.pause(0.5)
        frames.on = batches.on = True
        for _ in range(300):
            await pilot.press("down")
        await pilot.pause(0.2)
        idle = frames.take()
        streamed, sent, lag = await stream(app, pilot, seconds)
        result = {"idle": idle, "stream": frames.take(), "batches": batches.take(), "pushes": sent,
                  "applied_batches": streamed, "lag_ms": lag}
        await app.source.close()
    return result


async def stream(app: Any, pilot: Any, seconds: float) -> tuple[int, int, float]:
    """20 runs x 50 pushes/s for `seconds`; returns batches applied, pushes sent, final lag (ms)."""
    runs = [dict(r, state="running", started_at="2025-03-14 11:00:00", progress=0.0) for r in
            sorted(app.runs.values(), key=lambda r: r["id"])[:20]]
    before, sent, t0 = app.pushes_applied, 0, time.perf_counter()
    tick = 1 / 50
    while (elapsed := time.perf_counter() - t0) < seconds:
        for run in runs:
            run["progress"] = min(1.0, elapsed / seconds)
            run["progress_text"] = f"train {int(elapsed * 50)}/{int(seconds * 50)}"
            app.source.pushes.put_nowait({"push": "run", "run": dict(run)})
            sent += 1
        await asyncio.sleep(max(0.0, t0 + (sent // 20) * tick - time.perf_counter()))
    mark = time.perf_counter()
    while not app.source.pushes.empty():
        await asyncio.sleep(0.001)
    await pilot.pause()
    return app.pushes_applied - before, sent, (time.perf_counter() - mark) * 1000


def describe(samples: list[float]) -> str:
    if not samples:
        return "no frames"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"median {statistics.median(samples):.2f} ms, p95 {p95:.2f} ms, max {max(samples):.2f} ms "
            f"({len(samples)} frames)")


def stop_daemon(ws: Workspace) -> None:
    with Client(ws, autostart=False) as client:
        client.request("shutdown")
    deadline = time.time() + 10
    while ws.socket.exists() and time.time() < deadline:
        time.sleep(0.05)


def measure_frames(ws: Workspace, seconds: float) -> dict[str, Any]:
    """`frame_times` in a fresh process that, like `tix`, never imported DuckDB or pyarrow (their
    objects would lengthen this process's garbage collections and so its frames)."""
    out = subprocess.run([sys.executable, __file__, "--frames", str(ws.home), "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description="TUI cold start, frame times and memory")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the 20 runs stream")
    parser.add_argument("--frames", metavar="HOME", help=argparse.SUPPRESS)  # the measuring child
    args = parser.parse_args()
    if args.frames:
        print(json.dumps(asyncio.run(frame_times(Workspace.resolve(args.frames), args.seconds))))
        return
    ws = prepare(args.runs)
    try:
        how = "tmux" if shutil.which("tmux") else "headless"
        start = cold_start_tmux(ws, args.runs) if how == "tmux" else cold_start_headless()
        stop_daemon(ws)  # the first `tix` of the day starts the daemon too
        no_daemon = cold_start_tmux(ws, args.runs) if how == "tmux" else cold_start_headless()
        frames = measure_frames(ws, args.seconds)
    finally:
        stop_daemon(ws)
    batch = frames["batches"]
    print(f"tui: cold start ({how}, 80x24, {args.runs:,} runs, daemon running): first frame "
          f"{start['first_frame_s']:.2f} s, dashboard loaded {start['loaded_s']:.2f} s; "
          f"TUI process RSS {start['rss_mib']:.0f} MiB")
    print(f"tui: cold start with no daemon (the TUI starts it): first frame "
          f"{no_daemon['first_frame_s']:.2f} s, dashboard loaded {no_daemon['loaded_s']:.2f} s")
    print(f"tui: dashboard with {args.runs:,} runs, cursor moving: frame {describe(frames['idle'])}")
    print(f"tui: 20 runs x 50 events/s for {args.seconds:.0f} s ({frames['pushes']:,} pushes in "
          f"{frames['applied_batches']:,} batches, {frames['lag_ms']:.0f} ms behind at the end): "
          f"frame {describe(frames['stream'])}; batch handling median "
          f"{statistics.median(batch) if batch else 0:.2f} ms")


if __name__ == "__main__":
    main()
