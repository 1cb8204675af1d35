"""What the screen tests share: a host app that connects a real Source and pushes one screen,
a seeded workspace (imported scores and recorded analyse results), and a wait helper.

Shift results reach the database the way real ones do: a run directory whose `events.jsonl`
holds `shift` events (README "Results in the database: shift_results"), tailed by the daemon's
ingest. The run is a light `probe` run named after the variant; its events file is written
before it is submitted, so ingest reads the recorded lines first and the worker appends its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Label

from engine.analysis.imports import read_scores_csv
from engine.client.connection import Client
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import stop_everything, wait_until
from tests.tui.recorded import Recorded, build_workspace
from tui.screentext import screen_text
from tui.source import Source

EXPERIMENT = "lab"
BENCHMARKS = {"arith": "math", "chain": "math", "syllogism": "other", "bits": "other",
              "spell": "non", "reverse": "non"}
SCORES = {  # model -> scores in BENCHMARKS order
    "base": [40.0, 60.0, 55.0, 30.0, 50.0, 52.0],
    "sft": [55.0, 71.0, 50.0, 33.0, 35.0, 40.0],
    "rl": [40.5, 60.2, 56.0, 31.0, 51.0, 53.0],
}
METHODS = {"base": "base", "sft": "sft", "rl": "rl"}


class HostApp(App[None]):
    """A bare app around one screen, as the real app shell hosts it: a connected Source."""

    def __init__(self, ws: Workspace, make_screen: Callable[[Source], Screen[Any]]) -> None:
        super().__init__()
        self.source = Source(ws)
        self.make_screen = make_screen

    def compose(self) -> ComposeResult:
        yield Label("host")

    async def on_mount(self) -> None:
        await self.source.connect(subscribe=False)
        await self.push_screen(self.make_screen(self.source))

    async def on_unmount(self) -> None:
        await self.source.close()


async def until(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 15.0,
                what: str = "condition") -> Any:
    """Let the app run until `predicate()` is truthy (workers and daemon round trips included);
    fails the test with the screen's text otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not met within {timeout}s; screen:\n{screen_text(pilot.app)}")


