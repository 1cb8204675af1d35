"""`tix ti`, `tix import`, `tix flips`, `tix shift`, `tix health` in-process: the CLI's requests are
answered by an in-memory Store (the daemon's own import function), so the output can be checked
against TI values computed by hand without starting a daemon."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import cli
from engine.analysis.paired import PairedCache
from engine.client.connection import RequestFailed
from engine.daemon.server import RequestError, apply_import, refresh_for, run_ti
from storage import Store
from tests.unit.test_analytics_views import BASE, RL, SFT, add_samples, add_shift, lab

Run = Callable[..., tuple[int, str, str]]


class StoreClient:
    """Stands in for engine.client.connection.Client: answers `sql`, `import_scores` and `ti` from a
    Store, refreshing `paired_stats` before a query that reads it, as the daemon does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.paired = PairedCache()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def request(self, op: str, **args: Any) -> Any:
        try:
            if op == "sql":
                refresh_for(self.paired, self.store.con.cursor(), args["query"])
                return self.store.query_readonly(args["query"], args.get("max_rows", 10_000), args.get("params") or [])
            if op == "import_scores":
                return apply_import(self.store, args)
            if op == "ti":
                return json.loads(json.dumps(run_ti(self.store.con.cursor(), args, self.paired)))  # as over the socket
        except RequestError as exc:
            raise RequestFailed(str(exc), exc.code) from None
        raise AssertionError(f"unexpected op {op}")


@pytest.fixture
def store() -> Store:
    return lab({"base": BASE, "sft": SFT, "rl": RL})


