"""Every tuned model's items paired with its base's: the `paired_stats` table and the TI's intervals.

The daemon alone runs this (numpy and the database live there). `PairedCache.current` reads the
paired items once per change of the stored items (a signature of row counts) into arrays, computes
the per-benchmark statistics with engine.analysis.stats, and writes them to `paired_stats` (read by
the `paired_deltas` and `flip_summary` views); `attach` then adds the bootstrap intervals and the
per-benchmark statistics to the `ti` op's objects. Nothing is computed twice: the table, `tix ti`,
`tix flips`, the TUI and any later client read these same numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from engine.analysis import flips, stats

log = logging.getLogger("tix.paired")


class Cursor(Protocol):
    """What this module needs of a DuckDB cursor (the daemon passes one of its own: analysis code
    imports no duckdb, so the CLI and the TUI can import the package without it)."""

    def execute(self, query: str, parameters: Any = ...) -> Cursor: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchnumpy(self) -> dict[str, Any]: ...
    def register(self, name: str, data: Any) -> Cursor: ...
    def unregister(self, name: str) -> Cursor: ...

SIGNATURE_SQL = """SELECT concat_ws('/', (SELECT count(*) FROM sample_rows), (SELECT count(*) FROM runs),
    (SELECT count(*) FROM experiment_runs), (SELECT count(*) FROM scores),
    (SELECT count(*) FROM imported_scores), (SELECT count(*) FROM imported_models),
    (SELECT coalesce(max(imported_at)::VARCHAR, '') FROM imported_models))"""
"""What the paired items depend on; it changes with every sample, run, score or import stored."""

CODES_SQL = ["""CREATE OR REPLACE TEMP TABLE _tix_models AS
SELECT experiment, model, base_model, method, row_number() OVER (ORDER BY experiment, model) - 1 AS em
FROM models""", """CREATE OR REPLACE TEMP TABLE _tix_benches AS
SELECT benchmark, row_number() OVER (ORDER BY benchmark) - 1 AS bench
FROM (SELECT DISTINCT benchmark FROM run_items)"""]
"""Small tables numbering the models (experiment, model) and benchmarks, so the big query below
returns numbers only (a million strings would cost more to fetch than to compute)."""

PAIRS_SQL = """
WITH runs_in AS (  -- the eval and score runs of each model
    SELECT m.em, r.id AS run_id, r.created_at
    FROM runs r JOIN experiment_runs e ON e.run_id = r.id
    JOIN _tix_models m ON m.experiment = e.experiment AND m.model = r.name
    WHERE r.kind IN ('eval', 'score'){scope}
), per_run AS MATERIALIZED (
    SELECT run_id, b.bench, item_id, samples, verdict
    FROM run_items JOIN _tix_benches b USING (benchmark) WHERE run_id IN (SELECT run_id FROM runs_in)
), ranked AS (  -- a model's runs of a benchmark, newest first
    SELECT i.em, i.run_id, rb.bench, count(*) OVER (PARTITION BY i.em, rb.bench) AS runs,
           row_number() OVER (PARTITION BY i.em, rb.bench
                              ORDER BY i.created_at DESC, i.run_id DESC) AS recency
    FROM runs_in i JOIN (SELECT DISTINCT run_id, bench FROM per_run) rb USING (run_id)
), items AS MATERIALIZED (  -- per model, benchmark and item: the newest run's score (item_verdicts)
    SELECT k.em, p.bench, p.item_id, p.samples, p.verdict
    FROM per_run p JOIN ranked k USING (run_id, bench) WHERE k.runs = 1
    UNION ALL
    SELECT k.em, p.bench, p.item_id, p.samples, p.verdict
    FROM per_run p JOIN ranked k USING (run_id, bench) WHERE k.runs > 1
    QUALIFY row_number() OVER (PARTITION BY k.em, p.bench, p.item_id ORDER BY k.recency) = 1
), bases AS (
    SELECT t.em, b.em AS base_em
    FROM _tix_models t JOIN _tix_models b ON b.experiment = t.experiment AND b.model = t.base_model
), base_items AS (  -- a base's items numbered per benchmark: the bootstrap's item index
    SELECT i.*, row_number() OVER (PARTITION BY i.em, i.bench ORDER BY i.item_id) - 1 AS item
    FROM items i WHERE i.em IN (SELECT base_em FROM bases) AND i.verdict IS NOT NULL
)
SELECT t.em, s.base_em, t.bench, b.item, t.verdict AS y, b.verdict AS x,
       t.samples = 1 AND b.samples = 1 AND t.verdict IN (0, 1) AND b.verdict IN (0, 1) AS "binary"