def settle(wait: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A snap_compare `run_before` that waits for data, then for every worker to finish."""
    async def run_before(pilot: Pilot[Any]) -> None:
        await wait(pilot)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)
    return run_before


def drive(ws: Workspace, screen: Callable[[Any], Any], scenario: Callable[[Pilot[Any]], Awaitable[None]],
          size: tuple[int, int] = (80, 24)) -> None:
    """Run `scenario` against one screen on a HostApp connected to `ws`."""
    async def main() -> None:
        async with HostApp(ws, screen).run_test(size=size) as pilot:
            await scenario(pilot)
    asyncio.run(main())


# -- the seeded workspace ----------------------------------------------------------------------------
@contextmanager
def workspace(home: Path) -> Iterator[Workspace]:
    """A workspace with a fast daemon (the `ws` fixture's settings, for a whole test module) and one
    CPU slot, so that a probe run holding it keeps what a screen launches queued."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"TIX_HOME": str(home), "TIX_TICK": "0.1", "TIX_IDLE_TIMEOUT": "60",
                           "TIX_CANCEL_GRACE": "2", "TIX_HEARTBEAT": "0.5", "TIX_GPUS": "0",
                           "TIX_CPU_SLOTS": "1"}.items():
            mp.setenv(key, value)
        ws = Workspace.resolve(home)
        try:
            yield ws
        finally:
            stop_everything(ws)


@contextmanager
def recorded_home(home: Path, extra: Callable[[Recorded], None] = lambda _rec: None) -> Iterator[Recorded]:
    """The recorded workspace (tests/tui/recorded.py) under `home` with a fast daemon, for a whole
    test module; `extra` adds runs before any daemon starts. Stops its fake worker and daemon after."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"TIX_HOME": str(home), "TIX_TICK": "0.1", "TIX_IDLE_TIMEOUT": "60",
                           "TIX_GPUS": "0"}.items():
            mp.setenv(key, value)
        rec = build_workspace(Workspace.resolve(home))
        try:
            extra(rec)
            yield rec
        finally:
            rec.stop_worker()
            stop_everything(rec.ws)


def write_scores_csv(path: Path) -> Path:
    lines = ["model,base_model,method,benchmark,group,score"]
    for model, values in SCORES.items():
        base = "" if model == "base" else "base"
        lines += [f"{model},{base},{METHODS[model]},{b},{g},{v}"
                  for (b, g), v in zip(BENCHMARKS.items(), values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def import_scores(client: Client, csv_path: Path) -> None:
    """What `tix import scores FILE --experiment lab` sends."""
    table = read_scores_csv(csv_path)
    client.request("import_scores", **table.request(EXPERIMENT, str(csv_path.resolve()), True))


def shift_events(scale: float) -> list[dict[str, Any]]:
    """An analyse run's `shift` events: per-layer points, d, token-shift metrics, top tokens."""
    events: list[dict[str, Any]] = []

    def add(analysis: str, metric: str, value: float, **where: Any) -> None:
        events.append({"t": 1_700_000_000.0, "type": "shift", "analysis": analysis, "metric": metric,
                       "value": value, **where})

    for i, (bench, group) in enumerate(BENCHMARKS.items()):
        for layer in range(5):
            base, tuned = [layer * 0.5, (layer % 2) * 0.3 + i * 0.1], [layer * 0.5 * (1 + scale), layer * scale]
            add("pca_shift", "points", abs(tuned[0] - base[0]), benchmark=bench, group=group, layer=layer,
                payload={"base": base, "tuned": tuned, "explained_variance": [0.6, 0.2]})
        add("pca_shift", "d", scale * (i + 1), benchmark=bench, group=group)
        add("token_shift", "kl", scale * 0.1 * (i + 1), benchmark=bench, group=group)
        add("token_shift", "logp_diff", scale * 0.05 * (i + 1), benchmark=bench, group=group)
        for metric, value in (("share_base_rank1", 0.8 - 0.05 * i), ("share_base_rank2_3", 0.15),
                              ("share_base_rank_gt3", 0.05 + 0.05 * i), ("tokens", 100.0)):
            add("token_shift", metric, value, benchmark=bench, group=group)
        tokens = [{"token": f" tok{i}{k}", "count": 10 - k, "mean_base_rank": 2.0 + k} for k in range(3)]
        add("token_shift", "top_tokens", 3, benchmark=bench, group=group, payload=tokens)
    for j, group in enumerate(("math", "other", "non")):
        add("pca_shift", "d", scale * (j + 1.5), group=group)
        add("token_shift", "kl", scale * 0.1 * (j + 1.5), group=group)
        tokens = [{"token": f" grp{j}{k}", "count": 20 - k, "mean_base_rank": 5.0 + k} for k in range(2)]
        add("token_shift", "top_tokens", 2, group=group, payload=tokens)
    return events


def record_shift_run(ws: Workspace, model: str, scale: float) -> dict[str, Any]:
    """A planned probe run named `model` whose events file already holds shift results."""
    run = make_run("probe", model, EXPERIMENT, {"label": f"shift-{model}-{scale}", "steps": 1}, [])
    run_dir = ws.run_dir(run["id"])
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e) for e in shift_events(scale)]
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    return run


def seed(ws: Workspace, tmp: Path) -> None:
    """Imported scores for base, sft and rl; recorded shift results for sft and rl (rl twice: an
    older run at scale 0.5, then the newest at 0.25)."""
    ws.ensure()
    with Client(ws) as client:
        import_scores(client, write_scores_csv(tmp / "scores.csv"))
        for runs in ([record_shift_run(ws, "rl", 0.5)],
                     [record_shift_run(ws, "sft", 1.0), record_shift_run(ws, "rl", 0.25)]):
            client.request("submit", experiment={"name": EXPERIMENT}, runs=runs)
            ids = [r["id"] for r in runs]
            wait_until(lambda ids=ids: all(r["state"] == "succeeded" for r in client.request("status", ids=ids)),
                       30)
            time.sleep(0.01)  # distinct creation times order the runs


