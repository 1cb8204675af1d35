"""The cluster view on Slurm without a cluster: reading sinfo's lines (captured on the test cluster,
Slurm 22.05, and odd gres strings from bigger ones), the totals that count a node once, the cache,
the report `tix daemon status` prints, and a daemon whose sinfo is a stand-in script or missing."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.cli import slurm_report
from engine.client.connection import Client
from engine.daemon.executors.slurm_info import (
    SINFO_ARGV,
    SinfoCache,
    cpu_counts,
    gpu_count,
    job_row,
    nodes,
    parse_node_lines,
    partitions,
    totals,
    usable,
)
from engine.workspace import Workspace

#: `sinfo -h -N -O 'NodeList:|,Partition:|,Available:|,StateCompact:|,Gres:|,GresUsed:|,CPUsState:|'`
#: on the test cluster (one node in partitions gpu and cpu, 2 fake GPUs), one GPU job running.
CAPTURED_BUSY = ("localhost|gpu*|up|mix|gpu:2|gpu:1|1/3/0/4|\n"
                 "localhost|cpu|up|mix|gpu:2|gpu:1|1/3/0/4|\n")
#: The same with nothing running.
CAPTURED_IDLE = ("localhost|gpu*|up|idle|gpu:2|gpu:0|0/4/0/4|\n"
                 "localhost|cpu|up|idle|gpu:2|gpu:0|0/4/0/4|\n")
#: A bigger cluster, written in the shapes Slurm prints: typed gres with sockets, used GPUs with
#: their indexes, a drained node that does not respond, a powered-down CPU node, a partition down.
BIG = """\
a-01|gpu*|up|mix|gpu:a100:4(S:0-1)|gpu:a100:2(IDX:0,2)|32/32/0/64|
a-02|gpu*|up|alloc|gpu:a100:4(S:0-1)|gpu:a100:4(IDX:0-3)|64/0/0/64|
a-03|gpu*|up|drain*|gpu:a100:4(S:0-1)|gpu:a100:0(IDX:N/A)|0/0/64/64|
a-01|long|down|mix|gpu:a100:4(S:0-1)|gpu:a100:2(IDX:0,2)|32/32/0/64|
c-01|cpu|up|idle~|(null)|gpu:0|0/128/0/128|
"""


@pytest.mark.parametrize(("gres", "count"), [
    ("gpu:2", 2), ("gpu:1", 1), ("gpu:0", 0), ("gpu:tesla:1(IDX:0)", 1), ("gpu:a100:4(S:0-1)", 4),
    ("gpu:a100:2(IDX:0,2)", 2), ("gpu:a100:2(IDX:0,2),gpu:v100:1(IDX:3),shard:8", 3),
    ("gpu:(null):0(IDX:N/A)", 0), ("gpu:a100:8(S:0,1)", 8), ("(null)", 0), ("", 0), ("gpu", 1),
    ("gpu:a100", 1), ("mps:400,gpu:2", 2), ("gpumem:80G,shard:4", 0), ("gpu:h100:8(S:0-1),nvme:1", 8),
])
def test_gpu_count_reads_gres_and_gres_used_and_counts_only_gpus(gres: str, count: int) -> None:
    assert gpu_count(gres) == count


def test_cpu_counts_and_node_states() -> None:
    assert cpu_counts("1/3/0/4") == {"cpus_alloc": 1, "cpus_idle": 3, "cpus_total": 4}
    assert cpu_counts("N/A") == {"cpus_alloc": None, "cpus_idle": None, "cpus_total": None}
    assert [usable(s) for s in ("idle", "mix", "alloc", "idle~", "mix-", "comp")] == [True] * 6
    assert [usable(s) for s in ("down*", "drain", "drng", "idle*", "mix$", "resv", "unk*", "fail")] == [False] * 8


def test_the_captured_lines_give_each_partition_and_the_node_once() -> None:
    rows = parse_node_lines(CAPTURED_BUSY)
    assert partitions(rows) == [
        {"name": "gpu", "default": True, "avail": "up", "nodes": 1, "states": {"mix": 1}, "gpus": 2,
         "gpus_used": 1, "gpus_free": 1},
        {"name": "cpu", "default": False, "avail": "up", "nodes": 1, "states": {"mix": 1}, "gpus": 2,
         "gpus_used": 1, "gpus_free": 1}]
    assert nodes(rows) == [{"name": "localhost", "partitions": ["gpu", "cpu"], "state": "mix", "gres": "gpu:2",
                            "gres_used": "gpu:1", "gpus": 2, "gpus_used": 1, "gpus_free": 1, "cpus_alloc": 1,
                            "cpus_idle": 3, "cpus_total": 4}]
    assert totals(nodes(rows)) == {"nodes": 1, "gpus": 2, "gpus_used": 1, "gpus_free": 1}
    idle = parse_node_lines(CAPTURED_IDLE)
    assert totals(nodes(idle)) == {"nodes": 1, "gpus": 2, "gpus_used": 0, "gpus_free": 2}


def test_a_bigger_cluster_frees_only_what_a_job_could_get() -> None:
    rows = parse_node_lines(BIG + "garbage line\n\n|x|\n")
    found = {p["name"]: p for p in partitions(rows)}
    assert (found["gpu"]["nodes"], found["gpu"]["states"]) == (3, {"mix": 1, "alloc": 1, "drain*": 1})
    assert (found["gpu"]["gpus"], found["gpu"]["gpus_used"], found["gpu"]["gpus_free"]) == (12, 6, 2)
    assert (found["long"]["avail"], found["long"]["gpus"], found["long"]["gpus_free"]) == ("down", 4, 0)
    assert (found["cpu"]["gpus"], found["cpu"]["gpus_free"]) == (0, 0)
    assert totals(nodes(rows)) == {"nodes": 4, "gpus": 12, "gpus_used": 6, "gpus_free": 2}  # a-01 once
    assert next(n for n in nodes(rows) if n["name"] == "a-01")["partitions"] == ["gpu", "long"]


def test_sinfo_is_asked_node_oriented_with_unpadded_fields() -> None:
    assert SINFO_ARGV == ["sinfo", "-h", "-N", "-O", "NodeList:|,Partition:|,Available:|,StateCompact:|,"
                                                     "Gres:|,GresUsed:|,CPUsState:|"]


def test_the_cache_asks_once_per_ttl_even_when_callers_arrive_together() -> None:
    asked: list[float] = []

    def slow() -> dict[str, Any]:
        asked.append(time.monotonic())
        time.sleep(0.2)
        return {"n": len(asked)}

    cache = SinfoCache(ttl=0.5, ask=slow)
    threads = [threading.Thread(target=cache.get) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(asked) == 1 and cache.get() == {"n": 1}
    time.sleep(0.6)
    assert cache.get() == {"n": 2}


def test_job_rows_say_where_a_job_runs_or_why_it_waits() -> None:
    run = {"id": "r1", "name": "sft", "experiment": "e", "job_id": "41", "state": "queued", "node": None,
           "reason": "Resources", "kind": "train"}
    assert job_row(run, "PENDING") == {"run": "r1", "name": "sft", "experiment": "e", "job_id": "41",
                                       "state": "queued", "slurm_state": "PENDING", "node": None,
                                       "reason": "Resources"}


def cluster_answer(out: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = parse_node_lines(out)
    return {"source": "slurm", "partitions": partitions(rows), "nodes": nodes(rows),
            "totals": totals(nodes(rows)), "error": None, "jobs": jobs}


def test_the_status_report_lists_partitions_totals_and_tix_jobs() -> None:
    jobs = [job_row({"id": "r1", "job_id": "7", "state": "running", "node": "localhost"}, "RUNNING"),
            job_row({"id": "r2", "job_id": "8", "state": "queued", "reason": "Resources"}, "PENDING")]
    report = slurm_report(cluster_answer(CAPTURED_BUSY, jobs)).splitlines()
    assert report[1:5] == ["partition  avail  nodes  state  GPUs free/total",
                           "---------  -----  -----  -----  ---------------",
                           "gpu*       up     1      mix    1/2",
                           "cpu        up     1      mix    1/2"]
    assert report[5] == "cluster: 1 node(s), 1 of 2 GPU(s) used, 1 free"
    assert report[-2:] == ["r1   7    running  localhost", "r2   8    pending  Resources"]
    big = slurm_report(cluster_answer(BIG, []))
    assert "gpu*       up     3      1 mix, 1 alloc, 1 drain*  2/12" in big
    assert big.endswith("tix jobs: none in the cluster")


def test_the_status_report_of_a_failed_sinfo_is_its_line() -> None:
    report = slurm_report({"partitions": [], "nodes": [], "jobs": [], "error": "sinfo: error: down"})
    assert report == "sinfo: error: down\ntix jobs: none in the cluster"


# -- a daemon with executor slurm and a stand-in sinfo -----------------------------------------
def fake_sinfo(folder: Path, out: str) -> Path:
    """An executable `sinfo` that logs its arguments (one line per call) and prints `out`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "captured.txt").write_text(out)
    script = folder / "sinfo"
    script.write_text(f'#!/bin/sh\necho "$*" >> {folder}/calls\ncat {folder}/captured.txt\n')
    script.chmod(0o755)
    return folder / "calls"


