"""Ingest: the daemon tails each run's JSON-lines files into DuckDB.

Reading starts at the byte offset stored with the previous batch and takes complete lines only,
so a line still being written (or torn by a crash) waits. Rows and the new offset are committed
in one transaction (`Store.write_batch`), so every line is stored exactly once, across daemon
restarts too. Each line lands in exactly one table: `metric` lines in `metrics` (one row per
value), `score` lines in `scores`, `shift` lines in `shift_results`, samples in `samples`,
everything else in `events`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.daemon.ingest_fast import line_starts, parse_metrics, parse_samples
from engine.events import EVENTS_FILE, FINAL_EVENTS, SAMPLES_FILE, read_complete_window
from storage.store import IngestBatch, Store


@dataclass
class EventSummary:
    """What one pass learned about a run's state: the scheduler turns it into run updates."""

    lines: int = 0
    metric_lines: int = 0
    sample_lines: int = 0
    progress: tuple[int, int | None, str] | None = None
    heartbeat: float | bool | None = None
    final: dict[str, Any] | None = None
    started: dict[str, Any] | None = None
    """The last `started` event of this pass: a worker (re)started, e.g. a job Slurm requeued."""


EVENTS_WINDOW = 32 << 20
"""Bytes of events.jsonl read (and committed) at once. Metric lines are short (a million rows
are 38 MB), so a window is 200k-900k rows: DuckDB writes each full row group straight to the
file and only the last part through the WAL. At 8 MiB, 1M metric rows took 1.39-1.53x DuckDB's
own `read_json` of the file, at 32 MiB 1.23-1.25x (bench/ingest.py)."""
SAMPLES_WINDOW = 8 << 20
"""Bytes of samples.jsonl read at once: completions are long (2-130 KB), so 8 MiB is a few
thousand rows already, and a bigger window only raises the daemon's peak memory."""


def ingest_run(store: Store, run_id: str, run_dir: Path, max_bytes: int | None = None) -> EventSummary:
    """One pass over a run's events and samples files, a window of each (`max_bytes` for both, or
    EVENTS_WINDOW and SAMPLES_WINDOW)."""
    summary = EventSummary()

    def fast_events(batch: IngestBatch, body: bytes, starts: np.ndarray, offset: int) -> np.ndarray:
        metrics, done = parse_metrics(body, starts, run_id)
        batch.extend("metrics", metrics)
        summary.metric_lines += len(done)
        return done

    def fast_samples(batch: IngestBatch, body: bytes, starts: np.ndarray, offset: int) -> np.ndarray:
        samples, done = parse_samples(body, starts, run_id, offset)
        batch.extend("samples", samples)
        return done

    def route_event(batch: IngestBatch, offset: int, obj: dict[str, Any]) -> bool:
        if not isinstance(obj.get("type"), str):
            return False
        _route_event(batch, run_id, offset, obj, summary)
        return True

    def route_sample(batch: IngestBatch, offset: int, obj: dict[str, Any]) -> bool:
        batch.add("samples", _sample_row(run_id, offset, obj))
        return True

    summary.lines = _ingest_file(store, run_id, run_dir, EVENTS_FILE, max_bytes or EVENTS_WINDOW, fast_events,
                                 route_event)
    summary.sample_lines = _ingest_file(store, run_id, run_dir, SAMPLES_FILE, max_bytes or SAMPLES_WINDOW,
                                        fast_samples, route_sample)
    return summary


def ingest_until_drained(store: Store, run_id: str, run_dir: Path) -> EventSummary:
    """Ingest everything complete now on disk (used when a worker has exited)."""
    total = EventSummary()
    while True:
        step = ingest_run(store, run_id, run_dir)
        _merge(total, step)
        if step.lines == 0 and step.sample_lines == 0:
            return total


def _merge(total: EventSummary, step: EventSummary) -> None:
    total.lines += step.lines
    total.metric_lines += step.metric_lines
    total.sample_lines += step.sample_lines
    total.progress = step.progress or total.progress
    total.heartbeat = step.heartbeat or total.heartbeat
    total.final = step.final or (None if step.started else total.final)
    total.started = step.started or total.started


FastPath = Callable[[IngestBatch, bytes, np.ndarray, int], np.ndarray]
Route = Callable[[IngestBatch, int, dict[str, Any]], bool]


