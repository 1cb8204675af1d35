"""A workspace of recorded runs for the TUI tests, snapshots, tmux smoke script and bench.

`build_workspace` writes run folders as workers leave them (events.jsonl with progress, metrics
with loss, reward, KL and learning rate, log and score lines; samples.jsonl; stdout.log and
stderr.log), stores the runs with fixed ids and timestamps, and feeds the files through the
daemon's own ingest code before any daemon starts, so every screen shows the same thing on
every machine. One run is `running`: its "worker" is a `sleep` process in its own session, so
the daemon adopts it, keeps following its files and can cancel it; the run's events name its
pid, so the `ws` fixture's cleanup kills it. A failed `probe` run can be resumed for real (the
probe worker is light); every queued run waits on the running one, so nothing heavy starts.

Run as a script to prepare a workspace by hand: `python -m tests.tui.recorded DIR [--runs N]`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from engine.daemon.ingest import ingest_run
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from storage import Store

#: The fixed "now" of every recorded workspace; tests give the app this clock.
NOW = datetime(2025, 3, 14, 12, 0, 0)
NOW_TS = NOW.replace(tzinfo=UTC).timestamp()
EXPERIMENT = "tiny-lab"
BENCHMARKS = (("lab_basic_arithmetic", "math"), ("lab_syllogism", "other"), ("lab_spell_backward", "non"))
#: The pid recorded for finished runs: above any kernel's pid_max, so a cleanup that signals
#: recorded pids can never reach a real process.
FAKE_PID = 1 << 30
SPEC = Path(__file__).resolve().parents[2] / "experiments" / "tiny-lab.yaml"
BUILD_RESULT = {"model_path": "models/tiny-lab-0", "final_loss": 1.1187}
SFT_RESULT = {"model_path": "models/sft", "steps": 40, "final": {"loss": 0.4123}}


@dataclass
class Recorded:
    """Ids of the recorded runs by role, and the fake worker process of the running one."""

    ws: Workspace
    ids: dict[str, str] = field(default_factory=dict)
    worker: subprocess.Popen[bytes] | None = None

    def grow(self, steps: range) -> None:
        """Write more training steps for the running run, as its worker would (metrics,
        progress, a stdout line per step): the daemon ingests them and pushes the news."""
        f = Files(self.ws.run_dir(self.ids["rl"]), {"started_at": at(78), "_pid": FAKE_PID})
        for step in steps:
            f.event(10 + step * 45, "metric", step=step, values=rl_values(step))
            f.event(10 + step * 45, "progress", step=step, total=100, desc="train")
            f.out(json.dumps({"step": step, "reward": rl_values(step)["reward"]}) + "\n")

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait(timeout=5)


def at(minutes: float) -> datetime:
    """A fixed time `minutes` before NOW (naive UTC, as the runs table stores it)."""
    return NOW - timedelta(minutes=minutes)


def ts(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def build_workspace(ws: Workspace, extra_runs: int = 0, live: bool = True) -> Recorded:
    """Write and ingest the recorded runs (plus `extra_runs` finished probe runs) into `ws`."""
    ws.ensure()
    rec = Recorded(ws)
    store = Store.open(ws.db)
    try:
        text = SPEC.read_text() if SPEC.exists() else "name: tiny-lab\n"
        store.upsert_experiment(EXPERIMENT, str(SPEC), text, "recorded")
        for plan, row, writer in _runs(rec, live):
            _store_run(store, ws, plan, row)
            writer(ws.run_dir(plan["id"]), row)
            _ingest(store, plan["id"], ws.run_dir(plan["id"]))
        store.link_runs(EXPERIMENT, [i for k, i in rec.ids.items() if k != "probe"])
        store.con.execute("BEGIN TRANSACTION")  # one commit for a thousand rows
        for i in range(extra_runs):
            plan = make_run("probe", f"sweep-{i:04d}", "sweep", {"i": i}, [])
            store.insert_run({**plan, "state": "succeeded", "progress": 1.0, "created_at": at(600 - i * 0.1),
                              "started_at": at(600 - i * 0.1), "finished_at": at(599 - i * 0.1)})
        store.con.execute("COMMIT")
    finally:
        store.close()
    return rec


def add_run(ws: Workspace, plan: dict[str, Any], row: dict[str, Any], write: Any,
            experiment: str | None = EXPERIMENT) -> str:
    """Store one more run (fields `row`), let `write(Files)` fill its folder, ingest it and file
    it under `experiment`; before the daemon starts. Returns its id."""
    store = Store.open(ws.db)
    try:
        _store_run(store, ws, plan, row)
        if experiment:
            store.link_runs(experiment, [plan["id"]])
        write(Files(ws.run_dir(plan["id"]), row))
        _ingest(store, plan["id"], ws.run_dir(plan["id"]))
    finally:
        store.close()
    return plan["id"]


def _ingest(store: Store, run_id: str, run_dir: Path) -> None:
    while ingest_run(store, run_id, run_dir).lines:
        pass


def _store_run(store: Store, ws: Workspace, plan: dict[str, Any], row: dict[str, Any]) -> None:
    fields = {k: v for k, v in row.items() if not k.startswith("_")}
    store.insert_run({**plan, **fields, "run_dir": str(ws.run_dir(plan["id"]))})


def _runs(rec: Recorded, live: bool) -> list[tuple[dict[str, Any], dict[str, Any], Any]]:
    """(planned run, stored fields, file writer) for each recorded run, in creation order."""
    build = make_run("build", "base", EXPERIMENT, {"model": "tiny-lab", "seed": 0}, [])
    sft = make_run("train", "sft", EXPERIMENT, {"method": "sft", "data": "lab/math-train"}, [build["id"]])
    rl = make_run("train", "rl", EXPERIMENT, {"method": "grpo", "data": "lab/math-train"}, [build["id"]])
    eval_base = make_run("eval", "base", EXPERIMENT, {"suite": "lab"}, [build["id"]])
    eval_sft = make_run("eval", "sft", EXPERIMENT, {"suite": "lab"}, [sft["id"]])
    eval_rl = make_run("eval", "rl", EXPERIMENT, {"suite": "lab"}, [rl["id"]])
    analyse_sft = make_run("analyse", "sft", EXPERIMENT, {"pca_shift": {}}, [build["id"], sft["id"]])
    analyse_rl = make_run("analyse", "rl", EXPERIMENT, {"pca_shift": {}}, [rl["id"], eval_rl["id"]])
    released = make_run("eval", "released", EXPERIMENT, {"suite": "lab", "model": "org/released"}, [])
    probe = make_run("probe", "probe", "probe-exp", {"label": "probe", "steps": 2, "fail_attempts": 1}, [])
    worker = _fake_worker(rec) if live else None
    waiting = _queued if worker else _cancelled  # with no running run, a queued one would start
    runs = [
        (build, _done(100, 96, result=BUILD_RESULT), _write_build),
        (sft, _done(95, 80, gpus="0", result=SFT_RESULT), _write_sft),
        (rl, _live(78, worker, gpus="0") if worker else _done(78, 30), _write_rl),
        (eval_base, _done(94, 90, gpus="0", result=eval_result(0.4)), _write_eval(0.4)),
        (eval_sft, _done(79, 75, gpus="0", result=eval_result(0.7)), _write_eval(0.7)),
        (eval_rl, waiting(77), _write_nothing),
        (analyse_sft, _failed(74, 73, "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"),
         _write_failed),
        (analyse_rl, waiting(77), _write_nothing),
        (released, _cancelled(70), _write_nothing),
        (probe, _failed(60, 59.5, "failing attempt 1 on purpose", attempt=1), _write_probe),
    ]
    for role, (plan, _row, _w) in zip(("build", "sft", "rl", "eval_base", "eval_sft", "eval_rl",
                                        "analyse_sft", "analyse_rl", "released", "probe"), runs, strict=True):
        rec.ids[role] = plan["id"]
    return runs


def _fake_worker(rec: Recorded) -> int:
    """A process standing in for the running run's worker (its own session, like a real one)."""
    rec.worker = subprocess.Popen(["sleep", "900"], start_new_session=True)
    return rec.worker.pid


