"""Issue 25, items 16 and 17: a toast (and, when chosen, a bell or OSC 9) when a run ends while the
TUI is open; `/` search and a wrap toggle in run detail's logs; the Resources screen (key 6) with
each worker's CPU %, RSS and threads, and the CPU slots on a box without GPUs.

The notification and resources tests run a real daemon with real `probe` workers; the log and
snapshot tests draw from canned daemon answers (tests/tui/fake_source.py)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import psutil
import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input

from engine.client.connection import Client
from engine.daemon.gpus import DETECTION
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import wait_until
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.fake_source import FakeSource, ScreenHost, log_answer
from tests.tui.recorded import NOW_TS, Recorded
from tests.tui.test_issue25 import detail_app, finished
from tui.format import CONTROLS
from tui.notify import alert_sequence, ended, load_alert, save_alert
from tui.screens.gpus import GpusScreen
from tui.screentext import screen_text
from tui.widgets.log_view import CURRENT, MATCH, LogView, find_matches, wrap_spans

EVIL = "boom\x1b]52;c;aGk=\x07\x1b[2J\r\x9b"
SIZES = [(60, 18), (80, 24), (160, 48)]
CUT_NUMBER = re.compile(r"\d[.,]?…|\d\.…")
RUN_ID = re.compile(r"\b[a-z]+-[0-9a-f]*…")
"""A run id cut short (`train-3fec7…`): a name, not a number."""


def probe_run(name: str, **params: Any) -> dict[str, Any]:
    return make_run("probe", name, "probe-exp", {"label": name, **params}, [])


def toasts(app: App[Any], run_id: str) -> list[str]:
    return [str(n.message) for n in app._notifications if run_id in str(n.message)]


# -- notifications ---------------------------------------------------------------------------------
def test_a_run_that_ends_while_the_app_is_open_gives_one_toast_and_a_clean_osc9(recorded: Recorded) -> None:
    """Runs already ended at load stay quiet; a probe that succeeds and one that fails while the app
    watches give one toast each; with the alert on `both` the terminal gets BEL and an OSC 9 whose
    text carries no control character from the run's error."""
    ok, bad = probe_run("notify-ok", steps=2), probe_run("notify-bad", steps=1, fail=EVIL)
    written: list[str] = []

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.pause(0.5)
        assert app.notifier.announced == 0 and not list(app._notifications)
        await pilot.press("ctrl+g", "ctrl+g", "ctrl+g")  # off -> bell -> osc9 -> both
        assert app.notifier.mode == "both" and load_alert(app.ws.home) == "both"
        app.notifier.out = written.append
        await app.source.request("submit", experiment=None, runs=[ok, bad])
        await until(pilot, lambda: app.notifier.announced >= 2, timeout=60, what="two runs announced")
        await pilot.pause(1.0)  # later pushes of the same ended runs announce nothing
        assert app.notifier.announced == 2
        done, failed = toasts(app, ok["id"]), toasts(app, bad["id"])
        assert len(done) == 1 and len(failed) == 1, (done, failed)
        assert re.fullmatch(rf"run {ok['id']} \(probe-exp/notify-ok\) finished in \d+s", done[0])
        assert failed[0] == f"run {bad['id']} (probe-exp/notify-bad) failed: RuntimeError: boom␛]52;c;aGk=␇␛[2J␍\\x9b"
        assert len(written) == 2
        for sequence in written:
            assert sequence.startswith("\a\x1b]9;tix: run ") and sequence.endswith("\a")
            assert not CONTROLS.search(sequence[len("\a\x1b]9;"):-1]), repr(sequence)
        assert any("failed: RuntimeError: boom␛]52;c;aGk=␇" in s for s in written)

    run_app(make_app(recorded.ws), scenario)


def test_only_ends_seen_live_are_announced() -> None:
    before = {"a": {"id": "a", "state": "running"}, "b": {"id": "b", "state": "queued"},
              "c": {"id": "c", "state": "succeeded"}, "d": {"id": "d", "state": "running"}}
    pushed = [{"id": "a", "state": "succeeded"}, {"id": "b", "state": "failed"},
              {"id": "c", "state": "succeeded"},  # ended before: a result pushed again
              {"id": "d", "state": "cancelled"},  # someone's own doing
              {"id": "e", "state": "succeeded"}]  # first seen ended: an imported bundle's run
    assert [r["id"] for r in ended(before, pushed)] == ["a", "b"]


