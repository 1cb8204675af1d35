"""A run's logs for clients that follow them through the daemon (the TUI's log tail).

The daemon reads the worker's files on its own box, so a client needs no access to the run
folder. Three streams: the worker's `stdout` and `stderr` (raw text) and `events` (the lines of
events.jsonl that tell the run's story: start, progress, log messages, scores, the end; metrics
and heartbeats are left to the curves). A client asks from a byte offset and gets the text up to
the end of what is there, plus the offset to ask from next time; without an offset it gets the
tail. Chunks end on a line break (or a carriage return, which progress bars use) so a UTF-8
character or a JSON line is never cut in two.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from engine.analysis.report import readable_number
from engine.events import EVENTS_FILE, STDERR_FILE, STDOUT_FILE

STREAMS = {"stdout": STDOUT_FILE, "stderr": STDERR_FILE, "events": EVENTS_FILE}
#: Event types a log tail leaves out: metrics are drawn as curves, heartbeats say nothing.
QUIET_EVENTS = frozenset({"metric", "heartbeat"})


def streams_for(name: str) -> list[str]:
    """The streams a request names: one of STREAMS, or `both` (stdout then stderr)."""
    if name == "both":
        return ["stdout", "stderr"]
    if name not in STREAMS:
        raise ValueError(f"stream must be both, {', '.join(STREAMS)}; got {name!r}")
    return [name]


def read_chunk(run_dir: Path, stream: str, offset: int | None, max_bytes: int) -> dict[str, Any]:
    """Text of one stream from `offset` (None = the last `max_bytes`), ending on a line break."""
    path = run_dir / STREAMS[stream]
    try:
        size = os.path.getsize(path)
    except OSError:
        return {"stream": stream, "text": "", "start": 0, "offset": 0, "size": 0}
    tail = offset is None
    start = max(0, size - max_bytes) if tail else min(max(0, int(offset or 0)), size)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(max_bytes)
    if tail and start > 0:
        trimmed = _after_first_break(data)
        start, data = start + len(data) - len(trimmed), trimmed
    data = _before_last_break(data, stream)
    text = format_events(data) if stream == "events" else data.decode("utf-8", "replace")
    return {"stream": stream, "text": text, "start": start, "offset": start + len(data), "size": size}


def _after_first_break(data: bytes) -> bytes:
    """Drop the partial first line of a tail window."""
    cut = data.find(b"\n")
    return data[cut + 1 :] if cut >= 0 else data


def _before_last_break(data: bytes, stream: str) -> bytes:
    """Keep complete lines (events) or up to the last line break or carriage return (text);
    text with no break at all goes out whole, so one endless progress line still shows."""
    ends = [data.rfind(b"\n")] if stream == "events" else [data.rfind(b"\n"), data.rfind(b"\r")]
    cut = max(ends)
    if cut >= 0:
        return data[: cut + 1]
    return b"" if stream == "events" else data


def number(value: Any) -> str:
    """A float as a person reads it (57.99999999999999 -> 58); anything else as it came."""
    return readable_number(value) if isinstance(value, float) else str(value)


def shift_place(event: dict[str, Any]) -> str:
    """What a shift metric is about: the analysis, then its benchmark or its group, and layer."""
    parts = [str(event.get("analysis"))]
    if event.get("benchmark"):
        parts.append(str(event["benchmark"]))
    elif event.get("group"):
        parts.append(f"group {event['group']}")
    if event.get("layer") is not None:
        parts.append(f"layer {event['layer']}")
    return " ".join(parts)


def format_events(data: bytes) -> str:
    """One readable line per story event: `HH:MM:SS type  details` (times in UTC)."""
    lines = []
    for raw in data.splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") not in QUIET_EVENTS:
            lines.append(format_event(event))
    return "".join(line + "\n" for line in lines)


def format_event(event: dict[str, Any]) -> str:
    kind = str(event.get("type"))
    t = event.get("t")
    stamp = time.strftime("%H:%M:%S", time.gmtime(t)) if isinstance(t, (int, float)) else "--:--:--"
    return f"{stamp} {kind:<8} {_details(kind, event)}".rstrip()


def _details(kind: str, event: dict[str, Any]) -> str:
    if kind == "log":
        return str(event.get("message", ""))
    if kind == "progress":
        total = event.get("total")
        return f"{event.get('desc') or ''} {event.get('step')}{f'/{total}' if total else ''}".strip()
    if kind == "score":
        return (f"{event.get('benchmark')} ({event.get('group')}) {event.get('metric')} = "
                f"{number(event.get('value'))} n={event.get('n')}")
    if kind == "failed":
        error = str(event.get("error") or "").strip().splitlines()
        return error[-1] if error else ""
    if kind == "shift":
        return f"{shift_place(event)} {event.get('metric')} = {number(event.get('value'))}"
    rest = {k: v for k, v in event.items() if k not in ("t", "type")}
    return json.dumps(rest, default=str, separators=(", ", ": "))[:300] if rest else ""
