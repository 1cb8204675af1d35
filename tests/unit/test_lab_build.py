"""The tiny lab build: corpus, tokenizer, model, pre-training, caching and atomic output.

One small build (20 steps, 512 tokens) is shared by the module; torch and transformers are
imported inside the tests so that collecting this file stays cheap. The tasks themselves (seeds,
verifiers, train/eval disjointness) are tested in test_lab_data.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never reach a hub

from engine.events import EventWriter
from engine.jobs import JobContext
from engine.lab.corpus import GROUPS, corpus, documents, items

TINY = {
    "model": "tiny-lab",
    "seed": 7,
    "vocab_size": 512,
    "pretrain_steps": 20,
    "batch_size": 16,
    "corpus_items": 2000,
}
QUESTION = "Question: What is 4821 + 379?\nAnswer: 5200"


def make_ctx(home: Path, params: dict[str, Any]) -> JobContext:
    """A real JobContext whose run folder and workspace both live under `home`."""
    run_dir = home / "runs" / "r1"
    run_dir.mkdir(parents=True, exist_ok=True)
    events = EventWriter(run_dir / "events.jsonl")
    return JobContext("r1", "build", dict(params), run_dir, home, events)


def read_events(ctx: JobContext) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (ctx.run_dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[JobContext, dict[str, Any]]:
    """The module's one build, with its context (for the events) and its result."""
    from engine.jobs import build

    ctx = make_ctx(tmp_path_factory.mktemp("home"), TINY)
    return ctx, build.run(ctx)


def test_corpus_is_deterministic_and_covers_all_groups() -> None:
    from engine.lab.data import TASKS

    assert corpus(3, 50) == corpus(3, 50)
    assert corpus(3, 50) != corpus(4, 50)
    sample = items(3, 60)
    assert {it.group for it in sample} == set(GROUPS)
    assert {it.task for it in sample} == set(TASKS)
    assert all(it.question and it.answer for it in sample)


def test_corpus_answers_are_correct() -> None:
    """Spot-check the maths: every sum's answer equals the expression it asks about."""
    sums = [it for it in items(11, 600) if it.group == "math"]
    assert len(sums) > 100
    for it in sums:
        expression = it.question.rsplit(":", 1)[-1].removeprefix(" ").removeprefix("Calculate ").rstrip(" .=")
        assert int(it.answer) == eval(expression, {})  # one-digit numbers, + and - only


def test_documents_train_plain_text_whole_and_chat_on_the_answer_only() -> None:
    """The chat half is exactly what the evaluation renders, with only the answer as target."""
    from engine.lab.model import render_prompts

    batch = items(5, 8)
    docs = documents(batch)
    assert [d[0] == "" for d in docs] == [True, False, False, False] * 2
    assert docs[0] == ("", batch[0].text)
    prompt, target = docs[1]
    assert prompt == render_prompts([batch[1].question])[0]
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and batch[1].question in prompt
    assert target == f"{batch[1].answer}<|im_end|>\n"


def test_pack_masks_the_context_and_keeps_every_token() -> None:
    from engine.lab.model import IGNORE, build_tokenizer, pack

    docs = [("a b c ", "d e"), ("", "f g h"), ("i ", "j")] * 20
    tokenizer = build_tokenizer([c + t for c, t in docs], 300)
    blocks = pack(tokenizer, docs, 16)
    assert blocks.shape[1:] == (2, 16)
    ids, labels = blocks[:, 0].flatten().tolist(), blocks[:, 1].flatten().tolist()
    assert all(label in (IGNORE, token) for token, label in zip(ids, labels, strict=True))
    supervised = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE],
                                  skip_special_tokens=True)
    assert "a" not in supervised and "i" not in supervised and "d e" in supervised and "f g h" in supervised


