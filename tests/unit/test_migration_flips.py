"""Migration 0008 (flips from the daemon's item scores) upgrades a database made by release 0007 and
gives the same flips, flip summary and item verdicts, edge cases included: several samples per item,
a sample whose last record is unscored, an item rescored by a newer run, items without a benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from engine.analysis.paired import PairedCache
from engine.daemon.ingest import ingest_until_drained
from storage import Store
from tests.unit.test_analytics_views import add_run

QUERIES = {"flips": "SELECT * FROM flips ORDER BY ALL",
           "flip_summary": "SELECT * FROM flip_summary ORDER BY ALL",
           "item_verdicts": "SELECT * FROM item_verdicts ORDER BY ALL"}


def sample(item: int, k: int, verdict: float | None, bench: str | None = "m1") -> str:
    return json.dumps({"benchmark": bench, "item_id": str(item), "sample_idx": k, "prompt": f"p{item}",
                       "completion": "c", "verdict": verdict, "tokens": 1, "flags": []})


def write(run: Path, lines: list[str]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    with (run / "samples.jsonl").open("a") as f:
        f.write("\n".join(lines) + "\n")


def build(store: Store, root: Path) -> None:
    """A base and a tuned model: 40 items x 2 samples each, the tuned model rescored on some."""
    runs = {"eval-base": ("base", "eval"), "eval-sft": ("sft", "eval"), "score-sft": ("sft", "score")}
    for run_id, (name, kind) in runs.items():
        add_run(store, run_id, name, kind, experiment="e")
    write(root / "eval-base", [sample(i, k, float((i + k) % 3 == 0)) for i in range(40) for k in range(2)])
    write(root / "eval-sft", [sample(i, k, float((i * k) % 2 == 0)) for i in range(40) for k in range(2)]
          + [sample(5, 0, None), sample(6, 1, 1.0), sample(99, 0, 1.0, bench=None)])
    write(root / "score-sft", [sample(i, k, float(i % 4 == 0)) for i in range(30, 45) for k in range(2)])
    for run_id in runs:
        ingest_until_drained(store, run_id, root / run_id)


def read(store: Store) -> dict[str, list[tuple]]:
    cache = PairedCache()  # what the daemon does before a query naming flips
    cache.refresh_table(store.con.cursor())
    if store.con.execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 9:
        cache.refresh_flips(store.con.cursor())
    return {name: store.con.execute(sql).fetchall() for name, sql in QUERIES.items()}


def test_upgrade_keeps_the_flips(tmp_path: Path) -> None:
    db = tmp_path / "tix.duckdb"
    old = Store.open(db, upto=7)  # the release before 0008
    build(old, tmp_path)
    before = read(old)
    old.close()
    new = Store.open(db)
    assert new.con.execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 8
    after = read(new)
    assert after == before
    assert len(before["flips"]) > 10 and len(before["flip_summary"]) == 1
    verdicts = {(r[2], r[4]): r[6] for r in before["item_verdicts"]}  # (run, item) -> verdict
    assert verdicts[("eval-sft", "5")] == 0.0  # sample 0 (1.0) unscored at last: only sample 1 (0.0) counts
    assert verdicts[("score-sft", "35")] == 0.0 and ("eval-sft", "35") not in verdicts  # newest run wins
    assert ("eval-sft", "10") in verdicts  # items the newer run lacks come from the older one


def test_flip_stats_follow_new_samples_model_by_model(tmp_path: Path) -> None:
    """After new records of a tuned model's run only its rows are recomputed, after its base's every
    tuned model's, after a score every row; each time flip_stats holds what a full pairing gives."""
    store = Store.open(tmp_path / "tix.duckdb")
    build(store, tmp_path)
    add_run(store, "eval-rl", "rl", experiment="e")
    write(tmp_path / "eval-rl", [sample(i, 0, float(i % 5 == 0)) for i in range(40)])
    ingest_until_drained(store, "eval-rl", tmp_path / "eval-rl")
    cache = PairedCache()
    cur = store.con.cursor()
    full = """SELECT t.experiment, t.model, m.base_model, t.benchmark, count(*),
           count(*) FILTER (WHERE t.correct AND NOT b.correct), count(*) FILTER (WHERE b.correct AND NOT t.correct),
           count(*) FILTER (WHERE t.correct AND NOT b.correct) - count(*) FILTER (WHERE b.correct AND NOT t.correct),
           list(t.item_id ORDER BY t.item_id) FILTER (WHERE t.correct AND NOT b.correct),
           list(t.item_id ORDER BY t.item_id) FILTER (WHERE b.correct AND NOT t.correct)
    FROM run_items_latest t JOIN models m ON m.experiment = t.experiment AND m.model = t.model
    JOIN run_items_latest b ON b.experiment = t.experiment AND b.model = m.base_model
         AND b.benchmark = t.benchmark AND b.item_id = t.item_id
    GROUP BY ALL ORDER BY ALL"""  # 0008's flip_summary, less its McNemar p
    steps = [("eval-rl", [sample(i, 0, 1.0) for i in range(10)], 1),
             ("eval-base", [sample(i, 0, 1.0) for i in range(40)], 3),  # the base and its two
             ("score-sft", [sample(i, 1, 1.0) for i in range(30, 45)], 1)]
    assert cache.refresh_flips(cur) is None
    for run_id, lines, models in steps:
        before = store.con.execute("SELECT * FROM flip_stats ORDER BY ALL").fetchall()
        write(tmp_path / run_id, lines)
        ingest_until_drained(store, run_id, tmp_path / run_id)
        assert cache.refresh_flips(cur) == models
        got = store.con.execute("SELECT * FROM flip_stats ORDER BY ALL").fetchall()
        assert got == store.con.execute(full).fetchall() and got != before
    store.con.execute("INSERT INTO scores VALUES ('eval-rl', 'rl', 'm1', 'math', 'accuracy', 50, 40, now())")
    assert cache.refresh_flips(cur) is None
    lost = store.con.execute("SELECT model, lost_items FROM flip_summary WHERE model = 'rl'").fetchall()
    assert lost and lost[0][1] == sorted(lost[0][1])
