"""Expansion of experiments into runs: dependencies, content hashes, reuse, `--only`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.experiments.plan import plan_experiment, variant_order
from engine.experiments.spec import load_experiment, load_experiment_text
from tests.conftest import ROOT

TINY = ROOT / "experiments" / "tiny-lab.yaml"


def by_kind(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        out.setdefault(run["kind"], []).append(run)
    return out


def test_tiny_lab_expands_into_build_train_eval_analyse() -> None:
    runs = plan_experiment(load_experiment(TINY))
    kinds = by_kind(runs)
    assert {k: len(v) for k, v in kinds.items()} == {"build": 1, "train": 2, "eval": 3, "analyse": 2}
    build = kinds["build"][0]["id"]
    assert all(t["deps"] == [build] for t in kinds["train"])
    train_of = {t["name"]: t["id"] for t in kinds["train"]}
    evals = {e["name"]: e for e in kinds["eval"]}
    assert evals["base"]["deps"] == [build] and evals["sft"]["deps"] == [train_of["sft"]]
    for analyse in kinds["analyse"]:
        assert set(analyse["deps"]) == {build, train_of[analyse["name"]], evals[analyse["name"]]["id"]}
    assert evals["sft"]["params"]["model"] == {"from_run": train_of["sft"], "key": "model_path"}
    ids = [r["id"] for r in runs]
    assert len(set(ids)) == len(ids)


def test_ids_are_stable_and_change_with_content() -> None:
    text = TINY.read_text()
    first = {r["id"] for r in plan_experiment(load_experiment_text(text, str(TINY)))}
    again = {r["id"] for r in plan_experiment(load_experiment_text(text, str(TINY)))}
    assert first == again
    renamed = {r["id"] for r in plan_experiment(load_experiment_text(
        text.replace("name: tiny-lab", "name: other-lab"), str(TINY)))}
    assert renamed == first  # the same work under another experiment is reused
    changed = plan_experiment(load_experiment_text(text.replace("5.0e-4", "1.0e-4"), str(TINY)))
    moved = {r["id"] for r in changed} - first
    sft_chain = {r["id"] for r in changed if r["name"] == "sft"}
    assert moved == sft_chain  # only the SFT variant's train, eval and analyse runs change


def test_only_keeps_dependencies() -> None:
    exp = load_experiment(TINY)
    assert [r["kind"] for r in plan_experiment(exp, {"build"})] == ["build"]
    evals = by_kind(plan_experiment(exp, {"eval"}))
    assert sorted(evals) == ["build", "eval", "train"] and len(evals["eval"]) == 3


def test_chained_variants_and_released_models(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    exp = load_experiment_text(
        "name: chain\nbase: {model: org/base}\nmodels:\n"
        "  second: {from: first, train: {method: sft, data: lab/math-train}}\n"
        "  first: {train: {method: sft, data: lab/math-train}}\n"
        "  released: {model: ./ckpt}\nanalysis: {}\n", str(tmp_path / "chain.yaml"))
    assert variant_order(exp.data["models"]) == ["first", "second", "released"]
    runs = by_kind(plan_experiment(exp))
    assert "build" not in runs and "analyse" not in runs
    first = next(t for t in runs["train"] if t["name"] == "first")
    second = next(t for t in runs["train"] if t["name"] == "second")
    assert second["deps"] == [first["id"]] and first["deps"] == []
    released = next(e for e in runs["eval"] if e["name"] == "released")
    assert released["params"]["model"]["name"] == str(ckpt) and released["deps"] == []


def test_multi_gpu_runs_ask_the_scheduler_for_their_gpu_sets(tmp_path: Path) -> None:
    (tmp_path / "my-ds.yaml").write_text("distributed_type: DEEPSPEED\n")
    exp = load_experiment_text(
        "name: big\nbase: {model: org/base}\nmodels:\n"
        "  sft: {train: {method: sft, data: lab/math-train, gpus: 8}}\n"
        "  fsdp: {train: {method: sft, data: lab/math-train, gpus: 4, distributed: fsdp}}\n"
        "  mine: {train: {method: sft, data: lab/math-train, gpus: 2, distributed: ./my-ds.yaml}}\n"
        "  one: {train: {method: sft, data: lab/math-train}}\n"
        "eval: {suite: paper, backend: vllm, backend_options: {tensor_parallel_size: 2, data_parallel_size: 4}}\n",
        str(tmp_path / "big.yaml"))
    runs = by_kind(plan_experiment(exp))
    train = {r["name"]: r for r in runs["train"]}
    assert {n: (r["gpus_needed"], r["params"].get("distributed")) for n, r in train.items()} == {
        "sft": (8, "zero3"), "fsdp": (4, "fsdp"), "mine": (2, str(tmp_path / "my-ds.yaml")), "one": (1, None)}
    assert "gpus" not in train["one"]["params"]  # a one-GPU run keeps the id it had before multi-GPU existed
    assert {r["gpus_needed"] for r in runs["eval"]} == {8}  # 2-way tensor parallel x 4 copies


def test_rebuild_asks_for_a_build_of_its_own() -> None:
    text = TINY.read_text()
    default = by_kind(plan_experiment(load_experiment_text(text, str(TINY))))["build"][0]
    assert "rebuild" not in default["params"]  # run ids of existing workspaces do not move
    rebuilt = by_kind(plan_experiment(load_experiment_text(
        text.replace("  seed: 0\n", "  seed: 0\n  rebuild: true\n", 1), str(TINY))))["build"][0]
    assert rebuilt["params"]["rebuild"] is True and rebuilt["id"] != default["id"]


def refusal(text: str) -> str:
    """The one-line errors `text` gets from the experiment checker; fails if it is accepted."""
    from engine.experiments.spec import SpecErrors

    with pytest.raises(SpecErrors) as caught:
        load_experiment_text(text, str(TINY))
    return str(caught.value)


def with_base(line: str, text: str | None = None) -> str:
    return (text or TINY.read_text()).replace("  seed: 0\n", f"  seed: 0\n  {line}\n", 1)


def test_rebuild_must_be_a_boolean() -> None:
    assert "base.rebuild" in refusal(with_base("rebuild: maybe"))


def test_base_build_parameters_reach_the_build_and_are_checked() -> None:
    text = TINY.read_text()
    tuned = text.replace("  seed: 0\n", "  seed: 3\n  build: {pretrain_steps: 200, precision: fp32}\n", 1)
    build = by_kind(plan_experiment(load_experiment_text(tuned, str(TINY))))["build"][0]
    assert build["params"] == {"model": "tiny-lab", "seed": 3, "pretrain_steps": 200, "precision": "fp32"}
    for bad, said in (("build: {steps: 2}", "unknown build parameter(s): steps"),
                      ("build: {precision: fp16}", "'precision' must be one of auto, bf16, fp32"),
                      ("build: {seed: 2}", "set seed under base:")):
        error = refusal(with_base(bad))
        assert "base.build" in error and said in error, error
    released = with_base("build: {pretrain_steps: 2}", text.replace("  model: tiny-lab\n", "  model: org/name\n", 1))
    assert "only a built-in base" in refusal(released)


def load_bench_lab() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_lab", ROOT / "bench" / "lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_lab_seeds_the_base_and_both_trainings_and_summarises_over_seeds() -> None:
    lab = load_bench_lab()
    exp = load_experiment_text(lab.experiment_text(2, "fp32"), str(TINY))
    assert exp.data["name"] == "tiny-lab-seed2"
    assert load_experiment_text(lab.experiment_text(2, "fp32", "lab-fp32-seed2"), str(TINY)).data["name"] == \
        "lab-fp32-seed2"
    assert exp.data["base"]["seed"] == 2 and exp.data["base"]["build"] == {"precision": "fp32"}
    assert all(v["train"]["args"]["seed"] == 2 for v in exp.data["models"].values())
    build = by_kind(plan_experiment(load_experiment_text(lab.experiment_text(0, "auto"), str(TINY))))["build"][0]
    assert build["params"] == {"model": "tiny-lab", "seed": 0}  # seed 0, defaults: the shipped base

    def seed(math_sft: float) -> dict[str, Any]:
        means = {"base": {"math": 40.0, "other": 50.0, "non": 60.0},
                 "sft": {"math": math_sft, "other": 49.0, "non": 50.0}}
        ti = {v: {"sft": {"ti_other": -10.0, "ti_non": -100.0}} for v in ("v1", "v2")}
        return {"means": means, "ti": ti}

    lines = lab.summary([seed(50.0), seed(44.0), seed(47.0)])
    math_line = next(line for line in lines if line.startswith("sft") and " math " in line)
    assert "+7.0 ± 3.0" in math_line
    assert "maths gain >= 5 pts in 2/3 seeds (+10.0, +4.0, +7.0)" in lines[-1]
    assert "-10.0 ± 0.0" in next(line for line in lines if " other " in line)


def test_slurm_overrides_reach_every_run_and_only_files_with_them_change_ids() -> None:
    text = TINY.read_text()
    plain = plan_experiment(load_experiment_text(text, str(TINY)))
    assert not any("slurm" in r["params"] for r in plain)  # no `slurm:`: params and ids as before
    top = plan_experiment(load_experiment_text(text + "slurm: {partition: big, time: 60}\n", str(TINY)))
    assert all(r["params"]["slurm"] == {"partition": "big", "time": "60"} for r in top)
    assert not {r["id"] for r in top} & {r["id"] for r in plain}
    exp = load_experiment_text(text + "slurm: {partition: big, time: 60}\n", str(TINY))
    exp.data["models"]["sft"]["train"]["slurm"] = {"partition": "a100", "exclusive": True}
    runs = {(r["kind"], r["name"]): r for r in plan_experiment(exp)}
    assert runs[("train", "sft")]["params"]["slurm"] == {"partition": "a100", "time": "60", "exclusive": True}
    assert runs[("eval", "sft")]["params"]["slurm"] == {"partition": "big", "time": "60"}  # train only
    assert runs[("train", "rl")]["params"]["slurm"] == {"partition": "big", "time": "60"}


# -- benchmark entries: what makes an eval run new ------------------------------------------------


def eval_run(text: str, folder: Path) -> dict[str, Any]:
    exp = load_experiment_text("name: b\nbase: {model: tiny-lab}\neval:\n  benchmarks:\n" + text, str(folder / "b.yaml"))
    return by_kind(plan_experiment(exp))["eval"][0]


def test_registered_benchmark_entries_keep_their_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries naming registered benchmarks plan exactly the params they did before benchmark files
    existed (so their run ids stay), even beside a workspace file that claims the same name."""
    monkeypatch.setenv("TIX_HOME", str(tmp_path))
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "shadow.yaml").write_text("name: lab_chain_sum\ndata: ./x.jsonl\nprompt: x\n")
    run = eval_run("    - {name: lab_chain_sum}\n"
                   "    - {name: lab_basic_arithmetic, group: other, limit: 3, scorer: exact_match}\n", tmp_path)
    assert run["params"]["benchmarks"] == [
        {"name": "lab_chain_sum", "group": None, "data": None, "limit": None, "scorer": None},
        {"name": "lab_basic_arithmetic", "group": "other", "data": None, "limit": 3, "scorer": "exact_match"}]


