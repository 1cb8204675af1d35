"""The `tix` command line as a user runs it: one-line errors, exit codes, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.workspace import Workspace
from tests.conftest import ROOT, wait_until

TINY_LAB = str(ROOT / "experiments" / "tiny-lab.yaml")


def one_line_error(result) -> str:
    """The error a command printed: exactly one line, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bare_tix_and_every_command_have_help(tix) -> None:
    bare = tix()
    assert bare.returncode == 0 and "Commands:" in bare.stdout
    for command in ["run", "status", "logs", "cancel", "check", "sql", "demo", "daemon",
                    "daemon start", "daemon stop", "daemon status"]:
        result = tix(*command.split(), "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command


def test_check_ok_and_invalid(tix, tmp_path: Path) -> None:
    assert tix("check", TINY_LAB).stdout.strip() == "ok"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbase: {model: tiny-lab}\nevl: {suite: lab}\n")
    result = tix("check", str(bad))
    assert result.returncode == 2
    assert one_line_error(result) == f"{bad}:3: evl: unknown key 'evl' (did you mean 'eval'?)"


def test_check_plan_lists_the_runs_and_their_gpus(tix) -> None:
    """The paper's experiment files are valid for the installed trl, and --plan is their dry run."""
    files = [str(ROOT / "experiments" / f) for f in ("paper-controlled.yaml", "paper-zoo.yaml", "paper-small.yaml")]
    assert tix("check", *files).stdout.splitlines() == [f"{f}: ok" for f in files]
    out = tix("check", "--plan", files[0]).stdout.splitlines()
    rows = {(line.split()[1], line.split()[2]): line.split()[3] for line in out[3:-1]}
    assert rows[("datagen", "think-sft")] == rows[("train", "rl")] == rows[("eval", "unireason-rl")] == "8"
    assert rows[("analyse", "rl")] == "1" and out[-1].startswith("18 runs")


def test_run_refuses_an_invalid_file_before_touching_the_daemon(tix, ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "empty.yaml"
    bad.write_text("")
    result = tix("run", str(bad))
    assert result.returncode == 2 and "empty" in one_line_error(result)
    assert not ws.socket.exists()


def test_demo_refuses_a_missing_or_invalid_file_before_touching_the_daemon(tix, ws: Workspace,
                                                                          tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = tix("demo", str(missing))
    assert result.returncode == 1 and one_line_error(result) == f"tix: error: {missing} not found"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbase: {model: tiny-lab}\nevl: {suite: lab}\n")
    result = tix("demo", str(bad))
    assert result.returncode == 2 and one_line_error(result) == f"{bad}:3: evl: unknown key 'evl' (did you mean 'eval'?)"
    assert not ws.socket.exists()


def test_run_status_and_cancel_an_experiment(tix) -> None:
    queued = tix("run", TINY_LAB)
    assert queued.returncode == 0, queued.stderr
    assert len(queued.stdout.splitlines()) == 8  # build, 2 train, 3 eval, 2 analyse
    status = json.loads(tix("status", "--json", "--experiment", "tiny-lab").stdout)
    assert len(status) == 8 and {"id", "experiment", "kind", "state"} <= set(status[0])
    assert {r["kind"] for r in status} == {"build", "train", "eval", "analyse"}
    again = tix("run", TINY_LAB)
    assert again.stdout.count("(reused)") == 8
    assert tix("cancel", "tiny-lab").returncode == 0
    # the build copies the shipped base in about a second, so it may have succeeded already
    wait_until(lambda: {(r["kind"] == "build", r["state"]) for r in json.loads(tix("status", "--json").stdout)}
               <= {(True, "succeeded"), (True, "cancelled"), (False, "cancelled")}, timeout=30)
    table = tix("status")
    assert table.returncode == 0 and "cancelled" in table.stdout and "experiment" in table.stdout


@pytest.mark.parametrize("sql", ["DELETE FROM runs", "DROP TABLE runs", "CREATE TABLE x (a INT)",
                                 "COPY runs TO '/tmp/tix-out.csv'",
                                 "with x as (delete from runs returning *) select * from x"])
def test_sql_refuses_writes_with_exit_2(tix, sql: str) -> None:
    result = tix("sql", sql)
    assert result.returncode == 2
    assert "read-only" in one_line_error(result)


def test_sql_bad_query_prints_duckdb_message(tix) -> None:
    result = tix("sql", "SELEC 1")
    assert result.returncode == 2
    assert "syntax error" in one_line_error(result)
    missing = tix("sql", "SELECT * FROM no_such_table")
    assert missing.returncode == 2 and "no_such_table" in one_line_error(missing)


def test_sql_formats(tix) -> None:
    query = "SELECT 1 AS a, 'x,y' AS b UNION ALL SELECT 2, NULL ORDER BY a"
    assert json.loads(tix("sql", query, "--format", "json").stdout) == [{"a": 1, "b": "x,y"},
                                                                     {"a": 2, "b": None}]
    assert tix("sql", query, "--format", "csv").stdout == 'a,b\n1,"x,y"\n2,\n'
    table = tix("sql", query).stdout
    assert "(2 rows)" in table and "x,y" in table
    assert json.loads(tix("sql", "-", "--format", "json", input="SELECT 3 AS c").stdout) == [{"c": 3}]
    capped = tix("sql", "SELECT * FROM range(50)", "--max-rows", "5", "--format", "json")
    assert len(json.loads(capped.stdout)) == 5 and "first 5 rows" in capped.stderr


def test_unknown_run_is_a_one_line_error(tix) -> None:
    for args in (["logs", "nope"], ["cancel", "nope"]):
        result = tix(*args)
        assert result.returncode == 2 and "no run matches 'nope'" in one_line_error(result)


def test_bad_settings_file_is_reported(tix, ws: Workspace) -> None:
    ws.ensure()
    ws.config.write_text("idle_timout: 3\n")
    result = tix("status")
    assert result.returncode == 1
    assert "unknown setting 'idle_timout'" in one_line_error(result)
    assert "unknown setting 'idle_timout'" in ws.log.read_text()


def test_sql_table_shows_readable_floats_and_csv_keeps_every_digit(tix) -> None:
    query = "SELECT 57.99999999999999::DOUBLE AS a, 28.999999999999996::DOUBLE AS b, 0.123456789::DOUBLE AS c"
    table = tix("sql", query)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[2].split() == ["58", "29", "0.123457"]
    csv = tix("sql", query, "--format", "csv")
    assert "57.99999999999999" in csv.stdout and "0.123456789" in csv.stdout
