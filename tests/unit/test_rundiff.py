"""Issue 25.13: a run's configuration as flat keys and `tix diff RUN RUN`, against a real daemon on
the recorded workspace (tests/tui/recorded.py): only differing keys, exit 0; an unknown run is one
line and a non-zero exit."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from engine import cli
from engine.analysis.rundiff import MISSING, config_of, differing, flatten
from engine.events import SPEC_FILE
from engine.workspace import Workspace
from tests.tui.recorded import Recorded, build_workspace


def test_flatten_makes_dotted_keys() -> None:
    flat = flatten({"args": {"learning_rate": 5e-4, "max_steps": 150}, "stop": [{"x": 1}], "tags": ["a"],
                    "lora": None, "opts": {}})
    assert flat == {"args.learning_rate": 5e-4, "args.max_steps": 150, "stop[0].x": 1, "tags": ["a"],
                    "lora": None, "opts": {}}


def test_differing_keeps_only_changed_and_one_sided_keys() -> None:
    left = {"params.args.learning_rate": 5e-4, "params.data": "lab/math-train", "params.reward": None}
    right = {"params.args.learning_rate": 5e-5, "params.data": "lab/math-train", "params.seed": 1}
    assert differing(left, right) == [("params.args.learning_rate", "0.0005", "5e-05"),
                                      ("params.reward", "null", MISSING), ("params.seed", MISSING, "1")]


def test_config_resolves_inputs_from_the_spec() -> None:
    run = {"id": "train-0123456789", "kind": "train", "name": "sft", "experiment": "lab", "deps": ["build-1"],
           "params": {"model": {"from_run": "build-1", "key": "model_path"}, "slurm": {"time": "1:00:00"}},
           "result": {"model_path": "models/sft", "final": {"loss": 0.4}, "sha256": "abc"}}
    spec = {"params": {"model": "models/base"}, "inputs": {"build-1": {"model_path": "models/base"}}}
    flat = config_of(run, spec, "1")
    assert flat["params.model"] == "models/base" and flat["params.slurm.time"] == "1:00:00"
    assert flat["inputs.build-1.model_path"] == "models/base"
    assert flat["code.run_hash"] == "0123456789" and flat["code.job_version"] == "1"
    assert flat["outputs.model_path"] == "models/sft" and flat["outputs.sha256"] == "abc"
    assert "outputs.final.loss" not in flat  # a result's figures are on the results tab
    unstarted = config_of(run)
    assert unstarted["params.model.from_run"] == "build-1"


@pytest.fixture
def recorded_ws(ws: Workspace) -> Recorded:
    rec = build_workspace(ws, live=False)
    spec = {"run_id": rec.ids["sft"], "params": {"model": "models/tiny-lab-0", "method": "sft",
                                                 "data": "lab/math-train", "args": {"seed": 3}},
            "inputs": {rec.ids["build"]: {"model_path": "models/tiny-lab-0"}}}
    (ws.run_dir(rec.ids["sft"]) / SPEC_FILE).write_text(yaml.safe_dump(spec))
    return rec


def tix(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out, out.err


def test_tix_diff_prints_only_differing_keys(recorded_ws: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    ids = recorded_ws.ids
    code, out, err = tix(capsys, "diff", ids["sft"], ids["rl"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["key", ids["sft"], ids["rl"]]
    keys = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert keys["params.method"] == ["sft", "grpo"]
    assert keys["run.name"] == ["sft", "rl"]
    assert keys["params.args.seed"] == ["3", MISSING]  # the sft run's spec.yaml gave it a seed
    assert "params.data" not in keys and "run.kind" not in keys  # equal keys are left out
    assert lines[-1].endswith("equal") and f"{len(keys)} differing" in lines[-1]

    code, out, _ = tix(capsys, "diff", ids["sft"], ids["rl"][:9], "--json")  # a unique prefix
    found: dict[str, Any] = json.loads(out)
    assert code == 0 and found["right"] == ids["rl"]
    assert ["params.method", "sft", "grpo"] in found["rows"]


def test_tix_diff_of_an_unknown_run_is_one_line(recorded_ws: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = tix(capsys, "diff", recorded_ws.ids["sft"], "train-nosuchrun")
    assert code == 2 and not out
    assert err.count("\n") == 1 and "no run matches 'train-nosuchrun'" in err and "Traceback" not in err
