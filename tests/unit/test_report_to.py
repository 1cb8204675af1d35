"""trl's trackers alongside tix: `report_to` in `train.args` is checked by `tix check` against the
installed transformers' integrations and reaches the trainer, beside tix's own event callback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.experiments.spec import check_file
from tests.conftest import ROOT, job_context, math_train_file
from tests.unit.test_spec import sft, write


def test_the_integrations_are_transformers_own_read_without_importing_it() -> None:
    code = ("import sys; from engine.experiments.trainargs import report_integrations; "
            "print(','.join(report_integrations())); print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    names, imported = out.stdout.split()
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    assert names.split(",") == list(INTEGRATION_TO_CALLBACK) and imported == "False"
    assert {"wandb", "tensorboard", "mlflow", "trackio"} <= set(names.split(","))


@pytest.mark.parametrize("value", ["tensorboard", "none", "all", "[wandb, tensorboard]", "[trackio]", "[]"])
def test_known_trackers_pass(tmp_path: Path, value: str) -> None:
    assert check_file(write(tmp_path, sft(f"        report_to: {value}\n"))) == []


@pytest.mark.parametrize(("value", "message", "suggestion"), [
    ("wandbb", "unknown tracker 'wandbb' for report_to: transformers knows azure_ml, comet_ml", "wandb"),
    ("[tensorboard, mlfow]", "unknown tracker 'mlfow' for report_to (none and all only alone)", "mlflow"),
    ("[wandb, none]", "unknown tracker 'none' for report_to (none and all only alone)", None),
    ("3", "expected a string, a list (each a string) or null, got 3", None),
])
def test_unknown_trackers_are_one_line_with_a_suggestion(tmp_path: Path, value: str, message: str,
                                                        suggestion: str | None) -> None:
    errors = check_file(write(tmp_path, sft(f"        report_to: {value}\n")))
    assert len(errors) == 1, errors
    error = errors[0]
    assert (error.line, error.path, error.suggestion) == (10, "models.s.train.args.report_to", suggestion)
    assert error.message.startswith(message), error.message


def test_tix_check_names_the_bad_tracker(tmp_path: Path) -> None:
    path = write(tmp_path, sft("        report_to: tensorbord\n"))
    done = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(path)], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{path}:10: models.s.train.args.report_to: unknown tracker 'tensorbord'")
    assert done.stderr.rstrip().endswith("(did you mean 'tensorboard'?)")


def test_output_dir_is_still_tixs(tmp_path: Path) -> None:
    [error] = check_file(write(tmp_path, sft("        output_dir: /tmp/out\n")))
    assert "'output_dir' is set by tix" in error.message


def test_make_config_passes_report_to_and_names_the_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from engine.jobs.train import make_config

    plain = make_config("sft", {}, tmp_path / "train-abc", False, {})
    assert plain.report_to == [] and plain.run_name == "train-abc"
    chosen = make_config("sft", {"report_to": "tensorboard", "output_dir": "/elsewhere"},
                         tmp_path / "train-abc", False, {})
    assert chosen.report_to == ["tensorboard"] and chosen.output_dir == str(tmp_path / "train-abc")


@pytest.mark.slow
def test_sft_reports_to_tensorboard_and_to_tix(tmp_path: Path, tiny_model: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from engine.jobs import train

    data = math_train_file(tmp_path / "math.jsonl", 32)
    args = {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "report_to": "tensorboard"}
    ctx = job_context(tmp_path, "train", {"model": str(tiny_model), "method": "sft", "data": str(data),
                                          "args": args}, run_id="train-tb")
    assert train.run(ctx)["steps"] == 2
    files = list((ctx.run_dir / "runs").glob("*/events.out.tfevents.*"))
    assert len(files) == 1, list(ctx.run_dir.rglob("*tfevents*"))
    scalars = EventAccumulator(str(files[0].parent)).Reload().Tags()["scalars"]
    assert "train/loss" in scalars and "train/learning_rate" in scalars
    events = [json.loads(x) for x in (ctx.run_dir / "events.jsonl").read_text().splitlines()]
    losses = [e["values"]["loss"] for e in events if e["type"] == "metric" and "loss" in e["values"]]
    assert len(losses) == 2  # tix's own callback still reports every logging step
