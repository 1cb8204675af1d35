"""Ingest reads complete lines only, stores each line once, and survives garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.daemon.ingest import ingest_run, ingest_until_drained
from engine.events import EventWriter, read_complete_lines
from storage import Store


def count(store: Store, table: str) -> int:
    return store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_torn_last_line_waits_until_complete(tmp_path: Path) -> None:
    store = Store.open(None)
    events = tmp_path / "events.jsonl"
    events.write_text('{"type":"started","t":1}\n{"type":"metric","step":1,"values":{"loss":2.5}}\n'
                      '{"type":"progress","step":1,"tot')
    summary = ingest_run(store, "r", tmp_path)
    assert summary.lines == 2 and summary.progress is None
    assert (count(store, "events"), count(store, "metrics")) == (1, 1)
    assert ingest_run(store, "r", tmp_path).lines == 0  # nothing new: nothing stored twice
    with events.open("a") as f:
        f.write('al":4,"desc":"train"}\n')
    summary = ingest_run(store, "r", tmp_path)
    assert summary.progress == (1, 4, "train")
    assert (count(store, "events"), count(store, "metrics")) == (2, 1)


def test_restarted_writer_ends_a_torn_line_which_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('{"type":"started"}\n{"type":"metr')
    writer = EventWriter(tmp_path / "events.jsonl")  # a resumed attempt
    writer.emit("finished", result={"ok": True})
    writer.close()
    store = Store.open(None)
    summary = ingest_until_drained(store, "r", tmp_path)
    assert summary.final["type"] == "finished"
    assert count(store, "events") == 2
    assert store.con.execute("SELECT bad_lines FROM ingest_offsets").fetchone() == (1,)


def test_garbage_and_odd_types_do_not_block_ingest(tmp_path: Path) -> None:
    lines = ["not json", "[1,2]", '{"no_type":1}', '{"type":"metric","step":"x","values":[1]}',
             '{"type":"metric","step":3,"values":{"loss":"nan?"}}', '{"type":"progress","step":"a"}',
             '{"type":"score","benchmark":1,"value":"50","n":"3","t":"yesterday"}']
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "samples.jsonl").write_text(
        json.dumps({"benchmark": "b", "item_id": 7, "sample_idx": "zero", "flags": "cut", "verdict": True,
                    "custom": {"a": 1}}) + "\n")
    store = Store.open(None)
    ingest_run(store, "r", tmp_path)
    assert count(store, "scores") == 1 and count(store, "samples") == 1
    assert store.con.execute("SELECT value, n FROM scores").fetchone() == (50.0, 3)
    assert store.con.execute("SELECT item_id, verdict, extra FROM samples").fetchone() == (
        "7", 1.0, '{"custom": {"a": 1}}')


def test_read_complete_lines_windows(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"aa\nbbbb\ncc")
    assert read_complete_lines(path, 0, max_bytes=5) == ([b"aa"], 3)
    assert read_complete_lines(path, 3, max_bytes=100) == ([b"bbbb"], 8)
    assert read_complete_lines(tmp_path / "missing", 0) == ([], 0)


def test_a_write_cut_short_by_a_signal_leaves_the_old_content(tmp_path: Path, monkeypatch) -> None:
    """A resumable job's kept step (and a rank's result, a worker's thread share) is replaced whole:
    a SIGTERM during a plain write_text left the probe's step file empty, and every retry failed
    reading it (seen in a Slurm time-limit test)."""
    from engine.events import write_atomic
    from engine.jobs import probe

    kept = tmp_path / probe.STATE_FILE
    write_atomic(kept, "12")

    def cut_short(self: Path, text: str, *args: object, **kwargs: object) -> int:
        self.open("w").close()  # truncated, then the signal arrives before the text is written
        raise KeyboardInterrupt("signal mid-write")

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(kept, "13")
    monkeypatch.undo()
    assert kept.read_text() == "12" and sorted(p.name for p in tmp_path.iterdir()) == [f".{kept.name}.tmp", kept.name]
    write_atomic(kept, "13")
    assert kept.read_text() == "13" and [p.name for p in tmp_path.iterdir()] == [kept.name]
