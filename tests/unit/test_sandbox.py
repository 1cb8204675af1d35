"""The sandbox contains what model-written code can do: endless loops, fork bombs, huge
allocations, writes outside its folder, network access, environment snooping; and leaves nothing
behind. Also the `code_tests` scorer's extraction and its stdin/stdout tests."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from engine.evaluation.sandbox import OUTPUT_CAP, run_python
from engine.evaluation.scorers.code import code_tests, extract_code

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only")

ADD_ONE = {"id": "toy/0", "prompt": "def add_one(x):\n    \"\"\"x + 1\"\"\"\n", "entry_point": "add_one",
           "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-5) == -4\n",
           "timeout": 2.0}


def descendants() -> set[int]:
    """Our descendants' pids, zombies included (they still hold a pid)."""
    try:
        return {child.pid for child in psutil.Process().children(recursive=True)}
    except psutil.Error:  # one exited mid-walk: look again
        return descendants()




def wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(autouse=True)
def nothing_left_behind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """(h) every test ends with no sandbox process alive and no sandbox folder on disk.

    The sandbox folders go to a temp dir of this test's own (world-searchable, as the /tmp the
    sandbox uid needs when no mount namespace hides it), so other runs on the box don't count.
    """
    own = tempfile.mkdtemp(prefix="tix-sandbox-test-")
    os.chmod(own, 0o755)
    monkeypatch.setattr(tempfile, "tempdir", own)
    procs = descendants()
    yield
    assert wait_for(lambda: not descendants() - procs), f"left processes: {descendants() - procs}"
    assert not os.listdir(own), f"left in the temp dir: {os.listdir(own)}"
    os.rmdir(own)


# ------------------------------------------------------------------------- (f) normal code works


def test_normal_code_runs_and_stdout_is_captured() -> None:
    result = run_python("import sys\nprint('hello')\nprint('oops', file=sys.stderr)")
    assert (result.status, result.returncode) == ("ok", 0)
    assert result.stdout == "hello\n" and result.stderr == "oops\n"
    assert result.seconds < 5


def test_stdin_is_fed_and_the_working_folder_is_empty_and_writable() -> None:
    code = "import os\nprint(input()[::-1])\nprint(sorted(os.listdir('.')))\nopen('f.txt', 'w').write('x')"
    result = run_python(code, stdin="abc\n")
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == ["cba", "['main.py']"]


def test_output_is_capped() -> None:
    result = run_python("print('x' * 200_000)")
    assert result.ok and result.truncated
    assert len(result.stdout) == OUTPUT_CAP


def test_exceptions_are_failures_with_the_traceback() -> None:
    result = run_python("raise ValueError('nope')")
    assert (result.status, result.returncode) == ("failed", 1)
    assert "ValueError: nope" in result.stderr


def test_concurrent_runs_from_threads() -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: run_python(f"print({i} * {i})"), range(16)))
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(16)]


# ------------------------------------------------------------------- (a) endless loop is timed out


def test_infinite_loop_is_killed_by_the_time_limit() -> None:
    result = run_python("while True: pass", timeout=1.5)
    assert result.status == "timeout"
    assert result.seconds < 1.5 + 3


def test_infinite_loop_scores_zero() -> None:
    verdict = code_tests("```python\ndef add_one(x):\n    while True:\n        pass\n```", ADD_ONE)
    assert verdict.score == 0 and verdict.detail and verdict.detail["status"] == "timeout"


# ---------------------------------------------------------------------- (b) fork bomb is contained


@pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "rlimits-only"])
def test_fork_bomb_is_contained(namespaces: bool) -> None:
    before, peak, stop = len(psutil.pids()), [0, 0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(descendants()))
            peak[1] = max(peak[1], len(psutil.pids()))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_python("import os\nwhile True: os.fork()", timeout=3, max_procs=16, namespaces=namespaces)
    finally:
        stop.set()
        watcher.join()
    if result.status == "error":  # root, no namespaces and a Python only root can read
        assert "refusing" in result.error
        return
    assert result.status != "ok"
    assert peak[0] <= 16 + 2, "more of our processes than max_procs (+ launcher and init)"
    assert peak[1] - before < 200, "the machine's process count exploded"  # loose: the box is shared


def test_fork_bomb_scores_zero() -> None:
    bomb = "```python\nimport os\ndef add_one(x):\n    while True:\n        os.fork()\n```"
    assert code_tests(bomb, ADD_ONE).score == 0


def test_escaped_children_do_not_survive() -> None:
    code = ("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        os.setsid()\n"
            "        time.sleep(60)\nprint('parent done')")
    for namespaces in (True, False):
        result = run_python(code, timeout=3, namespaces=namespaces)
        assert result.status in ("ok", "error")  # error: the refusal, as above
        assert wait_for(lambda: not descendants())


