"""The daemon's paired items kept on disk between daemon runs (`TIX_HOME/cache/paired.npz`).

`PairedCache` holds the paired items and the TI's bootstrap replicates in memory. A new daemon
started with them cold: at paper scale (1.1M samples, 24 models) its first `ti` read every item
again (0.7-0.9 s on 2 quiet cores) and its background refresh spent 2.2 s more on the replicates,
though nothing had changed since the last daemon wrote `paired_stats`. So the refresher saves
what it computed here, and a new daemon starts from it: as is when nothing changed, or as the
`previous` of an incremental update (only the models whose runs changed are read again).

What ties a snapshot to the database: `paired_stats_source`'s row (the items' signature and the
time `paired_stats` was written from them). The daemon rewrites that row whenever the items
change, so a snapshot whose row differs from the database's (another database copied in, a
backup restored, a daemon that stopped before saving) is ignored and the items are read again.
The file holds numbers and one JSON string: numpy reads it without pickle.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.analysis import stats
from engine.analysis.paired import PairedData, Segment

log = logging.getLogger("tix.paired")

FORMAT = 1
"""Bumped when what is saved changes: a snapshot of another format is ignored."""
ROW_ARRAYS = ("segment", "stratum", "item", "model_score", "base_score", "binary_rows")
SEGMENT_ARRAYS = ("binary", "q", "gained", "lost", "mcnemar_p", "keys")
PAIRED_ARRAYS = tuple(f.name for f in dataclasses.fields(stats.Paired))
STAMP_SQL = "SELECT signature, computed_at::VARCHAR FROM paired_stats_source"


def stamp(cur: Any) -> list[str] | None:
    """The database's `paired_stats_source` row as [signature, computed_at]; None without one."""
    rows = cur.execute(STAMP_SQL).fetchall()
    return [str(rows[0][0]), str(rows[0][1])] if len(rows) == 1 else None


def save(path: Path, data: PairedData, db_stamp: list[str]) -> None:
    """Write `data` (and its replicates) to `path` atomically: a reader never sees half a file."""
    arrays = {k: getattr(data, k) for k in ROW_ARRAYS + SEGMENT_ARRAYS}
    arrays.update({f"paired_{k}": getattr(data.paired, k) for k in PAIRED_ARRAYS})
    reps = _replicate_arrays(data)
    boot_seed = reps.pop("boot_seed", None)
    arrays.update(reps)
    models, benches, groups = data.shape or ([], [], {})
    meta = {"format": FORMAT, "stamp": db_stamp, "signature": data.signature,
            "segments": [list(vars(s).values()) for s in data.segments], "records": data.records,
            "shape": [[list(m) for m in models], benches, [[e, b, g] for (e, b), g in groups.items()]],
            "boot_seed": boot_seed}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written file stays behind
        tmp.unlink(missing_ok=True)
        raise


def _replicate_arrays(data: PairedData) -> dict[str, Any]:
    """The replicates of the latest (boot, seed): per cached segment, its stratum and two rows."""
    with data._lock:
        if not data._replicates:
            return {}
        (boot, seed), cache = next(iter(data._replicates.items()))
        entries = [(stratum, seg, pair) for stratum, segs in cache.items() for seg, pair in segs.items()]
    if not entries:
        return {}
    return {"boot_seed": [boot, seed],
            "rep_stratum": np.array([e[0] for e in entries], np.int64),
            "rep_segment": np.array([e[1] for e in entries], np.int64),
            "rep_base": np.stack([e[2][0] for e in entries]),
            "rep_model": np.stack([e[2][1] for e in entries])}


def read(path: Path, db_stamp: list[str] | None) -> PairedData | None:
    """The snapshot at `path` if it was saved from this database's current `paired_stats`; None
    (read the items again) when there is none, it is of another format or database state, or it
    cannot be read (a log line says why)."""
    if db_stamp is None or not path.is_file():
        return None
    started = time.perf_counter()
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT or meta.get("stamp") != db_stamp:
                return None
            data = _data(meta, {k: z[k] for k in z.files if k != "meta"})
    except Exception as exc:  # noqa: BLE001 - truncated (BadZipFile, EOFError), damaged, foreign
        log.warning("ignoring the paired snapshot %s (the items are read again): %s: %s", path,
                    type(exc).__name__, exc)
        path.unlink(missing_ok=True)
        return None
    log.info("paired items: %d items read from %s in %.2f s", len(data.segment), path.name,
             time.perf_counter() - started)
    return data


def _data(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> PairedData:
    segments = [Segment(*values) for values in meta["segments"]]
    paired = stats.Paired(*(arrays[f"paired_{k}"] for k in PAIRED_ARRAYS))
    data = PairedData(meta["signature"], segments, arrays["segment"], arrays["stratum"], arrays["item"],
                      arrays["model_score"], arrays["base_score"], arrays["binary"], paired, arrays["q"],
                      arrays["gained"], arrays["lost"], arrays["mcnemar_p"])
    data.index = {(s.experiment, s.model, s.benchmark): i for i, s in enumerate(segments)}
    data.records = {str(k): int(v) for k, v in meta["records"].items()}
    data.binary_rows, data.keys = arrays["binary_rows"], arrays["keys"]
    models, benches, groups = meta["shape"]
    data.shape = ([tuple(m) for m in models], benches, {(e, b): g for e, b, g in groups})
    if meta.get("boot_seed") and "rep_stratum" in arrays:
        cache: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        for i, (stratum, seg) in enumerate(zip(arrays["rep_stratum"], arrays["rep_segment"], strict=True)):
            cache.setdefault(int(stratum), {})[int(seg)] = (arrays["rep_base"][i], arrays["rep_model"][i])
        data._replicates = {tuple(meta["boot_seed"]): cache}
    return data
