"""The paired statistics in the database (migration 0006) and in the `ti` op: `paired_stats` rows equal
what item_verdicts and scipy give, q values per experiment, McNemar in flip_summary, the table kept
current as items arrive, bootstrap intervals that are deterministic and hold the point value, imported
models with no items, and the unstable flag from a maths interval that includes 0."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sp

from engine.analysis import paired
from engine.analysis.paired import PairedCache
from engine.daemon.server import run_ti
from storage import Store
from storage.store import IngestBatch
from tests.unit.test_analytics_views import add_run, add_samples, rows

BENCHMARKS = {"m1": "math", "m2": "math", "o1": "other", "n1": "non"}
GROUP_OF = {**BENCHMARKS, "k3": "other"}


def add_items(store: Store, run_id: str, model: str, verdicts: dict[str, list[float]],
              samples: int = 1) -> None:
    """Samples for each benchmark's items (one verdict list per sample index when `samples` > 1) and the
    accuracy score the eval job would store: the mean item score in percent."""
    batch = IngestBatch(run_id, "samples.jsonl", 1)
    scores = IngestBatch(run_id, "events.jsonl", 1)
    offset = 0
    for bench, values in verdicts.items():
        per_item = np.asarray(values, dtype=float).reshape(samples, -1)
        for k in range(samples):
            for i, v in enumerate(per_item[k]):
                batch.add("samples", {"run_id": run_id, "offset": offset, "benchmark": bench, "item_id": f"i{i:03d}",
                                      "sample_idx": k, "verdict": float(v), "extracted": "x"})
                offset += 1
        scores.add("scores", {"run_id": run_id, "model": model, "benchmark": bench, "group": GROUP_OF[bench],
                              "metric": "accuracy", "value": 100 * per_item.mean(), "n": per_item.shape[1],
                              "t": 1000.0})
    store.write_batch(batch)
    store.write_batch(scores)


def item_lab(seed: int = 0, n: int = 60, gains: dict[str, float] | None = None,
             store: Store | None = None) -> Store:
    """Experiment `exp` (in a new in-memory store unless given one): base, sft and rl evaluated on
    n binary items per benchmark; the tuned models answer like the base on most items and gain
    `gains[benchmark]` in probability."""
    rng = np.random.default_rng(seed)
    gains = gains or {"m1": 0.3, "m2": 0.15, "o1": -0.05, "n1": -0.2}
    store = store or Store.open(None)
    latent = {b: rng.uniform(size=n) for b in BENCHMARKS}
    for name, scale in (("base", 0.0), ("sft", 1.0), ("rl", 0.3)):
        if name != "base":
            add_run(store, f"train-{name}", name, "train", params={"method": "grpo" if name == "rl" else "sft"})
        add_run(store, f"eval-{name}", name)
        verdicts = {}
        for b in BENCHMARKS:
            u = np.where(rng.uniform(size=n) < 0.8, latent[b], rng.uniform(size=n))
            verdicts[b] = list((u < 0.45 + scale * gains[b]).astype(float))
        add_items(store, f"eval-{name}", name, verdicts)
    return store


def refreshed(store: Store) -> PairedCache:
    cache = PairedCache()
    cache.refresh_table(store.con.cursor())
    return cache


PAIRS_FROM_VIEWS = """SELECT t.model, t.benchmark, t.item_id, t.verdict AS y, b.verdict AS x,
       t.samples AS ys, b.samples AS xs
FROM item_verdicts t JOIN models m ON m.experiment = t.experiment AND m.model = t.model
JOIN item_verdicts b ON b.experiment = t.experiment AND b.model = m.base_model
     AND b.benchmark = t.benchmark AND b.item_id = t.item_id
