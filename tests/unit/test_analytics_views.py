"""The analysis views of migration 0003 on a small hand-made database: model scores from runs and
imports, the TI in SQL agreeing with engine.analysis.metrics, flips, scorer disagreements, output health,
shift summaries and imports that replace instead of duplicating."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from engine.analysis.metrics import transferability
from engine.analysis.paired import PairedCache
from engine.daemon.server import RequestError, apply_import, refresh_for
from storage import Store
from storage.store import IngestBatch

GROUPS = {"m1": "math", "m2": "math", "o1": "other", "n1": "non", "n2": "non"}
BASE = {"m1": 20.0, "m2": 40.0, "o1": 50.0, "n1": 60.0, "n2": 80.0}
SFT = {"m1": 30.0, "m2": 50.0, "o1": 45.0, "n1": 54.0, "n2": 80.0}
RL = {"m1": 25.0, "m2": 44.0, "o1": 55.0, "n1": 60.0, "n2": 84.0}


def add_run(store: Store, run_id: str, name: str, kind: str = "eval", experiment: str = "exp",
            params: dict[str, Any] | None = None) -> None:
    store.insert_run({"id": run_id, "experiment": experiment, "name": name, "kind": kind, "state": "succeeded",
                      "params": params or {}, "deps": []})
    store.ensure_experiment(experiment)
    store.link_runs(experiment, [run_id])


def add_scores(store: Store, run_id: str, model: str, scores: dict[str, float], t: float = 1000.0) -> None:
    batch = IngestBatch(run_id, "events.jsonl", 1)
    for bench, value in scores.items():
        batch.add("scores", {"run_id": run_id, "model": model, "benchmark": bench, "group": GROUPS[bench],
                             "metric": "accuracy", "value": value, "n": 10, "t": t})
        batch.add("scores", {"run_id": run_id, "model": model, "benchmark": bench, "group": GROUPS[bench],
                             "metric": "accuracy_stderr", "value": 1.0, "n": 10, "t": t})
    store.write_batch(batch)


def lab(models: dict[str, dict[str, float]]) -> Store:
    """An experiment `exp` with a train run per tuned model and an eval run per model."""
    store = Store.open(None)
    for name, scores in models.items():
        if name != "base":
            add_run(store, f"train-{name}", name, "train", params={"method": "grpo" if name == "rl" else "sft"})
        add_run(store, f"eval-{name}", name)
        add_scores(store, f"eval-{name}", name, scores)
    return store


def rows(store: Store, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """The query's rows, after what the daemon does first for a query naming its caches (0006, 0008)."""
    refresh_for(PairedCache(), store.con.cursor(), sql)
    cur = store.con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def same(a: float | None, b: float) -> bool:
    """SQL NULL stands for engine.analysis.metrics' NaN."""
    return math.isnan(b) if a is None else a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_models_and_model_scores_from_runs() -> None:
    store = lab({"base": BASE, "sft": SFT, "rl": RL})
    models = {r["model"]: r for r in rows(store, "SELECT * FROM models")}
    assert models["base"]["base_model"] is None and models["base"]["method"] == "base"
    assert (models["rl"]["base_model"], models["rl"]["method"]) == ("base", "grpo")
    got = rows(store, "SELECT model, benchmark, score, source FROM model_scores WHERE model = 'sft' ORDER BY 2")
    assert [(r["benchmark"], r["score"], r["source"]) for r in got] == [(b, SFT[b], "run") for b in sorted(SFT)]
    group = rows(store, "SELECT * FROM group_scores WHERE model = 'sft' AND \"group\" = 'math'")[0]
    assert (group["base_score"], group["score"], group["gain"], group["benchmarks"]) == (30.0, 40.0, 10.0, 2)
    assert group["relative_gain"] == pytest.approx((10 / 20 + 10 / 40) / 2)


