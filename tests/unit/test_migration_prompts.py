"""Migration 0007 (each prompt stored once) upgrades a database made by the release before it
without losing or changing a sample, and ingest after it reads back what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

from engine.daemon.ingest import ingest_until_drained
from storage import Store

SAMPLE_COLUMNS = ('run_id, "offset", benchmark, item_id, sample_idx, prompt, completion, extracted, '
                  "verdict, tokens, finish_reason, flags, extra")


THINK = {3: "<think> hmm", 4: "<think>a</think> b", 5: "<think>a</think> <think>"}


def write_run(run: Path, models: int = 1) -> None:
    run.mkdir()
    lines = []
    for item in range(30):
        for k in range(3):
            lines.append(json.dumps({"benchmark": "math", "item_id": str(item), "sample_idx": k,
                                     "prompt": None if item == 7 else f"Problem {item}: é " * 40,
                                     "completion": THINK.get(item, f"answer {item}.{k}"), "verdict": float(k == 0),
                                     "tokens": 5, "flags": [], "gold": "1"}))
    (run / "samples.jsonl").write_text("\n".join(lines) + "\n")


def rows(store: Store) -> list[tuple]:
    return store.con.execute(f"SELECT {SAMPLE_COLUMNS} FROM samples ORDER BY run_id, \"offset\"").fetchall()


def test_upgrade_keeps_every_sample(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_run(tmp_path / name)
    db = tmp_path / "tix.duckdb"
    old = Store.open(db, upto=6)  # today's release
    for name in ("a", "b"):
        old.insert_run({"id": name, "experiment": "e", "name": name, "kind": "eval", "state": "succeeded",
                        "params": {}, "deps": []})
        ingest_until_drained(old, name, tmp_path / name)
    before = rows(old)
    health = old.con.execute("SELECT * FROM output_health ORDER BY ALL").fetchall()
    old.close()
    new = Store.open(db)
    assert rows(new) == before and len(before) == 180
    assert new.con.execute("SELECT * FROM output_health ORDER BY ALL").fetchall() == health
    assert [r[-2] for r in health if r[4] is None] == [100 * 6 / 90] * 2  # items 3 and 5, 3 samples each
    assert new.con.execute("SELECT count(*) FROM prompts").fetchone()[0] == 29  # one per item with one
    write_run(tmp_path / "c")
    ingest_until_drained(new, "c", tmp_path / "c")
    assert [r[1:] for r in rows(new) if r[0] == "c"] == [r[1:] for r in before if r[0] == "a"]
    assert new.con.execute("SELECT count(*) FROM prompts").fetchone()[0] == 29