FROM items t JOIN bases s ON s.em = t.em
JOIN base_items b ON b.em = s.base_em AND b.bench = t.bench AND b.item_id = t.item_id
WHERE t.verdict IS NOT NULL"""
"""Every item a tuned model and its base both scored, as numbers: the item score is the mean verdict
over the item's samples, the last record of each sample winning (`run_items`), from the model's
newest eval or score run that has the item: the `item_verdicts` view's definition (tested equal),
computed from per-run aggregates instead of windows over every sample, several times faster."""
SCOPED_PAIRS_SQL = PAIRS_SQL.format(scope=" AND m.em IN (SELECT em FROM _tix_scope)")
"""The same, for the models in _tix_scope only (an incremental refresh: see `update`)."""
PAIRS_SQL = PAIRS_SQL.format(scope="")
CHANGED_MODELS_SQL = """SELECT DISTINCT m.em FROM runs r JOIN experiment_runs e ON e.run_id = r.id
JOIN _tix_models m ON m.experiment = e.experiment AND m.model = r.name
WHERE r.id IN (SELECT run_id FROM _tix_changed)"""

RECORDS_SQL = """SELECT run_id, count(*) FROM sample_rows
WHERE run_id IN (SELECT id FROM runs WHERE kind IN ('eval', 'score') AND name IS NOT NULL)
  AND benchmark IS NOT NULL AND item_id IS NOT NULL
GROUP BY run_id"""
RUN_ITEMS_SQL = """INSERT INTO run_items
SELECT run_id, benchmark, item_id, count(*), avg(verdict) FROM (
    SELECT run_id, benchmark, item_id, arg_max_null(verdict, "offset") AS verdict
    FROM sample_rows WHERE run_id IN (SELECT run_id FROM _tix_changed) AND benchmark IS NOT NULL
         AND item_id IS NOT NULL
    GROUP BY run_id, benchmark, item_id, sample_idx)
