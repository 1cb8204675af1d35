"""A benchmark file and a scorer plugin through the daemon: the file's items are evaluated and
stored like a registered benchmark's, and a plugin that raises on some items makes those items
error samples while the run goes on and says how many errored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import sql_json
from tests.lm_eval_tasks import shipped_model

pytestmark = pytest.mark.slow

SCORER = """\
def grade(completion, item):
    if item["id"] in ("w1", "w3"):
        raise KeyError("no rule for " + item["id"])
    words = completion.split()
    return bool(words) and words[0] == item["answer"], words[0] if words else None
"""

BENCH = """\
name: my-spell
group: non
data: ./spell.jsonl
id: word_id
prompt: "Spell this word backward (example: sun -> nus): {{ word }}"
answer: reversed
scorer: ./grade.py:grade
generation: {max_new_tokens: 12}
"""


def test_a_benchmark_file_with_a_failing_plugin_runs_to_the_end(tix, ws, tmp_path: Path) -> None:
    from engine.evaluation.benchmarks import lab_items

    rows = [{"word_id": f"w{i}", "word": r["metadata"]["word"], "reversed": r["answer"]}
            for i, r in enumerate(lab_items("spell_backward", 6))]
    (tmp_path / "spell.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "grade.py").write_text(SCORER)
    (tmp_path / "my-spell.yaml").write_text(BENCH)
    (tmp_path / "exp.yaml").write_text(f"name: own\nbase: {{model: {shipped_model()}}}\n"
                                       "eval:\n  backend: hf\n  benchmarks:\n    - {file: ./my-spell.yaml}\n"
                                       "analysis: {}\n")
    result = tix("run", str(tmp_path / "exp.yaml"), "--wait", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    samples = sql_json(tix, "SELECT item_id, verdict, flags, extra->>'detail' AS detail FROM samples ORDER BY item_id")
    assert [s["item_id"] for s in samples] == [f"w{i}" for i in range(6)]
    errored = [s for s in samples if "scorer_error" in (s["flags"] or [])]
    assert [s["item_id"] for s in errored] == ["w1", "w3"] and all(s["verdict"] == 0 for s in errored)
    assert "KeyError: 'no rule for w1'" in json.loads(errored[0]["detail"])["error"]
    score = sql_json(tix, "SELECT value, n FROM scores WHERE benchmark = 'my-spell' AND metric = 'accuracy'")
    assert score[0]["n"] == 6
    run_id = sql_json(tix, "SELECT id FROM runs WHERE kind = 'eval'")[0]["id"]
    logged = [json.loads(line).get("message", "") for line in (ws.runs / run_id / "events.jsonl").read_text().splitlines()]
    assert "scorer errors (items scored 0, messages in their samples): my-spell 2" in logged


def test_home_flag_finds_the_workspace_benchmark_files(tmp_path: Path) -> None:
    """`tix --home H` means H everywhere, also where TIX_HOME is read (the checker, the planner)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    folder = tmp_path / "home" / "benchmarks"
    folder.mkdir(parents=True)
    (folder / "spell.jsonl").write_text(json.dumps({"word_id": "w0", "word": "sun", "reversed": "nus"}) + "\n")
    (folder / "my-spell.yaml").write_text(BENCH.replace("scorer: ./grade.py:grade\n", ""))
    (tmp_path / "exp.yaml").write_text("name: own\nbase: {model: tiny-lab}\neval:\n  benchmarks:\n"
                                       "    - {name: my-spell}\nanalysis: {}\n")
    env = {k: v for k, v in os.environ.items() if k != "TIX_HOME"}
    result = subprocess.run([sys.executable, "-m", "engine.cli", "--home", str(tmp_path / "home"), "check",
                             str(tmp_path / "exp.yaml")], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
