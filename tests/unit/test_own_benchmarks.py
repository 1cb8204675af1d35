"""A researcher's own benchmarks without changing tix: lm-eval entries checked against lm-eval's
index (no data loaded), run ids that follow the task's files, scorer plugins, and resume of an
lm-eval task from its journal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.evaluation import lmeval_index
from engine.evaluation.samples import Task, summarise
from engine.evaluation.scorers import get_scorer, plugin
from engine.evaluation.scorers.base import SCORER_ERROR, Verdict
from engine.experiments.plan import plan_experiment
from engine.experiments.spec import check_file, load_experiment
from tests.conftest import ROOT
from tests.lm_eval_tasks import shipped_model, write_tasks


@pytest.fixture(scope="session")
def lm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace per test session, so lm-eval's default index is read (6 s) once."""
    return tmp_path_factory.mktemp("lm-home")


@pytest.fixture
def tasks(tmp_path: Path, lm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIX_HOME", str(lm_home))
    return write_tasks(tmp_path / "lm_tasks", items=4)


def experiment(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text("name: own\nbase: {model: tiny-lab}\neval:\n  benchmarks:\n" + entries + "analysis: {}\n")
    return path


def errors(tmp_path: Path, entries: str) -> list[str]:
    return [str(e) for e in check_file(experiment(tmp_path, entries))]


# ── checking lm-eval entries ───────────────────────────────────────────────────────────────────


def test_lm_eval_entries_resolve_without_loading_data(tmp_path: Path, tasks: Path) -> None:
    entries = (f"    - {{lm_eval: tiny_offline, include_path: {tasks}, group: math}}\n"  # its data is nowhere
               "    - {lm_eval: gsm8k, group: math, num_fewshot: 5, limit: 200, chat: false}\n")
    assert errors(tmp_path, entries) == []


def test_an_unknown_task_is_one_line_with_the_nearest_names(tmp_path: Path, tasks: Path) -> None:
    found = errors(tmp_path, f"    - {{lm_eval: tiny_arth, include_path: {tasks}, group: math}}\n")
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'exp.yaml'}:5: eval.benchmarks[0].lm_eval: unknown lm-eval task "
                               "'tiny_arth' (did you mean 'tiny_arith'")
    assert "gsm8" in errors(tmp_path, "    - {lm_eval: gsm8, group: math}\n")[0]


def test_perplexity_tasks_are_refused_by_check(tmp_path: Path, tasks: Path) -> None:
    found = errors(tmp_path, f"    - {{lm_eval: tiny_perplexity, include_path: {tasks}, group: non}}\n")
    assert len(found) == 1 and "perplexity task (loglikelihood_rolling)" in found[0]


def test_entry_mistakes(tmp_path: Path, tasks: Path) -> None:
    assert "missing required key 'group'" in errors(tmp_path, "    - {lm_eval: gsm8k}\n")[0]
    assert "folder not found" in errors(tmp_path, "    - {lm_eval: gsm8k, group: math, include_path: ./nope}\n")[0]
    assert "not both" in errors(tmp_path, "    - {lm_eval: gsm8k, name: math500, group: math}\n")[0]
    assert "did you mean 'num_fewshot'" in errors(tmp_path, "    - {lm_eval: gsm8k, group: math, fewshot: 5}\n")[0]
    twice = errors(tmp_path, f"    - {{lm_eval: tiny_pair, include_path: {tasks}, group: non}}\n"
                             f"    - {{lm_eval: tiny_spell, include_path: {tasks}, group: non}}\n")
    assert len(twice) == 1 and "duplicate benchmark 'tiny_spell'" in twice[0]


def test_groups_expand_into_their_tasks(tasks: Path) -> None:
    found = lmeval_index.index(str(tasks))
    info = lmeval_index.check("tiny_pair", str(tasks))
    assert info.kind == "group" and [t.name for t in lmeval_index.leaves(info, found)] == ["tiny_spell", "tiny_sum"]