@pytest.fixture
def tix(store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Run:
    monkeypatch.setenv("TIX_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cli, "connect", lambda ctx: StoreClient(store))

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as done:
            cli.main(list(args))
        out = capsys.readouterr()
        return int(done.value.code or 0), out.out, out.err

    return run


def ti_json(tix: Run, *args: str) -> dict[str, dict[str, Any]]:
    code, out, err = tix("ti", "exp", "--format", "json", *args)
    assert code == 0, err
    return {o["model"]: o for o in json.loads(out)}


def s(gain: float, sigma: float) -> float:
    """v2's signed square root of gain / sigma."""
    return math.copysign(math.sqrt(abs(gain / sigma)), gain)


def pstd(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def test_v1_by_hand(tix: Run) -> None:
    got = ti_json(tix, "--variant", "v1")
    assert got["sft"]["ti_other"] == pytest.approx(100 * -0.1 / 0.375)
    assert got["sft"]["ti_non"] == pytest.approx(100 * -0.05 / 0.375)
    assert got["rl"]["ti_other"] == pytest.approx(100 * 0.1 / 0.175)  # (5/20 + 4/40) / 2
    assert got["rl"]["ti_non"] == pytest.approx(100 * 0.025 / 0.175)
    assert got["sft"]["groups"]["math"] == {"base": 30.0, "model": 40.0, "index": 0.375, "benchmarks": 2,
                                            "index_ci": None, "gain_ci": None}  # no items: no intervals
    assert got["sft"]["ci_missing"] == "no items" and got["sft"]["ti_other_ci"] is None
    assert got["sft"]["base_model"] == "base" and got["sft"]["method"] == "sft" and got["rl"]["method"] == "grpo"
    assert got["rl"]["benchmarks"]["m1"]["gain"] == 5.0 and got["rl"]["benchmarks"]["m1"]["relative"] == 0.25
    assert not got["sft"]["unstable"] and got["sft"]["sigma"] is None


def test_v2_pooled_by_hand_is_the_default(tix: Run) -> None:
    got = ti_json(tix)
    sig = {"math": pstd([10, 10, 5, 4]), "other": pstd([-5, 5]), "non": pstd([-6, 0, 0, 4])}
    di_math = (80 / 140) * s(10, sig["math"]) + (60 / 140) * s(10, sig["math"])
    assert got["sft"]["variant"] == "v2" and got["sft"]["sigma"] == "pooled"
    assert got["sft"]["ti_other"] == pytest.approx(100 * s(-5, sig["other"]) / di_math)
    assert got["sft"]["ti_non"] == pytest.approx(100 * (40 / 60) * s(-6, sig["non"]) / di_math)
    assert got["sft"]["groups"]["non"]["sigma"] == pytest.approx(sig["non"])
    assert got["sft"]["benchmarks"]["m2"]["weight"] == pytest.approx(60 / 140)


def test_v2_fixed_sigma_by_hand(tix: Run) -> None:
    got = ti_json(tix, "--sigma", "math=2, other=4, non=1")
    di_math = (80 / 140) * math.sqrt(5 / 2) + (60 / 140) * math.sqrt(4 / 2)
    assert got["rl"]["ti_other"] == pytest.approx(100 * math.sqrt(5 / 4) / di_math)
    assert got["rl"]["ti_non"] == pytest.approx(100 * (1 / 3) * math.sqrt(4 / 1) / di_math)
    assert got["rl"]["sigma"] == {"math": 2.0, "other": 4.0, "non": 1.0}


def test_v2_per_model_sigma_by_hand_with_undefined_terms(tix: Run) -> None:
    got = ti_json(tix, "--sigma", "per-model")
    di_math = (80 / 140) * s(5, 0.5) + (60 / 140) * s(4, 0.5)  # rl's own maths gains 5, 4: sigma 0.5
    assert got["rl"]["ti_non"] == pytest.approx(100 * (1 / 3) * s(4, 2.0) / di_math)  # non gains 0, 4
    assert got["rl"]["ti_other"] is None  # one other benchmark: sigma 0, undefined (null, not NaN)
    assert got["sft"]["ti_other"] is None and got["sft"]["unstable"]  # equal maths gains: sigma 0
    code, out, _ = tix("ti", "exp", "--sigma", "per-model")
    assert code == 0 and "nan" in out


@pytest.fixture
def shaky(store: Store) -> Store:
    """Adds `worse` (maths gain -3 points) and `tiny` (+0.5 points) to the experiment."""
    for name, scores in {"worse": {**SFT, "m1": 15.0, "m2": 39.0}, "tiny": {**SFT, "m1": 20.5, "m2": 40.5}}.items():
        from tests.unit.test_analytics_views import add_run, add_scores

        add_run(store, f"eval-{name}", name)
        add_scores(store, f"eval-{name}", name, scores)
    return store


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_negative_and_near_zero_maths_gains_are_flagged_in_every_format(tix: Run, shaky: Store,
                                                                        variant: str) -> None:
    got = ti_json(tix, "--variant", variant)
    assert got["worse"]["unstable"] and got["tiny"]["unstable"] and not got["rl"]["unstable"]
    assert got["worse"]["math_gain"] == -3.0 and got["worse"]["ti_other"] is not None  # computed all the same
    assert got["tiny"]["unstable_reason"] == "maths gain 0.50 points < 1"
    for fmt in ["table", "md", "latex"]:
        code, out, _ = tix("ti", "exp", "--variant", variant, "--format", fmt)
        flagged = {model: "UNSTABLE" in line for model, line in model_lines(out, fmt).items()}
        assert code == 0 and flagged == {"sft": False, "rl": False, "worse": True, "tiny": True}, fmt
    code, out, _ = tix("ti", "exp", "--variant", variant, "--format", "csv")
    header, *lines = out.splitlines()
    at = header.split(",").index("unstable")
    flags = {line.split(",")[1]: line.split(",")[at] for line in lines}
    assert flags == {"rl": "false", "sft": "false", "tiny": "true", "worse": "true"}


def model_lines(out: str, fmt: str) -> dict[str, str]:
    """The output lines of the experiment's models, by model name, in a table, md or latex."""
    cells = {"table": lambda line: line.split(), "md": lambda line: [c.strip() for c in line.split("|")[1:]],
             "latex": lambda line: [c.strip() for c in line.split("&")]}[fmt]
    return {cells(line)[1]: line for line in out.splitlines() if cells(line)[:1] == ["exp"]}


def test_table_shows_group_means_and_the_note(tix: Run, shaky: Store) -> None:
    code, out, _ = tix("ti", "exp", "--variant", "v1")
    assert code == 0
    sft = next(line for line in out.splitlines() if line.split()[1:2] == ["sft"])
    assert "30.0 -> 40.0" in sft and "-26.7" in sft and "-13.3" in sft
    assert out.rstrip().endswith("the ratio is computed but not meaningful")


def test_per_benchmark_deltas(tix: Run) -> None:
    code, out, _ = tix("ti", "exp", "--variant", "v1", "--benchmarks", "--format", "csv")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.startswith("experiment,model,base,TI,benchmark,group,base_score,score,gain,relative")
    row = next(line.split(",") for line in lines if line.startswith("exp,sft,base,v1,m1,"))
    assert row[6:10] == ["20.0", "30.0", "10.0", "0.5"]


@pytest.mark.parametrize("sigma, message", [
    ("bogus", "expected pooled, per-model or math=V,other=V,non=V"),
    ("math=1,other=2", "missing non"),
    ("math=1,other=2,non=0", "non must be a number > 0"),
    ("math=x,other=2,non=1", "math='x' is not a number"),
    ("math=1,math=2,other=1,non=1", "math given twice"),
    ("maths=1,other=2,non=1", "expected pooled"),
])
def test_bad_sigma_is_one_line_and_exit_2(tix: Run, sigma: str, message: str) -> None:
    code, out, err = tix("ti", "--sigma", sigma)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and err.startswith("tix: error: --sigma")


def test_usage_errors_and_unknown_experiments_are_one_line(tix: Run) -> None:
    for args, text in [(("ti", "--variant", "v3"), "'v3' is not one of 'v1', 'v2'"),
                       (("ti", "--format", "xls"), "'xls' is not one of"),
                       (("ti", "nope"), "no experiment named 'nope' (experiments: exp)")]:
        code, _, err = tix(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and text in err, err


def test_the_experiment_files_ti_section_is_the_default(tix: Run, store: Store) -> None:
    store.upsert_experiment("exp", "/x.yaml", "name: exp\nti: {variant: v1}\n", "h")
    assert ti_json(tix)["sft"]["variant"] == "v1"
    assert ti_json(tix, "--variant", "v2")["sft"]["variant"] == "v2"
    store.upsert_experiment("exp", "/x.yaml", "name: exp\nti: {sigma: {math: 2, other: 4, non: 1}}\n", "h")
    assert ti_json(tix)["rl"]["sigma"] == {"math": 2.0, "other": 4.0, "non": 1.0}


CSV = "model,base_model,method,benchmark,group,score\n" + "".join(
    f"{m},{b},{meth},{bench},{g},{v}\n" for m, b, meth, scores in [("B", "", "base", BASE), ("T", "B", "rl", RL)]
    for bench, g, v in [(k, {"m": "math", "o": "other", "n": "non"}[k[0]], scores[k]) for k in scores])


def count(store: Store, table: str) -> int:
    return store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_import_then_ti_and_reimport_is_idempotent(tix: Run, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "pub.csv"
    path.write_text(CSV)
    code, out, err = tix("import", "scores", str(path), "--experiment", "pub")
    assert code == 0 and out.startswith("imported 2 models, 10 scores into experiment pub"), err
    code, out, _ = tix("import", "scores", str(path), "-e", "pub")
    assert code == 0 and "replacing 10 earlier rows" in out
    assert count(store, "imported_scores") == 10 and count(store, "imported_models") == 2
    got = {o["model"]: o for o in json.loads(tix("ti", "pub", "--variant", "v1", "--format", "json")[1])}
    assert list(got) == ["T"] and got["T"]["ti_other"] == pytest.approx(100 * 0.1 / 0.175)
    both = json.loads(tix("ti", "--format", "json")[1])
    assert {(o["experiment"], o["model"]) for o in both} == {("exp", "sft"), ("exp", "rl"), ("pub", "T")}


def test_a_malformed_import_stores_nothing(tix: Run, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(CSV + "T,B,rl,m1,math,31\nU,B,rl,m1,math,high\n")
    code, out, err = tix("import", "scores", str(path), "--experiment", "pub")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"{path}:12: duplicate row for model 'T', benchmark 'm1' (first on line 7)",
        f"{path}:13: score 'high' is not a number",
        f"tix: error: {path}: 2 problems; nothing imported",
    ]
    assert count(store, "imported_scores") == 0 and "pub" not in store.experiment_names()
    code, _, err = tix("import", "scores", str(path), "--experiment", "bad name")
    assert code == 2 and "bad experiment name" in err


def test_lm_eval_import_needs_a_known_base(tix: Run, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": {"gsm8k": {"exact_match,strict-match": 0.3}}}))
    code, out, err = tix("import", "lm-eval", str(path), "-e", "exp", "-m", "ext", "--base-model", "base")
    assert code == 0 and "imported 1 models, 1 scores" in out, err
    assert store.con.execute("SELECT value FROM imported_scores WHERE model = 'ext'").fetchone() == (30.0,)
    code, _, err = tix("import", "lm-eval", str(path), "-e", "exp", "-m", "ext", "--base-model", "ghost")
    assert code == 2 and err.strip() == "tix: error: base model 'ghost' has no scores in experiment 'exp'"


def test_flips_shift_and_health_share_the_formats(tix: Run, store: Store) -> None:
    add_samples(store, "eval-base", [{"benchmark": "m1", "item_id": i, "verdict": v} for i, v in [("a", 1.0), ("b", 0.0)]])
    add_samples(store, "eval-sft", [{"benchmark": "m1", "item_id": i, "verdict": v} for i, v in [("a", 0.0), ("b", 1.0)]])
    code, out, _ = tix("flips", "exp", "--model", "sft", "--format", "json")
    assert json.loads(out) == [{"experiment": "exp", "model": "sft", "base_model": "base", "benchmark": "m1",
                                "items": 2, "gained": 1, "lost": 1, "net": 0, "mcnemar_p": 1.0,
                                "gained_items": ["b"], "lost_items": ["a"]}]
    code, out, _ = tix("flips", "exp", "--items", "--format", "csv")
    assert out.splitlines()[1:] == ["exp,sft,base,m1,b,gained,0.0,1.0", "exp,sft,base,m1,a,lost,1.0,0.0"]
    code, out, _ = tix("flips", "exp", "--format", "md")
    assert "| exp | sft | base | m1 | 2 | 1 | 1 | 0 | 1.000 | b | a |" in out
    code, out, _ = tix("health", "exp", "--format", "csv")
    assert out.splitlines()[0] == "run_id,model,kind,benchmark,outputs,pct_no_answer,pct_truncated," \
                                  "pct_unclosed_think,mean_tokens"
    assert len(out.splitlines()) == 3
    code, out, err = tix("shift", "exp")
    assert code == 0 and out == "" and "no shift results" in err
    add_shift(store, "eval-sft", [{"analysis": "pca_shift", "benchmark": "m1", "metric": "d", "value": 0.1234}])
    code, out, _ = tix("shift", "exp", "--format", "latex")
    assert "\\begin{tabular}" in out and "0.123" in out and "base\\_model" in out


def test_the_client_side_imports_neither_numpy_nor_duckdb() -> None:
    from tests.unit.test_imports import modules_after

    loaded = modules_after("import engine.cli, engine.analysis.ti, engine.analysis.report, engine.analysis.imports")
    assert not loaded & {"numpy", "duckdb", "torch"}


def test_a_model_whose_base_has_no_scores_yet_is_skipped_with_a_warning(tix: Run, store: Store) -> None:
    from tests.unit.test_analytics_views import add_run, add_scores

    add_run(store, "eval-half", "sft", experiment="half")
    add_scores(store, "eval-half", "sft", SFT)
    code, out, err = tix("ti", "half")
    assert code == 0 and out == ""
    assert err.splitlines() == ["tix: warning: experiment half: no scores for base model 'base'; skipped sft",
                                "no tuned model with scores against its base in half (scores come from eval "
                                "runs or `tix import scores`)"]
    code, out, _ = tix("ti", "half", "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_demo_ti_table_has_a_base_row_signed_deltas_and_footnotes() -> None:
    from engine.lab import demo

    groups = {"math": {"base": 40.0, "model": 55.0}, "other": {"base": 60.0, "model": 58.0},
              "non": {"base": 50.0, "model": 35.0}}
    v1 = [{"model": "sft", "ti_other": -20.0, "ti_non": -94.6, "unstable": False},
          {"model": "rl", "ti_other": 1.0, "ti_non": 2.0, "unstable": True, "unstable_reason": "maths gain 0.4"}]
    v2 = [{**o, "groups": groups, "base_model": "base", "unstable": o["unstable"]} for o in v1]
    rows = demo.ti_rows(v1, v2)
    assert rows[0] == ["base", "40.0", "60.0", "50.0", "-", "-", "-", "-"]
    assert rows[1][:4] == ["rl*", "55.0 (+15.0)", "58.0 (-2.0)", "35.0 (-15.0)"]
    assert rows[2][0] == "sft" and len(rows[2]) == len(demo.TI_COLUMNS)
    assert demo.ti_notes(v1, v2) == ["* rl: TI unstable, not meaningful (maths gain 0.4)"]


def test_demo_tables_carry_the_intervals() -> None:
    """The demo's TI cells print `value [low, high]`; its paired table lists each benchmark's n, delta,
    interval, p and q (a `*` where q < 0.05), then each group's mean with its bootstrap interval."""
    from engine.lab import demo

    groups = {"math": {"base": 48.5, "model": 62.5, "gain_ci": [7.2, 21.0]},
              "other": {"base": 42.0, "model": 39.5, "gain_ci": [-8.0, 3.1]},
              "non": {"base": 52.1, "model": 35.5, "gain_ci": [-23.0, -10.5]}}
    paired = {"n": 100, "delta": 27.0, "se": 6.0, "ci": [15.1, 38.9], "p": 2.1e-5, "q": 6.3e-5, "mcnemar_p": None}
    noise = {**paired, "delta": 1.0, "ci": [-10.5, 12.5], "p": 0.864, "q": 0.9}
    v2 = [{"model": "sft", "base_model": "base", "groups": groups, "unstable": False,
           "ti_other": -85.2, "ti_other_ci": [-195.4, 28.0], "ti_non": -128.2, "ti_non_ci": [-250.0, -80.6],
           "benchmarks": {"a": {"group": "math", "gain": 27.0, "paired": paired},
                          "c": {"group": "math", "gain": 1.0, "paired": noise},
                          "x": {"group": "non", "gain": -16.0, "paired": None}}}]
    v1 = [{**v2[0], "ti_other": -21.9, "ti_other_ci": None, "ci_missing": "no items"}]
    row = demo.ti_rows(v1, v2)[1]
    assert row[4] == "-21.9 [no items]" and row[6:] == ["-85.2 [-195, 28]", "-128.2 [-250, -81]"]
    rows = demo.paired_rows(v2)
    assert rows[0] == ["sft", "math", "a", "100", "+27", "[+15, +39]", "2.1e-05", "6.3e-05", "*"]
    assert rows[1] == ["sft", "math", "c", "100", "+1.0", "[-10, +12]", "0.864", "0.900", ""]
    assert rows[2][2:6] == ["x", "-", "-16", "no items"]
    assert rows[3] == ["sft", "math", "group mean", "", "+14", "[+7.2, +21]", "", "", "*"]
    assert rows[4][-1] == "" and rows[5][-1] == "*"  # other's interval holds 0, non's does not
