"""A run's samples page by page (storage.store.run_samples): the page's offsets are read first, then
its rows (DuckDB's top-N over the samples view read every completion of the run: 0.2 s a page at
paper scale). Every page, with each filter, is what one ORDER BY ... LIMIT query gives."""

from __future__ import annotations

import pytest

from storage import Store
from storage.store import SAMPLE_COLUMNS, IngestBatch, _sample_filter, run_samples


@pytest.fixture(scope="module")
def store() -> Store:
    store = Store.open(None)
    for run_id in ("a", "b"):
        batch = IngestBatch(run_id, "samples.jsonl", 1)
        for i in range(250):
            batch.add("samples", {"run_id": run_id, "offset": 7 * i + (run_id == "b"), "benchmark": f"b{i % 3}",
                                  "item_id": str(i // 2), "sample_idx": i % 2, "prompt": f"p{i % 5}",
                                  "completion": f"text {i}", "verdict": [0.0, 1.0, None][i % 3], "tokens": i,
                                  "flags": ["truncated"] if i % 4 == 0 else [], "extracted": str(i)})
        store.write_batch(batch)
    return store


def one_query(store: Store, run_id: str, limit: int, offset: int, **filters: str | None) -> list[dict]:
    where, params = _sample_filter(run_id, filters.get("text"), filters.get("benchmark"), filters.get("verdict"),
                                   filters.get("flag"))
    cols = ", ".join(f'"{c}"' for c in SAMPLE_COLUMNS)
    got = store.con.execute(f"SELECT {cols}, extra->>'gold' FROM samples WHERE {where} ORDER BY \"offset\" "
                            f"LIMIT {limit} OFFSET {offset}", params).fetchall()
    rows = [dict(zip((*SAMPLE_COLUMNS, "gold"), r, strict=True)) for r in got]
    return [row | {"flags": list(row["flags"] or [])} for row in rows]


@pytest.mark.parametrize("filters", [{}, {"benchmark": "b1"}, {"verdict": "correct"}, {"verdict": "unscored"},
                                     {"flag": "truncated"}, {"text": "p3"}, {"benchmark": "b2", "flag": "truncated"}])
@pytest.mark.parametrize(("limit", "offset"), [(100, 0), (40, 30), (1000, 0), (10, 245), (10, 400), (0, 0)])
def test_every_page_is_the_one_query_page(store: Store, filters: dict[str, str], limit: int, offset: int) -> None:
    page = run_samples(store.con.cursor(), "b", limit=limit, offset=offset, **filters)
    assert page["rows"] == one_query(store, "b", limit, offset, **filters)
    assert page["all"] == 250 and page["benchmarks"] == {"b0": 84, "b1": 83, "b2": 83}
    where, params = _sample_filter("b", filters.get("text"), filters.get("benchmark"), filters.get("verdict"),
                                   filters.get("flag"))
    assert page["total"] == store.con.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()[0]