GROUP BY ALL"""
"""A run's item scores (its samples' last records, averaged per item), for the runs in _tix_changed.
`sample_rows`, not the `samples` view: the view joins each row's prompt text, which is not needed.
arg_max_null: a sample whose last record is unscored is unscored (arg_max would take an older
record's verdict), as in `item_verdicts`."""
MODELS_SQL = "SELECT em, experiment, model, base_model, method FROM _tix_models ORDER BY em"
BENCHES_SQL = "SELECT bench, benchmark FROM _tix_benches ORDER BY bench"
GROUPS_SQL = 'SELECT experiment, benchmark, any_value("group") FROM model_scores GROUP BY ALL'
TABLE_COLUMNS = ("experiment", "model", "base_model", "method", "benchmark", "group", "n", "delta", "se",
                 "ci_low", "ci_high", "p", "q", "binary", "gained", "lost", "mcnemar_p")


@dataclass
class Segment:
    """One tuned model on one benchmark against its base."""

    experiment: str
    model: str
    base_model: str
    method: str | None
    benchmark: str
    group: str | None
    stratum: int


@dataclass
class PairedData:
    """Paired items as arrays, sorted by stratum, segment and item, and the statistics of each segment.

    A stratum is one benchmark of one base in one experiment: its items are resampled together, the
    same draw for the base and every model compared with it (the paired bootstrap)."""

    signature: str
    segments: list[Segment]
    segment: np.ndarray
    stratum: np.ndarray
    item: np.ndarray
    model_score: np.ndarray  # item scores in [0, 1]
    base_score: np.ndarray
    binary: np.ndarray  # per segment
    paired: stats.Paired
    q: np.ndarray
    gained: np.ndarray
    lost: np.ndarray
    mcnemar_p: np.ndarray
    index: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (experiment, model, benchmark)
    records: dict[str, int] = field(default_factory=dict)
    """run_items_source when read: the runs' sample records these items come from."""
    binary_rows: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    """Per row: both item scores one sample scored 0 or 1 (`binary` is its all() per segment)."""
    shape: tuple[list[Any], list[str], dict[Any, Any]] | None = None
    """What the numbering came from: (models, benchmarks, groups) as read; an update needs the same."""
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    """Each segment's key: em * benchmarks + bench (sorted, as the segments)."""
    _replicates: dict[tuple[int, int], dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]] = \
        field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def row(self, i: int) -> dict[str, Any]:
        """Segment i as a `paired_stats` row (NaN as None)."""
        s, binary = self.segments[i], bool(self.binary[i])
        values = [s.experiment, s.model, s.base_model, s.method, s.benchmark, s.group, int(self.paired.n[i]),
                  *(_num(a[i]) for a in (self.paired.delta, self.paired.se, self.paired.ci_low,
                                         self.paired.ci_high, self.paired.p, self.q)),
                  binary, int(self.gained[i]) if binary else None, int(self.lost[i]) if binary else None,
                  _num(self.mcnemar_p[i]) if binary else None]
        return dict(zip(TABLE_COLUMNS, values, strict=True))

    def detail(self, experiment: str, model: str, benchmark: str) -> dict[str, Any] | None:
        """What `tix ti --benchmarks` and the TUI show for one benchmark; None without items."""
        i = self.index.get((experiment, model, benchmark))
        if i is None:
            return None
        row = self.row(i)
        ci = None if row["ci_low"] is None else [row["ci_low"], row["ci_high"]]
        return {"n": row["n"], "delta": row["delta"], "se": row["se"], "ci": ci, "p": row["p"], "q": row["q"],
                "mcnemar_p": row["mcnemar_p"]}

    def replicates(self, segment: int, boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(base, model) bootstrap scores in percent of one segment, (boot,) each; computed for its whole
        stratum at once and kept for the latest (boot, seed)."""
        stratum = self.segments[segment].stratum
        with self._lock:
            cache = self._replicates.setdefault((boot, seed), {})
            for key in [k for k in self._replicates if k != (boot, seed)]:
                del self._replicates[key]
            if stratum not in cache:
                cache[stratum] = self._stratum_replicates(stratum, boot, seed)
            return cache[stratum][segment]

    def replicated(self) -> int:
        """How many strata have bootstrap replicates cached."""
        with self._lock:
            return sum(len(cache) for cache in self._replicates.values())

    def _stratum_replicates(self, stratum: int, boot: int, seed: int
                            ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Every segment of a stratum: models with the same items share one weight matrix (usually all)."""
        low, high = np.searchsorted(self.stratum, [stratum, stratum + 1])  # rows are sorted by stratum
        rows = np.arange(low, high)
        segs, local = np.unique(self.segment[rows], return_inverse=True)
        items = self.item[rows]
        count = int(items.max()) + 1
        base = np.full(count, np.nan)
        base[items] = self.base_score[rows]
        scores = np.full((count, len(segs)), np.nan)
        scores[items, local] = self.model_score[rows]
        s = self.segments[int(segs[0])]
        key = f"{s.experiment}\0{s.base_model}\0{s.benchmark}"
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for kept, cols in _same_items(~np.isnan(scores)):
            matrix = np.column_stack([base[kept], scores[np.ix_(kept, cols)]])
            reps = 100.0 * stats.replicate_means(matrix, boot, stats.stratum_rng(key, len(kept), seed))
            for j, col in enumerate(cols):
                out[int(segs[col])] = (reps[:, 0], reps[:, j + 1])
        return out


def _same_items(present: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Columns (models) grouped by the items they have: (item rows, columns) per group. Usually every
    model has every item of its base: one group, found without comparing columns."""
    if present.all():
        return [(np.arange(present.shape[0]), np.arange(present.shape[1]))]
    groups: dict[bytes, list[int]] = {}
    for col in range(present.shape[1]):
        groups.setdefault(np.packbits(present[:, col]).tobytes(), []).append(col)
    return [(np.flatnonzero(present[:, cols[0]]), np.array(cols)) for cols in groups.values()]


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def sync_run_items(cur: Cursor) -> list[str]:
    """Recompute `run_items` for the runs whose sample records changed (new, grown or gone); returns
    those runs."""
    now = dict(cur.execute(RECORDS_SQL).fetchall())
    before = dict(cur.execute("SELECT run_id, records FROM run_items_source").fetchall())
    changed = sorted({r for r in now if now[r] != before.get(r)} | (set(before) - set(now)))
    if not changed:
        return []
    cur.register("_tix_changed", pa.table({"run_id": pa.array(changed, pa.string())}))
    try:
        cur.execute("DELETE FROM run_items WHERE run_id IN (SELECT run_id FROM _tix_changed)")
        cur.execute("DELETE FROM run_items_source WHERE run_id IN (SELECT run_id FROM _tix_changed)")
        cur.execute(RUN_ITEMS_SQL)
    finally:
        cur.unregister("_tix_changed")
    kept = [r for r in changed if r in now]
    if kept:  # one insert of them all: an executemany took about 1 ms a run (every run, at first)
        cur.register("_tix_records", pa.table({"run_id": pa.array(kept, pa.string()),
                                               "records": pa.array([now[r] for r in kept], pa.int64())}))
        try:
            cur.execute("INSERT INTO run_items_source SELECT run_id, records FROM _tix_records")
        finally:
            cur.unregister("_tix_records")
    return changed


def load(cur: Cursor, signature: str, previous: PairedData | None = None) -> PairedData:
    """Read the paired items (inside the caller's transaction) and compute every segment's statistics.

    With `previous` (what the daemon computed before), only the models whose runs' items changed
    are read again, when nothing else did (see `update`); the result is the same either way."""
    changed = sync_run_items(cur)
    records = run_records(cur)
    if previous is not None:  # another refresh (the flips') may have synced run_items since previous
        changed = sorted(r for r in set(previous.records) | set(records)
                         if previous.records.get(r) != records.get(r))
    for sql in CODES_SQL:
        cur.execute(sql)
    try:
        models = cur.execute(MODELS_SQL).fetchall()
        benches = [b for _, b in cur.execute(BENCHES_SQL).fetchall()]
        groups = {(e, b): g for e, b, g in cur.execute(GROUPS_SQL).fetchall()}
        shape = (models, benches, groups)
        data = None
        if previous is not None and previous.shape == shape and _tail(previous.signature) == _tail(signature):
            data = update(cur, previous, signature, changed)
        if data is None:
            data = _assemble(signature, cur.execute(PAIRS_SQL).fetchnumpy(), shape)
    finally:
        cur.execute("DROP TABLE _tix_models")
        cur.execute("DROP TABLE _tix_benches")
    data.records = records
    return data


def run_records(cur: Cursor) -> dict[str, int]:
    """Each run's sample records that its `run_items` rows were computed from."""
    return dict(cur.execute("SELECT run_id, records FROM run_items_source").fetchall())


def _tail(signature: str) -> list[str]:
    """The signature without its first part (the sample records): runs, links, scores, imports."""
    return signature.split("/")[1:]


def _assemble(signature: str, arrays: dict[str, Any], shape: tuple[list[Any], list[str], dict[Any, Any]]
              ) -> PairedData:
    """PairedData from PAIRS_SQL's rows (every model's)."""
    models, benches, groups = shape
    em, base_em, bench, item = (np.asarray(arrays[k], dtype=np.int64)
                                for k in ("em", "base_em", "bench", "item"))
    seg_key, segs = _dense(em * len(benches) + bench)
    stratum_key, _ = _dense(base_em * len(benches) + bench)
    order = _row_order(stratum_key, seg_key, item)
    segments = []
    for key, stratum in zip(segs, _first(seg_key, stratum_key, len(segs)), strict=True):
        _, experiment, model, base_model, method = models[key // len(benches)]
        benchmark = benches[key % len(benches)]
        segments.append(Segment(experiment, model, base_model, method, benchmark,
                                groups.get((experiment, benchmark)), int(stratum)))
    data = _compute(signature, segments, seg_key[order], stratum_key[order], item[order],
                    np.asarray(arrays["y"], dtype=float)[order], np.asarray(arrays["x"], dtype=float)[order],
                    np.asarray(arrays["binary"], dtype=bool)[order])
    data.shape, data.keys = shape, np.asarray(segs, dtype=np.int64)
    return data


def update(cur: Cursor, previous: PairedData, signature: str, changed: list[str]) -> PairedData | None:
    """`previous` with the segments of the models whose runs changed read again: a tuned model's own,
    and every model's compared with a base whose runs changed. Every other segment keeps its rows,
    and a stratum none of whose segments changed keeps its bootstrap replicates. The statistics are
    then computed over all rows as `load` does, so the numbers are identical to a full read (tested).
    None (read everything) when the changed models gain or lose a segment."""
    models, benches, _ = previous.shape or ([], [], {})
    if not changed:  # new records that pair nothing (no benchmark, a run that is not eval/score)
        return replace(previous, signature=signature)
    cur.register("_tix_changed", pa.table({"run_id": pa.array(changed, pa.string())}))
    try:
        touched = {int(em) for (em,) in cur.execute(CHANGED_MODELS_SQL).fetchall()}
    finally:
        cur.unregister("_tix_changed")
    em_of = {(m[1], m[2]): int(m[0]) for m in models}
    base_of = {int(m[0]): em_of.get((m[1], m[3])) for m in models}
    tuned = {em for em, base in base_of.items() if base is not None and (em in touched or base in touched)}
    if not tuned:
        return replace(previous, signature=signature)
    scope = tuned | {base_of[em] for em in tuned}
    cur.register("_tix_scope", pa.table({"em": pa.array(sorted(scope), pa.int64())}))
    try:
        arrays = cur.execute(SCOPED_PAIRS_SQL).fetchnumpy()
    finally:
        cur.unregister("_tix_scope")
    em = np.asarray(arrays["em"], dtype=np.int64)
    rows = np.flatnonzero(np.isin(em, sorted(tuned)))
    keys = em[rows] * len(benches) + np.asarray(arrays["bench"], dtype=np.int64)[rows]
    redone = np.flatnonzero(np.isin(previous.keys // len(benches), sorted(tuned)))
    if not np.array_equal(np.unique(keys), previous.keys[redone]):
        return None
    seg = np.searchsorted(previous.keys, keys)
    strata = np.array([s.stratum for s in previous.segments], dtype=np.int64)
    fresh = {"segment": seg, "stratum": strata[seg], "item": np.asarray(arrays["item"], dtype=np.int64)[rows],
             "model_score": np.asarray(arrays["y"], dtype=float)[rows],
             "base_score": np.asarray(arrays["x"], dtype=float)[rows],
             "binary": np.asarray(arrays["binary"], dtype=bool)[rows]}
    order = _row_order(fresh["stratum"], fresh["segment"], fresh["item"])
    merged, rows = _merge_segments(previous, {k: v[order] for k, v in fresh.items()}, redone)
    data = _compute(signature, previous.segments, merged["segment"], merged["stratum"], merged["item"],
                    merged["model_score"], merged["base_score"], merged["binary"], (previous, redone, rows))
    data.shape, data.keys = previous.shape, previous.keys
    stale = set(strata[redone].tolist())
    with previous._lock:
        data._replicates = {k: {s: v for s, v in cache.items() if s not in stale}
                            for k, cache in previous._replicates.items()}
    return data


def _merge_segments(previous: PairedData, fresh: dict[str, np.ndarray], redone: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """previous's rows with the `redone` segments' rows taken from `fresh`, in the same order (by
    stratum, segment, item): each segment's rows are one contiguous block in both. Also where the
    redone segments' rows are in the result."""
    old = {"segment": previous.segment, "stratum": previous.stratum, "item": previous.item,
           "model_score": previous.model_score, "base_score": previous.base_score,
           "binary": previous.binary_rows}
    same = _same_rows(previous, fresh, redone)
    if same is not None:  # a rescore: the same items, new scores (no gather of every row)
        out = {k: v.copy() if k in ("model_score", "base_score", "binary") else v for k, v in old.items()}
        for k in ("model_score", "base_score", "binary"):
            out[k][same] = fresh[k]
        return out, same
    count = len(previous.segments)
    is_redone = np.zeros(count, bool)
    is_redone[redone] = True
    old_start, old_count = _blocks(previous.segment, count)
    new_start, new_count = _blocks(fresh["segment"], count)
    size = previous.segment.size  # fresh rows come after the old ones in the gather below
    ranges, placed, at = [], [], 0
    for s in sorted(range(count), key=lambda s: (previous.segments[s].stratum, s)):
        low, n = (size + new_start[s], new_count[s]) if is_redone[s] else (old_start[s], old_count[s])
        ranges.append(np.arange(low, low + n))
        if is_redone[s]:
            placed.append(np.arange(at, at + n))
        at += n
    take = np.concatenate(ranges) if ranges else np.empty(0, np.int64)
    rows = np.concatenate(placed) if placed else np.empty(0, np.int64)
    return {k: np.concatenate([v, fresh[k]])[take] for k, v in old.items()}, rows


def _same_rows(previous: PairedData, fresh: dict[str, np.ndarray], redone: np.ndarray) -> np.ndarray | None:
    """Where `fresh`'s rows sit in `previous`'s when they are the `redone` segments' rows with the
    same items in the same order (only their scores changed); None otherwise."""
    if fresh["segment"].size == 0 or redone.size == 0:
        return None
    rows = np.flatnonzero(np.isin(previous.segment, redone))
    if rows.size != fresh["segment"].size:
        return None
    if not (np.array_equal(previous.segment[rows], fresh["segment"])
            and np.array_equal(previous.item[rows], fresh["item"])):
        return None
    return rows


def _blocks(segment: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each segment's contiguous rows start, and how many there are (0: none)."""
    start = np.zeros(count, np.int64)
    if segment.size:
        first = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
        start[segment[first]] = first
    return start, np.bincount(segment, minlength=count)


def _row_order(stratum: np.ndarray, segment: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Rows by stratum, segment and item: the database returns them in any order, and sums in a fixed
    order make every call's numbers identical to the last bit (and a stratum's rows contiguous)."""
    if stratum.size == 0:
        return np.arange(0)
    items, segments = int(item.max()) + 1, int(segment.max()) + 1
    if (int(stratum.max()) + 1) * segments * items < 2**62:
        return np.argsort((stratum * segments + segment) * items + item)
    return np.lexsort((item, segment, stratum))


def _dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys renumbered 0..k-1 in key order, and the distinct keys (no sort of the rows: a lookup)."""
    if keys.size == 0:
        return keys, keys
    present = np.flatnonzero(np.bincount(keys))
    lookup = np.full(int(present[-1]) + 1, -1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return lookup[keys], present


def _first(codes: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """For each code 0..count-1, `values` at one of its rows (constant per code here)."""
    out = np.empty(count, dtype=np.int64)
    out[codes] = values
    return out


def _compute(signature: str, segments: list[Segment], seg: np.ndarray, stratum: np.ndarray, item: np.ndarray,
             y: np.ndarray, x: np.ndarray, binary_rows: np.ndarray,
             reuse: tuple[PairedData, np.ndarray, np.ndarray] | None = None) -> PairedData:
    """The statistics of every segment. With `reuse` = (previous, redone segments, their rows in
    the arrays, ascending), only the redone segments' rows are read and every other segment keeps
    previous's numbers (each segment's sums run over its own rows in the same order, so the
    numbers are the same as computing them all)."""
    count = len(segments)
    rows = slice(None) if reuse is None else reuse[2]
    s, ys, xs, b = seg[rows], y[rows], x[rows], binary_rows[rows]
    paired = stats.paired_deltas(ys - xs, s, count)
    binary = np.bincount(s, weights=~b, minlength=count) == 0
    gained = np.bincount(s, weights=(ys > xs) & binary[s], minlength=count).astype(int)
    lost = np.bincount(s, weights=(ys < xs) & binary[s], minlength=count).astype(int)
    if reuse is not None:
        paired, binary, gained, lost = _spliced(reuse[0], reuse[1], paired, binary, gained, lost)
        mcnemar = reuse[0].mcnemar_p.copy()
        mcnemar[reuse[1]] = stats.mcnemar_exact(gained[reuse[1]], lost[reuse[1]])
    else:
        mcnemar = stats.mcnemar_exact(gained, lost)
    data = PairedData(signature, segments, seg, stratum, item, y, x, binary, paired,
                      _experiment_q(segments, paired.p), gained, lost, mcnemar)
    data.index = {(s.experiment, s.model, s.benchmark): i for i, s in enumerate(segments)}
    data.binary_rows = binary_rows
    return data


def _spliced(previous: PairedData, redone: np.ndarray, paired: stats.Paired, *arrays: np.ndarray
             ) -> tuple[Any, ...]:
    """previous's per-segment statistics with the `redone` segments' taken from the new ones."""
    def splice(old: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = old.copy()
        out[redone] = new[redone]
        return out

    olds = (previous.binary, previous.gained, previous.lost)
    fields = {f: splice(getattr(previous.paired, f), getattr(paired, f)) for f in vars(paired)}
    return (stats.Paired(**fields), *(splice(o, n) for o, n in zip(olds, arrays, strict=True)))


def _experiment_q(segments: list[Segment], p: np.ndarray) -> np.ndarray:
    """BH q values within each experiment (over all its tuned models and benchmarks)."""
    q = np.full(len(segments), np.nan)
    experiments = np.array([s.experiment for s in segments], dtype=object)
    for name in set(experiments):
        rows = np.flatnonzero(experiments == name)
        q[rows] = stats.benjamini_hochberg(p[rows])
    return q


def write_table(cur: Cursor, data: PairedData) -> None:
    """Replace `paired_stats` with `data`'s rows and record what they came from."""
    rows = [data.row(i) for i in range(len(data.segments))]
    table = pa.Table.from_pylist(rows, schema=PAIRED_SCHEMA) if rows else PAIRED_SCHEMA.empty_table()
    cur.register("_tix_paired", table)
    try:
        cur.execute("DELETE FROM paired_stats")
        cur.execute("INSERT INTO paired_stats SELECT * FROM _tix_paired")
    finally:
        cur.unregister("_tix_paired")
    cur.execute("DELETE FROM paired_stats_source")
    cur.execute("INSERT INTO paired_stats_source VALUES (?, now()::TIMESTAMP)", [data.signature])


PAIRED_SCHEMA = pa.schema([
    *((c, pa.string()) for c in TABLE_COLUMNS[:6]), ("n", pa.int32()),
    *((c, pa.float64()) for c in ("delta", "se", "ci_low", "ci_high", "p", "q")), ("binary", pa.bool_()),
    ("gained", pa.int32()), ("lost", pa.int32()), ("mcnemar_p", pa.float64())])


class PairedCache:
    """The daemon's paired items: reloaded, and `paired_stats` rewritten, only when the items changed."""

    def __init__(self, snapshot: Path | None = None) -> None:
        self.data: PairedData | None = None
        self.lock = threading.Lock()
        self.snapshot = snapshot
        """Where the items are kept between daemon runs (engine.analysis.paired_snapshot); None: not kept."""
        self.saved: tuple[Any, ...] | None = None
        """What the snapshot on disk holds: (stamp, replicated strata), so an unchanged cache is not
        written again."""

    def current(self, cur: Cursor) -> PairedData:
        """The paired items as stored now; refreshes the table when it is behind them. `cur` must be a
        read-write cursor of the daemon's connection, used from one thread."""
        with self.lock:
            cur.execute("BEGIN TRANSACTION")
            try:
                data = self._current(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            self.data = data
            return data

    def _current(self, cur: Cursor) -> PairedData:
        signature = str(cur.execute(SIGNATURE_SQL).fetchall()[0][0])
        if self.data is None and self.snapshot is not None:  # a new daemon: start from the last one's
            self.data = self._read_snapshot(cur)
        if self.data is not None and self.data.signature == signature:
            return self.data
        started = time.perf_counter()
        data = load(cur, signature, self.data)
        loaded = time.perf_counter()
        stored = cur.execute("SELECT any_value(signature) FROM paired_stats_source").fetchall()[0][0]
        if stored != signature:
            write_table(cur, data)
        log.info("paired items: %d items of %d (model, benchmark) pairs read in %.2f s, paired_stats %s in "
                 "%.2f s", len(data.segment), len(data.segments), loaded - started,
                 "written" if stored != signature else "current", time.perf_counter() - loaded)
        return data

    def _read_snapshot(self, cur: Cursor) -> PairedData | None:
        from engine.analysis import paired_snapshot

        db_stamp = paired_snapshot.stamp(cur)
        data = paired_snapshot.read(self.snapshot, db_stamp) if self.snapshot is not None else None
        if data is not None:
            self.saved = (tuple(db_stamp or ()), data.replicated())
        return data

    def save(self, cur: Cursor) -> bool:
        """Keep the items and replicates in memory on disk for the next daemon (off the request path:
        the refresher and the daemon's exit call this), unless the snapshot already holds them or
        `paired_stats` is behind them. Returns whether it wrote."""
        from engine.analysis import paired_snapshot

        if self.snapshot is None:
            return False
        with self.lock:  # the stamp and the data it belongs to, read together
            data, db_stamp = self.data, paired_snapshot.stamp(cur)
        if data is None or db_stamp is None or db_stamp[0] != data.signature:
            return False
        key = (tuple(db_stamp), data.replicated())
        if key == self.saved:
            return False
        started = time.perf_counter()
        paired_snapshot.save(self.snapshot, data, db_stamp)
        self.saved = key
        log.info("paired items: snapshot of %d items written in %.2f s", len(data.segment),
                 time.perf_counter() - started)
        return True

    def refresh_table(self, cur: Cursor) -> None:
        """Bring `paired_stats` up to date with the items, reading them only if it is behind."""
        with self.lock:
            signature = str(cur.execute(SIGNATURE_SQL).fetchall()[0][0])
            stored = cur.execute("SELECT any_value(signature) FROM paired_stats_source").fetchall()[0][0]
            if stored == signature:
                return
        self.current(cur)

    def refresh_flips(self, cur: Cursor) -> int | None:
        """Bring `flip_stats` (what `flip_summary` reads) up to date (engine.analysis.flips), under
        the lock: it brings `run_items` up to date too. Returns the models recomputed (None: all)."""
        with self.lock:
            signature = str(cur.execute(SIGNATURE_SQL).fetchall()[0][0])
            if flips.stored(cur) == signature:
                return 0
            started = time.perf_counter()
            cur.execute("BEGIN TRANSACTION")
            try:
                sync_run_items(cur)
                done = flips.refresh(cur, signature)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            what = "every row" if done is None else f"{done} model(s)"
            log.info("flip_stats: %s recomputed in %.2f s", what, time.perf_counter() - started)
            return done


# -- the TI's intervals ---------------------------------------------------------------------------
def attach(objects: list[dict[str, Any]], data: PairedData, boot: int = stats.BOOT,
           seed: int = stats.SEED) -> None:
    """Add to each `ti` op object its per-benchmark paired statistics and its bootstrap intervals:
    `ti_other_ci`, `ti_non_ci`, each group's `index_ci` and `gain_ci`, `bootstrap` (replicates, seed,
    level, the share of replicates whose maths index is <= 0) and `ci_missing` (why there is no
    interval: no items, or the bootstrap turned off). A maths index whose interval holds 0 makes
    the model unstable, with the reason."""
    for o in objects:
        for b, detail in o["benchmarks"].items():
            detail["paired"] = data.detail(o["experiment"], o["model"], b)
        o.update({"ti_other_ci": None, "ti_non_ci": None, "bootstrap": None, "ci_missing": None})
        for g in o["groups"].values():
            g.update({"index_ci": None, "gain_ci": None})
        segments = [data.index.get((o["experiment"], o["model"], b)) for b in o["benchmarks"]]
        o["ci_missing"] = _missing(o, segments, boot)
        if o["ci_missing"] is None:
            _intervals(o, data, [s for s in segments if s is not None], boot, seed)


def _missing(o: dict[str, Any], segments: list[int | None], boot: int) -> str | None:
    if not segments or all(s is None for s in segments):
        return "no items"
    if any(s is None for s in segments):
        lacking = [b for b, s in zip(o["benchmarks"], segments, strict=True) if s is None]
        return "no items for " + ", ".join(lacking)
    return "bootstrap off" if boot <= 0 else None


def _intervals(o: dict[str, Any], data: PairedData, segments: list[int], boot: int, seed: int) -> None:
    pairs = [data.replicates(s, boot, seed) for s in segments]
    base = np.column_stack([p[0] for p in pairs])
    model = np.column_stack([p[1] for p in pairs])
    groups = [o["benchmarks"][data.segments[s].benchmark]["group"] for s in segments]
    sigma = {g: v.get("sigma", np.nan) for g, v in o["groups"].items()} if o["variant"] == "v2" else None
    reps = stats.ti_replicates(base, model, groups, o["variant"], sigma)
    math_index = reps["index_math"]
    defined = math_index > 0
    for g, values in o["groups"].items():
        values["index_ci"] = stats.percentile_ci(reps[f"index_{g}"])
        values["gain_ci"] = stats.percentile_ci(reps[f"gain_{g}"])
    o["ti_other_ci"] = stats.percentile_ci(reps["ti_other"][defined])
    o["ti_non_ci"] = stats.percentile_ci(reps["ti_non"][defined])
    o["bootstrap"] = {"replicates": boot, "seed": seed, "level": stats.LEVEL,
                      "math_index_le0": float(np.mean(~defined))}
    interval = o["groups"]["math"]["index_ci"]
    if interval is not None and interval[0] <= 0 <= interval[1]:
        why = f"maths index 95% CI [{interval[0]:.3g}, {interval[1]:.3g}] includes 0"
        o["unstable"] = True
        o["unstable_reason"] = f"{o['unstable_reason']}; {why}" if o.get("unstable_reason") else why
