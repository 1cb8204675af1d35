"""The run-directory contract: append-only JSON-lines files that workers write and the daemon tails.

A worker never opens the database. It appends one JSON object per line to `events.jsonl`
(progress, metrics, scores, status, heartbeats) and `samples.jsonl` (one scored item per line).
Each line goes out in a single `write` on an `O_APPEND` descriptor, so a crash can tear at most
the last line; readers ignore an unterminated last line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
SAMPLES_FILE = "samples.jsonl"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
SPEC_FILE = "spec.yaml"
#: The daemon's current share of this box's cores for a CPU-slot worker (a number); see
#: `write_threads` and `ThreadShare`.
THREADS_FILE = "threads"

#: Event types a worker may write; `finished` and `failed` are final.
EVENT_TYPES = frozenset(
    {"started", "progress", "metric", "heartbeat", "log", "score", "shift", "finished", "failed"}
)
FINAL_EVENTS = frozenset({"finished", "failed"})


class JsonlWriter:
    """Appends JSON lines with one `write` each; thread-safe (the heartbeat thread shares it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._terminate_torn_line()

    def _terminate_torn_line(self) -> None:
        """A previous attempt killed mid-line left a fragment: end it so it stays one bad line."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                os.write(self._fd, b"\n")

    def write(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class EventWriter(JsonlWriter):
    """Typed helpers over `events.jsonl`, so jobs read as a story: progress, metric, finished."""

    def emit(self, type_: str, **fields: Any) -> None:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        self.write({"t": time.time(), "type": type_, **fields})

    def progress(self, step: int, total: int | None, desc: str = "") -> None:
        self.emit("progress", step=step, total=total, desc=desc)

    def metric(self, step: int, **values: float) -> None:
        self.emit("metric", step=step, values=values)

    def log(self, message: str) -> None:
        self.emit("log", message=message)

    def score(self, benchmark: str, group: str, metric: str, value: float, n: int,
              model: str | None = None) -> None:
        self.emit("score", benchmark=benchmark, group=group, metric=metric, value=value, n=n, model=model)


class Heartbeat:
    """Writes a `heartbeat` event every `interval` seconds from a daemon thread."""

    def __init__(self, events: EventWriter, interval: float = 2.0) -> None:
        self._events = events
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self._events.emit("heartbeat")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)


def read_complete_lines(path: Path, offset: int, max_bytes: int = 8 << 20) -> tuple[list[bytes], int]:
    """Complete lines of `path` from byte `offset` (at most about `max_bytes`) and the new offset.

    An unterminated last line is left for the next call: it is either still being written or
    torn by a crash, and in both cases must not be stored yet.
    """
    body, new_offset = read_complete_window(path, offset, max_bytes)
    return body.splitlines(), new_offset


def read_complete_window(path: Path, offset: int, max_bytes: int = 8 << 20) -> tuple[bytes, int]:
    """The bytes of `read_complete_lines` unsplit (ending in a newline, or empty), so a bulk JSON
    reader can parse the whole window at once."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read(max_bytes)
    except FileNotFoundError:
        return b"", offset
    end = chunk.rfind(b"\n")
    if end < 0:
        if len(chunk) == max_bytes:  # one line longer than the window: skip it whole
            return b"", offset + len(chunk)
        return b"", offset
    return chunk[: end + 1], offset + end + 1


def tail_text(path: Path, max_bytes: int = 2000) -> str:
    """The last `max_bytes` of a text file, starting at a line boundary when possible."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except FileNotFoundError:
        return ""
    if size > max_bytes and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]
    return data.decode("utf-8", "replace").strip()


def write_atomic(path: Path, text: str) -> None:
    """Write `text` whole to a hidden file beside `path`, then rename it into place: a reader, or
    the next attempt after a signal or a kill mid-write, sees the old content or the new, never a
    truncated file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_threads(run_dir: Path, threads: int) -> None:
    """Tell a CPU-slot worker its share of the cores."""
    write_atomic(run_dir / THREADS_FILE, f"{threads}\n")


class ThreadShare:
    """The worker's side of `write_threads`: `changed()` returns the new share when the file changed
    since the last call (one stat per call, so a training can ask every step), else None."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / THREADS_FILE
        self.seen: int | None = None

    def changed(self) -> int | None:
        try:
            stamp = self.path.stat().st_mtime_ns
            if stamp == self.seen:
                return None
            self.seen = stamp
            threads = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
        return threads if threads >= 1 else None
