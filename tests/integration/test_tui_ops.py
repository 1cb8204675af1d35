"""The daemon ops behind the TUI's run detail and GPU panel, with a real daemon: run_metrics,
run_log, run_samples, subscribe with runs (run_events pushes after ingest) and gpus."""

from __future__ import annotations

import json

import pytest

from engine.client.connection import Client, RequestFailed
from engine.daemon.gpus import parse_smi_line
from engine.daemon.runlog import format_event, read_chunk
from engine.workspace import Workspace
from tests.tui.recorded import Recorded, build_workspace


@pytest.fixture
def recorded(ws: Workspace) -> Recorded:
    rec = build_workspace(ws)
    yield rec
    rec.stop_worker()


def test_run_metrics_full_then_from_a_step(recorded: Recorded, client: Client) -> None:
    rl = recorded.ids["rl"]
    full = client.request("run_metrics", id=rl)
    assert full["names"] == ["completions/mean_length", "kl", "learning_rate", "loss", "reward"]
    assert len(full["rows"]) == 300 and full["last_step"] == 60 and not full["truncated"]
    assert full["rows"][0][:2] == [1, "completions/mean_length"]
    since = client.request("run_metrics", id=rl[:12], since_step=59, names=["reward"])  # a prefix works
    assert [r[:2] for r in since["rows"]] == [[59, "reward"], [60, "reward"]]
    assert client.request("run_metrics", id=rl, max_rows=7)["truncated"]
    with pytest.raises(RequestFailed, match="since_step"):
        client.request("run_metrics", id=rl, since_step="x")
    with pytest.raises(RequestFailed, match="no run matches"):
        client.request("run_metrics", id="nope")


def test_run_log_tail_offsets_and_the_event_story(recorded: Recorded, client: Client) -> None:
    rl = recorded.ids["rl"]
    both = client.request("run_log", id=rl)
    assert [c["stream"] for c in both["chunks"]] == ["stdout", "stderr"] and both["state"] == "running"
    out = both["chunks"][0]
    assert out["start"] == 0 and out["offset"] == out["size"] and '"step": 60' in out["text"]
    again = client.request("run_log", id=rl, stream="stdout", offsets={"stdout": out["offset"]})
    assert again["chunks"][0]["text"] == ""
    recorded.grow(range(61, 63))
    more = client.request("run_log", id=rl, stream="stdout", offsets={"stdout": out["offset"]})
    assert more["chunks"][0]["text"].count("\n") == 2 and '"step": 62' in more["chunks"][0]["text"]
    tail = client.request("run_log", id=rl, stream="events", max_bytes=1024)["chunks"][0]
    assert tail["start"] > 0 and tail["offset"] == tail["size"]  # whole lines from the last KiB
    assert tail["text"].splitlines()[-1].endswith("progress train 62/100")
    story = client.request("run_log", id=rl, stream="events")["chunks"][0]["text"].splitlines()
    assert story[0].endswith("started  " + json.dumps({"pid": recorded.worker.pid, "host": "lab-box",
                                                         "attempt": 1}, separators=(", ", ": ")))
    assert "GRPO on lab/math-train" in story[1] and not any("metric" in line for line in story)
    with pytest.raises(RequestFailed, match="stream must be"):
        client.request("run_log", id=rl, stream="nope")


def test_run_samples_search_filters_and_pages(recorded: Recorded, client: Client) -> None:
    ev = recorded.ids["eval_sft"]
    page = client.request("run_samples", id=ev, limit=5)
    assert page["all"] == 24 and page["total"] == 24 and len(page["rows"]) == 5
    assert page["benchmarks"] == {"lab_basic_arithmetic": 8, "lab_spell_backward": 8, "lab_syllogism": 8}
    assert set(page["rows"][0]) >= {"prompt", "completion", "extracted", "verdict", "flags", "item_id"}
    second = client.request("run_samples", id=ev, limit=5, offset=5)
    assert second["rows"][0]["offset"] > page["rows"][-1]["offset"]
    wrong = client.request("run_samples", id=ev, verdict="wrong")
    assert wrong["total"] == 7 and all(r["verdict"] < 0.5 for r in wrong["rows"])
    assert client.request("run_samples", id=ev, query="SPELL")["total"] == 8  # case-insensitive
    assert client.request("run_samples", id=ev, query="50%")["total"] == 0  # no LIKE wildcards
    flagged = client.request("run_samples", id=ev, flag="no_answer", benchmark="lab_spell_backward")
    assert flagged["total"] == 2 and all("no_answer" in r["flags"] for r in flagged["rows"])
    with pytest.raises(RequestFailed, match="verdict must be"):
        client.request("run_samples", id=ev, verdict="maybe")


