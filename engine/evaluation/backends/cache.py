"""The generation cache: a repeated or resumed evaluation never regenerates what it already has.

Entries live in `TIX_HOME/cache/generations.sqlite` (SQLite in WAL mode, so concurrent workers
can share it without the daemon), keyed by a hash of the model's identity, the backend that generates
(its name and precision, e.g. `hf:float32`, `vllm:bfloat16`: two backends' numerics and token
counts never mix), the rendered prompt, the sampling parameters and the seed. A model's identity
is its hub id and revision, or for a local folder a fingerprint of its weight files (names,
sizes and a SHA-256 of their first and last MiB, so a 30 GB checkpoint is identified in
milliseconds and a retrained one differs).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from engine.evaluation.backends import Generation, SamplingParams

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
EDGE = 1 << 20


def model_identity(path: str, revision: str | None = None) -> str:
    """A stable identity for a model reference (see the module docstring)."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}@{revision or 'main'}"
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.is_file() and (file.suffix in WEIGHT_SUFFIXES or file.name == "config.json"):
            digest.update(f"{file.relative_to(folder)}:{file.stat().st_size}".encode())
            digest.update(_edges(file))
    return f"local:{digest.hexdigest()}"


def _edges(file: Path) -> bytes:
    with file.open("rb") as f:
        head = f.read(EDGE)
        size = file.stat().st_size
        f.seek(max(0, size - EDGE))
        return hashlib.sha256(head + f.read(EDGE)).digest()


def cache_key(model_id: str, prompt: str, params: SamplingParams, backend: str) -> str:
    """The entry of one prompt; `backend` is the generating backend's `cache_tag`."""
    blob = json.dumps({"model": model_id, "backend": backend, "prompt": prompt, "sampling": params.key()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationCache:
    """get_many / put_many over SQLite; safe to share between processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT)")

    def get_many(self, keys: Iterable[str]) -> dict[str, list[Generation]]:
        keys = list(keys)
        found: dict[str, list[Generation]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.con.execute(
                f"SELECT key, value FROM generations WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update({k: [Generation(**g) for g in json.loads(v)] for k, v in rows})
        return found

    def put_many(self, entries: dict[str, list[Generation]]) -> None:
        rows = [(k, json.dumps([g.to_json() for g in gens])) for k, gens in entries.items()]
        self.con.execute("BEGIN")
        self.con.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?)", rows)
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()
