"""The GPU panel (key 6) on a shared box: a real daemon whose NVML is the stand-in (TIX_FAKE_NVML)
lists the recorded running run's worker on GPU 0 and other users' processes the test starts
(`sleep`, as `nobody` where the test may), one with control characters in its command line.
The panel shows tix's run (name and pid) first, then the others (user, pid, memory, command),
marks a GPU they fill as not handed out, and sends no control character to the terminal."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.workspace import Workspace
from tests.tui.conftest import connected, make_app, run_app, until
from tests.tui.recorded import build_workspace
from tui.screens.gpus import GpusScreen, render
from tui.screentext import screen_text

OTHER = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
EVIL = "trainer\x1b[2J\r\x07\x1b]52;c;aGk=\x07\x9b"
SHOWN = "trainer␛[2J␍␇␛]52;c;aGk=␇\\x9b"
RAW = re.compile("[\x00-\x1f\x7f-\x9f]")


def other_user(argv0: str = "sleep") -> subprocess.Popen[bytes]:
    kwargs: dict[str, Any] = {"user": OTHER} if os.getuid() == 0 else {}
    return subprocess.Popen([argv0, "600"], executable="/bin/sleep", **kwargs)


def test_the_panel_lists_tix_run_then_other_users_and_marks_a_filled_gpu(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = build_workspace(ws)
    assert rec.worker is not None
    small, big = other_user(), other_user(EVIL)
    box = tmp_path / "nvml.json"
    box.write_text(json.dumps({"gpus": [
        {"name": "NVIDIA H100 80GB HBM3", "mem_total_mib": 81559, "util": 40, "temperature": 50,
         "processes": [{"pid": rec.worker.pid, "used_mib": 3072}, {"pid": small.pid, "used_mib": 1024}]},
        {"name": "NVIDIA H100 80GB HBM3", "mem_total_mib": 81559, "util": 99, "temperature": 70,
         "processes": [{"pid": big.pid, "used_mib": 62464}]}]}))
    monkeypatch.setenv("TIX_FAKE_NVML", str(box))
    monkeypatch.delenv("TIX_GPUS")
    monkeypatch.setenv("TIX_GPU_POLL", "0.1")

    async def scenario(pilot: Pilot[Any]) -> None:
        app = await connected(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, GpusScreen) and str(big.pid) in screen_text(app),
                    what="processes listed")
        lines = screen_text(app).splitlines()
        assert any("2 GPUs · figures from an NVML stand-in" in line for line in lines)
        gpu1 = next(line for line in lines if line.lstrip().startswith("1 NVIDIA"))
        assert f"{OTHER} 61 GiB: blocked" in gpu1
        head = next(i for i, line in enumerate(lines) if line.split()[:4] == ["GPU", "pid", "user", "GPU"])
        rows = [line.split() for line in lines[head + 1:head + 4]]
        assert rows[0][:5] == ["0", str(rec.worker.pid), pwd.getpwuid(os.getuid()).pw_name, "3.0", "GiB"]
        assert rows[0][5:] == ["tix", "tiny-lab/rl", rec.ids["rl"]]
        assert rows[1] == ["0", str(small.pid), OTHER, "1.0", "GiB", "sleep", "600"]
        assert rows[2][:5] == ["1", str(big.pid), OTHER, "61", "GiB"]
        assert lines[head + 3].rstrip().endswith(f"{SHOWN} 600")
        assert "blocked: other users hold over 2048 MiB of the GPU, so tix does not hand it out" in screen_text(app)
        raw = [seg.text for strip in app.screen._compositor.render_strips() for seg in strip
               if not seg.control and RAW.search(seg.text)]
        assert not raw, raw

    try:
        run_app(make_app(ws), scenario, size=(120, 36))
    finally:
        for proc in (small, big):
            proc.kill()
            proc.wait(timeout=5)
        rec.stop_worker()


def test_without_a_process_list_the_panel_says_why() -> None:
    info = {"source": "nvidia-smi", "processes_age": None, "gpus": [
        {"index": 0, "name": "A100", "detected": True, "scheduled": True, "util": 1.0, "mem_used": 1 << 30,
         "mem_total": 8 << 30, "temperature": 30, "runs": []}]}
    _head, body = render(info, 100)
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(body)
    assert "not listed: the daemon has no NVML process list on this box" in console.export_text()
