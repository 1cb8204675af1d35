"""The tmux smoke script (tests/tui/tmux_smoke.sh) on a recorded workspace: `tix` in a real
terminal at 80x24, the TI view opened with its key, an export written, quit with q."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.tui.recorded import Recorded

SCRIPT = Path(__file__).with_name("tmux_smoke.sh")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_smoke(recorded: Recorded, tmp_path: Path) -> None:
    tix = Path(sys.executable).with_name("tix")
    command = str(tix) if tix.exists() else f"{sys.executable} -m engine.cli"
    env = {**os.environ, "TIX": command, "SMOKE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tmux smoke: ok" in out.stdout
    dashboard = (tmp_path / "dashboard.txt").read_text()
    assert "10 runs" in dashboard and recorded.ids["rl"] in dashboard
    ti = (tmp_path / "ti.txt").read_text()
    if "is not available" not in ti:
        assert "TI v2" in ti and list(tmp_path.glob("tix-ti-*"))