def test_subscribe_runs_pushes_run_events_after_ingest(recorded: Recorded, ws: Workspace) -> None:
    rl = recorded.ids["rl"]
    with Client(ws) as watcher:
        assert watcher.request("subscribe", runs=[rl]) == {"subscribed": ["run", "run_events"], "runs": [rl]}
        recorded.grow(range(61, 66))
        notices = []
        for message in watcher.pushes(timeout=10):
            if message.get("push") == "run_events":
                notices.append(message)
                if sum(n["metrics"] for n in notices) >= 5:
                    break
        assert all(n["run_id"] == rl for n in notices)
        assert sum(n["metrics"] for n in notices) == 5 and sum(n["events"] for n in notices) == 5
        assert notices[-1]["logs"]["stdout"] == (ws.run_dir(rl) / "stdout.log").stat().st_size
        assert watcher.request("subscribe", runs=[]) == {"subscribed": ["run", "run_events"], "runs": []}
        recorded.grow(range(66, 68))
        assert not [m for m in watcher.pushes(timeout=1.5) if m.get("push") == "run_events"]
        assert watcher.request("subscribe") == {"subscribed": ["run"]}  # the old form is unchanged


def test_gpus_op_with_the_gpu_override(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIX_GPUS", "2")
    rec = build_workspace(ws)  # the running run holds GPU 0
    try:
        with Client(ws) as client:
            info = client.request("gpus")
    finally:
        rec.stop_worker()
    assert info["scheduled"] == 2 and info["override"] is True and "NVML" in info["how"]
    gpus = {g["index"]: g for g in info["gpus"]}
    assert set(gpus) == {0, 1} and gpus[0]["scheduled"]
    assert [r["id"] for r in gpus[0]["runs"]] == [rec.ids["rl"]] and gpus[1]["runs"] == []
    assert gpus[0]["runs"][0]["name"] == "rl" and gpus[0]["runs"][0]["experiment"] == "tiny-lab"
    if info["source"] == "none":  # no driver here: the override's GPUs come without figures
        assert not gpus[0]["detected"] and gpus[0]["util"] is None


def test_gpus_op_on_a_cpu_box(client: Client) -> None:
    info = client.request("gpus")
    if info["source"] == "none":
        assert info == {**info, "gpus": [], "scheduled": 0, "detected": 0, "override": True}


def test_sql_total_and_sql_export_ops(client: Client, tmp_path) -> None:
    """The SQL console's ops (engine/daemon/tui_ops.py), registered by the daemon like `sql`."""
    result = client.request("sql_total", query="SELECT range AS i FROM range(1500)", max_rows=10)
    assert result["total"] == 1500 and result["types"] == ["BIGINT"] and len(result["rows"]) == 10
    out = tmp_path / "all.csv"
    assert client.request("sql_export", query="SELECT range AS i FROM range(1500)", path=str(out),
                          format="csv") == {"rows": 1500, "path": str(out)}
    assert out.read_text().splitlines()[:2] == ["i", "0"]
    with pytest.raises(RequestFailed, match="read-only") as refused:
        client.request("sql_total", query="DELETE FROM runs")
    assert refused.value.code == "refused"


def test_read_chunk_and_formatting(tmp_path) -> None:
    (tmp_path / "stderr.log").write_bytes(b"a\nb\r 10%\r 20%")
    chunk = read_chunk(tmp_path, "stderr", 0, 1 << 16)
    assert chunk["text"] == "a\nb\r 10%\r" and chunk["offset"] == len(b"a\nb\r 10%\r")  # up to the last \r
    assert read_chunk(tmp_path, "stdout", None, 1024) == {"stream": "stdout", "text": "", "start": 0,
                                                           "offset": 0, "size": 0}
    (tmp_path / "events.jsonl").write_text('{"t": 0, "type": "log", "message": "hi"}\n{"t": 1, "type": "me')
    events = read_chunk(tmp_path, "events", 0, 1 << 16)
    assert events["text"] == "00:00:00 log      hi\n" and events["offset"] < events["size"]  # torn line waits
    assert format_event({"t": 3600, "type": "failed", "error": "Traceback\n...\nValueError: x"}) == \
        "01:00:00 failed   ValueError: x"
    # numbers as a person reads them, and every shift metric says what it is about
    assert format_event({"t": 0, "type": "score", "benchmark": "lab_chain_sum", "group": "math",
                         "metric": "accuracy", "value": 57.99999999999999, "n": 100}) == \
        "00:00:00 score    lab_chain_sum (math) accuracy = 58 n=100"
    assert format_event({"t": 0, "type": "shift", "analysis": "token_shift", "benchmark": None, "group": "math",
                         "layer": None, "metric": "tokens", "value": 161}) == \
        "00:00:00 shift    token_shift group math tokens = 161"
    assert format_event({"t": 0, "type": "shift", "analysis": "pca_shift", "benchmark": "lab_syllogism",
                         "group": "other", "layer": 2, "metric": "d", "value": 0.123456789}) == \
        "00:00:00 shift    pca_shift lab_syllogism layer 2 d = 0.123457"
    assert parse_smi_line("0, NVIDIA H100 80GB HBM3, 37, 1024, 81559, 41") == {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "util": 37.0, "mem_used": 1 << 30,
        "mem_total": 81559 << 20, "temperature": 41.0}
    assert parse_smi_line("1, GPU, [N/A], [N/A], 100, [N/A]")["util"] is None
    assert parse_smi_line("garbage") is None