def test_the_gpus_op_on_slurm_shows_the_cluster_and_asks_sinfo_once_per_few_seconds(
        ws: Workspace, tix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_sinfo(tmp_path / "bin", CAPTURED_BUSY)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    ws.ensure()
    ws.config.write_text("executor: slurm\n")
    with Client(ws) as client:
        answers = [client.request("gpus") for _ in range(3)]
    assert answers[0]["source"] == "slurm" and answers[0]["error"] is None and answers[0]["jobs"] == []
    assert answers[0]["totals"] == {"nodes": 1, "gpus": 2, "gpus_used": 1, "gpus_free": 1}
    assert [p["name"] for p in answers[0]["partitions"]] == ["gpu", "cpu"]
    assert calls.read_text().splitlines() == [" ".join(SINFO_ARGV[1:])]  # the cache served the others
    status = tix("daemon", "status")
    assert status.returncode == 0, status.stderr
    assert "gpu*       up     1      mix    1/2" in status.stdout
    assert "tix jobs: none in the cluster" in status.stdout
    listed = json.loads(tix("daemon", "status", "--json").stdout)
    assert listed["executor"] == "slurm" and listed["slurm"]["totals"]["gpus_used"] == 1


def test_without_sinfo_the_gpus_op_and_the_status_say_so_on_one_line(
        ws: Workspace, tix, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    ws.ensure()
    ws.config.write_text("executor: slurm\n")
    with Client(ws) as client:
        answer = client.request("gpus")
    assert answer["error"] == "sinfo not found on PATH (executor slurm needs Slurm's commands)"
    assert (answer["partitions"], answer["jobs"]) == ([], [])
    status = tix("daemon", "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[1:] == ["sinfo not found on PATH (executor slurm needs Slurm's commands)",
                                              "tix jobs: none in the cluster"]
    assert "Traceback" not in ws.log.read_text()
