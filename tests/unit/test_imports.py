"""Import rules: clients stay light, storage stays free of ML and UI libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ["torch", "transformers", "trl", "vllm"]


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


@pytest.mark.parametrize("module", ["engine.cli", "engine.client", "engine.spec", "engine.plan", "tui"])
def test_clients_import_no_ml_library_and_no_duckdb(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert not loaded & {*HEAVY, "duckdb", "textual"} - ({"textual"} if module == "tui" else set())


def test_storage_and_daemon_import_no_ml_or_ui_library() -> None:
    loaded = modules_after("import storage, engine.server, engine.worker, engine.jobs.probe")
    assert not loaded & {*HEAVY, "textual"}


def test_cli_help_runs_without_heavy_imports() -> None:
    loaded = modules_after("from engine.cli import cli; cli.main(['--help'], standalone_mode=False)")
    assert not loaded & {*HEAVY, "duckdb"}