def test_a_later_score_of_the_same_benchmark_wins() -> None:
    store = lab({"base": BASE, "sft": SFT})
    add_scores(store, "eval-sft", "sft", {"m1": 33.0}, t=2000.0)
    got = rows(store, "SELECT score FROM model_scores WHERE model = 'sft' AND benchmark = 'm1'")
    assert got == [{"score": 33.0}]


CASES = {
    "two tuned models": {"base": BASE, "sft": SFT, "rl": RL},
    "negative maths gain": {"base": BASE, "worse": {**SFT, "m1": 15.0, "m2": 39.0}, "rl": RL},
    "near-zero maths gain": {"base": BASE, "tiny": {**SFT, "m1": 20.5, "m2": 40.5}, "rl": RL},
    "zero base score and sigma": {"base": {**BASE, "o1": 0.0}, "one": {**SFT, "o1": 10.0}},
    "no maths at all": {"base": {"o1": 50.0, "n1": 60.0}, "x": {"o1": 55.0, "n1": 50.0}},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ti_view_agrees_with_engine_metrics(case: str) -> None:
    models = CASES[case]
    store = lab(models)
    sql = {r["model"]: r for r in rows(store, "SELECT * FROM ti")}
    v1 = {r.model: r for r in transferability("base", models, GROUPS, "v1")}
    v2 = {r.model: r for r in transferability("base", models, GROUPS, "v2", "pooled")}
    assert set(sql) == set(v1)
    for name, row in sql.items():
        for col, want in [("ti_other_v1", v1[name].ti_other), ("ti_non_v1", v1[name].ti_non),
                          ("ti_other_v2", v2[name].ti_other), ("ti_non_v2", v2[name].ti_non),
                          ("sigma_math", v2[name].groups["math"]["sigma"]),
                          ("di_math_v2", v2[name].groups["math"]["index"])]:
            assert same(row[col], want), (case, name, col, row[col], want)
        assert row["unstable_v1"] == v1[name].unstable and row["unstable_v2"] == v2[name].unstable


def test_ti_view_flags_unstable_maths_gains() -> None:
    store = lab(CASES["negative maths gain"])
    flags = {r["model"]: (r["unstable_v1"], r["unstable_v2"]) for r in rows(store, "SELECT * FROM ti")}
    assert flags == {"worse": (True, True), "rl": (False, False)}


def import_args(experiment: str = "pub", **extra: Any) -> dict[str, Any]:
    models = [{"model": "B", "base_model": None, "method": "base", "position": 2},
              {"model": "T", "base_model": "B", "method": "rl", "position": 4}]
    scores = [{"model": m, "benchmark": b, "group": GROUPS[b], "value": s[b], "metric": "score", "line": i}
              for i, (m, s) in enumerate([("B", BASE), ("T", RL)]) for b in s]
    return {"experiment": experiment, "source": "/x/s.csv", "models": models, "scores": scores,
            "whole_experiment": True, **extra}


def test_imports_replace_earlier_imports_and_feed_the_views() -> None:
    store = Store.open(None)
    first = apply_import(store, import_args())
    again = apply_import(store, import_args())
    assert first == {"models": 2, "scores": 10, "replaced": 0} and again["replaced"] == 10
    assert store.con.execute("SELECT count(*) FROM imported_scores").fetchone() == (10,)
    assert "pub" in store.experiment_names()
    row = rows(store, "SELECT * FROM ti WHERE experiment = 'pub'")[0]
    want = transferability("base", {"base": BASE, "rl": RL}, GROUPS, "v1")[0]
    assert (row["model"], row["base_model"], row["method"]) == ("T", "B", "rl")
    assert row["ti_other_v1"] == pytest.approx(want.ti_other)


def test_a_model_import_keeps_the_others_and_needs_a_known_base() -> None:
    store = Store.open(None)
    apply_import(store, import_args())
    one = {"experiment": "pub", "source": "/x/r.json", "whole_experiment": False,
           "models": [{"model": "S", "base_model": "B", "method": "sft"}],
           "scores": [{"model": "S", "benchmark": "m1", "group": "math", "value": 33.0}]}
    apply_import(store, one)
    apply_import(store, one)
    assert [r["model"] for r in rows(store, "SELECT DISTINCT model FROM model_scores ORDER BY 1")] == ["B", "S", "T"]
    with pytest.raises(RequestError, match="base model 'Z' has no scores"):
        apply_import(store, {**one, "models": [{"model": "S", "base_model": "Z"}]})
    with pytest.raises(RequestError, match="percent"):
        apply_import(store, {**one, "scores": [{"model": "S", "benchmark": "m1", "group": "math", "value": 130}]})


def test_imported_scores_win_over_run_scores_of_the_same_model() -> None:
    store = lab({"base": BASE, "sft": SFT})
    apply_import(store, {"experiment": "exp", "source": "f", "whole_experiment": False,
                         "models": [{"model": "sft", "base_model": "base", "method": "published"}],
                         "scores": [{"model": "sft", "benchmark": "m1", "group": "math", "value": 99.0}]})
    got = {r["benchmark"]: (r["score"], r["source"], r["method"])
           for r in rows(store, "SELECT * FROM model_scores WHERE model = 'sft'")}
    assert got["m1"] == (99.0, "import", "published") and got["m2"] == (50.0, "run", "published")


def add_samples(store: Store, run_id: str, samples: list[dict[str, Any]]) -> None:
    batch = IngestBatch(run_id, "samples.jsonl", 1)
    for i, s in enumerate(samples):
        extra = {k: s.pop(k) for k in ("scorer", "scorer_version") if k in s}
        batch.add("samples", {"run_id": run_id, "offset": i, "sample_idx": 0, "tokens": 10,
                              "finish_reason": "stop", "extracted": "x", "completion": f"out {run_id} {i}",
                              "extra": json.dumps(extra) if extra else None, **s})
    store.write_batch(batch)


def test_flips_per_item_and_per_benchmark() -> None:
    store = lab({"base": BASE, "sft": SFT})
    add_samples(store, "eval-base", [{"benchmark": "m1", "item_id": i, "verdict": v}
                                     for i, v in [("a", 1.0), ("b", 0.0), ("c", 0.0), ("d", 1.0)]])
    add_samples(store, "eval-sft", [{"benchmark": "m1", "item_id": i, "verdict": v}
                                    for i, v in [("a", 0.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)]])
    flips = rows(store, "SELECT item_id, change, base_verdict, model_verdict FROM flips ORDER BY item_id")
    assert [(f["item_id"], f["change"]) for f in flips] == [("a", "lost"), ("b", "gained"), ("c", "gained")]
    summary = rows(store, "SELECT * FROM flip_summary")[0]
    assert (summary["model"], summary["base_model"], summary["items"]) == ("sft", "base", 4)
    assert (summary["gained"], summary["lost"], summary["net"]) == (2, 1, 1)
    assert summary["gained_items"] == ["b", "c"] and summary["lost_items"] == ["a"]


def test_flips_use_the_mean_verdict_over_samples() -> None:
    store = lab({"base": BASE, "sft": SFT})
    add_samples(store, "eval-base", [{"benchmark": "m1", "item_id": "a", "verdict": 0.0}])
    add_samples(store, "eval-sft", [{"benchmark": "m1", "item_id": "a", "verdict": v, "sample_idx": k}
                                    for k, v in enumerate([1.0, 1.0, 0.0])])
    got = rows(store, "SELECT change, model_verdict FROM flips")
    assert got == [{"change": "gained", "model_verdict": pytest.approx(2 / 3)}]


def test_scorer_disagreements_on_the_same_output() -> None:
    store = lab({"base": BASE})
    add_run(store, "score-1", "base", "score")
    same_text = {"benchmark": "m1", "item_id": "a", "completion": "the answer is 4"}
    add_samples(store, "eval-base", [{**same_text, "verdict": 1.0, "scorer": "math", "scorer_version": "1"},
                                     {"benchmark": "m1", "item_id": "b", "completion": "5", "verdict": 1.0,
                                      "scorer": "math", "scorer_version": "1"}])
    add_samples(store, "score-1", [{**same_text, "verdict": 0.0, "scorer": "exact", "scorer_version": "1"},
                                   {"benchmark": "m1", "item_id": "b", "completion": "5", "verdict": 1.0,
                                    "scorer": "exact", "scorer_version": "1"}])
    got = rows(store, "SELECT * FROM scorer_disagreements")
    assert len(got) == 1
    assert (got[0]["item_id"], got[0]["scorer_a"], got[0]["verdict_a"], got[0]["scorer_b"], got[0]["verdict_b"]) == (
        "a", "exact", 0.0, "math", 1.0)


def test_output_health_per_run_and_benchmark() -> None:
    store = lab({"base": BASE})
    add_samples(store, "eval-base", [
        {"benchmark": "m1", "item_id": "a", "verdict": 1.0, "tokens": 10},
        {"benchmark": "m1", "item_id": "b", "verdict": 0.0, "extracted": None, "flags": ["no_answer"],
         "tokens": 30, "finish_reason": "length", "completion": "<think> still going"},
        {"benchmark": "o1", "item_id": "c", "verdict": 0.0, "extracted": " ", "tokens": 20,
         "completion": "<think>a</think> b"},
        {"benchmark": "o1", "item_id": "d", "verdict": 0.0, "tokens": 40, "completion": "x</think><think>y"},
    ])
    got = {r["benchmark"]: r for r in rows(store, "SELECT * FROM output_health")}
    whole = got[None]
    assert (whole["outputs"], whole["model"], whole["kind"]) == (4, "base", "eval")
    assert (whole["pct_no_answer"], whole["pct_truncated"], whole["pct_unclosed_think"]) == (50.0, 25.0, 50.0)
    assert whole["mean_tokens"] == 25.0
    assert (got["m1"]["pct_truncated"], got["o1"]["pct_truncated"], got["o1"]["mean_tokens"]) == (50.0, 0.0, 30.0)


def add_shift(store: Store, run_id: str, rows_: list[dict[str, Any]]) -> None:
    batch = IngestBatch(run_id, "events.jsonl", 1)
    for r in rows_:
        batch.add("shift_results", {"run_id": run_id, "benchmark": None, "group": None, "layer": None,
                                    "value": None, "t": 1000.0, **r, "payload": json.dumps(r.get("payload"))})
    store.write_batch(batch)


def test_shift_summary_points_and_top_tokens() -> None:
    store = lab({"base": BASE, "sft": SFT})
    add_run(store, "analyse-sft", "sft", "analyse", params={"base_model": {}, "model": {}, "samples_from": "x"})
    add_shift(store, "analyse-sft", [
        {"analysis": "pca_shift", "benchmark": "m1", "layer": 0, "metric": "points",
         "value": 5.0, "payload": {"base": [0.0, 1.0], "tuned": [3.0, 5.0], "explained_variance": [0.6, 0.3]}},
        {"analysis": "pca_shift", "benchmark": "m1", "metric": "d", "value": 5.0},
        {"analysis": "pca_shift", "group": "math", "metric": "d", "value": 4.0},
        {"analysis": "token_shift", "benchmark": "m1", "metric": "kl", "value": 0.25},
        {"analysis": "token_shift", "benchmark": "m1", "metric": "share_base_rank1", "value": 0.9},
        {"analysis": "token_shift", "group": "math", "metric": "tokens", "value": 120.0},
        {"analysis": "token_shift", "benchmark": "m1", "metric": "top_tokens",
         "payload": [{"token": "Let", "count": 7, "mean_base_rank": 4.5}, {"token": "\\n", "count": 2,
                                                                           "mean_base_rank": 2.0}]},
    ])
    summary = {r["scope"]: r for r in rows(store, "SELECT * FROM shift_summary")}
    bench = summary["benchmark"]
    assert (bench["model"], bench["base_model"], bench["benchmark"], bench["group"]) == ("sft", "base", "m1", "math")
    assert (bench["pca_d"], bench["kl"], bench["share_base_rank1"], bench["tokens"]) == (5.0, 0.25, 0.9, None)
    assert (summary["group"]["group"], summary["group"]["pca_d"], summary["group"]["tokens"]) == ("math", 4.0, 120.0)
    points = rows(store, "SELECT * FROM pca_points")[0]
    assert (points["layer"], points["base_pc2"], points["tuned_pc1"], points["shift"]) == (0, 1.0, 3.0, 5.0)
    assert (points["explained_pc1"], points["explained_pc2"]) == (0.6, 0.3)
    top = rows(store, "SELECT rank, token, count, mean_base_rank FROM token_shift_top ORDER BY rank")
    assert top == [{"rank": 1, "token": "Let", "count": 7, "mean_base_rank": 4.5},
                   {"rank": 2, "token": "\\n", "count": 2, "mean_base_rank": 2.0}]


def test_views_are_readable_from_the_sql_console() -> None:
    store = lab({"base": BASE, "sft": SFT})
    for view in ["models", "model_scores", "score_deltas", "group_scores", "ti", "item_verdicts", "flips",
                 "flip_summary", "scorer_disagreements", "output_health", "shift_summary", "pca_points",
                 "token_shift_top"]:
        result = store.query_readonly(f"SELECT * FROM {view}")
        assert result["columns"], view
    got = store.query_readonly("SELECT ti_other_v1 FROM ti WHERE model = ?", params=["sft"])
    assert got["rows"][0][0] == pytest.approx(-26.666666666666668)


ZOO = """name: zoo
base: {model: org/math-base}
models:
  math-sft: {model: org/math-sft, method: sft}
  other-base: {model: org/other-base, from: none}
  other-rl: {model: org/other-rl, from: other-base, method: rl}
analysis: {pca_shift: {items: 10}}
"""


def test_released_pairs_are_compared_with_their_own_base() -> None:
    """A model zoo in one file: each released model against the base its `from:` names, from the
    plan's eval runs to the `models` and `ti` views; a `from: none` model is a base itself."""
    from engine.experiments.plan import plan_experiment
    from engine.experiments.spec import load_experiment_text

    runs = plan_experiment(load_experiment_text(ZOO, "zoo.yaml"))
    analysed = {r["name"]: r["params"]["base_model"]["name"] for r in runs if r["kind"] == "analyse"}
    assert analysed == {"math-sft": "org/math-base", "other-rl": "org/other-base"}  # none for other-base
    store = Store.open(None)
    scores = {"base": BASE, "math-sft": SFT, "other-base": BASE, "other-rl": RL}
    for run in runs:
        if run["kind"] == "eval":
            add_run(store, run["id"], run["name"], experiment="zoo", params=run["params"])
            add_scores(store, run["id"], run["name"], scores[run["name"]])
    models = {r["model"]: (r["base_model"], r["method"]) for r in rows(store, "SELECT * FROM models")}
    assert models == {"base": (None, "base"), "math-sft": ("base", "sft"), "other-base": (None, "base"),
                      "other-rl": ("other-base", "rl")}
    ti = {r["model"]: r for r in rows(store, "SELECT * FROM ti WHERE experiment = 'zoo'")}
    assert set(ti) == {"math-sft", "other-rl"}
    want = transferability("base", {"base": BASE, "rl": RL}, GROUPS, "v1")[0]
    assert same(ti["other-rl"]["ti_other_v1"], want.ti_other) and same(ti["other-rl"]["ti_non_v1"], want.ti_non)
