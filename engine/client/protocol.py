"""The wire format between clients and the daemon: one JSON object per line over a Unix socket.

Request:  {"id": 7, "op": "status", "args": {...}}
Response: {"id": 7, "ok": true, "result": ...}  or  {"id": 7, "ok": false, "error": "one line"}
Push:     {"push": "run", "run": {...}}  (only on a connection that sent `subscribe`)
"""

from __future__ import annotations

import json
from typing import Any

#: Largest line either side accepts; a results grid or a batch of runs fits comfortably.
MAX_LINE = 64 << 20


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message
