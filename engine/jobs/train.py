"""The `train` job: tune a model with trl, by SFT (`SFTTrainer`) or GRPO (`GRPOTrainer`).

Run it as any job: `python -m engine.jobs.worker RUN_DIR` with `kind: train` in `spec.yaml`; `tix run`
queues one per tuned variant. Parameters: `model` (a folder or hub id), `method` (sft | grpo),
`data` (lab/math-train, a local file or a hub id), `reward` (grpo), `args` (passed to
SFTConfig / GRPOConfig over tix's defaults), `lora` (peft) and `enable_thinking`.

The story: load the model and tokenizer; turn the data into conversational prompt/completion
rows (SFT learns the completion only) or prompts with their items (GRPO rewards each sampled
answer with the very scorer the evaluation uses); build the trl config (checkpoints in the run
folder as `checkpoint-<step>/`, CPU- or GPU-appropriate precision, vLLM rollouts on GPU); train,
continuing from the newest checkpoint when the run is resumed, and report every logging step as
events; save the final model (LoRA merged) under `TIX_HOME/models/<run id>/`, where the eval and
analysis runs find it. SIGTERM (`tix cancel`) saves a checkpoint at the end of the current step
and stops, so `tix resume` loses at most one step.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from engine.evaluation.datasets import load_train_data
from engine.evaluation.scorers import get_scorer
from engine.evaluation.scorers.textutil import strip_think
from engine.events import ThreadShare
from engine.jobs import JobContext, Stop

VERSION = "1"
#: Reward names an experiment may use, and how each picks its scorer for an item.
REWARDS = ("math",)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def run(ctx: JobContext) -> dict[str, Any]:
    """Train in this process, or, with more than one process asked for, under `accelerate launch`
    (on every node of the Slurm job with `nodes:`, through srun)."""
    from engine.jobs import train_launch

    nodes = train_launch.srun_nodes(ctx.params, os.environ)  # fails a multi-node run outside Slurm
    import torch

    cuda = torch.cuda.is_available()
    n = train_launch.processes(ctx.params, torch.cuda.device_count() if cuda else 0)
    if ctx.params.get("gpus", 1) > n:
        ctx.events.log(f"asked for {ctx.params['gpus']} GPUs, {n} visible: training in {n} process(es)")
    if nodes and not train_launch.in_launched_rank():
        return train_launch.run_on_nodes(ctx, nodes, n, cuda)
    if n > 1 and not train_launch.in_launched_rank():
        return train_launch.run_distributed(ctx, n, cuda)
    return train_once(ctx)


def train_once(ctx: JobContext) -> dict[str, Any]:
    """One training process: the whole run, or one rank of a distributed one (events on rank 0)."""
    import torch

    params = ctx.params
    method = params["method"]
    cuda = torch.cuda.is_available()
    model_path = model_location(params["model"])
    items = load_train_data(params["data"], params.get("limit"))
    ctx.events.log(f"{method} on {len(items)} items from {params['data']}, model {model_path}")
    trainer = make_trainer(ctx, method, model_path, items, cuda)
    resume = latest_checkpoint(ctx.run_dir)
    if resume:
        ctx.events.log(f"resuming from {resume.name}")
    stopper = GracefulStop()
    trainer.add_callback(stopper.callback())
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if stopper.requested:
        raise Stop(f"stopped by SIGTERM at step {trainer.state.global_step}; `tix resume` continues")
    final = save_final(trainer, ctx.models_dir / ctx.run_id, bool(params.get("lora")))
    if not trainer.is_world_process_zero():
        return {}
    return {"model_path": str(final), "method": method, "steps": trainer.state.global_step,
            "resumed_from": resume.name if resume else None, "train_items": len(items),
            "final": final_values(trainer.state.log_history)}


def final_values(history: list[dict[str, Any]]) -> dict[str, float]:
    """The last logged loss and reward: what the dashboard shows for a finished training run
    (trl's closing `train_loss` is the mean over all steps, not where training ended)."""
    found: dict[str, float] = {}
    for entry in reversed(history):
        for key in ("loss", "reward"):
            if key not in found and isinstance(entry.get(key), int | float):
                found[key] = float(entry[key])
    return found


def model_location(model: Any) -> str:
    return str(model["name"]) if isinstance(model, dict) else str(model)


def make_trainer(ctx: JobContext, method: str, model_path: str, items: list[dict[str, Any]],
                 cuda: bool) -> Any:
    """The trl trainer for `method`, with tix's event callback attached."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto" if cuda else None)
    config = make_config(method, ctx.params.get("args") or {}, ctx.run_dir, cuda, ctx.params)
    if getattr(config, "use_vllm", False):
        ctx.events.log(f"GRPO rollouts by vLLM ({config.vllm_mode})")
    common = {"model": model, "args": config, "processing_class": tokenizer,
              "peft_config": lora_config(ctx.params.get("lora")), "callbacks": [event_callback(ctx)]}
    if method == "sft":
        from trl import SFTTrainer

        return SFTTrainer(train_dataset=Dataset.from_list(sft_rows(items)), **common)
    from trl import GRPOTrainer

    tokenizer.padding_side = "left"
    reward = make_reward(ctx.params.get("reward") or "math")
    return GRPOTrainer(reward_funcs=[reward], train_dataset=Dataset.from_list(grpo_rows(items)), **common)


def make_config(method: str, args: dict[str, Any], run_dir: Path, cuda: bool, params: dict[str, Any]) -> Any:
    """tix's defaults, then the experiment's `args` (checked against the installed trl by `tix check`).

    `report_to` is the experiment's (default none): trl's trackers (wandb, tensorboard, mlflow,
    trackio, ...) log beside tix's own event callback, which is always attached. Their runs are
    named after the tix run (`run_name`, unless the experiment sets it) and TensorBoard writes
    under the run folder (`output_dir`/runs/, transformers' default)."""
    from trl import GRPOConfig, SFTConfig

    defaults: dict[str, Any] = {
        "output_dir": str(run_dir), "report_to": "none", "run_name": run_dir.name, "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 50, "bf16": cuda, "use_cpu": not cuda, "gradient_checkpointing": False,
        "seed": int(params.get("seed", 0)), "disable_tqdm": True, "dataloader_num_workers": 0,
    }
    if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        defaults["ddp_backend"] = "gloo"  # several CPU processes (the tests of the launch path)
    if method == "grpo":
        defaults["chat_template_kwargs"] = {"enable_thinking": bool(params.get("enable_thinking", False))}
        if cuda and importlib.util.find_spec("vllm") is not None:
            defaults.update(use_vllm=True, vllm_mode="colocate")
    user = {k: v for k, v in args.items() if k not in ("output_dir", "logging_dir")}
    config = (SFTConfig if method == "sft" else GRPOConfig)(**{**defaults, **user})
    if getattr(config, "use_vllm", False) and not cuda:
        from engine.evaluation.backends.vllm import keep_cpu_linear_weights, prepare_environment

        prepare_environment({})  # trl's colocated engine on vLLM's CPU build: a small KV cache,
        keep_cpu_linear_weights()  # and weights that trl's sync can overwrite
    return config


def lora_config(lora: dict[str, Any] | None) -> Any:
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora.get("dropout", 0.0),
                      target_modules=lora.get("target_modules", "all-linear"), task_type="CAUSAL_LM")


def sft_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational prompt/completion rows: trl computes the loss on the completion only."""
    return [{"prompt": [{"role": "user", "content": it["question"]}],
             "completion": [{"role": "assistant", "content": str(it.get("completion") or it["answer"])}]}
            for it in items]


def grpo_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prompts, each with its item (JSON) so that the reward can score against it."""
    return [{"prompt": [{"role": "user", "content": it["question"]}], "item": json.dumps(it, default=str)}
            for it in items]


def item_scorer(item: dict[str, Any]) -> str:
    """The scorer the evaluation would use for this item."""
    if item.get("scorer"):
        return str(item["scorer"])
    return "reasoning_gym" if (item.get("metadata") or {}).get("source_dataset") else "math_verify"


def make_reward(name: str) -> Any:
    """A trl reward function returning each completion's evaluation verdict (0..1)."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r} (known: {', '.join(REWARDS)})")

    def math_reward(prompts: list[Any], completions: list[Any], item: list[str], **_: Any) -> list[float]:
        scores = []
        for completion, raw in zip(completions, item, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else str(completion)
            answer, _unclosed = strip_think(text)
            record = json.loads(raw)
            scores.append(float(get_scorer(item_scorer(record))(answer, record).score))
        return scores

    return math_reward


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in run_dir.glob("checkpoint-*") if (m := _CHECKPOINT.match(p.name))]
    complete = [(step, p) for step, p in found if (p / "trainer_state.json").exists()]
    return max(complete)[1] if complete else None


def save_final(trainer: Any, target: Path, lora: bool) -> Path:
    """Write the tuned model (LoRA merged into the weights) and tokenizer; rename into place.

    Distributed, every rank takes part (ZeRO-3 and FSDP gather the shards through
    `trainer.save_model`) and rank 0 alone writes and renames.
    """
    tmp = target.with_name(target.name + ".tmp")
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    if trainer.args.world_size > 1:
        trainer.save_model(str(tmp))
    elif lora:
        trainer.model.merge_and_unload().save_pretrained(tmp)
    else:
        trainer.model.save_pretrained(tmp)
    if main:
        trainer.processing_class.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


class TrainingReporter:
    """Turns trainer logs into tix events: metrics each logging step, progress with an ETA."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.start = time.time()
        self.first_step = 0
        self.last_tokens: tuple[float, float] | None = None

    def begin(self, step: int) -> None:
        self.start, self.first_step = time.time(), step

    def log(self, step: int, max_steps: int, logs: dict[str, Any]) -> None:
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        values.update(self.throughput(values))
        eta = self.eta(step, max_steps)
        if eta is not None:
            values["eta_seconds"] = eta
        self.ctx.events.metric(step, **values)
        self.ctx.events.progress(step, max_steps, "train")

    def throughput(self, values: dict[str, float]) -> dict[str, float]:
        tokens = values.get("num_tokens")
        if tokens is None:
            return {}
        now, last = time.time(), self.last_tokens
        self.last_tokens = (now, tokens)
        return {"tokens_per_s": (tokens - last[1]) / (now - last[0])} if last and now > last[0] else {}

    def eta(self, step: int, max_steps: int) -> float | None:
        done = step - self.first_step
        if done <= 0 or not max_steps:
            return None
        return (time.time() - self.start) / done * (max_steps - step)


def event_callback(ctx: JobContext) -> Any:
    """A TrainerCallback feeding a TrainingReporter (transformers imported only here), and following
    the daemon's share of the cores for a one-process CPU training (`follow_cores`)."""
    from transformers import TrainerCallback

    reporter = TrainingReporter(ctx)
    follow = follow_cores(ctx)

    class _Events(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            reporter.begin(state.global_step)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            follow()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            reporter.log(state.global_step, state.max_steps, logs or {})

    return _Events()


def follow_cores(ctx: JobContext) -> Any:
    """A step hook that sets torch's threads to the share the daemon gives this run (ThreadShare):
    all cores while the other CPU slots are empty, one's worth while they work. Only for a
    one-process training on CPU: ranks and GPU runs keep what they started with. The result does
    not depend on it: the lab's trainings log the same losses on one and two threads."""
    import torch

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return lambda: None
    share = ThreadShare(ctx.run_dir)

    def follow() -> None:
        threads = share.changed()
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            ctx.events.log(f"CPU share: {threads} thread(s) (the daemon's CPU slots filled or emptied)")

    return follow


class GracefulStop:
    """SIGTERM sets a flag; the step in progress finishes, a checkpoint is saved, training stops."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.requested = True

    def agreed(self, device: Any) -> bool:
        """Whether to stop after this step. In a distributed run every rank asks every other (one
        all-reduce of a flag per step): the signal reaches the ranks at slightly different times,
        and a rank that stopped alone left the others in the next step's gradient all-reduce until
        the launcher killed them, with no checkpoint saved."""
        import torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([int(self.requested)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.requested = bool(flag.item())
        return self.requested

    def callback(self) -> Any:
        from transformers import TrainerCallback

        outer = self

        class _Stop(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                if outer.agreed(args.device):
                    control.should_save = True
                    control.should_training_stop = True
                return control

        return _Stop()