# -- stored rows ---------------------------------------------------------------------------------
def _done(start: float, end: float, gpus: str | None = None, result: Any = None) -> dict[str, Any]:
    """A succeeded run; `result` is what its final event reported (the scheduler stores it)."""
    return {"state": "succeeded", "created_at": at(start + 1), "started_at": at(start), "finished_at": at(end),
            "heartbeat_at": at(end), "progress": 1.0, "attempt": 1, "gpus": gpus, "host": "lab-box",
            "result": result}


def _live(start: float, pid: int, gpus: str | None) -> dict[str, Any]:
    return {"state": "running", "created_at": at(start + 1), "started_at": at(start), "heartbeat_at": NOW,
            "progress": 0.6, "progress_text": "train 60/100", "attempt": 1, "gpus": gpus, "pid": pid,
            "pid_started": psutil.Process(pid).create_time(), "host": "lab-box", "_pid": pid}


def _queued(created: float) -> dict[str, Any]:
    return {"state": "queued", "created_at": at(created)}


def _failed(start: float, end: float, error: str, attempt: int = 1) -> dict[str, Any]:
    return {"state": "failed", "created_at": at(start + 1), "started_at": at(start), "finished_at": at(end),
            "error": error, "attempt": attempt, "host": "lab-box"}


def _cancelled(created: float) -> dict[str, Any]:
    return {"state": "cancelled", "created_at": at(created), "finished_at": at(created - 1), "error": "cancelled"}