def _ingest_file(store: Store, run_id: str, run_dir: Path, file: str, max_bytes: int,
                 fast: FastPath, route: Route) -> int:
    """Store the complete new lines of one run file; returns how many lines were read.

    `fast` parses the whole window in bulk and returns the indices of the lines it stored; the
    rest go one by one through `route`, which adds a parsed line's rows to the batch (False =
    malformed). Each row keeps the byte offset of its line, which identifies it across restarts.
    """
    offset = store.ingest_offset(run_id, file)
    body, new_offset = read_complete_window(run_dir / file, offset, max_bytes)
    if new_offset == offset:
        return 0
    batch = IngestBatch(run_id, file, new_offset)
    if not body:  # one line longer than the window, skipped whole
        store.write_batch(batch)
        return 0
    starts = line_starts(body)
    slow = np.ones(len(starts) - 1, bool)
    slow[fast(batch, body, starts, offset)] = False
    for i in np.flatnonzero(slow).tolist():
        line = body[starts[i] : starts[i + 1] - 1]
        obj = _parse(line)
        if obj is None or not route(batch, offset + int(starts[i]), obj):
            batch.bad_lines += bool(line.strip())
    store.write_batch(batch)
    return len(starts) - 1


def _route_event(batch: IngestBatch, run_id: str, offset: int, event: dict[str, Any],
                 summary: EventSummary) -> None:
    kind = event["type"]
    t = _time(event.get("t"))
    if kind == "metric":
        summary.metric_lines += 1
        values = event.get("values")
        for name, value in (values.items() if isinstance(values, dict) else ()):
            batch.add("metrics", {"run_id": run_id, "step": _int(event.get("step")), "name": str(name),
                                  "value": _float(value), "t": t})
        return
    if kind == "score":
        batch.add("scores", {"run_id": run_id, "model": _str(event.get("model")),
                             "benchmark": _str(event.get("benchmark")), "group": _str(event.get("group")),
                             "metric": _str(event.get("metric")) or "score",
                             "value": _float(event.get("value")),
                             "n": _int(event.get("n")), "t": t})
        return
    if kind == "shift":
        batch.add("shift_results", {"run_id": run_id, "analysis": _str(event.get("analysis")) or "?",
                                    "benchmark": _str(event.get("benchmark")),
                                    "group": _str(event.get("group")),
                                    "layer": _int(event.get("layer")),
                                    "metric": _str(event.get("metric")) or "?",
                                    "value": _float(event.get("value")),
                                    "payload": json.dumps(event.get("payload")), "t": t})
        return
    _summarise(summary, kind, event)
    payload = {k: v for k, v in event.items() if k not in ("t", "type")}
    batch.add("events", {"run_id": run_id, "offset": offset, "t": t, "type": kind,
                         "payload": json.dumps(payload, default=str)})


def _summarise(summary: EventSummary, kind: str, event: dict[str, Any]) -> None:
    if kind == "progress":
        summary.progress = (_int(event.get("step")) or 0, _int(event.get("total")),
                            str(event.get("desc") or ""))
    elif kind == "heartbeat":
        summary.heartbeat = event.get("t") or True
    elif kind in FINAL_EVENTS:
        summary.final = event
    elif kind == "started":  # a restarted job (Slurm requeue): an earlier final was its last run's
        summary.started = event
        summary.final = None


_SAMPLE_FIELDS = ("benchmark", "item_id", "sample_idx", "prompt", "completion", "extracted",
                  "verdict", "tokens", "finish_reason", "flags")


def _sample_row(run_id: str, offset: int, sample: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run_id, "offset": offset}
    for key in _SAMPLE_FIELDS:
        row[key] = sample.get(key)
    for key in ("benchmark", "item_id", "prompt", "completion", "extracted", "finish_reason"):
        row[key] = None if row[key] is None else str(row[key])
    row["sample_idx"], row["tokens"] = _int32(row["sample_idx"]), _int32(row["tokens"])
    row["verdict"] = _float(row["verdict"])
    flags = row["flags"]
    row["flags"] = [str(f) for f in flags] if isinstance(flags, list) else None
    extra = {k: v for k, v in sample.items() if k not in _SAMPLE_FIELDS}
    row["extra"] = json.dumps(extra, default=str) if extra else None
    return row


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _int32(value: Any) -> int | None:
    """An INTEGER column's value; one that does not fit is dropped rather than failing the batch
    (which would block the file's ingest for good)."""
    number = _int(value)
    return number if number is not None and -(2**31) < number < 2**31 else None


def _time(value: Any) -> float | None:
    """Unix seconds of an event (None = now); nonsense times count as now."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e11:
        return float(value)
    return None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
