"""Build the tiny lab's base model: corpus -> tokenizer -> Qwen2 -> pre-training -> models/.

Run it as any job, through a worker on a run directory whose `spec.yaml` has kind `build`:

    python -m engine.jobs.worker RUN_DIR        # spec: {kind: build, params: {model: tiny-lab, seed: 0}}

The story: draw a seeded corpus of maths / other-reasoning / non-reasoning questions from the lab's
reasoning-gym tasks (training seeds, no evaluation question; engine.lab.data), train a byte-level
BPE tokenizer on it, initialise a small Qwen2 and pre-train it on the corpus (a quarter plain
text, the rest the evaluation's chat format with the loss on the answer; about two minutes on 2
cores with bf16 autocast), then save tokenizer and model with `save_pretrained` under
`TIX_HOME/models/tiny-lab-<hash>`. The hash covers every parameter (defaults included) and
`VERSION`, so an identical build is reused instead of repeated. The model is written to a
temporary sibling folder and renamed into place with a `.complete` marker last, so a killed build
never leaves a folder that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.jobs import JobContext
from engine.lab.params import DEFAULTS, PRECISIONS, VERSION, content_hash, resolve  # noqa: F401 - build's API

if TYPE_CHECKING:  # torch and transformers load only when a build actually runs
    from engine.lab.model import OnStep

COMPLETE = ".complete"
INFO_FILE = "tix_build.json"
METRIC_EVERY = 10


def run(ctx: JobContext) -> dict[str, Any]:
    """Build (or reuse) the tiny lab model described by `ctx.params`; returns where it lives.

    The default build comes shipped in the package (engine/lab/ship.py): it is copied, not
    trained, unless `rebuild` is set, which trains it here into a folder of its own."""
    wanted = dict(ctx.params)
    rebuild = wanted.pop("rebuild", False)
    if not isinstance(rebuild, bool):
        raise ValueError(f"build parameter 'rebuild' must be true or false, not {rebuild!r}")
    params = resolve(wanted)
    name = f"tiny-lab-{content_hash(params)}"
    path = ctx.models_dir / (f"{name}-rebuilt" if rebuild else name)
    if (path / COMPLETE).exists():
        ctx.events.log(f"reusing {path}: an identical build is already complete")
        return _result(path, reused=True)
    shipped, checked = (None, 0) if rebuild else _shipped(name)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if shipped is not None:
            ctx.events.log(f"using the shipped base {name}: copied, all {checked} files' sha256 checked "
                           "(made by `python -m engine.lab.ship`; `rebuild: true` under `base:` trains it "
                           "here instead)")
            shutil.copytree(shipped, tmp)
            (tmp / COMPLETE).write_text("")
        else:
            _set_threads()
            _build(ctx, params, tmp)
        result = _result(_move_into_place(ctx, tmp, path), reused=shipped is not None)
        return result | ({"shipped": True, "checked_files": checked} if shipped is not None else {})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _shipped(name: str) -> tuple[Path | None, int]:
    """The package's copy of build `name`, checked file by file, and how many files were
    checked; (None, 0) when there is none."""
    from engine.lab.shipping import shipped_folder, verify

    folder = shipped_folder(name)
    return (folder, verify(folder)) if folder is not None else (None, 0)


def _set_threads() -> None:
    """A tiny model gains nothing from many threads; two keep CPU runs fast and repeatable."""
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _build(ctx: JobContext, params: dict[str, Any], out: Path) -> None:
    """The build itself, top to bottom, writing a complete model folder at `out`."""
    from engine.lab import corpus
    from engine.lab.model import autocast_dtype, build_model, build_tokenizer, parameter_count, pretrain

    started = time.time()
    ctx.events.log(f"drawing {params['corpus_items']} corpus items from the lab tasks, seed {params['seed']}")
    documents = corpus.documents(corpus.items(params["seed"], params["corpus_items"]))

    ctx.events.log(f"training a {params['vocab_size']}-token byte-level BPE tokenizer")
    tokenizer = build_tokenizer([context + target for context, target in documents], params["vocab_size"])

    model = build_model(tokenizer, params["size"], params["seed"])
    parameters = parameter_count(model)
    precision = "bf16" if autocast_dtype(params["precision"]) else "fp32"
    steps = params["pretrain_steps"]
    ctx.events.log(f"pre-training {parameters:,} parameters for {steps} steps ({precision})")
    losses = pretrain(
        model,
        tokenizer,
        documents,
        steps,
        params["batch_size"],
        params["lr"],
        params["seed"],
        on_step=_reporter(ctx, params["lr"]),
        precision=precision,
    )

    ctx.events.log(f"saving to {out.name}")
    out.mkdir(parents=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    info = {
        "params": params,
        "version": VERSION,
        "parameters": parameters,
        "precision": precision,
        "initial_loss": losses[0],
        "final_loss": final_loss(losses),
        "seconds": round(time.time() - started, 2),
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (out / COMPLETE).write_text("")


def _reporter(ctx: JobContext, peak_lr: float) -> OnStep:
    """An `on_step` callback writing progress and metric events every METRIC_EVERY steps."""
    from engine.lab.model import learning_rate

    def on_step(step: int, total: int, loss: float, tokens_per_s: float) -> None:
        if step == 1 or step % METRIC_EVERY == 0 or step == total:
            ctx.events.progress(step, total, "pretrain")
            ctx.events.metric(
                step, loss=loss, tokens_per_s=tokens_per_s, learning_rate=learning_rate(step, total, peak_lr)
            )

    return on_step


def final_loss(losses: list[float]) -> float:
    """Mean loss of the last METRIC_EVERY steps: one batch's loss alone is too noisy to compare."""
    tail = losses[-METRIC_EVERY:]
    return sum(tail) / len(tail)


def _move_into_place(ctx: JobContext, tmp: Path, path: Path) -> Path:
    """Rename `tmp` to `path`; a leftover without `.complete` is replaced, a racing build wins."""
    if path.exists() and not (path / COMPLETE).exists():
        ctx.events.log(f"removing incomplete leftover {path.name}")
        shutil.rmtree(path)
    try:
        tmp.rename(path)
    except OSError:
        if not (path / COMPLETE).exists():
            raise
        ctx.events.log(f"{path.name} was completed by another build meanwhile; using it")
    return path


def _result(path: Path, reused: bool) -> dict[str, Any]:
    """The run's result, read back from the saved `tix_build.json`."""
    info = json.loads((path / INFO_FILE).read_text())
    return {
        "model_path": str(path),
        "parameters": info["parameters"],
        "reused": reused,
        "final_loss": info["final_loss"],
    }
