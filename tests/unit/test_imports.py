"""Import rules: clients stay light, storage stays free of ML and UI libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = ["torch", "transformers", "trl", "vllm"]


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


@pytest.mark.parametrize("module", ["engine.cli", "engine.client.connection", "engine.experiments.spec", "engine.experiments.plan", "tui"])
def test_clients_import_no_ml_library_and_no_duckdb(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert not loaded & {*HEAVY, "duckdb", "textual"} - ({"textual"} if module == "tui" else set())


def test_storage_and_daemon_import_no_ml_or_ui_library() -> None:
    loaded = modules_after("import storage, engine.daemon.server, engine.jobs.worker, engine.jobs.probe")
    assert not loaded & {*HEAVY, "textual"}


def test_cli_help_runs_without_heavy_imports() -> None:
    loaded = modules_after("from engine.cli import cli; cli.main(['--help'], standalone_mode=False)")
    assert not loaded & {*HEAVY, "duckdb"}


# -- rules per folder: every import statement in a folder's files, lazy ones inside functions too ---

ML = ("torch", "transformers", "trl", "vllm", "accelerate", "peft", "deepspeed")
#: folder (or file) -> module prefixes nothing in it may import, and why.
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "engine/client": (("engine.daemon", "engine.jobs", "storage", "duckdb", "textual", "tui", *ML),
                      "clients talk to the daemon through the socket only"),
    "tui": (("engine.daemon", "engine.jobs", "storage", "duckdb", "numpy", *ML),
            "the TUI process stays light and never opens the database"),
    "engine/jobs": (("storage", "duckdb", "engine.daemon", "engine.client", "textual", "tui"),
                    "workers write their run folder only; the daemon ingests it"),
    "engine/experiments": (("storage", "duckdb", "engine.daemon", "engine.jobs", "engine.client", "textual", *ML),
                           "checking a file (tix check, the TUI editor) must stay cheap"),
    "engine/evaluation": (("storage", "duckdb", "engine.daemon", "engine.jobs", "engine.client", "textual", "tui"),
                          "evaluation code runs in workers and in `tix score`, not in the daemon"),
    "engine/analysis": (("storage", "duckdb", "engine.daemon", "engine.jobs", "engine.client", "textual", "tui"),
                        "analysis code is shared by the daemon, the CLI, the TUI and workers"),
    "engine/lab": (("storage", "duckdb", "engine.daemon", "engine.client", "textual", "tui"),
                   "the lab runs in workers and `tix demo` (a client)"),
    "engine/daemon": (("engine.jobs", "textual", "tui", *ML), "the daemon starts workers, it never runs a job"),
    "storage": (("engine", "textual", "tui", *ML), "the database layer knows nothing of the processes above it"),
    "engine/events.py": (("engine.daemon", "engine.jobs", "storage", "duckdb", *ML), "shared by daemon and workers"),
    "engine/workspace.py": (("engine.daemon", "engine.jobs", "storage", "duckdb", *ML), "shared by every process"),
    "engine/runenv.py": (("engine.daemon", "engine.jobs", "storage", "duckdb", *ML), "shared by daemon and workers"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` in `path` names, lazy ones too."""
    return import_names(ast.walk(ast.parse(path.read_text(), str(path))), package_of(path))


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def import_names(nodes: Iterable[ast.AST], package: str) -> set[str]:
    """Modules named by the import statements among `nodes`, relative imports resolved against
    `package` (`from x import y` counts both x and x.y: y may be a module)."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def files_under(target: str) -> list[Path]:
    path = ROOT / target
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def breaks(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("target", sorted(RULES))
def test_folder_import_rules(target: str) -> None:
    forbidden, why = RULES[target]
    files = files_under(target)
    assert files, f"{target}: no Python files (rule names a folder that moved?)"
    bad = [f"{f.relative_to(ROOT)} imports {m}" for f in files for m in sorted(imported_modules(f))
           if breaks(m, forbidden)]
    assert not bad, f"{target}: {why}:\n" + "\n".join(bad)


def test_rules_see_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: an import inside a function and a relative one are both found."""
    pkg = ROOT / "engine" / "client"
    probe = pkg / "_rule_probe_test.py"
    probe.write_text("def f():\n    import torch\n    from ..daemon import server\n")
    try:
        found = imported_modules(probe)
    finally:
        probe.unlink()
    assert {"torch", "engine.daemon", "engine.daemon.server"} <= found


def test_every_engine_folder_has_a_rule_and_a_docstring() -> None:
    """A new folder under engine/ must say what lives there and get an import rule."""
    for folder in sorted(p for p in (ROOT / "engine").iterdir() if (p / "__init__.py").exists()):
        assert f"engine/{folder.name}" in RULES, f"engine/{folder.name} has no import rule"
        assert ast.get_docstring(ast.parse((folder / "__init__.py").read_text())), f"{folder} lacks a docstring"


def test_no_import_cycles() -> None:
    """No cycle among project modules, counting lazy imports inside functions too: a lazy import
    that closes a circle hides which side owns the shared piece."""
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(mod: str, stack: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph[mod]):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*stack[stack.index(dep):], dep])
            if dep not in state:
                visit(dep, [*stack, dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (a package counts as its __init__).

    An import of one's own parent package is left out: Python imports it first anyway, and a
    package that registers its submodules (scorers/, backends/) is not a circle between parts."""
    files = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
             for top in ("engine", "storage", "tui") for f in (ROOT / top).rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in files and not name.startswith(m)}
            for name, path in files.items()}
