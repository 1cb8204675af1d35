"""The one real job of this version end to end through the daemon: building the tiny lab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from engine.client.connection import Client
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from tests.conftest import ROOT, wait_state

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.mark.slow
def test_build_run_through_the_daemon(ws: Workspace, client: Client, tix) -> None:
    params = {"model": "tiny-lab", "seed": 1, "pretrain_steps": 20, "corpus_items": 2000,
              "vocab_size": 512, "batch_size": 16}
    build = make_run("build", "base", "lab-e2e", params, [])
    dependent = make_run("probe", "after-build", "lab-e2e",
                         {"model_path": {"from_run": build["id"], "key": "model_path"}}, [build["id"]])
    client.request("submit", experiment={"name": "lab-e2e"}, runs=[build, dependent])
    done = wait_state(client, build["id"], TERMINAL, timeout=240)
    assert done["state"] == "succeeded", done["error"]
    model_path = Path(done["result"]["model_path"])
    assert model_path.parent == ws.models and (model_path / ".complete").exists()
    assert (model_path / "config.json").exists() and (model_path / "tokenizer.json").exists()
    # the dependent run received the model path resolved from the build's result
    after = wait_state(client, dependent["id"], TERMINAL)
    assert after["state"] == "succeeded" and after["result"]["model_path"] == str(model_path)
    curve = json.loads(tix("sql", f"SELECT step, value FROM metrics WHERE run_id = '{build['id']}' "
                                  "AND name = 'loss' ORDER BY step", "--format", "json").stdout)
    assert len(curve) >= 3 and curve[-1]["value"] < curve[0]["value"]
    events = json.loads(tix("sql", f"SELECT type FROM events WHERE run_id = '{build['id']}'",
                            "--format", "json").stdout)
    assert {"started", "progress", "finished"} <= {e["type"] for e in events}


def quick_lab(path: Path) -> Path:
    """The shipped tiny-lab.yaml with every setting kept (the shipped base, batch sizes, rates,
    rewards, generation) but its lengths cut: 3 training steps, 8 items per benchmark and per
    analysis. The full-length demo is `make demo`; `python bench/demo.py` times it."""
    data = yaml.safe_load((ROOT / "experiments" / "tiny-lab.yaml").read_text())
    for variant in data["models"].values():
        variant["train"]["args"]["max_steps"] = 3
    data["eval"]["limit"] = 8
    for analysis in data["analysis"].values():
        analysis["items"] = 8
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_end_to_end(ws: Workspace, tix, tmp_path: Path) -> None:
    """`tix demo FILE` on the shipped lab cut short: the shipped base (no build), SFT and GRPO on
    maths, three evaluations, two analyses, then its tables: accuracies, paired differences with
    their intervals, TI with intervals, and shift."""
    result = tix("demo", str(quick_lab(tmp_path / "quick-lab.yaml")), timeout=800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    runs = json.loads(tix("status", "--json").stdout)
    assert sorted((r["kind"], r["name"], r["state"]) for r in runs) == [
        ("analyse", "rl", "succeeded"), ("analyse", "sft", "succeeded"),
        ("build", "base", "succeeded"), ("eval", "base", "succeeded"), ("eval", "rl", "succeeded"),
        ("eval", "sft", "succeeded"), ("train", "rl", "succeeded"), ("train", "sft", "succeeded")]
    assert list(ws.models.glob("tiny-lab-*/.complete"))  # the shipped base, copied in
    out = result.stdout
    assert "Transferability Index" in out and "TI_other v1" in out and "TI_non v2" in out
    ti_table = out[out.index("TI_other v1"):out.index("Shift against")]
    models = [line.split()[0] for line in ti_table.splitlines() if line.split() and line.split()[0].rstrip("*")
              in ("base", "rl", "sft")]
    assert [m.rstrip("*") for m in models] == ["base", "rl", "sft"] and "next:" in out
    assert all(f"* {m[:-1]}: TI unstable" in ti_table for m in models if m.endswith("*"))  # starred: a footnote
    paired = out[out.index("Paired differences"):out.index("TI_other v1")]
    for model in ("rl", "sft"):  # each benchmark with its 8 items and interval, then each group's mean
        rows = [line.split() for line in paired.splitlines() if line.startswith(model + " ")]
        assert len(rows) == 9 and all(r[3] == "8" and r[5].startswith("[") for r in rows[:6]), paired
        assert [r[1] for r in rows[6:]] == ["math", "other", "non"], paired
    shift = out[out.index("Shift against"):out.index("next:")]
    for model in ("rl", "sft"):  # one row per group, every analysis filled in
        rows = [line.split() for line in shift.splitlines() if line.startswith(model + " ")]
        assert [r[1] for r in rows] == ["math", "other", "non"] and all("-" not in r[2:] for r in rows), shift
