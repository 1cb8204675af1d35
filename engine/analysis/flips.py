"""`flip_stats`, what `flip_summary` reads (migration 0009): per tuned model and benchmark, the items
compared with its base, gained, lost, net and the flipped item ids.

The daemon alone runs this, through `PairedCache.refresh_flips` (which holds the paired cache's
lock: both write `run_items`). A refresh recomputes only the (experiment, model) rows whose runs,
or whose base's runs, have new sample records since the rows were computed; anything else that
changed (runs, links, scores, imports) recomputes every row. Either way the rows are those of
0008's `flip_summary` view, computed from `run_items_latest` (tested equal).
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa


class Cursor(Protocol):
    """What this module needs of a DuckDB cursor (engine.analysis.paired's, which imports this one)."""

    def execute(self, query: str, parameters: Any = ...) -> Cursor: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def register(self, name: str, data: Any) -> Cursor: ...
    def unregister(self, name: str) -> Cursor: ...


COUNT_SQL = """INSERT INTO flip_stats
WITH scope AS ({scope}), wanted AS (  -- the models whose rows are computed, and their bases
    SELECT experiment, model FROM scope
    UNION
    SELECT m.experiment, m.base_model FROM models m JOIN scope s USING (experiment, model)
    WHERE m.base_model IS NOT NULL
), per_run AS (
    SELECT e.experiment, r.name AS model, i.run_id, r.created_at, i.benchmark, i.item_id, i.samples, i.verdict
    FROM run_items i JOIN runs r ON r.id = i.run_id JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.kind IN ('eval', 'score') AND r.name IS NOT NULL
      AND (e.experiment, r.name) IN (SELECT experiment, model FROM wanted)
), ranked AS (
    SELECT experiment, model, run_id, benchmark,
           count(*) OVER (PARTITION BY experiment, model, benchmark) AS runs,
           row_number() OVER (PARTITION BY experiment, model, benchmark
                              ORDER BY created_at DESC, run_id DESC) AS recency
    FROM (SELECT DISTINCT experiment, model, run_id, created_at, benchmark FROM per_run)
), latest AS MATERIALIZED (  -- run_items_latest's rows of those models
    SELECT p.experiment, p.model, p.benchmark, p.item_id, p.verdict >= 0.5 AS correct
    FROM per_run p JOIN ranked k USING (experiment, model, run_id, benchmark) WHERE k.runs = 1
    UNION ALL
    SELECT p.experiment, p.model, p.benchmark, p.item_id, p.verdict >= 0.5 AS correct
    FROM per_run p JOIN ranked k USING (experiment, model, run_id, benchmark) WHERE k.runs > 1
    QUALIFY row_number() OVER (PARTITION BY p.experiment, p.model, p.benchmark, p.item_id
                               ORDER BY k.recency) = 1
)
SELECT t.experiment, t.model, m.base_model, t.benchmark, count(*) AS items,
       count(*) FILTER (WHERE t.correct AND NOT b.correct) AS gained,
       count(*) FILTER (WHERE b.correct AND NOT t.correct) AS lost,
       count(*) FILTER (WHERE t.correct AND NOT b.correct)
         - count(*) FILTER (WHERE b.correct AND NOT t.correct) AS net,
       list(t.item_id ORDER BY t.item_id) FILTER (WHERE t.correct AND NOT b.correct) AS gained_items,
       list(t.item_id ORDER BY t.item_id) FILTER (WHERE b.correct AND NOT t.correct) AS lost_items
FROM latest t
JOIN models m ON m.experiment = t.experiment AND m.model = t.model
JOIN latest b ON b.experiment = t.experiment AND b.model = m.base_model
     AND b.benchmark = t.benchmark AND b.item_id = t.item_id
WHERE (t.experiment, t.model) IN (SELECT experiment, model FROM scope)
GROUP BY ALL"""
"""0008's flip_summary counts (its `run_items_latest` inlined) for the (experiment, model) pairs of
`{scope}`: reading only their run_items and their bases' is what makes one model's refresh cheap."""
EVERY = "SELECT experiment, model FROM models"
SCOPED = "SELECT experiment, model FROM _tix_flip_scope"
TOUCHED_SQL = """WITH changed AS (
    SELECT DISTINCT e.experiment, r.name AS model FROM runs r JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.id IN (SELECT run_id FROM _tix_changed) AND r.name IS NOT NULL
)
SELECT experiment, model FROM changed
UNION
SELECT m.experiment, m.model
FROM models m JOIN changed c ON c.experiment = m.experiment AND c.model = m.base_model"""
"""The (experiment, model) pairs whose flips the changed runs move: their own, and their base's."""
CHANGED_RUNS_SQL = """SELECT run_id FROM flip_stats_runs a FULL JOIN run_items_source b USING (run_id)
WHERE a.records IS DISTINCT FROM b.records ORDER BY run_id"""
"""The runs whose sample records differ from those the flips were computed from (new, grown or gone)."""


def stored(cur: Cursor) -> str | None:
    """The signature `flip_stats` was computed at (None: never)."""
    return cur.execute("SELECT any_value(signature) FROM flip_stats_source").fetchall()[0][0]


def refresh(cur: Cursor, signature: str) -> int | None:
    """Bring `flip_stats` up to `signature` (engine.analysis.paired's), `run_items` being current
    (run_items_source says with which records); returns the pairs recomputed (None: every row).
    The run records are compared and copied in SQL: an insert per run cost about 1 ms each."""
    stored_at = stored(cur)
    if stored_at == signature:
        return 0
    if stored_at is not None and stored_at.split("/")[1:] == signature.split("/")[1:]:
        changed = [r for (r,) in cur.execute(CHANGED_RUNS_SQL).fetchall()]
        done: int | None = _recompute(cur, changed)
    else:
        cur.execute("DELETE FROM flip_stats")
        cur.execute(COUNT_SQL.format(scope=EVERY))
        done = None
    cur.execute("DELETE FROM flip_stats_runs")
    cur.execute("INSERT INTO flip_stats_runs SELECT run_id, records FROM run_items_source")
    cur.execute("DELETE FROM flip_stats_source")
    cur.execute("INSERT INTO flip_stats_source VALUES (?)", [signature])
    return done


def _recompute(cur: Cursor, changed: list[str]) -> int:
    """Recompute the rows of the pairs the changed runs touch; returns how many pairs."""
    if not changed:
        return 0
    cur.register("_tix_changed", pa.table({"run_id": pa.array(changed, pa.string())}))
    try:
        touched = cur.execute(TOUCHED_SQL).fetchall()
    finally:
        cur.unregister("_tix_changed")
    if not touched:
        return 0
    scope = pa.table({"experiment": pa.array([e for e, _ in touched], pa.string()),
                      "model": pa.array([m for _, m in touched], pa.string())})
    cur.register("_tix_flip_scope", scope)
    try:
        cur.execute("DELETE FROM flip_stats WHERE (experiment, model) IN (SELECT experiment, model "
                    "FROM _tix_flip_scope)")
        cur.execute(COUNT_SQL.format(scope=SCOPED))
    finally:
        cur.unregister("_tix_flip_scope")
    return len(touched)