def test_tix_benchmarks_lists_lm_eval_tasks(tmp_path: Path, tasks: Path, lm_home: Path) -> None:
    """`tix benchmarks --lm-eval`: the installed tasks with the include path's over them, as JSON
    rows or a table; a missing include path is one line, exit 2."""
    from click.testing import CliRunner

    from engine.cli import cli

    listed = CliRunner().invoke(cli, ["--home", str(lm_home), "benchmarks", "--lm-eval", "--include-path",
                                      str(tasks), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["tiny_arith"] == {"name": "tiny_arith", "kind": "task", "output_type": "generate_until",
                                  "source": f"lm-eval:{tasks / 'arith.yaml'}"}
    assert rows["tiny_pair"]["kind"] == "group" and rows["gsm8k"]["output_type"] == "generate_until"
    assert not (lm_home / "tix.sock").exists()  # no daemon

    table = CliRunner().invoke(cli, ["--home", str(lm_home), "benchmarks", "--lm-eval", "--include-path", str(tasks)])
    assert table.exit_code == 0 and table.stdout.split("\n", 1)[0].split() == ["name", "kind", "output", "type", "source"]
    arith = next(line.split() for line in table.stdout.splitlines() if line.startswith("tiny_arith "))
    assert arith[:3] == ["tiny_arith", "task", "generate_until"] and arith[3].endswith("/arith.yaml")
    assert len(arith[3]) <= 60 and arith[3].startswith("lm-eval:")

    for args, said in ((["--lm-eval", "--include-path", str(tmp_path / "nope")], "no such folder"),
                       (["--include-path", str(tasks)], "add --lm-eval")):
        failed = CliRunner().invoke(cli, ["--home", str(lm_home), "benchmarks", *args])
        assert failed.exit_code == 2 and len(failed.stderr.splitlines()) == 1 and said in failed.stderr
        assert failed.stdout == ""

# ── run ids follow the task's files ─────────────────────────────────────────────────────────────


def eval_ids(path: Path) -> set[str]:
    return {r["id"] for r in plan_experiment(load_experiment(path)) if r["kind"] == "eval"}


def test_an_edited_task_yaml_or_its_data_is_a_new_run(tmp_path: Path, tasks: Path) -> None:
    path = experiment(tmp_path, "    - {lm_eval: tiny_arith, include_path: ./lm_tasks, group: math}\n")
    runs = plan_experiment(load_experiment(path))
    entry = next(r for r in runs if r["kind"] == "eval")["params"]["benchmarks"][0]
    assert entry["include_path"] == str(tasks) and entry["lm_eval_version"] == lmeval_index.lm_eval_version()
    before = eval_ids(path)
    assert eval_ids(path) == before
    (tasks / "arith.yaml").write_text((tasks / "arith.yaml").read_text().replace("max_gen_toks: 16", "max_gen_toks: 8"))
    edited = eval_ids(path)
    assert edited.isdisjoint(before)
    with (tasks / "arith_test.jsonl").open("a") as f:
        f.write(json.dumps({"question": "Calculate 1 + 1.", "answer": "2"}) + "\n")
    assert eval_ids(path).isdisjoint(edited)


def test_an_edited_scorer_plugin_is_a_new_run(tmp_path: Path) -> None:
    scorer = tmp_path / "grade.py"
    scorer.write_text("def grade(completion, item):\n    return completion.strip() == item['answer']\n")
    path = experiment(tmp_path, "    - {name: lab_chain_sum, scorer: ./grade.py:grade}\n")
    runs = plan_experiment(load_experiment(path))
    entry = next(r for r in runs if r["kind"] == "eval")["params"]["benchmarks"][0]
    assert entry["scorer"] == f"{scorer}:grade" and len(entry["scorer_signature"]) == 16
    before = eval_ids(path)
    scorer.write_text(scorer.read_text() + "# stricter\n")
    assert eval_ids(path).isdisjoint(before)


def test_scorer_plugin_mistakes_are_checked_without_running_it(tmp_path: Path) -> None:
    (tmp_path / "grade.py").write_text("raise SystemExit('never run by tix check')\ndef other(c, i):\n    return 1\n")
    found = errors(tmp_path, "    - {name: lab_chain_sum, scorer: ./grade.py:grade}\n")
    assert len(found) == 1 and "defines no function 'grade'" in found[0]
    assert "scorer file not found" in errors(tmp_path, "    - {name: lab_chain_sum, scorer: ./nope.py:grade}\n")[0]
    assert "cannot be imported" in errors(tmp_path, "    - {name: lab_chain_sum, scorer: no_such_pkg.mod:f}\n")[0]
    assert "did you mean 'exact_match'" in errors(tmp_path, "    - {name: lab_chain_sum, scorer: exact_mtch}\n")[0]


# ── scorer plugins ─────────────────────────────────────────────────────────────────────────────


PLUGIN = """\
def grade(completion, item):
    if completion == "boom":
        raise ZeroDivisionError("bad item " + item["id"])
    if completion == "half":
        return 0.5, "extracted half"
    if completion == "wild":
        return 7
    return completion.strip() == item["answer"]
"""


def test_a_plugin_scores_and_its_exceptions_become_error_samples(tmp_path: Path) -> None:
    from engine.evaluation.benchmarks import get_benchmark

    (tmp_path / "grade.py").write_text(PLUGIN)
    scorer = get_scorer(f"{tmp_path / 'grade.py'}:grade")
    item = {"id": "7", "answer": "42"}
    assert scorer(" 42 ", item).score == 1.0 and scorer("41", item).score == 0.0
    half = scorer("half", item)
    assert (half.score, half.extracted) == (0.5, "extracted half")
    for bad, message in (("boom", "ZeroDivisionError: bad item 7"), ("wild", "TypeError: a scorer returns")):
        verdict = scorer(bad, item)
        assert verdict.score == 0.0 and verdict.flags == [SCORER_ERROR] and verdict.detail["error"].startswith(message)
    samples = [{"item_id": str(i), "verdict": v.score, "flags": v.flags} for i, v in
               enumerate([scorer("42", item), scorer("boom", item), scorer("wild", item)])]
    task = Task(get_benchmark("lab_chain_sum"), "math", scorer.name, [], None, False)  # type: ignore[arg-type]
    summary = summarise(task, samples)
    assert summary["errors"] == 2 and summary["n"] == 3 and abs(summary["metrics"]["accuracy"] - 100 / 3) < 1e-9


def test_a_module_plugin_and_a_verdict_return(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "mygrades"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "strict.py").write_text("from engine.evaluation.scorers.base import Verdict\n"
                                       "def grade(c, item):\n    return Verdict(1.0, c.upper())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert plugin.problem("mygrades.strict:grade", tmp_path) is None
    verdict = get_scorer("mygrades.strict:grade")("yes", {})
    assert isinstance(verdict, Verdict) and verdict.extracted == "YES"


def test_tix_score_takes_a_plugin(tmp_path: Path, lm_home: Path) -> None:
    (tmp_path / "grade.py").write_text(PLUGIN)
    from engine.evaluation.benchmarks import get_benchmark, load_items

    items = load_items(get_benchmark("lab_chain_sum"), limit=4)
    lines = [{"index": i, "output": it["answer"] if i < 2 else "boom"} for i, it in enumerate(items)]
    (tmp_path / "gens.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = subprocess.run([sys.executable, "-m", "engine.cli", "--home", str(lm_home), "score", "-b",
                             "lab_chain_sum", "-g", "gens.jsonl", "--scorer", "./grade.py:grade", "--format", "json"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["accuracy"] == 50.0 and summary["scorer"].endswith("grade.py:grade")


# ── resume from the journal ────────────────────────────────────────────────────────────────────


def test_a_resumed_lm_eval_task_asks_the_backend_only_for_what_is_missing(tmp_path: Path, tasks: Path) -> None:
    from engine.evaluation import lmeval
    from engine.evaluation.backends import ModelRef
    from engine.evaluation.backends.hf import HFBackend

    backend = HFBackend(ModelRef(str(shipped_model())))
    asked: list[int] = []

    def generate(prompts, params):  # the real backend, counted
        asked.append(len(prompts))
        return backend.generate(prompts, params)

    def run(journal: Path) -> dict:
        lm = lmeval.TixLM(backend.tokenizer, generate, backend.loglikelihood_greedy, lmeval.Journal(journal), {},
                          lambda done, total: None, False)
        with lmeval.working_dir(str(tasks)):
            return lmeval.evaluate({"lm_eval": "tiny_arith", "include_path": str(tasks)}, lm)

    first = run(tmp_path / "journal.jsonl")
    assert sum(asked) == 4
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    (tmp_path / "partial.jsonl").write_text("\n".join(lines[:1]) + "\n" + lines[1][:20])  # killed mid-line
    asked.clear()
    second = run(tmp_path / "partial.jsonl")
    assert sum(asked) == 3  # the torn line is asked again, the whole one is not
    assert second["results"]["tiny_arith"] == first["results"]["tiny_arith"]
    assert [s["resps"] for s in second["samples"]["tiny_arith"]] == [s["resps"] for s in first["samples"]["tiny_arith"]]


# ── the jobs take every kind of entry ──────────────────────────────────────────────────────────


def test_the_jobs_find_each_kind_of_entry(tmp_path: Path, tasks: Path, lm_home: Path) -> None:
    """The eval job finds a workspace benchmark by name; the analyse job names each entry as the
    eval run named its samples (a file by its `name:`, an lm-eval group as its tasks), draws PCA
    prompts for tix's benchmarks and skips lm-eval tasks with one logged line."""
    from engine.jobs import analyse
    from engine.jobs.eval import make_task
    from tests.conftest import job_context

    home = tmp_path / "home"
    (home / "benchmarks").mkdir(parents=True)
    (lm_home / "cache").mkdir(exist_ok=True)
    (home / "cache").symlink_to(lm_home / "cache")  # lm-eval's default index, built once per session
    rows = "".join(json.dumps({"q": f"{i}+{i}", "a": str(2 * i)}) + "\n" for i in range(4))
    for folder in (home / "benchmarks", tmp_path):
        (folder / "sums.jsonl").write_text(rows)
    (home / "benchmarks" / "sums.yaml").write_text("name: sums\ngroup: math\ndata: ./sums.jsonl\nprompt: 'Q: {{ q }}'\nanswer: a\n")
    (tmp_path / "mine.yaml").write_text("name: mine\ndata: ./sums.jsonl\nprompt: '{{ q }} ='\nanswer: a\n")

    task = make_task({"name": "sums"}, {}, None, home)
    assert (task.bench.name, task.group, len(task.items)) == ("sums", "math", 4)

    entries = [{"name": "lab_chain_sum"}, {"name": "sums"}, {"file": str(tmp_path / "mine.yaml"), "group": "non"},
               {"lm_eval": "tiny_pair", "include_path": str(tasks), "group": "other"}]
    found = analyse.analysed(entries, home)
    assert [(e["name"], e["group"]) for e in found] == [
        ("lab_chain_sum", "math"), ("sums", "math"), ("mine", "non"), ("tiny_spell", "other"), ("tiny_sum", "other")]
    ctx = job_context(home, "analyse", {})
    drawn = analyse.pca_entries(ctx, found)
    assert [e["name"] for e in drawn] == ["lab_chain_sum", "sums", "mine"]
    assert analyse.pca_texts(drawn[1], 3, home) == ["Q: 0+0", "Q: 1+1", "Q: 2+2"]
    assert analyse.pca_texts(drawn[2], 3, home) == ["0+0 =", "1+1 =", "2+2 ="]
    logs = [json.loads(line)["message"] for line in (ctx.run_dir / "events.jsonl").read_text().splitlines()]
    assert len(logs) == 1 and logs[0].startswith("pca_shift: skipping lm-eval task(s) tiny_spell, tiny_sum: ")

    samples = ctx.run_dir / "samples.jsonl"  # no spec: the benchmarks are those of the samples
    samples.write_text(json.dumps({"benchmark": "tiny_sum", "group": "other", "scorer": "lm_eval"}) + "\n"
                       + json.dumps({"benchmark": "sums", "group": "math", "scorer": "exact_match"}) + "\n")
    assert analyse.sampled_benchmarks(ctx.run_dir) == [
        {"name": "tiny_sum", "group": "other", "lm_eval": "tiny_sum"}, {"name": "sums", "group": "math"}]
