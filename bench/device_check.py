"""The checks of bench/device_check.sh, one per call, each printing one line and adding its figures
to a JSON file (read, updated, written whole after every check, so a check that is killed leaves
the others' figures in place).

Checks (`--cpu` runs each on this box's CPU instead, smaller, to test the script itself):
- doctor:   `tix doctor --json`, then `pytest -m gpu tests/gpu`;
- lab:      `tix demo` on the shipped tiny lab through the daemon (on CUDA: bf16 training, HF
            rollouts for GRPO without vLLM, bf16 HF evaluation), the GPU's processes sampled from
            the daemon meanwhile (NVML attributes them to tix's runs); `--cpu`: the lab cut short;
- nvml:     a run on GPU 0, then another process allocating GPU memory (over foreign_gpu_mib):
            the running run goes on, the next run waits and says why, and starts when the process
            exits (`--cpu`: NVML's stand-in lists a `sleep` as that process);
- generate: tix's HF backend against a bare `model.generate` loop on a ~100M-parameter Qwen2
            built locally (random weights: every prompt decodes the full length);
- sft:      SFT steps through tix's train job against trl's SFTTrainer alone, same model and data;
- record:   a line and an entry for a check the shell had to stop (timeout) or that could not run;
- cleanup:  cancel a check's runs, stop its daemon, kill what is left (after a timeout).

Run: `python bench/device_check.py CHECK --json FILE --work DIR [--cpu]` (from device_check.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from engine.client.connection import Client, daemon_running  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled"}


class CheckFailed(Exception):
    """A check ran and found something wrong; its message is the check's one line, and the figures
    it gathered are kept."""

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = figures or {}


# -- the JSON of figures --------------------------------------------------------------------------
def record(path: Path, name: str, status: str, detail: str, figures: dict[str, Any] | None = None) -> None:
    """Print `status name: detail` and store it with the figures under checks[name]."""
    print(f"{status:<4} {name}: {detail}", flush=True)
    data = json.loads(path.read_text()) if path.exists() else {"checks": {}}
    before = data.setdefault("checks", {}).get(name) or {}  # what a stopped check had written so far
    data["checks"][name] = {**before, "status": status, "detail": detail, **(figures or {})}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.cuda.is_available(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                    gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / (1 << 30), 1))
    return info


# -- helpers --------------------------------------------------------------------------------------
class Ctx:
    """One check's surroundings: its workspace, whether it runs on CPU, the JSON file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.cpu = bool(args.cpu)
        self.work = Path(args.work)
        self.json = Path(args.json)

    def home(self, name: str) -> Path:
        home = self.work / f"home-{name}"
        home.mkdir(parents=True, exist_ok=True)
        return home

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        return {**os.environ, "TIX_HOME": str(home), **extra}

    def partial(self, name: str, figures: dict[str, Any]) -> None:
        """Figures so far of a running check, kept if the shell stops it."""
        data = json.loads(self.json.read_text()) if self.json.exists() else {"checks": {}}
        data.setdefault("checks", {})[name] = {"status": "running", **figures}
        tmp = self.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        tmp.replace(self.json)


