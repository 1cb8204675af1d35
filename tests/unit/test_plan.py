"""Expansion of experiments into runs: dependencies, content hashes, reuse, `--only`."""

from __future__ import annotations

from pathlib import Path

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