# -- run folders ---------------------------------------------------------------------------------
class Files:
    """Appends to a run folder's files with times counted from the run's start."""

    def __init__(self, run_dir: Path, row: dict[str, Any]) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.dir = run_dir
        self.t0 = ts(row.get("started_at") or row["created_at"])
        self.pid = row.get("_pid", FAKE_PID)

    def event(self, seconds: float, type_: str, **fields: Any) -> None:
        self._append("events.jsonl", json.dumps({"t": self.t0 + seconds, "type": type_, **fields}) + "\n")

    def sample(self, **fields: Any) -> None:
        self._append("samples.jsonl", json.dumps(fields) + "\n")

    def out(self, text: str, stream: str = "stdout") -> None:
        self._append(f"{stream}.log", text)

    def _append(self, name: str, text: str) -> None:
        with open(self.dir / name, "a") as f:
            f.write(text)


def _write_nothing(run_dir: Path, row: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)


def _write_build(run_dir: Path, row: dict[str, Any]) -> None:
    f = Files(run_dir, row)
    f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
    f.event(1, "log", message="building tiny-lab: vocab 512, 4 layers, corpus 2000 items")
    for step in range(1, 31):
        f.event(2 + step * 7, "metric", step=step, values={"loss": round(6.2 * math.exp(-step / 9) + 1.1, 4)})
        f.event(2 + step * 7, "progress", step=step, total=30, desc="pretrain")
    f.event(220, "finished", result=BUILD_RESULT)
    f.out("pre-training tiny-lab for 30 steps\nsaved models/tiny-lab-0\n")


def _write_sft(run_dir: Path, row: dict[str, Any]) -> None:
    f = Files(run_dir, row)
    f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
    f.event(2, "log", message="SFT on lab/math-train: 1,200 examples, 40 steps, LoRA off")
    f.out("loading tiny-lab from models/tiny-lab-0\n", "stderr")
    for step in range(1, 41):
        loss = 2.4 * math.exp(-step / 12) + 0.35 + 0.05 * math.sin(step)
        lr = 5e-4 * (1 - (step - 1) / 40)
        values = {"loss": round(loss, 4), "learning_rate": lr, "grad_norm": round(1.5 + math.cos(step) / 3, 3),
                  "mean_token_accuracy": round(0.4 + 0.5 * (1 - math.exp(-step / 10)), 4)}
        f.event(5 + step * 20, "metric", step=step, values=values)
        f.event(5 + step * 20, "progress", step=step, total=40, desc="train")
        if step % 5 == 0:
            f.out(json.dumps({"loss": round(loss, 4), "learning_rate": lr, "epoch": round(step / 40, 2)}) + "\n")
            f.out(f"\r{step * 100 // 40:3d}%|{'#' * (step // 4):<10}| {step}/40\n", "stderr")
    f.event(820, "finished", result=SFT_RESULT)


def _write_rl(run_dir: Path, row: dict[str, Any]) -> None:
    f = Files(run_dir, row)
    f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
    f.event(3, "log", message="GRPO on lab/math-train: reward math, 4 generations per prompt")
    f.out("loading tiny-lab from models/tiny-lab-0\nvLLM not installed: generating with transformers\n",
          "stderr")
    steps = 60 if row["state"] == "running" else 100
    for step in range(1, steps + 1):
        values = rl_values(step)
        f.event(10 + step * 45, "metric", step=step, values=values)
        f.event(10 + step * 45, "progress", step=step, total=100, desc="train")
        if step % 10 == 0:
            f.out(json.dumps({k: values[k] for k in ("loss", "reward", "kl")} | {"step": step}) + "\n")
    if steps == 100:
        f.event(4600, "finished", result={"model_path": "models/rl"})