def tix(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The `tix` command as installed (the kit's bin), else `python -m engine.cli`."""
    exe = [os.environ["TIX_BIN"]] if os.environ.get("TIX_BIN") else [sys.executable, "-m", "engine.cli"]
    return subprocess.run([*exe, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise CheckFailed(f"{what}: not within {timeout:.0f} s")


def tail(text: str, n: int = 300) -> str:
    return " ".join(text.strip().split())[-n:]


# -- 1. doctor and the GPU tests ------------------------------------------------------------------
def check_doctor(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    env = ctx.env(ctx.home("doctor"))
    done = tix(env, "doctor", "--json", timeout=120)
    rows = json.loads(done.stdout) if done.stdout.strip().startswith("[") else []
    bad = [r["check"] for r in rows if r["status"] not in ("ok", "--")]
    pytest = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider"]
    tests = subprocess.run(pytest, capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tail(tests.stderr)
    figures = {"doctor": {r["check"]: f"{r['status']} {r['detail']}" for r in rows}, "gpu_tests": summary,
               "machine": machine()}
    with contextlib.suppress(Exception):
        tix(env, "daemon", "stop", timeout=30)
    if done.returncode != 0 or bad:
        raise CheckFailed(f"tix doctor exit {done.returncode}, not ok: {', '.join(bad) or tail(done.stderr)}",
                          figures)
    if tests.returncode not in (0, 5):
        raise CheckFailed(f"tests/gpu: {summary}", figures)
    cuda = next((r["detail"] for r in rows if r["check"] == "cuda"), "?")
    return f"tix doctor ok ({tail(cuda, 80)}); tests/gpu: {summary}", figures


# -- 2. the tiny lab through the daemon ------------------------------------------------------------
def lab_file(ctx: Ctx) -> Path:
    """The shipped tiny-lab.yaml; on CPU cut to 3 steps and 8 items (the integration test's cut)."""
    shipped = ROOT / "experiments" / "tiny-lab.yaml"
    if not ctx.cpu:
        return shipped
    import yaml

    data = yaml.safe_load(shipped.read_text())
    for variant in data["models"].values():
        variant["train"]["args"]["max_steps"] = 3
    data["eval"]["limit"] = 8
    for analysis in data["analysis"].values():
        analysis["items"] = 8
    path = ctx.work / "quick-lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def check_lab(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    home = ctx.home("lab")
    env = ctx.env(home)
    out = (ctx.work / "lab-demo.log").open("w")
    start = time.time()
    demo = subprocess.Popen([sys.executable, "-m", "engine.cli", "demo", str(lab_file(ctx))], stdout=out,
                            stderr=subprocess.STDOUT, env=env, cwd=ROOT, text=True)
    seen = watch_gpus(ctx, Workspace.resolve(home), demo, start)
    wall = time.time() - start
    text = (ctx.work / "lab-demo.log").read_text()
    runs = json.loads(tix(env, "status", "--json").stdout or "[]")
    states = {f"{r['kind']}/{r['name']}": r["state"] for r in runs}
    figures = {"wall_s": round(wall, 1), "runs": states, "run_seconds": run_seconds(runs), "gpu": seen,
               "ti_table": ti_table(text)}
    with contextlib.suppress(Exception):
        tix(env, "daemon", "stop", timeout=30)
    if demo.returncode != 0 or any(s != "succeeded" for s in states.values()) or len(states) != 8:
        raise CheckFailed(f"tix demo exit {demo.returncode}, runs {states}: {tail(text)}", figures)
    if "Transferability Index" not in text:
        raise CheckFailed("no TI table in tix demo's output", figures)
    where = "CPU (cut short)" if ctx.cpu else (
        f"CUDA, tix's runs seen on the GPU {seen['samples_with_tix']}x, peak {seen['peak_tix_mib']:.0f} MiB")
    return f"8 runs succeeded in {wall:.0f} s on {where}; TI table printed", figures


def watch_gpus(ctx: Ctx, ws: Workspace, demo: subprocess.Popen[str], start: float) -> dict[str, Any]:
    """Sample the daemon's `gpus` op every 2 s while the demo runs: GPU processes that NVML lists
    and the daemon attributes to tix's runs (the workers are on the GPU), and other processes."""
    seen: dict[str, Any] = {"samples": 0, "samples_with_tix": 0, "peak_tix_mib": 0.0, "runs_seen": [],
                            "foreign_seen": 0}
    while demo.poll() is None:
        time.sleep(2)
        with contextlib.suppress(Exception):
            if daemon_running(ws):
                with Client(ws, autostart=False, timeout=5) as client:
                    sample_gpus(client.request("gpus"), seen)
        ctx.partial("lab", {"elapsed_s": round(time.time() - start, 1), "gpu": seen})
    return seen


def sample_gpus(info: dict[str, Any], seen: dict[str, Any]) -> None:
    seen["samples"] += 1
    procs = [p for g in info.get("gpus") or [] for p in g.get("processes") or []]
    mine = [p for p in procs if p.get("run")]
    if mine:
        seen["samples_with_tix"] += 1
        seen["peak_tix_mib"] = max(seen["peak_tix_mib"], sum(p["used"] or 0 for p in mine) / (1 << 20))
        seen["runs_seen"] = sorted(set(seen["runs_seen"]) | {p["run"] for p in mine})
    seen["foreign_seen"] = max(seen["foreign_seen"], len(procs) - len(mine))


def run_seconds(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    from datetime import datetime

    def seconds(run: dict[str, Any]) -> float | None:
        if not run.get("started_at") or not run.get("finished_at"):
            return None
        a, b = (datetime.fromisoformat(str(run[k])) for k in ("started_at", "finished_at"))
        return round((b - a).total_seconds(), 1)

    return {f"{r['kind']}/{r['name']}": seconds(r) for r in runs}


def ti_table(text: str) -> str:
    """The TI table as tix demo printed it."""
    start = text.find("Transferability Index")
    end = text.find("Shift against", start)
    return text[start:end].strip() if start >= 0 else ""


# -- 3. NVML scheduling against another process's GPU memory --------------------------------------
HOLD = ("import sys, torch; x = torch.empty({mib} << 20, dtype=torch.uint8, device='cuda'); "
        "torch.cuda.synchronize(); print('ready', flush=True); sys.stdin.read()")


def start_holder(ctx: Ctx, mib: int, box: Path | None) -> subprocess.Popen[bytes]:
    """The other user's job: a process holding `mib` MiB on GPU 0 (on CPU, a sleep the stand-in lists)."""
    if box is not None:
        holder = subprocess.Popen(["sleep", "600"], stdin=subprocess.PIPE)
        box.write_text(json.dumps({"gpus": [{"name": "stand-in GPU", "mem_total_mib": 81559,
                                             "processes": [{"pid": holder.pid, "used_mib": mib}]}]}))
        return holder
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(mib=mib)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    if holder.stdout is None or holder.stdout.readline().strip() != b"ready":
        raise CheckFailed("the process meant to hold GPU memory did not start")
    return holder


def check_nvml(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    from engine.experiments.plan import make_run

    home = ctx.home("nvml")
    box = ctx.work / "nvml.json" if ctx.cpu else None
    extra = {"TIX_GPUS": "0,", "TIX_FOREIGN_GPU_MIB": "1024", "TIX_GPU_POLL": "0.5", "TIX_TICK": "0.2"}
    if box is not None:
        box.write_text(json.dumps({"gpus": [{"name": "stand-in GPU", "mem_total_mib": 81559,
                                             "processes": []}]}))
        extra["TIX_FAKE_NVML"] = str(box)
    os.environ.update(ctx.env(home, **extra))
    cuda_mib = 0 if ctx.cpu else 512
    first = make_run("probe", "holds-gpu", "device-check", {"steps": 24, "sleep": 0.25, "cuda_mib": cuda_mib},
                     [])
    second = make_run("probe", "waits", "device-check", {"steps": 2, "cuda_mib": cuda_mib}, [])
    first["gpus_needed"] = second["gpus_needed"] = 1
    figures: dict[str, Any] = {}
    holder = None
    with Client(Workspace.resolve(home)) as client:
        client.request("submit", experiment=None, runs=[first])
        wait_for(lambda: client.request("run", id=first["id"])["state"] == "running", 60, "first run started")
        holder = start_holder(ctx, 3072, box)
        try:
            return nvml_story(client, first, second, holder, figures)
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.wait(timeout=10)


def nvml_story(client: Client, first: dict[str, Any], second: dict[str, Any], holder: subprocess.Popen[bytes],
               figures: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The running run goes on beside the other process; the next one waits, says why, and starts
    once the other process exits."""
    gpus = wait_for(lambda: (g := client.request("gpus"))["gpus"] and g["gpus"][0]["blocked"] and g, 30,
                    "GPU 0 blocked by the other process")
    procs = gpus["gpus"][0]["processes"]
    figures["processes"] = procs
    figures["pid_seen"] = any(p["pid"] == holder.pid for p in procs)
    figures["first_run_attributed"] = any(p["run"] == first["id"] for p in procs)
    client.request("submit", experiment=None, runs=[second])
    done = wait_for(lambda: (r := client.request("run", id=first["id"]))["state"] in TERMINAL and r, 60,
                    "first run finished")
    if done["state"] != "succeeded" or done["result"]["steps"] != 24:
        raise CheckFailed(f"the running run was disturbed: {done['state']} {done.get('error')}")
    time.sleep(2)  # GPU 0 is free of tix's runs now; only the other process keeps the next run waiting
    waiting = client.request("run", id=second["id"])
    figures["waiting_text"] = waiting["progress_text"]
    if waiting["state"] != "queued" or "used by" not in str(waiting["progress_text"]):
        raise CheckFailed(f"the next run did not wait for GPU 0: {waiting['state']} "
                          f"{waiting['progress_text']!r}")
    holder.kill()
    holder.wait(timeout=10)
    exited = time.time()
    started = wait_for(lambda: (r := client.request("run", id=second["id"]))["state"] != "queued" and r, 30,
                       "the waiting run started after the other process exited")
    figures["start_after_exit_s"] = round(time.time() - exited, 2)
    last = wait_for(lambda: (r := client.request("run", id=second["id"]))["state"] in TERMINAL and r, 60,
                    "the waiting run finished")
    if last["state"] != "succeeded" or started["gpus"] != "0":
        raise CheckFailed(f"the waiting run: {last['state']} on GPU {started['gpus']}: {last.get('error')}")
    client.request("shutdown")
    return (f"waited with {waiting['progress_text']!r}, started {figures['start_after_exit_s']:.1f} s "
            f"after the process exited; the running run went on (pid seen by NVML: {figures['pid_seen']}, "
            f"tix's worker attributed: {figures['first_run_attributed']})"), figures


# -- 4. and 5. a ~100M model: generation and SFT against the libraries alone ----------------------
ABOUT_100M = {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 16,
              "num_attention_heads": 12}
SMALL = {"hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 4, "num_attention_heads": 4}


def model_100m(ctx: Ctx) -> tuple[Path, int]:
    """A Qwen2 of about 100M parameters (about 5M with --cpu) with the tiny lab's tokenizer and chat
    template, random weights, built here once for both checks."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    folder = ctx.work / ("model-5m" if ctx.cpu else "model-100m")
    tokenizer = AutoTokenizer.from_pretrained(next((ROOT / "engine" / "lab" / "shipped").iterdir()))
    if not (folder / "config.json").exists():
        size = SMALL if ctx.cpu else ABOUT_100M
        config = Qwen2Config(vocab_size=len(tokenizer), num_key_value_heads=4, max_position_embeddings=1024,
                             tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, **size)
        torch.manual_seed(0)
        Qwen2ForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    params = sum(p.numel() for p in Qwen2ForCausalLM.from_pretrained(folder).parameters())
    return folder, params


def check_generate(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    import torch
    from backend import bare_loop, lab_prompts  # bench/backend.py

    from engine.evaluation.backends import ModelRef, SamplingParams, load_backend

    path, params = model_100m(ctx)
    n, batch, tokens = (32, 16, 16) if ctx.cpu else (256, 64, 64)
    prompts = lab_prompts(n)
    backend = load_backend(ModelRef(str(path), options={"batch_size": batch}), "hf")
    sampling = SamplingParams(max_new_tokens=tokens)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    backend.generate(prompts[:batch], sampling)  # warm-up: kernels, allocator
    ours, bare = [], []
    for _ in range(3):  # alternating, best of 3
        t0 = time.perf_counter()
        gens = backend.generate(prompts, sampling)
        sync()
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        produced = bare_loop(backend.model, backend.tokenizer, prompts, batch, tokens)
        sync()
        bare.append(time.perf_counter() - t0)
    ours_tokens = sum(g[0].tokens for g in gens)
    dtype = str(next(backend.model.parameters()).dtype).removeprefix("torch.")
    figures = {"params": params, "device": backend.device, "dtype": dtype, "prompts": n, "batch": batch,
               "max_new_tokens": tokens, "tix_s": round(min(ours), 3), "bare_s": round(min(bare), 3),
               "tix_tokens_per_s": round(ours_tokens / min(ours)),
               "bare_tokens_per_s": round(produced / min(bare)),
               "ratio": round(min(ours) / min(bare), 3)}
    return (f"{params / 1e6:.0f}M params {dtype} on {backend.device}: tix HF backend "
            f"{figures['tix_tokens_per_s']:,} tokens/s, "
            f"bare generate {figures['bare_tokens_per_s']:,} tokens/s, "
            f"time ratio {figures['ratio']:.2f}"), figures


def check_sft(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    import torch
    from train import through_tix  # bench/train.py

    from engine.lab.corpus import items

    path, params = model_100m(ctx)
    cuda = torch.cuda.is_available()
    steps = 5 if ctx.cpu else 30
    data = ctx.work / "math.jsonl"
    data.write_text("\n".join(json.dumps({"question": i.question, "answer": i.answer})
                              for i in items(1, 2000, ("math",))))
    spec = {"model": str(path), "data": str(data), "method": "sft",
            "args": {"save_strategy": "no", "max_steps": steps, "logging_steps": 1,
                     "per_device_train_batch_size": 16}}
    home = ctx.home("sft")
    trl_direct(home, spec, cuda, "warm")  # imports, kernels and the allocator out of the way
    ours, _tokens, wall = through_tix(home, spec, "sft")
    theirs = trl_direct(home, spec, cuda, "timed")
    figures = {"params": params, "cuda": cuda, "bf16": cuda, "steps": steps, "batch": 16,
               "tix_s_per_step": round(ours / steps, 4), "trl_s_per_step": round(theirs / steps, 4),
               "ratio": round(ours / theirs, 3), "tix_job_wall_s": round(wall, 2)}
    return (f"{params / 1e6:.0f}M params, {steps} steps of 16{' in bf16 on CUDA' if cuda else ' on CPU'}: "
            f"tix {1000 * ours / steps:.0f} ms/step, trl alone {1000 * theirs / steps:.0f} ms/step, "
            f"ratio {ours / theirs:.2f}"), figures


def trl_direct(home: Path, spec: dict[str, Any], cuda: bool, tag: str) -> float:
    """trl's SFTTrainer alone on what tix's job trains: same rows, config and model loading."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from engine.jobs import train

    rows = train.sft_rows(train.load_train_data(spec["data"]))
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype="auto" if cuda else None)
    config = train.make_config("sft", spec["args"], home / "runs" / f"trl-{tag}", cuda, spec)
    trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(rows))
    return float(trainer.train().metrics["train_runtime"])


# -- cleanup after a stopped check ----------------------------------------------------------------
def cleanup(home: Path) -> None:
    """Cancel what runs in `home`, stop its daemon, kill the workers still there."""
    ws = Workspace.resolve(home)
    pids: list[int] = []
    with contextlib.suppress(Exception):
        if daemon_running(ws):
            with Client(ws, autostart=False, timeout=10) as client:
                live = client.request("status", states=["queued", "running"])
                pids = [int(r["pid"]) for r in live if r.get("pid")]
                for run in live:
                    client.request("cancel", target=run["id"])
                time.sleep(3)
                client.request("shutdown")
    for pid in pids:
        with contextlib.suppress(OSError):
            if b"engine.jobs.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)


CHECKS: dict[str, Callable[[Ctx], tuple[str, dict[str, Any]]]] = {
    "doctor": check_doctor, "lab": check_lab, "nvml": check_nvml, "generate": check_generate,
    "sft": check_sft}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=[*CHECKS, "record", "cleanup"])
    parser.add_argument("rest", nargs="*", help="record: NAME STATUS DETAIL; cleanup: HOME")
    parser.add_argument("--json", default="device_check.json")
    parser.add_argument("--work", default="/tmp/tix-device-check")
    parser.add_argument("--cpu", action="store_true", help="run on this box's CPU, smaller")
    args = parser.parse_args()
    if args.check == "record":
        record(Path(args.json), *args.rest[:3])
        return 0
    if args.check == "cleanup":
        cleanup(Path(args.rest[0]))
        return 0
    ctx = Ctx(args)
    start = time.time()
    try:
        detail, figures = CHECKS[args.check](ctx)
    except CheckFailed as exc:
        record(ctx.json, args.check, "FAIL", str(exc),
               {"seconds": round(time.time() - start, 1), **exc.figures})
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the check, the traceback to stderr
        import traceback

        traceback.print_exc()
        message = re.sub(r"\s+", " ", str(exc))[:300]
        record(ctx.json, args.check, "FAIL", f"{type(exc).__name__}: {message}",
               {"seconds": round(time.time() - start, 1)})
        return 1
    record(ctx.json, args.check, "ok", f"{detail} ({time.time() - start:.0f} s)",
           {"seconds": round(time.time() - start, 1), **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