# ------------------------------------------------------------------- (c) memory is limited


def test_huge_allocation_fails_inside_the_limit() -> None:
    result = run_python("x = bytearray(8 * 1024**3)", memory_mb=1024)
    assert result.status == "failed" and "MemoryError" in result.stderr
    assert result.seconds < 5


# -------------------------------------------------------------- (d) no writes outside the sandbox


def test_writes_outside_the_sandbox_do_not_happen() -> None:
    tag = secrets.token_hex(6)
    targets = [Path("/tmp", f"tix-escape-{tag}.txt"),
               Path(__file__).resolve().parent / f".tix-escape-{tag}.txt"]
    code = "\n".join(f"try:\n    open({str(t)!r}, 'w').write('x')\n    print('wrote')\n"
                     f"except OSError as exc:\n    print(type(exc).__name__)" for t in targets)
    result = run_python(code)
    try:
        if not result.isolation.get("fs"):
            pytest.skip("no mount namespace here: writes are limited only by file permissions")
        assert result.ok, result.stderr
        assert not any(t.exists() for t in targets)
        assert result.stdout.splitlines()[1] != "wrote"  # the repo is read-only in there
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


# ------------------------------------------------------------------------- (e) no network


def test_network_is_unreachable_where_isolated() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        result = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                     f"print('connected')")
        if not result.net_isolated:
            pytest.skip("no network namespace here (unshare not permitted)")
        assert result.status == "failed" and "connected" not in result.stdout
        with pytest.raises(BlockingIOError):
            server.accept()


# ----------------------------------------------------------------- (g) the environment is scrubbed


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIX_SANDBOX_MARKER", "secret")
    code = ("import os\nprint(os.environ.get('TIX_SANDBOX_MARKER'))\n"
            "print(os.environ['HOME'] == os.getcwd(), sorted(os.environ))")
    result = run_python(code)
    lines = result.stdout.splitlines()
    assert lines[0] == "None" and lines[1].startswith("True")
    assert "PYTHONHASHSEED" in lines[1]


def test_hash_seed_is_fixed() -> None:
    code = "print(hash('tix'))"
    assert run_python(code).stdout == run_python(code).stdout


# ------------------------------------------------------------------- the code_tests scorer


def test_extract_code_prefers_the_last_python_block() -> None:
    text = "```python\na = 1\n```\nthen\n```bash\nls\n```\n```python\nb = 2\n```\nbye"
    assert extract_code(text) == "b = 2\n"
    assert extract_code("```\nc = 3\n```") == "c = 3\n"
    assert extract_code("```python\nd = 4\n") == "d = 4\n"  # truncated, fence left open
    assert extract_code("    return x") == "    return x"


@pytest.mark.parametrize("completion", [
    "```python\ndef add_one(x):\n    return x + 1\n```",  # whole function
    "    return x + 1\n",  # body continuing the prompt
    "return x + 1",  # body that lost its indentation
    "Sure:\n```py\ndef add_one(x):\n    return x + 1\n\nif __name__ == '__main__':\n    input()\n```",
])
def test_correct_completions_pass(completion: str) -> None:
    verdict = code_tests(completion, ADD_ONE)
    assert verdict.score == 1, verdict.detail


@pytest.mark.parametrize("completion", [
    "```python\ndef add_one(x):\n    return x + 2\n```",
    "```python\nimport sys\nsys.exit(0)\n```",  # exiting early is not passing
    "```python\nimport os\nos._exit(0)\n```",
    "```python\ndef add_one(x):\n    return x +\n```",  # syntax error
])
def test_wrong_completions_fail(completion: str) -> None:
    assert code_tests(completion, ADD_ONE).score == 0


def test_empty_completion_is_no_answer() -> None:
    verdict = code_tests("```python\n```", ADD_ONE)
    assert verdict.score == 0 and verdict.flags == ["no_answer"]


def test_stdin_stdout_tests() -> None:
    item = {"id": "io/0", "tests": '[{"input": "2 3\\n", "output": "5\\n"}, '
                                   '{"input": "10 -4\\n", "output": "6"}]'}
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    floats = "```python\na, b = map(int, input().split())\nprint(f'{a + b:.8f}')\n```"
    assert code_tests(good, item).score == 1
    assert code_tests(good.replace("a + b", "a - b"), item).score == 0
    assert code_tests(floats, item).score == 1  # "5.00000000" is the number 5
    near = [{"input": "0 1000000", "output": "1000000.0000004"}]
    assert code_tests(floats, {**item, "tests": near}).score == 1  # reals: within 1e-6
    assert code_tests(good, {**item, "tests": [{"input": "1 1000000", "output": "1000000"}]}).score == 0
