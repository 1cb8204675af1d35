"""Shared fixtures: a throw-away workspace per test, the `tix` CLI as a subprocess, and cleanup
that stops the daemon and any worker it left, so tests never leak processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.client.connection import Client, daemon_running
from engine.experiments.plan import make_run
from engine.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel test workers share the cores: OpenMP threads split between them (daemons started
    # here pass that on to their workers) and no spinning while a thread waits; two workers at two
    # spinning threads each on 2 cores made one 2.5 s test take 45 s. Set before torch loads.
    _WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs `-n` workers with `--dist loadgroup`) every test of the
    Slurm test cluster runs in one worker: two clusters cannot run side by side (they share the
    Slurm cgroup tree), and one per worker would cost a start each. Those tests go first: they are
    the longest chain one worker must run in order, while the others share the rest."""
    on_cluster = [item for item in items if "slurm_cluster" in getattr(item, "fixturenames", ())]
    for item in on_cluster:
        item.add_marker(pytest.mark.xdist_group("slurm"))
    ids = {id(item) for item in on_cluster}
    items[:] = on_cluster + [item for item in items if id(item) not in ids]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh workspace; daemons started in it tick fast and exit after 60 s idle."""
    home = tmp_path / "tix-home"
    monkeypatch.setenv("TIX_HOME", str(home))
    monkeypatch.setenv("TIX_TICK", "0.1")
    monkeypatch.setenv("TIX_IDLE_TIMEOUT", os.environ.get("TEST_IDLE_TIMEOUT", "60"))
    monkeypatch.setenv("TIX_CANCEL_GRACE", "2")
    monkeypatch.setenv("TIX_HEARTBEAT", "0.5")
    monkeypatch.setenv("TIX_GPUS", "0")
    workspace = Workspace.resolve(home)
    yield workspace
    stop_everything(workspace)


@pytest.fixture
def patient_cancel(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """`ws` with a cancel grace long enough for a training to save its checkpoint on a slow or busy
    box (2 s escalated to SIGKILL while two gloo ranks were still writing theirs); list it before
    the fixture that starts the daemon. The daemon does not wait out the grace once the run ends."""
    monkeypatch.setenv("TIX_CANCEL_GRACE", "60")
    return ws


def stop_everything(ws: Workspace) -> None:
    """Shut the daemon down, then kill workers still recorded as running."""
    if daemon_running(ws):
        with contextlib.suppress(Exception), Client(ws, autostart=False) as client:
            client.request("shutdown")
        deadline = time.time() + 10
        while ws.socket.exists() and time.time() < deadline:
            time.sleep(0.05)
    for pid in worker_pids(ws):
        if is_worker_of(pid, ws):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def is_worker_of(pid: int, ws: Workspace) -> bool:
    """Whether `pid` is still a worker of this workspace. A recorded pid may have ended long ago
    and been reused (pid_max is 32768 here, and `make test` starts thousands of processes):
    killing its group unchecked once took down another test's worker (exit -9, the flake in
    test_a_sigterm_that_reaches_one_rank_stops_every_rank_at_the_same_step)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"engine.jobs.worker" in cmdline and str(ws.runs).encode() in cmdline


def worker_pids(ws: Workspace) -> list[int]:
    pids = []
    for spec in ws.runs.glob("*/stdout.log") if ws.runs.exists() else []:
        events = spec.parent / "events.jsonl"
        if events.exists():
            pids += [int(p) for p in _started_pids(events)]
    return pids


def _started_pids(events: Path) -> list[str]:
    import json

    out = []
    for line in events.read_text().splitlines():
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if obj.get("type") == "started":
                out.append(obj["pid"])
    return out


@pytest.fixture
def tix(ws: Workspace) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the CLI as a user would, in a subprocess, with the test's workspace."""

    def run(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                              text=True, input=input, timeout=timeout, cwd=ROOT)

    return run


def sql_json(tix: Callable[..., subprocess.CompletedProcess[str]], query: str) -> list[dict[str, Any]]:
    """Rows of `tix sql QUERY --format json`, asserting the command succeeded."""
    result = tix("sql", query, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def client(ws: Workspace) -> Iterator[Client]:
    with Client(ws) as c:
        yield c


def probe(name: str, deps: list[str] | None = None, **params: Any) -> dict[str, Any]:
    """A planned `probe` run (a light real worker) with the given parameters."""
    return make_run("probe", name, "probe-exp", {"label": name, **params}, deps or [])


def math_train_file(path: Path, items: int) -> Path:
    """A JSONL of lab maths questions and answers (training seeds) for train-job tests."""
    from engine.lab.corpus import items as lab_items

    path.write_text("\n".join(json.dumps({"question": it.question, "answer": it.answer})
                              for it in lab_items(5, items, ("math",))) + "\n")
    return path


def wait_until(predicate: Callable[[], Any], timeout: float = 30, every: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy; fails the test with the timeout otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def run_state(client: Client, run_id: str) -> dict[str, Any]:
    return client.request("run", id=run_id)


def wait_state(client: Client, run_id: str, states: set[str], timeout: float = 30) -> dict[str, Any]:
    return wait_until(lambda: (r := run_state(client, run_id))["state"] in states and r, timeout)


TINY_BUILD = {"model": "tiny-lab", "seed": 3, "vocab_size": 512, "pretrain_steps": 30, "batch_size": 16,
              "corpus_items": 2000}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-lab model built once per test session (about 6 s), for backend and eval tests."""
    return build_lab_model(tmp_path_factory.mktemp("tiny-home"), TINY_BUILD)


def build_lab_model(home: Path, params: dict[str, Any]) -> Path:
    """Run the real `build` job in `home` with `params`; the built model's folder."""
    from engine.events import EventWriter
    from engine.jobs import JobContext, build

    run_dir = home / "runs" / "build"
    run_dir.mkdir(parents=True)
    ctx = JobContext("build", "build", dict(params), run_dir, home, EventWriter(run_dir / "events.jsonl"))
    return Path(build.run(ctx)["model_path"])


def job_context(home: Path, kind: str, params: dict[str, Any], run_id: str = "run-1",
                name: str | None = None) -> Any:
    """A real JobContext in `home`, as the worker would make it."""
    from engine.events import EventWriter
    from engine.jobs import JobContext

    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobContext(run_id, kind, params, run_dir, home, EventWriter(run_dir / "events.jsonl"), name=name)
