"""Issue 25.13's code version: each run's worker records tix's version, the git commit of its
checkout, Python, the host and the ML libraries' versions in environment.json (engine/runenv.py);
the config tab and `tix diff` show them as `code.*` / `env.*`; a run folder without the file (an
older run) still shows its configuration."""

from __future__ import annotations

import json
import platform

import pytest

import engine
from engine import cli, runenv
from engine.client.connection import Client
from engine.workspace import Workspace
from tests.conftest import probe, wait_state
from tests.tui.recorded import Recorded, build_workspace


def test_a_probe_worker_records_its_environment(ws: Workspace, client: Client) -> None:
    run = probe("env", steps=1, sleep=0)
    client.request("submit", experiment=None, runs=[run])
    assert wait_state(client, run["id"], {"succeeded", "failed"})["state"] == "succeeded"
    found = json.loads((ws.run_dir(run["id"]) / runenv.ENVIRONMENT_FILE).read_text())
    assert found["code"]["tix_version"] == engine.__version__
    assert found["env"]["python"] == platform.python_version() and found["env"]["host"]
    assert set(runenv.PACKAGES) <= set(found["env"])
    assert found["env"]["duckdb"] == runenv.package_version("duckdb")  # installed here: a version
    if (runenv.CHECKOUT / ".git").exists():
        assert len(found["code"]["git_commit"]) == 40 and found["code"]["git_dirty"] in (True, False)
    keys = dict(client.request("run_config", id=run["id"])["keys"])
    assert keys["code.tix_version"] == engine.__version__ and keys["env.python"] == platform.python_version()


def test_git_commit_is_read_from_a_packed_ref(tmp_path) -> None:
    git = tmp_path / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text("# pack-refs with: peeled\n" + "a" * 40 + " refs/heads/main\n")
    assert runenv.git_commit(tmp_path) == "a" * 40
    assert runenv.git_commit(tmp_path / "nothing") is None


@pytest.fixture
def recorded_ws(ws: Workspace) -> Recorded:
    return build_workspace(ws, live=False)


def write_env(ws: Workspace, run_id: str, torch: str | None) -> None:
    env = {"code": {"tix_version": engine.__version__, "git_commit": "c" * 40, "git_dirty": False},
           "env": {"python": "3.11.7", "host": "node-1", "torch": torch, "trl": "1.16.0"}}
    (ws.run_dir(run_id) / runenv.ENVIRONMENT_FILE).write_text(json.dumps(env))


def test_tix_diff_shows_a_library_upgrade(recorded_ws: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    ids = recorded_ws.ids
    write_env(recorded_ws.ws, ids["sft"], "2.12.0")
    write_env(recorded_ws.ws, ids["rl"], "2.13.0")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["diff", ids["sft"], ids["rl"], "--json"])
    out = capsys.readouterr()
    assert int(exit_.value.code or 0) == 0, out.err
    rows = json.loads(out.out)["rows"]
    assert ["env.torch", "2.12.0", "2.13.0"] in rows
    assert not [r for r in rows if r[0] in ("env.trl", "code.git_commit", "env.host")]  # equal: left out


def test_a_run_without_environment_json_still_shows_its_config(recorded_ws: Recorded) -> None:
    ids = recorded_ws.ids
    (recorded_ws.ws.run_dir(ids["rl"]) / runenv.ENVIRONMENT_FILE).write_text("[not an object")
    with Client(recorded_ws.ws) as client:
        for run_id in (ids["sft"], ids["rl"]):  # no file; a broken file
            keys = dict(client.request("run_config", id=run_id)["keys"])
            assert keys["run.kind"] == "train" and keys["code.run_hash"]
            assert not [k for k in keys if k.startswith("env.") or k == "code.git_commit"]