def test_alert_sequences_and_the_saved_setting(ws: Workspace) -> None:
    assert alert_sequence("off", "x") == ""
    assert alert_sequence("bell", EVIL) == "\a"
    osc = alert_sequence("osc9", f"run a (e/{EVIL}) failed")
    assert osc == "\x1b]9;tix: run a (e/boom␛]52;c;aGk=␇␛[2J␍\\x9b) failed\a"
    ws.home.mkdir(parents=True)
    (ws.home / "tui.json").write_text(json.dumps({"other": 1}))
    save_alert(ws.home, "bell")
    assert json.loads((ws.home / "tui.json").read_text()) == {"other": 1, "alert": "bell"}
    (ws.home / "tui.json").write_text("{not json")
    assert load_alert(ws.home) == "off"


# -- logs: search and wrap -------------------------------------------------------------------------
LINES = [f"step {i} loss {1 / (i + 1):.4f}" + (" ERROR boom" if i % 7 == 3 else "") for i in range(60)]
LINES[20] = "x" * 40 + " a very long line " + "y" * 150 + " TAIL-END"
LINES[21] = "worker said boom\x1b]52;c;aGk=\x07 Error"  # OSC 52 (write the clipboard), shown as ␛]52


def log_text(log: LogView) -> str:
    """What the log widget itself shows (not the head line above it)."""
    return "\n".join("".join(seg.text for seg in log.render_line(y)) for y in range(log.size.height))


def styled_cells(log: LogView, style: Any) -> list[str]:
    """The text of every drawn segment in `style`'s background (the highlighted matches on screen)."""
    return [seg.text for y in range(log.size.height) for seg in log.render_line(y)
            if seg.style and seg.style.bgcolor == style.bgcolor]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_log_search_counts_highlights_and_moves(size: tuple[int, int]) -> None:
    """`/` on the logs tab searches the log (not the samples), smartcase, on the text as shown; n
    and N move through the matches with a count; escape closes the search and keeps the screen."""
    app, source = detail_app(finished("eval-1"), run_log=log_answer({"stdout": "\n".join(LINES) + "\n"}))
    expected = sum(1 for line in LINES if "error" in line.lower())

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            log = await until(pilot, lambda: app.screen.query("#log") and app.screen.query_one(LogView))
            await pilot.press("l")
            await until(pilot, lambda: log.line_count > 50, what="log loaded")
            await pilot.press("slash", *"error", "enter")
            assert len(log.matches) == expected == 10
            assert not [a for a in source.asked if a[0] == "run_samples" and a[1].get("query")]
            first = log.current
            assert f"“error” {first + 1}/10" in screen_text(app)
            assert styled_cells(log, CURRENT)  # the current match brighter than the others in view
            assert styled_cells(log, MATCH) or size[1] < 24
            await pilot.press("n")
            assert log.current == (first + 1) % 10 and f"{log.current + 1}/10" in screen_text(app)
            await pilot.press("N", "N")
            assert log.current == (first - 1) % 10
            line, start, end = log.matches[log.current]
            assert log.shown_lines()[line][start:end].lower() == "error"
            assert "ERROR" in styled_cells(log, CURRENT) or "Error" in styled_cells(log, CURRENT)
            await pilot.press("slash", "ctrl+u", *"ERROR", "enter")  # a capital: case matters
            assert len(log.matches) == 9
            await pilot.press("slash", "ctrl+u")
            app.screen.query_one("#log-search", Input).value = "␛]52"  # pasted: the text as shown
            await pilot.press("enter")
            assert len(log.matches) == 1
            await pilot.press("escape")
            assert not log.query_text and not styled_cells(log, MATCH) and app.screen.query("#log")
            await pilot.press("escape")
            assert not app.screen.query("#log")  # the second escape goes back

    asyncio.run(main())