@pytest.mark.slow
def test_build_writes_a_complete_model_folder(built: tuple[JobContext, dict[str, Any]]) -> None:
    ctx, result = built
    path = Path(result["model_path"])
    assert path.parent == ctx.models_dir and path.name.startswith("tiny-lab-")
    for name in (
        ".complete",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "tix_build.json",
    ):
        assert (path / name).is_file(), name
    assert [p.name for p in ctx.models_dir.iterdir()] == [path.name]  # no temporary left over
    assert result["reused"] is False
    assert 100_000 < result["parameters"] < 5_000_000
    info = json.loads((path / "tix_build.json").read_text())
    assert info["precision"] in ("bf16", "fp32") and info["version"] == "2"


@pytest.mark.slow
def test_model_and_tokenizer_load_offline(built: tuple[JobContext, dict[str, Any]]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = built[1]["model_path"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert len(tokenizer) == 512 == model.config.vocab_size
    assert tokenizer.decode(tokenizer(QUESTION)["input_ids"]) == QUESTION
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<|endoftext|>"
    assert sum(p.numel() for p in model.parameters()) == built[1]["parameters"]


@pytest.mark.slow
def test_chat_template_honours_enable_thinking(built: tuple[JobContext, dict[str, Any]]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built[1]["model_path"])
    messages = [{"role": "user", "content": "What is 2 + 3?"}]

    def render(thinking: bool) -> str:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=thinking
        )

    assert render(False).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert render(True).endswith("<|im_start|>assistant\n")
    assert "<think>" not in render(True)
    # <think> is one token that survives skip_special_tokens, as in Qwen3
    ids = tokenizer("<think>x</think>5")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>x</think>5"


@pytest.mark.slow
def test_batched_generation_with_left_padding(built: tuple[JobContext, dict[str, Any]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = built[1]["model_path"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=False,
        )
        for q in ("What is 2 + 3?", "Write the word kabo backwards, then repeat it twice.")
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert batch["attention_mask"][0, 0] == 0  # the shorter prompt is padded on the left
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] > batch["input_ids"].shape[1]


@pytest.mark.slow
def test_pretraining_lowers_the_loss(built: tuple[JobContext, dict[str, Any]]) -> None:
    ctx, result = built
    metrics = [e for e in read_events(ctx) if e["type"] == "metric"]
    first = metrics[0]["values"]["loss"]
    assert metrics[0]["step"] == 1 and first > 5.5  # about ln(512) = 6.2 before training
    assert result["final_loss"] < first - 1.0
    info = json.loads((Path(result["model_path"]) / "tix_build.json").read_text())
    assert info["initial_loss"] == first and info["final_loss"] == result["final_loss"]


@pytest.mark.slow
def test_events_report_progress_metrics_and_phases(built: tuple[JobContext, dict[str, Any]]) -> None:
    events = read_events(built[0])
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["step"] for e in progress] == [1, 10, 20]
    assert {e["desc"] for e in progress} == {"pretrain"} and progress[-1]["total"] == 20
    metric = next(e for e in events if e["type"] == "metric")
    assert set(metric["values"]) == {"loss", "tokens_per_s", "learning_rate"}
    assert any("tokenizer" in e["message"] for e in events if e["type"] == "log")


@pytest.mark.slow
def test_identical_build_is_reused(built: tuple[JobContext, dict[str, Any]]) -> None:
    from engine.jobs import build

    ctx, first = built
    start = time.perf_counter()
    again = build.run(ctx)
    assert time.perf_counter() - start < 1.0
    assert again == {**first, "reused": True}
    assert any("reusing" in e.get("message", "") for e in read_events(ctx))


@pytest.mark.slow
def test_same_seed_gives_identical_weights(built: tuple[JobContext, dict[str, Any]], tmp_path: Path) -> None:
    """A second workspace rebuilds from scratch and must land on the very same weights."""
    from safetensors.torch import load_file

    from engine.jobs import build

    other = build.run(make_ctx(tmp_path, TINY))
    assert other["reused"] is False
    assert Path(other["model_path"]).name == Path(built[1]["model_path"]).name
    mine = load_file(Path(built[1]["model_path"]) / "model.safetensors")
    theirs = load_file(Path(other["model_path"]) / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert mine[name].equal(theirs[name])
    assert other["final_loss"] == built[1]["final_loss"]


def test_content_hash_counts_defaults_and_every_param() -> None:
    from engine.jobs import build

    implicit = build.content_hash(build.resolve({"seed": 1}))
    explicit = build.content_hash(build.resolve({**build.DEFAULTS, "seed": 1, "size": {"hidden_size": 128}}))
    assert implicit == explicit and len(implicit) == 12
    assert build.content_hash(build.resolve({"seed": 2})) != implicit


def test_unknown_params_are_named(tmp_path: Path) -> None:
    from engine.jobs import build

    with pytest.raises(ValueError, match="steps"):
        build.run(make_ctx(tmp_path, {**TINY, "steps": 5}))
    with pytest.raises(ValueError, match="hidden_sise"):
        build.run(make_ctx(tmp_path, {**TINY, "size": {"hidden_sise": 64}}))
    with pytest.raises(ValueError, match="'seed' must be int"):
        build.run(make_ctx(tmp_path, {**TINY, "seed": "7"}))
    with pytest.raises(ValueError, match="tiny-lab"):
        build.run(make_ctx(tmp_path, {**TINY, "model": "Qwen/Qwen3-0.6B"}))
    with pytest.raises(ValueError, match="precision"):
        build.run(make_ctx(tmp_path, {**TINY, "precision": "fp16"}))


def test_failed_build_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.jobs import build
    from engine.lab import model

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(model, "pretrain", boom)
    ctx = make_ctx(tmp_path, {**TINY, "corpus_items": 200})
    with pytest.raises(RuntimeError, match="killed"):
        build.run(ctx)
    assert not ctx.models_dir.exists() or list(ctx.models_dir.iterdir()) == []


def test_the_default_base_comes_from_the_package_unless_rebuild(tmp_path: Path) -> None:
    """`base: tiny-lab` with default parameters copies the shipped build (checked file by file)
    instead of pre-training; `rebuild` trains into a folder of its own."""
    from engine.jobs import build
    from engine.lab import shipping as ship

    name = f"tiny-lab-{build.content_hash(build.resolve({}))}"
    shipped = ship.shipped_folder(name)
    assert shipped is not None, f"{name} is not shipped: run `python -m engine.lab.ship`"
    ctx = make_ctx(tmp_path / "home", {"model": "tiny-lab", "seed": 0})
    started = time.perf_counter()
    result = build.run(ctx)
    assert time.perf_counter() - started < 10  # a copy, not 1,000 training steps
    path = Path(result["model_path"])
    assert path.name == name and (path / build.COMPLETE).exists()
    files = json.loads((shipped / ship.MANIFEST).read_text())["files"]
    for file, digest in files.items():
        assert ship.sha256(path / file) == digest
    assert result["shipped"] is True and result["checked_files"] == len(files)  # the TUI says so
    assert any(f"copied, all {len(files)} files' sha256 checked" in e.get("message", "") for e in read_events(ctx))
    rebuilt = make_ctx(tmp_path / "home2", {**TINY, "rebuild": True})
    assert Path(build.run(rebuilt)["model_path"]).name.endswith("-rebuilt")
    with pytest.raises(ValueError, match="rebuild"):
        build.run(make_ctx(tmp_path / "home3", {"model": "tiny-lab", "rebuild": "yes"}))


def test_a_damaged_shipped_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from engine.jobs import build
    from engine.lab import shipping as ship

    name = f"tiny-lab-{build.content_hash(build.resolve({}))}"
    copy = tmp_path / "shipped"
    shutil.copytree(ship.SHIPPED / name, copy / name)
    with open(copy / name / "config.json", "a") as f:
        f.write(" ")
    monkeypatch.setattr(ship, "SHIPPED", copy)
    with pytest.raises(ValueError, match=r"config\.json is missing or changed"):
        build.run(make_ctx(tmp_path / "home", {"model": "tiny-lab"}))