WHERE t.verdict IS NOT NULL AND b.verdict IS NOT NULL ORDER BY 1, 2, 3"""


def expected(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (model, benchmark), from the item_verdicts view and scipy: n, delta, se, CI, p."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows(store, PAIRS_FROM_VIEWS):
        groups.setdefault((r["model"], r["benchmark"]), []).append(r)
    out = {}
    for key, items in groups.items():
        y, x = np.array([r["y"] for r in items]), np.array([r["x"] for r in items])
        test = sp.ttest_rel(y, x)
        low, high = test.confidence_interval(0.95)
        binary = all(r["ys"] == 1 == r["xs"] and r["y"] in (0, 1) and r["x"] in (0, 1) for r in items)
        gained, lost = int(np.sum(y > x)), int(np.sum(y < x))
        out[key] = {"n": len(items), "delta": 100 * (y - x).mean(), "se": 100 * (y - x).std(ddof=1) / math.sqrt(len(y)),
                    "ci_low": 100 * low, "ci_high": 100 * high, "p": test.pvalue,
                    "mcnemar_p": sp.binomtest(min(gained, lost), gained + lost).pvalue if binary and gained + lost
                    else (1.0 if binary else None)}
    return out


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return a == pytest.approx(b, rel=1e-9, abs=1e-12)


def test_paired_stats_equal_item_verdicts_and_scipy() -> None:
    """Binary items, avg@3 items, a later score run that re-scores some items, a sample recorded twice
    (the last record wins), unscored samples and items one model lacks: the table agrees with the
    item_verdicts view and scipy on every row."""
    store = item_lab()
    add_run(store, "eval-base-k3", "base", experiment="exp")
    rng = np.random.default_rng(4)
    add_items(store, "eval-base-k3", "base", {"k3": list(rng.integers(0, 2, 90).astype(float))}, samples=3)
    add_run(store, "eval-sft-k3", "sft")
    add_items(store, "eval-sft-k3", "sft", {"k3": list(rng.integers(0, 2, 84).astype(float))}, samples=3)  # 28 of 30
    add_run(store, "score-sft", "sft", kind="score")
    add_samples(store, "score-sft", [{"benchmark": "m1", "item_id": f"i{i:03d}", "verdict": 1.0} for i in range(8)]
                + [{"benchmark": "m1", "item_id": "i010", "verdict": None}])
    add_samples(store, "eval-rl", [{"benchmark": "o1", "item_id": "i000", "verdict": 1.0 - v, "offset": 10_000}
                                   for v in [rows(store, "SELECT verdict FROM samples WHERE run_id = 'eval-rl' "
                                                         "AND benchmark = 'o1' AND item_id = 'i000'")[0]["verdict"]]])
    refreshed(store)
    got = {(r["model"], r["benchmark"]): r for r in rows(store, "SELECT * FROM paired_stats")}
    want = expected(store)
    assert set(got) == set(want) and ("sft", "k3") in got and ("rl", "k3") not in got
    assert got[("sft", "k3")]["n"] == 28 and not got[("sft", "k3")]["binary"]
    assert got[("sft", "m1")]["n"] == 59  # i010's newest record is unscored: not compared
    for key, w in want.items():
        for column in ("n", "delta", "se", "ci_low", "ci_high", "p", "mcnemar_p"):
            assert same(got[key][column], w[column]), (key, column, got[key][column], w[column])
    exp_rows = sorted(got)
    q = sp.false_discovery_control([got[k]["p"] for k in exp_rows], method="bh")
    assert [got[k]["q"] for k in exp_rows] == pytest.approx(list(q), rel=1e-12)
    flips = {(r["model"], r["benchmark"]): r for r in rows(store, "SELECT * FROM flip_summary")}
    assert flips[("sft", "k3")]["mcnemar_p"] is None and same(flips[("rl", "m1")]["mcnemar_p"],
                                                             want[("rl", "m1")]["mcnemar_p"])
    assert [d[0] for d in store.con.execute("SELECT * FROM paired_deltas LIMIT 0").description] == [
        "experiment", "model", "base_model", "method", "benchmark", "group", "n", "delta", "se", "ci_low",
        "ci_high", "p", "q"]


def test_q_values_are_per_experiment() -> None:
    store = item_lab()
    for name in ("base", "sft"):
        add_run(store, f"other-{name}", name, experiment="other")
        add_items(store, f"other-{name}", name, {"m1": [1.0, 0.0, 1.0, 1.0] if name == "sft" else [0.0] * 4})
    refreshed(store)
    other = rows(store, "SELECT p, q FROM paired_deltas WHERE experiment = 'other'")
    assert len(other) == 1 and other[0]["q"] == pytest.approx(other[0]["p"])  # one test: q = p


def test_the_table_follows_the_items_and_records_its_source() -> None:
    store = item_lab(n=20)
    cache = refreshed(store)
    first = rows(store, "SELECT n FROM paired_deltas WHERE model = 'sft' AND benchmark = 'm1'")
    assert first == [{"n": 20}]
    signature = rows(store, "SELECT signature FROM paired_stats_source")[0]["signature"]
    cache.refresh_table(store.con.cursor())  # nothing changed: nothing recomputed
    assert rows(store, "SELECT signature FROM paired_stats_source")[0]["signature"] == signature
    for name in ("base", "sft"):
        add_samples(store, f"eval-{name}", [{"benchmark": "m1", "item_id": "new", "verdict": 1.0, "offset": 99_999}])
    cache.refresh_table(store.con.cursor())
    assert rows(store, "SELECT n FROM paired_deltas WHERE model = 'sft' AND benchmark = 'm1'") == [{"n": 21}]
    before = rows(store, "SELECT delta FROM paired_deltas WHERE model = 'sft' AND benchmark = 'm1'")[0]["delta"]
    add_samples(store, "eval-sft", [{"benchmark": "m1", "item_id": "new", "verdict": 0.0, "offset": 100_000}])
    cache.refresh_table(store.con.cursor())  # the sample recorded again: its last record counts, once
    after = rows(store, "SELECT n, delta FROM paired_deltas WHERE model = 'sft' AND benchmark = 'm1'")[0]
    assert after == {"n": 21, "delta": pytest.approx(before - 100 / 21)}
    assert rows(store, "SELECT count(*) AS runs FROM run_items_source") == [{"runs": 3}]


def ti(store: Store, cache: PairedCache | None = None, **args: Any) -> dict[str, dict[str, Any]]:
    done = json.loads(json.dumps(run_ti(store.con.cursor(), {"experiment": "exp", **args}, cache)))
    return {o["model"]: o for o in done["results"]}


def test_ti_intervals_are_deterministic_and_hold_the_point() -> None:
    store = item_lab(n=100)
    first, again = ti(store), ti(store, PairedCache(), boot=2000)
    assert first == again  # a fixed seed: every call prints the same interval
    sft = first["sft"]
    for key in ("ti_other", "ti_non"):
        low, high = sft[f"{key}_ci"]
        assert low <= sft[key] <= high, (key, sft[key], low, high)
    for g, values in sft["groups"].items():
        low, high = values["gain_ci"]
        assert low <= values["model"] - values["base"] <= high, g
        assert values["index_ci"][0] <= values["index"] <= values["index_ci"][1], g
    assert sft["bootstrap"] == {"replicates": 2000, "seed": 0, "level": 0.95, "math_index_le0": 0.0}
    assert sft["ci_missing"] is None
    detail = sft["benchmarks"]["m1"]["paired"]
    table = rows(store, "SELECT * FROM paired_deltas WHERE model = 'sft' AND benchmark = 'm1'")[0]
    assert detail == {"n": 100, "delta": table["delta"], "se": table["se"], "ci": [table["ci_low"], table["ci_high"]],
                      "p": table["p"], "q": table["q"], "mcnemar_p": detail["mcnemar_p"]}  # the table's numbers
    smaller = ti(store, boot=200)["sft"]
    assert smaller["ti_other_ci"] != sft["ti_other_ci"] and smaller["bootstrap"]["replicates"] == 200
    off = ti(store, boot=0)["sft"]
    assert off["ti_other_ci"] is None and off["ci_missing"] == "bootstrap off"
    assert off["benchmarks"]["m1"]["paired"] == detail  # the t statistics need no bootstrap


def test_a_maths_interval_holding_zero_makes_the_ratio_unstable() -> None:
    store = item_lab(n=40, gains={"m1": 0.06, "m2": 0.0, "o1": 0.1, "n1": -0.2})
    got = ti(store, variant="v1")
    rl = got["rl"]
    low, high = rl["groups"]["math"]["index_ci"]
    assert low <= 0 <= high and rl["unstable"]
    assert "maths index 95% CI [" in rl["unstable_reason"] and rl["unstable_reason"].endswith("includes 0")
    assert 0 < rl["bootstrap"]["math_index_le0"] < 1  # the share of replicates with no defined ratio


def test_imported_models_have_no_items() -> None:
    from engine.daemon.server import apply_import
    from tests.unit.test_analytics_views import import_args

    store = item_lab(n=20)
    apply_import(store, import_args("pub"))
    done = json.loads(json.dumps(run_ti(store.con.cursor(), {}, None)))
    pub = [o for o in done["results"] if o["experiment"] == "pub"]
    assert pub and all(o["ci_missing"] == "no items" and o["ti_other_ci"] is None for o in pub)
    assert all(b["paired"] is None for o in pub for b in o["benchmarks"].values())
    assert rows(store, "SELECT count(*) AS n FROM paired_deltas WHERE experiment = 'pub'") == [{"n": 0}]



def rerecord(store: Store, run_id: str, bench: str, verdicts: dict[int, float]) -> None:
    """New last records of some samples of a run (a rescore as ingest stores it): samples only."""
    batch = IngestBatch(run_id, "samples.jsonl", 1)
    start = store.con.execute("SELECT max(\"offset\") + 1 FROM sample_rows WHERE run_id = ?", [run_id]).fetchone()[0]
    for n, (i, v) in enumerate(verdicts.items()):
        batch.add("samples", {"run_id": run_id, "offset": start + n, "benchmark": bench, "item_id": f"i{i:03d}",
                              "sample_idx": 0, "verdict": v, "extracted": "x"})
    store.write_batch(batch)


def assert_same(got: paired.PairedData, want: paired.PairedData) -> None:
    """Every array, table row and bootstrap replicate identical to the last bit."""
    for name in ("segment", "stratum", "item", "model_score", "base_score", "binary_rows", "binary", "q",
                 "gained", "lost", "mcnemar_p"):
        assert np.array_equal(getattr(got, name), getattr(want, name), equal_nan=name not in ("binary",
                              "binary_rows", "segment", "stratum", "item", "gained", "lost")), name
    assert [got.row(i) for i in range(len(got.segments))] == [want.row(i) for i in range(len(want.segments))]
    for i in range(len(want.segments)):
        for a, b in zip(got.replicates(i, 200, 7), want.replicates(i, 200, 7), strict=True):
            assert np.array_equal(a, b)


def test_an_incremental_refresh_equals_a_full_read(monkeypatch) -> None:
    """New records of one tuned model's run re-read that model's segments only (the rest keep their
    rows and bootstrap replicates); of the base's, every model's; a segment or benchmark that was not
    there reads everything. Each time the result is identical to reading everything afresh."""
    store = item_lab(n=80)
    add_run(store, "eval-sft2", "sft2")
    add_items(store, "eval-sft2", "sft2", {b: [float(i % 3 == 0) for i in range(80)] for b in ("m1", "m2", "o1")})
    updates, in_place = [], []
    real_update, real_same = paired.update, paired._same_rows
    monkeypatch.setattr(paired, "update", lambda *a: updates.append(real_update(*a)) or updates[-1])
    monkeypatch.setattr(paired, "_same_rows", lambda *a: in_place.append(real_same(*a)) or in_place[-1])
    cache = refreshed(store)
    cur = store.con.cursor()
    cache.current(cur).replicates(0, 200, 7)  # a replicate cache to carry over
    steps = [("eval-rl", "m1", {3: 1.0, 4: 0.0, 70: 1.0}), ("eval-sft", "n1", {1: 0.5}),
             ("eval-base", "o1", {2: 1.0, 5: 0.0}),
             ("eval-base", "m1", {85: 1.0}), ("eval-rl", "m1", {85: 0.0}),  # an item rl and its base now share
             ("eval-sft2", "n1", {0: 1.0}), ("eval-sft2", "k3", {0: 1.0})]
    for run_id, bench, verdicts in steps:
        rerecord(store, run_id, bench, verdicts)
        got = cache.current(cur)
        cur.execute("BEGIN TRANSACTION")
        want = paired.load(cur, got.signature)
        cur.execute("ROLLBACK")
        assert_same(got, want)
        table = store.con.execute("SELECT * FROM paired_stats ORDER BY experiment, model, benchmark").fetchall()
        assert table == sorted((tuple(want.row(i).values()) for i in range(len(want.segments))),
                               key=lambda r: (r[0], r[1], r[4]))
    # sft2's n1 is a segment it lacked (update gives up); k3 a benchmark none had (no update tried)
    assert [u is not None for u in updates] == [True, True, True, True, True, False]
    # rescores keep every row where it was; rl's new item m1/i085 gathers the rows anew
    assert [rows is not None for rows in in_place] == [True, True, True, True, False]