def test_wrap_toggle_folds_long_lines_and_keeps_search() -> None:
    app, _ = detail_app(finished("eval-1"), run_log=log_answer({"stdout": "\n".join(LINES) + "\n"}))

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            log = await until(pilot, lambda: app.screen.query("#log") and app.screen.query_one(LogView))
            await pilot.press("l")
            await until(pilot, lambda: log.line_count > 50, what="log loaded")
            assert log.virtual_size.height == log.line_count and log.virtual_size.width > 200
            log.scroll_to(0, 14, animate=False, immediate=True)
            await pilot.pause()
            assert "a very long line" in log_text(log) and "TAIL-END" not in log_text(log)  # cut at the edge
            await pilot.press("slash", *"TAIL-END", "enter")
            assert "TAIL-END" in log_text(log)  # the view went sideways to the match
            log.scroll_to(0, 14, animate=False, immediate=True)
            await pilot.pause()
            await pilot.press("W")
            assert log.wrap and "W: wrap" in screen_text(app) and "W: no wrap" not in screen_text(app)
            assert log.virtual_size.width <= 80 and log.virtual_size.height > log.line_count
            await pilot.press("n")  # the only match, found again in the wrapped rows
            assert "TAIL-END" in log_text(log)
            assert all(len(line.rstrip()) <= 80 for line in log_text(log).splitlines())
            await pilot.press("W")
            assert not log.wrap and log.virtual_size.height == log.line_count

    asyncio.run(main())


class LogHost(App[None]):
    def compose(self) -> Any:
        yield LogView(id="log", max_lines=50)


def test_log_caches_follow_writes_partial_lines_and_pruning() -> None:
    """Matches and wrapped rows are updated by the lines a write touched; after partial lines and
    writes past max_lines (lines leaving the top) they equal what a fresh layout gives."""
    async def main() -> None:
        async with LogHost().run_test(size=(40, 12)) as pilot:
            log = pilot.app.query_one(LogView)
            log.write("start\n")
            log.search("err")
            log.set_wrap(True)
            for i in range(40):
                log.write(f"line {i} " + "x" * (i % 5 * 15) + (" ERR" if i % 3 == 0 else "") + "\tpart")
                log.write(f" rest err {i}\nnext {i}\n" if i % 2 else "\n")
                await pilot.pause()
                shown = [log._process_line(line) for line in log.lines[:log.line_count]]
                assert log.shown_lines() == shown
                assert log.matches == find_matches(shown, "err")
                width = log._rows_width
                assert log._rows == [(y, a, b) for y, line in enumerate(shown) for a, b in wrap_spans(line, width)]
                assert 0 <= log.current < len(log.matches)
            assert len(log.lines) == 50 and log.virtual_size.height == len(log._rows)  # pruned at 50

    asyncio.run(main())


# -- resources -------------------------------------------------------------------------------------
def test_resources_show_a_real_worker_and_the_cpu_slots(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """TIX_GPUS=0 and one CPU slot: a long probe holds it (its CPU %, RSS and threads as psutil sees
    its process), a second one waits for a slot and is listed with the scheduler's reason."""
    monkeypatch.setenv("TIX_CPU_SLOTS", "1")
    first, second = probe_run("hold", steps=600, sleep=0.1), probe_run("wait", steps=600, sleep=0.1)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[first, second])
        running = wait_until(lambda: (r := client.request("run", id=first["id"]))["state"] == "running" and r, 60)
    pid = running["pid"]

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("6")
        screen = await until(pilot, lambda: isinstance(app.screen, GpusScreen) and app.screen.last
                             and app.screen.resources and app.screen, what="resources")
        await until(pilot, lambda: "waiting for a slot: 1" in screen_text(app), timeout=20, what="the waiting run")
        worker = next(w for w in screen.resources["workers"] if w["id"] == first["id"])
        assert worker["pid"] == pid and worker["cpu_slot"] and worker["threads"] >= 1
        rss = psutil.Process(pid).memory_info().rss
        assert 0.5 * rss <= worker["rss"] <= 2 * rss
        text = screen_text(app)
        assert "CPU slots 1 of 1 in use" in text
        row = next(line for line in text.splitlines() if line.lstrip().startswith(f"1 {first['id']}"))
        cells = row.split()
        assert re.fullmatch(r"\d+(\.\d)?", cells[3]) and cells[5] == "MiB" and cells[6] == str(worker["threads"])
        assert cells[-1] == str(pid)
        assert f"{second['id']} probe-exp/wait" in text and "waiting for a CPU slot (1 of 1 in use)" in text

    run_app(make_app(ws), scenario, size=(100, 30))