def rl_values(step: int) -> dict[str, float]:
    """GRPO's logged values at `step`: reward climbing, KL drifting up, a flat learning rate."""
    return {"loss": round(0.02 * math.sin(step / 3) + 0.01, 5),
            "reward": round(0.2 + 0.4 * (1 - math.exp(-step / 30)) + 0.04 * math.sin(step), 4),
            "kl": round(0.0006 * step + 0.002 * math.sin(step / 2) ** 2, 5), "learning_rate": 1e-6,
            "completions/mean_length": 40 + step % 7}


def _write_eval(accuracy: float) -> Any:
    def write(run_dir: Path, row: dict[str, Any]) -> None:
        f = Files(run_dir, row)
        f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
        for b, (bench, group) in enumerate(BENCHMARKS):
            right = 0
            for i in range(8):
                correct = _correct(i, b, accuracy)
                right += correct
                f.sample(**_sample(bench, group, i, correct))
            f.event(30 + b * 30, "score", benchmark=bench, group=group, metric="accuracy",
                    value=round(100 * right / 8, 1), n=8, model=row.get("_model"))
            f.event(30 + b * 30, "progress", step=b + 1, total=len(BENCHMARKS), desc="eval")
        f.event(100, "finished", result=eval_result(accuracy))
        f.out("lab_basic_arithmetic: 8 items\nlab_syllogism: 8 items\nlab_spell_backward: 8 items\n")

    return write


def _correct(i: int, b: int, accuracy: float) -> bool:
    """Whether item i of benchmark b is right in a run of about `accuracy`."""
    return (i * 7 + b * 3) % 10 < accuracy * 10


def eval_result(accuracy: float) -> dict[str, Any]:
    """The eval job's result: per benchmark its group, n and accuracy, and the group means."""
    scores = {bench: {"group": group, "n": 8,
                      "metrics": {"accuracy": round(100 * sum(_correct(i, b, accuracy) for i in range(8)) / 8, 1)}}
              for b, (bench, group) in enumerate(BENCHMARKS)}
    return {"scores": scores, "groups": {g: scores[bench]["metrics"]["accuracy"] for bench, g in BENCHMARKS}}


def _sample(bench: str, group: str, i: int, correct: bool) -> dict[str, Any]:
    """One scored item with a question, a completion and what the scorer made of it."""
    a, b = 12 + i * 7, 30 + i * 3
    truth = {"math": str(a + b), "other": "yes" if i % 2 else "no", "non": f"word{i}"[::-1]}[group]
    question = {"math": f"What is {a} + {b}?", "other": f"All cats are animals. Is cat {i} an animal?",
                "non": f"Spell 'word{i}' backwards."}[group]
    answer = truth if correct else ("41" if group == "math" else "maybe")
    flags = [] if correct or i % 3 else ["no_answer"]
    completion = f"<think>Let me work it out.</think> The answer is {answer}." if not flags else "I am not sure"
    return {"benchmark": bench, "group": group, "item_id": f"{bench}-{i:03d}", "sample_idx": 0,
            "prompt": question, "completion": completion, "extracted": None if flags else answer,
            "verdict": 1.0 if correct else 0.0, "tokens": 12 + i, "finish_reason": "stop", "flags": flags,
            "gold": truth}


def _write_failed(run_dir: Path, row: dict[str, Any]) -> None:
    f = Files(run_dir, row)
    f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
    f.event(5, "log", message="PCA shift: 100 items per benchmark, pooling paper")
    f.event(50, "failed", error=f"Traceback (most recent call last):\n  ...\n{row['error']}")
    f.out(f"Traceback (most recent call last):\n  File \"engine/jobs/analyse.py\", line 88\n{row['error']}\n",
          "stderr")


def _write_probe(run_dir: Path, row: dict[str, Any]) -> None:
    f = Files(run_dir, row)
    f.event(0, "started", pid=f.pid, host="lab-box", attempt=1)
    for step in (1, 2):
        f.event(step, "metric", step=step, values={"loss": 1.0 / step, "seq": step})
    f.event(3, "failed", error="RuntimeError: failing attempt 1 on purpose")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home")
    parser.add_argument("--runs", type=int, default=0, help="extra finished probe runs")
    parser.add_argument("--no-live", action="store_true", help="no running run (no fake worker)")
    parser.add_argument("--now", action="store_true",
                        help="times relative to the present instead of the fixed NOW (for a live look)")
    args = parser.parse_args()
    if args.now:
        global NOW
        NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rec = build_workspace(Workspace.resolve(args.home), args.runs, live=not args.no_live)
    print(json.dumps({"home": str(rec.ws.home), "ids": rec.ids,
                      "worker_pid": rec.worker.pid if rec.worker else None}))


if __name__ == "__main__":
    main()
