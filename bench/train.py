"""Training throughput through tix's train job against trl used directly (the overhead ratio).

Same tiny-lab model, same data (rendered as the same conversational rows), same trl config and
the same number of steps, in one process; SFT and GRPO. tix adds its event callback, the
graceful-stop callback, checkpoint discovery and the final save; trl direct gets only
`trainer.train()`. Compared: trl's own `train_runtime` on both sides (the loop with tix's
callbacks against the bare loop), plus the whole tix job's wall time.

Run: `make bench` or `python bench/train.py [--steps N]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import tiny_model  # bench/common.py (scripts run as `python bench/NAME.py`)

from engine.events import EventWriter
from engine.jobs import JobContext, train
from engine.lab.corpus import items


def context(home: Path, run_id: str, params: dict) -> JobContext:
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobContext(run_id, "train", params, run_dir, home, EventWriter(run_dir / "events.jsonl"))


def through_tix(home: Path, params: dict, tag: str) -> tuple[float, float, float]:
    """(trl's own train_runtime inside the tix job, tokens trained, the whole job's wall time)."""
    ctx = context(home, f"tix-{tag}", params)
    start = time.perf_counter()
    train.run(ctx)
    wall = time.perf_counter() - start
    events = [json.loads(x) for x in (ctx.run_dir / "events.jsonl").read_text().splitlines()]
    metrics = [e["values"] for e in events if e["type"] == "metric"]
    runtime = next(m["train_runtime"] for m in metrics if "train_runtime" in m)
    tokens = max(m.get("num_tokens", 0.0) for m in metrics)
    return runtime, tokens, wall


def direct(home: Path, params: dict, tag: str) -> tuple[float, float]:
    """trl alone: the same trainer tix builds, minus tix's callbacks, resume logic and save."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer, SFTTrainer

    data = train.load_train_data(params["data"])
    tokenizer = AutoTokenizer.from_pretrained(params["model"])
    model = AutoModelForCausalLM.from_pretrained(params["model"])
    config = train.make_config(params["method"], params["args"], home / "runs" / f"direct-{tag}", False,
                               params)
    if params["method"] == "sft":
        trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer,
                             train_dataset=Dataset.from_list(train.sft_rows(data)))
    else:
        tokenizer.padding_side = "left"
        trainer = GRPOTrainer(model=model, args=config, processing_class=tokenizer,
                              reward_funcs=[train.make_reward("math")],
                              train_dataset=Dataset.from_list(train.grpo_rows(data)))
    runtime = float(trainer.train().metrics["train_runtime"])
    return runtime, max(float(h.get("num_tokens", 0.0)) for h in trainer.state.log_history)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    steps = parser.parse_args().steps
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        model = tiny_model(home, pretrain_steps=20)
        data = home / "math.jsonl"
        data.write_text("\n".join(json.dumps({"question": i.question, "answer": i.answer})
                                  for i in items(1, 2000, ("math",))))
        common = {"save_strategy": "no", "max_steps": steps, "logging_steps": 1}
        runs = {
            "sft": {"method": "sft", "args": {**common, "per_device_train_batch_size": 16}},
            "grpo": {"method": "grpo", "reward": "math",
                     "args": {**common, "per_device_train_batch_size": 8, "num_generations": 4,
                              "max_completion_length": 16}},
        }
        for tag, spec in runs.items():
            params = {"model": model, "data": str(data), **spec}
            direct(home, params, tag + "-warm")  # import and first-use costs out of the way
            ours, our_tokens, wall = through_tix(home, params, tag)
            theirs, their_tokens = direct(home, params, tag)
            print(f"{tag}: {steps} steps; tix {our_tokens / ours:,.0f} tokens/s ({ours:.2f} s), "
                  f"trl direct {their_tokens / theirs:,.0f} tokens/s ({theirs:.2f} s): "
                  f"time ratio tix/trl {ours / theirs:.2f}; whole tix job (load, train, save) {wall:.2f} s")


if __name__ == "__main__":
    main()