GPUS_NONE = {"gpus": [], "scheduled": 0, "detected": 0, "source": "none", "override": True, "how": DETECTION,
             "allowlist": None, "foreign_gpu_mib": 2048.0, "processes_age": None, "processes_error": None}
WORKER = {"id": "train-3fec79d368", "name": "rl", "experiment": "tiny-lab", "kind": "train", "state": "running",
          "progress_text": "train 60/100", "pid": 48213, "gpus": [], "cpu_slot": True, "thread_share": 1,
          "cpu_percent": 187.4, "rss": 1_621_098_496, "threads": 23, "processes": 3}
RESOURCES = {"cores": 2, "cpu_slots": 2, "cpu_slots_used": 1, "gpus": 0, "executor": "local", "workers": [WORKER],
             "waiting": [{"id": "eval-662856d1e1", "name": "rl", "experiment": "tiny-lab", "kind": "eval",
                          "state": "queued", "progress_text": "waiting for a CPU slot (2 of 2 in use)"},
                         {"id": "analyse-38b1e847d9", "name": "rl", "experiment": "tiny-lab", "kind": "analyse",
                          "state": "queued", "progress_text": "waiting for eval-662856d1e1 (queued)"}],
             "asked_at": NOW_TS}
GPUS_ONE = {**GPUS_NONE, "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "util": 97, "mem_used": 61 << 30,
                                   "mem_total": 80 << 30, "temperature": 64, "detected": True, "scheduled": True,
                                   "runs": [{"id": "train-3fec79d368", "name": "rl", "experiment": "tiny-lab",
                                             "state": "running", "pid": 48213}],
                                   "processes": [], "foreign_used": 0, "blocked": False}],
            "scheduled": 1, "detected": 1, "source": "nvml", "override": False, "processes_age": 0.4}
RESOURCES_GPU = {**RESOURCES, "cpu_slots_used": 0, "waiting": [],
                 "workers": [{**WORKER, "gpus": [0], "cpu_slot": False, "thread_share": None}]}


def resources_host(gpus: dict[str, Any], res: dict[str, Any]) -> ScreenHost:
    source = FakeSource({"gpus": gpus, "resources": res})
    return ScreenHost(lambda: GpusScreen(source), [], NOW_TS)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("view", ["slots", "gpu"])
def test_resources_never_cut_a_number(size: tuple[int, int], view: str) -> None:
    app = resources_host(GPUS_NONE, RESOURCES) if view == "slots" else resources_host(GPUS_ONE, RESOURCES_GPU)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: isinstance(app.screen, GpusScreen) and app.screen.last, what="drawn")
            text = screen_text(app)
            assert not CUT_NUMBER.search(RUN_ID.sub("", text)), text
            assert "187" in text and "1.5 GiB" in text  # CPU % and RSS: at every size
            if view == "slots":
                assert "1 train-" in text and "2 free" in text
                assert "CPU slots 1 of 2 in use" in text or size[0] < 80
            else:
                assert "GPU 0" in text or size[0] < 80

    asyncio.run(main())


def test_resources_snapshot_cpu_slots(snap_compare: Any) -> None:
    assert snap_compare(resources_host(GPUS_NONE, RESOURCES), terminal_size=(80, 24),
                        run_before=lambda pilot: until(pilot, lambda: pilot.app.screen.last, what="drawn"))


def test_resources_snapshot_gpu_and_workers(snap_compare: Any) -> None:
    assert snap_compare(resources_host(GPUS_ONE, RESOURCES_GPU), terminal_size=(80, 24),
                        run_before=lambda pilot: until(pilot, lambda: pilot.app.screen.last, what="drawn"))
