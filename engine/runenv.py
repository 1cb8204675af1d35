"""What code and libraries a run ran with: `environment.json` in its run folder.

A run's id hashes its parameters and tix's version, but not the git commit of a checkout being
edited between runs, nor the torch or trl that the virtual environment held that day; two runs with
the same parameters and different results then differ in nothing tix shows. So the worker writes
this file when it starts (engine/jobs/worker.py, the one entry point of every job kind, each
attempt afresh), and the daemon reads it into the run's configuration (`code.*`, `env.*`:
engine/analysis/rundiff.py), where the config tab and `tix diff` show a library upgrade.

Recording is cheap and never fails a run: versions come from package metadata (importlib.metadata,
no imports), the commit from reading `.git` and whether the tree is dirty from one `git status`
with a short timeout; whatever cannot be found is null. Imports nothing heavy: the daemon and
workers both use it.
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import engine
from engine.events import write_atomic

ENVIRONMENT_FILE = "environment.json"
#: Distributions whose versions change results; absent ones are recorded as null.
PACKAGES = ("torch", "transformers", "trl", "vllm", "lm_eval", "duckdb")
#: The tix checkout (a git checkout when tix runs from its sources, else site-packages).
CHECKOUT = Path(engine.__file__).resolve().parent.parent
GIT_TIMEOUT_S = 3.0


def collect(checkout: Path = CHECKOUT) -> dict[str, Any]:
    """This process's environment: {"code": {tix_version, git_commit, git_dirty}, "env": {python,
    host, and each of PACKAGES}}; the two sections are the run's `code.*` and `env.*` keys."""
    commit = git_commit(checkout)
    code = {"tix_version": engine.__version__, "git_commit": commit,
            "git_dirty": git_dirty(checkout) if commit else None}
    env: dict[str, Any] = {"python": platform.python_version(), "host": socket.gethostname()}
    env.update({name: package_version(name) for name in PACKAGES})
    return {"code": code, "env": env}


def package_version(name: str) -> str | None:
    """The installed version of distribution `name` (None when not installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_dir(checkout: Path) -> Path | None:
    """The checkout's git directory: `.git`, or where a worktree's `.git` file points."""
    dot = checkout / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():
        text = dot.read_text().strip()
        if text.startswith("gitdir:"):
            found = Path(text.partition(":")[2].strip())
            return found if found.is_absolute() else checkout / found
    return None


def git_commit(checkout: Path) -> str | None:
    """HEAD's commit read from the files (no git process): a loose ref, then packed-refs."""
    try:
        where = git_dir(checkout)
        if where is None:
            return None
        head = (where / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.partition(":")[2].strip()
        common = where / "commondir"
        roots = [where] + ([(where / common.read_text().strip()).resolve()] if common.is_file() else [])
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text().strip() or None
            if (root / "packed-refs").is_file():
                for line in (root / "packed-refs").read_text().splitlines():
                    sha, _, name = line.partition(" ")
                    if name == ref:
                        return sha
    except OSError:
        return None
    return None


def git_dirty(checkout: Path) -> bool | None:
    """Whether tracked files differ from HEAD (`git status`, untracked files ignored); None when git
    is missing, slow or fails."""
    try:
        done = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                              capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None


def record(run_dir: Path) -> str | None:
    """Write this process's environment into `run_dir`; returns an error line instead of raising
    (the worker logs it and runs the job anyway)."""
    try:
        write_atomic(run_dir / ENVIRONMENT_FILE, json.dumps(collect(), indent=1) + "\n")
    except Exception as exc:  # noqa: BLE001 - the environment is a record, never a reason to fail
        return f"environment not recorded: {type(exc).__name__}: {exc}"
    return None


def read(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's environment, as its `code` and `env` sections (None: an older run without
    the file, or a file that is not a JSON object)."""
    try:
        found = json.loads((run_dir / ENVIRONMENT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    return {k: v for k, v in found.items() if k in ("code", "env") and isinstance(v, dict)}
