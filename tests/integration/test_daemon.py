"""The daemon with real processes: auto-start, idle exit, concurrent clients, dead workers,
a killed daemon, cancellation, retries, dependencies and GPU slots."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from engine.client.connection import Client, daemon_running
from engine.workspace import Workspace
from tests.conftest import ROOT, probe, run_state, wait_state, wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}


def daemon_pid(ws: Workspace) -> int:
    return int(ws.lock.read_text())


def daemon_processes(ws: Workspace) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "engine.daemon.server" in cmd and str(ws.home) in cmd and proc.info["status"] != "zombie":
            found.append(proc)
    return found


def test_autostart_permissions_and_idle_exit(ws: Workspace, tix, monkeypatch) -> None:
    monkeypatch.setenv("TIX_IDLE_TIMEOUT", "1.0")
    result = tix("status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert stat.S_IMODE(ws.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(ws.socket.stat().st_mode) == 0o600
    pid = daemon_pid(ws)
    assert psutil.pid_exists(pid)
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", timeout=15)
    assert not ws.socket.exists()
    con = duckdb.connect(str(ws.db))  # released: another tool can open the file read-write
    assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 2
    con.close()


def test_daemon_stays_while_a_client_is_connected(ws: Workspace, monkeypatch) -> None:
    monkeypatch.setenv("TIX_IDLE_TIMEOUT", "0.5")
    with Client(ws) as client:
        time.sleep(1.5)
        assert client.request("ping")["clients"] == 1


def test_two_clients_start_one_daemon_and_both_see_pushes(ws: Workspace, tix) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "engine.cli", "status", "--json"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    # A losing launcher finds the lock held and exits by itself; one daemon stays.
    wait_until(lambda: len(daemon_processes(ws)) == 1, timeout=15)
    assert daemon_processes(ws)[0].pid == daemon_pid(ws)
    with Client(ws) as watcher, Client(ws) as submitter:
        watcher.subscribe()
        run = probe("p", steps=3, sleep=0.05)
        submitter.request("submit", experiment=None, runs=[run])
        states = []
        for message in watcher.pushes(timeout=20):
            if message["run"]["id"] == run["id"]:
                states.append(message["run"]["state"])
                if states[-1] in TERMINAL:
                    break
        assert states[-1] == "succeeded" and len(states) >= 2  # pushes coalesce within a tick
        assert submitter.request("run", id=run["id"])["state"] == "succeeded"


def test_killed_worker_is_marked_failed_with_stderr_tail(ws: Workspace, client: Client) -> None:
    run = probe("victim", steps=1000, sleep=0.1, stderr_message="loading the victim model")
    client.request("submit", experiment=None, runs=[run])
    running = wait_state(client, run["id"], {"running"})
    wait_until(lambda: (ws.run_dir(run["id"]) / "stderr.log").read_text().strip())
    os.kill(running["pid"], signal.SIGKILL)
    killed_at = time.time()
    failed = wait_state(client, run["id"], TERMINAL, timeout=10)
    assert time.time() - killed_at < 10
    assert failed["state"] == "failed"
    assert "worker died without a final event" in failed["error"]
    assert "loading the victim model" in failed["error"]


def test_killed_daemon_leaves_worker_running_and_new_daemon_ingests_each_line_once(ws: Workspace) -> None:
    run = probe("survivor", steps=40, sleep=0.1)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[run])
        worker = wait_state(client, run["id"], {"running"})
        wait_until(lambda: run_state(client, run["id"])["progress"])
    os.kill(daemon_pid(ws), signal.SIGKILL)
    assert psutil.pid_exists(worker["pid"])
    wait_until(lambda: not psutil.pid_exists(worker["pid"]) or
               psutil.Process(worker["pid"]).status() == "zombie", timeout=30)
    with Client(ws) as client:  # a new daemon adopts the finished worker
        done = wait_state(client, run["id"], TERMINAL)
        assert done["state"] == "succeeded"
        lines = [json.loads(x) for x in (ws.run_dir(run["id"]) / "events.jsonl").read_text().splitlines()]
        metric_lines = [x for x in lines if x["type"] == "metric"]
        q = client.request("sql", query=f"SELECT count(*), count(DISTINCT value) FROM metrics "
                                        f"WHERE run_id = '{run['id']}' AND name = 'seq'")
        assert q["rows"] == [[40, 40]] and len(metric_lines) == 40
        q = client.request("sql", query=f"SELECT count(*), count(DISTINCT \"offset\") FROM events "
                                        f"WHERE run_id = '{run['id']}'")
        assert q["rows"] == [[len(lines) - 40, len(lines) - 40]]


def test_cancel_escalates_to_sigkill_and_cancels_dependents(ws: Workspace, tix, client: Client) -> None:
    stubborn = probe("stubborn", steps=1000, sleep=0.1, ignore_sigterm=True)
    child = probe("child", deps=[stubborn["id"]])
    client.request("submit", experiment={"name": "exp-c"}, runs=[stubborn, child])
    running = wait_state(client, stubborn["id"], {"running"})
    wait_until(lambda: run_state(client, stubborn["id"])["progress"])
    result = tix("cancel", "exp-c")
    assert result.returncode == 0, result.stderr
    assert stubborn["id"] in result.stdout
    done = wait_state(client, stubborn["id"], TERMINAL, timeout=10)  # grace is 2 s
    assert done["state"] == "cancelled"
    assert not psutil.pid_exists(running["pid"]) or psutil.Process(running["pid"]).status() == "zombie"
    assert wait_state(client, child["id"], TERMINAL)["state"] == "cancelled"


def test_dependency_failure_cancels_downstream_and_retries_are_used(ws: Workspace, client: Client) -> None:
    flaky = probe("flaky", steps=1, fail_attempts=1)
    flaky["max_retries"] = 1
    broken = probe("broken", steps=1, fail="no luck")
    after_broken = probe("after", deps=[broken["id"]])
    client.request("submit", experiment=None, runs=[flaky, broken, after_broken])
    ok = wait_state(client, flaky["id"], TERMINAL)
    assert ok["state"] == "succeeded" and ok["attempt"] == 2
    stderr = (ws.run_dir(flaky["id"]) / "stderr.log").read_text()
    first, second = stderr.split("──── attempt 2 · ")
    assert "Traceback" in first and "Traceback" not in second  # the retry's output is marked as new
    failed = wait_state(client, broken["id"], TERMINAL)
    assert failed["state"] == "failed" and "no luck" in failed["error"]
    downstream = wait_state(client, after_broken["id"], TERMINAL)
    assert downstream["state"] == "cancelled" and broken["id"] in downstream["error"]


@pytest.mark.parametrize("slots", [1, 2])
def test_cpu_box_runs_as_many_jobs_as_slots_each_with_its_share_of_cores(
        ws: Workspace, monkeypatch, slots: int) -> None:
    monkeypatch.setenv("TIX_CPU_SLOTS", str(slots))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    runs = [probe(f"cpu{i}", steps=3, sleep=0.3) for i in range(4)]
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=runs)
        done = [wait_state(client, r["id"], TERMINAL) for r in runs]
    spans = [(r["started_at"], r["finished_at"]) for r in done]
    most = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert most == slots  # never more than the slots, and the slots are used
    assert all(r["result"]["cuda_visible_devices"] == "" for r in done)
    threads = str(max(1, (os.cpu_count() or 1) // slots))
    assert all(r["result"]["omp_num_threads"] == threads for r in done)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every share is one thread")
def test_a_run_left_alone_is_given_the_cores_an_empty_slot_would_idle(ws: Workspace, monkeypatch) -> None:
    monkeypatch.setenv("TIX_CPU_SLOTS", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    long, short = probe("long", steps=16, sleep=0.25), probe("short", steps=2, sleep=0.25)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[long, short])
        done = {r["id"]: wait_state(client, r["id"], TERMINAL) for r in (long, short)}
    cores = os.cpu_count() or 1
    assert done[long["id"]]["result"]["omp_num_threads"] == str(cores // 2)  # started beside `short`
    assert done[long["id"]]["result"]["thread_shares"] == [cores]  # then alone: every core, once
    assert done[short["id"]]["result"]["thread_shares"] == []


def test_gpu_slots_assign_distinct_devices(ws: Workspace, monkeypatch) -> None:
    monkeypatch.setenv("TIX_GPUS", "2")
    runs = [probe(f"gpu{i}", steps=5, sleep=0.2) for i in range(3)]
    for r in runs:
        r["gpus_needed"] = 1
    too_big = probe("huge", steps=1)
    too_big["gpus_needed"] = 4
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[*runs, too_big])
        seen = wait_until(lambda: [r for r in client.request("status", states=["running"])
                                   if r["kind"] == "probe"] if len(
            client.request("status", states=["running"])) == 2 else None)
        assert sorted(r["gpus"] for r in seen) == ["0", "1"]
        done = [wait_state(client, r["id"], TERMINAL) for r in runs]
        assert {r["result"]["cuda_visible_devices"] for r in done} == {"0", "1"}
        huge = wait_state(client, too_big["id"], TERMINAL)
        assert huge["state"] == "failed" and "needs 4 GPUs" in huge["error"]


def test_identical_runs_are_reused_and_failed_ones_requeued(ws: Workspace, client: Client) -> None:
    run = probe("same", steps=1)
    first = client.request("submit", experiment=None, runs=[run])
    wait_state(client, run["id"], TERMINAL)
    again = client.request("submit", experiment=None, runs=[run])
    assert first[0]["reused"] is False and again[0] == {"id": run["id"], "state": "succeeded", "reused": True}
    bad = probe("bad", steps=1, fail="x")
    client.request("submit", experiment=None, runs=[bad])
    wait_state(client, bad["id"], TERMINAL)
    assert client.request("submit", experiment=None, runs=[bad])[0]["state"] == "queued"


def test_daemon_stop_and_status_commands(ws: Workspace, tix) -> None:
    assert tix("daemon", "status").returncode == 3
    started = tix("daemon", "start")
    assert started.returncode == 0 and "pid" in started.stdout
    status = tix("daemon", "status", "--json")
    assert json.loads(status.stdout)["running"] is True
    assert tix("daemon", "stop").returncode == 0
    assert not daemon_running(ws)


@pytest.mark.parametrize("stream", ["both", "stderr"])
def test_logs_shows_worker_output(ws: Workspace, tix, client: Client, stream: str) -> None:
    run = probe("chatty", steps=2, stderr_message=f"hello from the worker {stream}")
    client.request("submit", experiment=None, runs=[run])
    wait_state(client, run["id"], TERMINAL)
    result = tix("logs", run["id"][:12], "--stream", stream)
    assert result.returncode == 0, result.stderr
    assert f"hello from the worker {stream}" in result.stdout
    followed = tix("logs", run["id"], "-f")
    assert followed.returncode == 0 and "hello from the worker" in followed.stdout


def test_multi_gpu_runs_get_disjoint_gpu_sets(ws: Workspace, monkeypatch) -> None:
    """Three 2-GPU runs on a 4-GPU box: two at a time on disjoint sets, the third when a set frees."""
    monkeypatch.setenv("TIX_GPUS", "4")
    runs = [probe(f"pair{i}", steps=4, sleep=0.2) for i in range(3)]
    for r in runs:
        r["gpus_needed"] = 2
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=runs)
        running = wait_until(lambda: [r for r in client.request("status", states=["running"])
                                      if r["kind"] == "probe"] if len(
            client.request("status", states=["running"])) == 2 else None)
        sets = [set(r["gpus"].split(",")) for r in running]
        assert all(len(s) == 2 for s in sets) and not sets[0] & sets[1]
        done = [wait_state(client, r["id"], TERMINAL) for r in runs]
        assert all(r["state"] == "succeeded" and len(r["result"]["cuda_visible_devices"].split(",")) == 2
                   for r in done)
        spans = sorted((r["started_at"], r["finished_at"]) for r in done)
        assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third waited for a free pair


#: The last commit before the engine/ layout change (engine.server, engine.worker, engine.client).
PRE_LAYOUT = "af850089823d52dd041bbf95ce0ce0db40b80698"


def pre_layout_tree(dest: Path) -> Path:
    """engine/ and storage/ as they were before the layout change, from git; skip without history."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PRE_LAYOUT, "engine", "storage"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {PRE_LAYOUT[:8]} is not in this clone's history (shallow clone?)")
    dest.mkdir()
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def test_new_daemon_adopts_a_worker_started_by_a_pre_layout_daemon(ws: Workspace, tmp_path) -> None:
    """Upgrade under a running experiment: an older daemon (module `engine.server`) started a
    worker (`engine.worker`); it is killed, and the new daemon adopts the worker and ingests it."""
    old = pre_layout_tree(tmp_path / "old-tix")
    run = probe("from-old-daemon", steps=60, sleep=0.1)
    env = {**os.environ, "PYTHONPATH": str(old)}
    submit = ("import json, sys; from engine.client import Client; from engine.workspace import Workspace\n"
              "with Client(Workspace.resolve(sys.argv[1])) as c: c.request('submit', experiment=None, "
              "runs=[json.loads(sys.argv[2])])")
    subprocess.run([sys.executable, "-c", submit, str(ws.home), json.dumps(run)], cwd=old, env=env,
                   check=True, timeout=60)
    old_daemon = psutil.Process(daemon_pid(ws))
    assert "engine.server" in " ".join(old_daemon.cmdline())
    events = ws.run_dir(run["id"]) / "events.jsonl"
    wait_until(lambda: events.exists() and '"metric"' in events.read_text(), timeout=30)
    worker = psutil.Process(int(_started_pid(events)))
    assert "engine.worker" in worker.cmdline() and str(old) in worker.environ().get("PYTHONPATH", "")
    old_daemon.kill()
    old_daemon.wait(10)
    with Client(ws) as client:  # the new daemon, from this tree
        assert "engine.daemon.server" in " ".join(psutil.Process(daemon_pid(ws)).cmdline())
        done = wait_state(client, run["id"], TERMINAL, timeout=60)
        assert done["state"] == "succeeded", done.get("error")
        q = client.request("sql", query=f"SELECT count(DISTINCT value) FROM metrics "
                                        f"WHERE run_id = '{run['id']}' AND name = 'seq'")
        assert q["rows"] == [[60]]


def _started_pid(events: Path) -> str:
    return next(json.loads(x)["pid"] for x in events.read_text().splitlines() if '"started"' in x)


def test_legacy_worker_module_name_runs_the_current_worker(tmp_path) -> None:
    """An older daemon still running after an upgrade spawns `python -m engine.worker RUN_DIR`."""
    usage = subprocess.run([sys.executable, "-m", "engine.worker"], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode == 2 and "python -m engine.jobs.worker RUN_DIR" in usage.stderr
    daemon = subprocess.run([sys.executable, "-m", "engine.server", "--help"], cwd=ROOT, capture_output=True,
                            text=True)
    assert daemon.returncode == 0 and "engine.daemon.server" in daemon.stdout


def test_daemon_sets_the_database_memory_limit(ws: Workspace, tix, monkeypatch) -> None:
    """TIX_DB_MEMORY reaches the daemon's DuckDB (bounds its RSS while it ingests; README "Daemon settings")."""
    monkeypatch.setenv("TIX_DB_MEMORY", "300MB")
    monkeypatch.setenv("TIX_DB_THREADS", "1")
    result = tix("sql", "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t",
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"m": "286.1 MiB", "t": 1}]
