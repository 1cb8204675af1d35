"""The bulk (DuckDB) parse of a window stores exactly what the line-by-line Python path stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.daemon import ingest, ingest_fast
from engine.daemon.ingest import ingest_run, ingest_until_drained
from storage import Store

EVENTS = [
    {"type": "started", "t": 1.7e9},
    {"type": "metric", "t": 1.7e9 + 1, "step": 1, "values": {"loss": 2.5, "lr": 1, "ok": True, "gone": None}},
    {"type": "metric", "step": 2, "values": {"a.b": -1e-9, "é": 3}},
    {"type": "metric", "t": -5, "step": None, "values": {}},
    {"type": "metric", "t": "soon", "step": 3.5, "values": {"loss": "1.5"}},
    {"type": "metric", "step": 4, "values": {"loss": {"nested": 1}}},
    {"type": "progress", "step": 4, "total": 10, "desc": "train"},
    {"type": "score", "benchmark": "math", "metric": "acc", "value": 50, "n": 3},
    {"type": "log", "message": '{"type": "metric"}'},
]
SAMPLES = [
    {"benchmark": "math", "item_id": "1", "sample_idx": 0, "prompt": "p é", "completion": "c\n\"x\"",
     "extracted": None, "verdict": 1, "tokens": 12, "finish_reason": "stop", "flags": ["no_answer"],
     "group": "g", "metrics": {"accuracy": 1.0}, "gold": "4"},
    {"benchmark": "math", "item_id": "2", "sample_idx": 1, "verdict": 0.5, "flags": []},
    {"benchmark": "math", "item_id": 3, "sample_idx": "zero", "verdict": True, "flags": "cut"},
    {"benchmark": "math", "item_id": "4", "flags": ["a", 1], "tokens": 2**40},
]


def write(run: Path, lines: list[str]) -> None:
    run.mkdir()
    events = [json.dumps(e) for e in EVENTS] + ["", "not json", "[1]"]
    (run / "events.jsonl").write_text("\n".join(events + lines) + "\n")
    (run / "samples.jsonl").write_text("\n".join(json.dumps(s) for s in SAMPLES) + "\n\n{bad\n")


def dump(store: Store) -> dict[str, list[tuple]]:
    out = {}
    for table, order in [("metrics", "step, name, value"), ("events", '"offset"'), ("scores", "value"),
                         ("samples", '"offset"'), ("ingest_offsets", "file")]:
        cols = "* EXCLUDE (t)" if table in ("metrics", "events", "scores") else "*"
        rows = store.con.execute(f"SELECT {cols} FROM {table} ORDER BY {order}").fetchall()
        out[table] = [tuple(json.loads(v) if isinstance(v, str) and v.startswith("{") else v for v in r)
                      for r in rows]
    return out


def test_bulk_and_python_paths_store_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a", [])
    fast = Store.open(None)
    ingest_until_drained(fast, "r", tmp_path / "a")
    none = np.empty(0, np.int64)
    monkeypatch.setattr(ingest, "parse_metrics", lambda *a: (None, none))
    monkeypatch.setattr(ingest, "parse_samples", lambda *a: (None, none))
    monkeypatch.setattr(ingest.IngestBatch, "extend", lambda self, table, data: None)
    slow = Store.open(None)
    ingest_until_drained(slow, "r", tmp_path / "a")
    assert dump(fast) == dump(slow)
    assert fast.con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 8
    assert fast.con.execute("SELECT bad_lines FROM ingest_offsets ORDER BY file").fetchall() == [(2,), (1,)]


def test_small_windows_keep_line_offsets(tmp_path: Path) -> None:
    write(tmp_path / "a", [])
    store = Store.open(None)
    while ingest_run(store, "r", tmp_path / "a", max_bytes=300).sample_lines:
        pass
    data = (tmp_path / "a" / "samples.jsonl").read_bytes()
    for (offset, item) in store.con.execute('SELECT "offset", item_id FROM samples').fetchall():
        assert json.loads(data[offset:data.index(b"\n", offset)])["item_id"] in (item, int(item))


def test_clean_lines_take_the_bulk_path(tmp_path: Path) -> None:
    write(tmp_path / "a", [])
    events = (tmp_path / "a" / "events.jsonl").read_bytes()
    _, done = ingest_fast.parse_metrics(events, ingest_fast.line_starts(events), "r")
    assert done.tolist() == [2, 3]  # numbers only; a boolean, a string or nesting go to Python
    samples = (tmp_path / "a" / "samples.jsonl").read_bytes()
    table, done = ingest_fast.parse_samples(samples, ingest_fast.line_starts(samples), "r", 100)
    assert done.tolist() == [0, 1]
    assert table["offset"].to_pylist() == [100, 100 + samples.index(b"\n") + 1]
    assert json.loads(table["extra"][0].as_py()) == {"group": "g", "metrics": {"accuracy": 1.0}, "gold": "4"}


def test_a_crash_mid_ingest_stores_each_line_once_after_restart(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon dies while committing a window (after its rows were inserted): the window's
    rows roll back with its offset, and the next daemon stores every line exactly once."""
    run = tmp_path / "a"
    write(run, [json.dumps({"type": "metric", "step": s, "values": {"loss": s / 10}}) for s in range(200)])
    db = tmp_path / "tix.duckdb"
    store = Store.open(db)
    real_execute, calls = store.con.execute, {"n": 0}

    def execute(sql: str, *args: object) -> object:
        if sql.lstrip().startswith("INSERT INTO ingest_offsets"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("killed")
        return real_execute(sql, *args)

    real = store.con
    dying = type("DyingConnection", (), {"execute": staticmethod(execute),
                                         "__getattr__": lambda self, name: getattr(real, name)})
    monkeypatch.setattr(store, "con", dying())
    with pytest.raises(RuntimeError):
        while ingest_run(store, "r", run, max_bytes=2000).lines:
            pass
    monkeypatch.undo()
    store.close()
    restarted = Store.open(db)
    ingest_until_drained(restarted, "r", run)
    events = (run / "events.jsonl").read_bytes().splitlines()
    steps = restarted.con.execute(
        "SELECT step FROM metrics WHERE name = 'loss' AND step >= 10 ORDER BY 1").fetchall()
    assert [s for (s,) in steps] == list(range(10, 200))
    samples = restarted.con.execute('SELECT count(*), count(DISTINCT "offset") FROM samples').fetchone()
    assert samples == (4, 4) and len(events) == len(EVENTS) + 3 + 200
    assert restarted.con.execute("SELECT sum(bad_lines) FROM ingest_offsets").fetchone()[0] == 3


def python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line takes the line-by-line Python path from here on."""
    none = np.empty(0, np.int64)
    monkeypatch.setattr(ingest, "parse_metrics", lambda *a: (None, none))
    monkeypatch.setattr(ingest, "parse_samples", lambda *a: (None, none))
    monkeypatch.setattr(ingest.IngestBatch, "extend", lambda self, table, data: None)


def both_paths(run: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, list[tuple]], dict[str, list[tuple]]]:
    """The run stored by ingest as it is, then by the Python path alone: both stores' tables."""
    stores = [Store.open(None), Store.open(None)]
    ingest_until_drained(stores[0], "r", run)
    python_path(monkeypatch)
    ingest_until_drained(stores[1], "r", run)
    return dump(stores[0]), dump(stores[1])


#: Lines pyarrow parses as one window (each field keeps one JSON type), with every case its
#: result could differ from Python's `json` in: nulls, booleans, strings, nesting, odd times.
ARROW_WINDOW = [
    {"type": "metric", "t": 1_700_000_000, "step": 1, "values": {"loss": 2.5, "lr": 1, "a.b": -1e-9, "é": 3}},
    {"type": "metric", "t": 1.7e9 + 1, "step": 2, "values": {"loss": 2.0, "big": 2**60, 'q"k': 1}},
    {"type": "metric", "t": -5, "values": {"loss": 1}},
    {"type": "metric", "t": 1e12, "step": 3, "values": {}},
    {"type": "metric", "step": 4},
    {"type": "metric", "step": 5, "values": {"loss": 1.5, "gone": None}},
    {"type": "metric", "t": None, "step": None, "values": {"loss": 1.25}},
    {"type": "metric", "step": 6, "values": {"ok": True, "loss": 1.0}},
    {"type": "metric", "step": 7, "values": {"s": "1.5"}},
    {"type": "metric", "step": 8, "values": {"nested": {"x": 1}}},
    {"type": "metric", "step": 9, "values": None},
    {"type": "progress", "step": 9, "total": 10, "desc": "train"},
    {"x": 1},
    {"type": "log", "message": '{"type": "metric", "values": {"loss": 9}}'},
]


def test_a_window_pyarrow_reads_whole_stores_what_python_stores(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "a"
    run.mkdir()
    lines = [json.dumps(e) for e in ARROW_WINDOW]
    (run / "events.jsonl").write_text("\n".join([*lines[:5], "", *lines[5:]]) + "\n")
    body = (run / "events.jsonl").read_bytes()
    starts = ingest_fast.line_starts(body)
    assert ingest_fast._metrics_arrow(body, starts) is not None  # the window took pyarrow's path
    _, done = ingest_fast.parse_metrics(body, starts, "r")
    # Not: the empty line, the text null (a missing value may be a null), boolean, string, nesting.
    assert done.tolist() == [0, 1, 2, 3, 4]
    fast = Store.open(None)
    summary = ingest_until_drained(fast, "r", run)
    python_path(monkeypatch)
    slow = Store.open(None)
    assert ingest_until_drained(slow, "r", run).metric_lines == summary.metric_lines == 11
    assert dump(fast) == dump(slow)
    assert fast.con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 15
    assert fast.con.execute("SELECT bad_lines FROM ingest_offsets").fetchall() == [(1,)]
    times = "SELECT step, name, value, t FROM metrics WHERE t < '2025-01-01' ORDER BY ALL"
    assert fast.con.execute(times).fetchall() == slow.con.execute(times).fetchall() != []


@pytest.mark.parametrize(("odd", "rows", "bad"), [
    ("{bad", 0, 1), ("[1]", 0, 1), ("\udcff", 0, 1),  # the last is the byte 0xff: not UTF-8
    ('{"type": "metric", "step": "3", "values": {"loss": 1}}', 1, 0),  # a string step: Python's int()
    ('{"type": "metric", "step": 3}{"x": 1}\n', 0, 1),  # two objects on a line, then an empty line
])
def test_one_odd_line_among_valid_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: str,
                                       rows: int, bad: int) -> None:
    """pyarrow refuses such a window whole; the line-by-line path stores the same rows, counts
    the same malformed lines, and leaves the torn last line for next time."""
    run = tmp_path / "a"
    run.mkdir()
    lines = [json.dumps({"type": "metric", "t": 1.7e9, "step": s, "values": {"loss": s / 4, "lr": 1}})
             for s in range(300)]
    path = run / "events.jsonl"
    text = "\n".join([*lines[:150], odd, *lines[150:]]) + '\n{"type": "met'  # a torn last line
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    body = path.read_bytes()[: path.read_bytes().rindex(b"\n") + 1]
    assert ingest_fast._metrics_arrow(body, ingest_fast.line_starts(body)) is None
    fast, slow = both_paths(run, monkeypatch)
    assert fast == slow
    assert len(fast["metrics"]) == 600 + rows
    assert fast["ingest_offsets"][0][2:] == (len(body), bad)


#: Sample lines pyarrow reads as one window: missing and null fields, an INTEGER overflow, and
#: other keys of every JSON type (nested, null, escaped, non-ASCII) that become `extra`.
SAMPLE_WINDOW = [
    {"benchmark": "math", "item_id": "1", "sample_idx": 0, "prompt": "p é", "completion": "c\n\"x\"\t\\",
     "extracted": None, "verdict": 1, "tokens": 12, "finish_reason": "stop", "flags": ["no_answer"],
     "group": "g", "metrics": {"accuracy": 1.0, "n": [1, 2.5, None]}, "gold": "4", "detail": None},
    {"benchmark": "math", "item_id": "2", "sample_idx": 1, "verdict": 0.5, "flags": [], 'k "q"\u00e9': True},
    {"benchmark": None, "item_id": "3", "tokens": 2**40, "sample_idx": -(2**31), "flags": None},
    {},
]


def test_a_samples_window_pyarrow_reads_whole_stores_what_python_stores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "a"
    run.mkdir()
    lines = [json.dumps(s, ensure_ascii=n % 2 == 0) for n, s in enumerate(SAMPLE_WINDOW)]
    (run / "samples.jsonl").write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")
    body = (run / "samples.jsonl").read_bytes()
    assert ingest_fast._samples_arrow(body, ingest_fast.line_starts(body)) is not None
    _, done = ingest_fast.parse_samples(body, ingest_fast.line_starts(body), "r", 0)
    assert done.tolist() == [0, 1, 3, 4]
    fast = Store.open(None)
    ingest_until_drained(fast, "r", run)
    python_path(monkeypatch)
    slow = Store.open(None)
    ingest_until_drained(slow, "r", run)
    assert dump(fast) == dump(slow)
    rows = dump(fast)["samples"]
    assert [r[-1] for r in rows] == [{k: v for k, v in s.items() if k not in ingest._SAMPLE_FIELDS} or None
                                     for s in SAMPLE_WINDOW]
    assert rows[2][4] is None and rows[2][9] is None  # INT_MIN and 2**40 do not fit: as Python's _int32


def test_metric_names_with_control_characters_are_stored_as_written(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with NUL and ESC (a trainer logging a key it read from data) in a window pyarrow
    refuses: DuckDB's struct changes such a name, which made the window's ingest raise a KeyError;
    it now takes the Python path."""
    run = tmp_path / "a"
    run.mkdir()
    odd = "loss\x00\x1b[2J\x07"
    lines = [json.dumps({"type": "metric", "t": 1.7e9, "step": s, "values": {odd: s / 4, "lr": 1}})
             for s in range(50)]
    (run / "events.jsonl").write_text("\n".join([*lines[:25], "{bad", *lines[25:]]) + "\n")  # not pyarrow's
    body = (run / "events.jsonl").read_bytes()
    assert ingest_fast._metrics_arrow(body, ingest_fast.line_starts(body)) is None  # DuckDB's path
    fast, slow = both_paths(run, monkeypatch)
    assert fast == slow
    assert {r[2] for r in fast["metrics"]} == {odd, "lr"} and len(fast["metrics"]) == 100