def test_benchmark_files_their_data_and_plugins_make_new_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workspace benchmark named by `{name:}` is fingerprinted like a `{file:}` entry: editing
    the file, its data or the plugin scorer it names (relative to itself) is a new eval run."""
    home, folder = tmp_path / "home", tmp_path / "exp"
    bench = home / "benchmarks" / "sums"
    bench.mkdir(parents=True)
    folder.mkdir()
    monkeypatch.setenv("TIX_HOME", str(home))
    (bench / "sums.jsonl").write_text('{"q": "1+1", "a": "2"}\n')
    (bench / "grade.py").write_text("def grade(completion, item):\n    return completion == item['answer']\n")
    (bench / "sums.yaml").write_text("name: sums\ndata: ./sums.jsonl\nprompt: '{{ q }}'\nanswer: a\nscorer: ./grade.py:grade\n")
    named, filed = "    - {name: sums}\n", f"    - {{file: {bench / 'sums.yaml'}}}\n"

    def ids() -> tuple[str, str]:
        return eval_run(named, folder)["id"], eval_run(filed, folder)["id"]

    first = ids()
    assert eval_run(named, folder)["params"]["benchmarks"][0]["file_signature"]
    assert ids() == first  # unchanged files: the same runs
    seen = {first}
    for path, text in ((bench / "grade.py", "def grade(completion, item):\n    return True\n"),
                       (bench / "sums.jsonl", '{"q": "2+2", "a": "4"}\n'),
                       (bench / "sums.yaml", (bench / "sums.yaml").read_text() + "limit: 1\n")):
        path.write_text(text)
        now = ids()
        assert now[0] not in {i for pair in seen for i in pair} and now[1] not in {i for pair in seen for i in pair}
        seen.add(now)
