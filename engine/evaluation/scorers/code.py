"""Code execution scorer: the completion's program must pass the item's tests in the sandbox.

Two kinds of item:

- HumanEval style (`prompt`, `test` defining `check(candidate)`, `entry_point`): the program is
  the prompt plus the completion, whether the completion is the whole function or only the
  body that continues the prompt; the harness runs `check(<entry_point>)`.
- Stdin/stdout style, LiveCodeBench's `tests: [{input, output}]` (a list, or that list as a JSON
  string): the program runs once per test with `input` on stdin, and its stdout must match.
- Functional style, LiveCodeBench's LeetCode problems (`testtype: functional`, `func_name`): each
  test's input is one JSON value per line, the arguments; the output is JSON. The harness calls
  `Solution().<func_name>(*args)` (a fresh instance per test), else a top-level `<func_name>`,
  else the program's first top-level function (evalchemy's rule), with the item's `timeout` per
  call; a tuple result counts as a list, then it must equal the expected value, as in
  LiveCodeBench's grader. The program is preceded by the imports LeetCode provides
  (`typing`, `collections`, `heapq`...), which LeetCode-style code relies on without writing.

The program runs inside a harness in `engine.evaluation.sandbox`. A pass needs exit status 0 *and* a
per-run random line that the harness prints only after the last test, so `exit(0)` or
`os._exit(0)` in the completion does not pass. The harness deletes its own file first; a
program that digs the line out of the harness's memory could still fake a pass: the sandbox
contains damage, it does not prove honesty.
"""

from __future__ import annotations

import json
import re
import secrets
import textwrap
from typing import Any

from engine.evaluation.sandbox import SandboxResult, run_python
from engine.evaluation.scorers.base import NO_ANSWER, Verdict, register

SANDBOX_ERROR = "sandbox_error"  # flag: the sandbox itself failed, so the 0 says nothing of the code
MAX_SECONDS = 120.0  # wall-clock cap for one sample, however many stdin/stdout tests it has
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON = {"python", "python3", "py", "py3"}

_CHECK_RUNNER = """
import os, sys
os.unlink(__file__)  # from here on the pass line lives only in memory


def _main(program, test, entry, nonce):
    namespace = {"__name__": "__solution__"}  # not __main__: skip the program's own demo block
    try:
        exec(compile(program, "solution.py", "exec"), namespace)
        exec(compile(test, "tests.py", "exec"), namespace)
        namespace["check"](namespace[entry])
    except SystemExit as exc:
        sys.exit(f"exited before the tests finished: {exc.code!r}")
    print(nonce, flush=True)


_main(**PAYLOAD)
"""

_IO_RUNNER = """
import decimal, math, os, subprocess, sys
os.unlink(__file__)  # from here on the pass line lives only in memory


def _token_equal(got, want):
    # equal text, equal numbers ("5.000" is "5"), or reals within 1e-6; never near integers
    if got == want:
        return True
    try:
        if decimal.Decimal(got) == decimal.Decimal(want):
            return True
    except decimal.InvalidOperation:
        return False
    if not any(c in got + want for c in ".eE"):
        return False
    return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-6)


def _same(got, want):
    got_lines, want_lines = got.strip().splitlines(), want.strip().splitlines()
    if len(got_lines) != len(want_lines):
        return False
    for got_line, want_line in zip(got_lines, want_lines):
        got_tokens, want_tokens = got_line.split(), want_line.split()
        if len(got_tokens) != len(want_tokens):
            return False
        if not all(_token_equal(g, w) for g, w in zip(got_tokens, want_tokens)):
            return False
    return True


def _main(program, tests, timeout, nonce):
    with open("solution.py", "w", encoding="utf-8") as f:
        f.write(program)
    for i, (stdin, want) in enumerate(tests):
        try:
            run = subprocess.run([sys.executable, "-s", "-P", "solution.py"], input=stdin,
                                 capture_output=True, encoding="utf-8", errors="replace",
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            sys.exit(f"test {i}: timed out after {timeout} s")
        if run.returncode != 0:
            sys.stderr.write(run.stderr[-4000:])
            sys.exit(f"test {i}: exited with {run.returncode}")
        if not _same(run.stdout, want):
            sys.exit(f"test {i}: wrong output")
    print(nonce, flush=True)


_main(**PAYLOAD)
"""


_CALL_RUNNER = """
import inspect, json, os, signal, sys
os.unlink(__file__)  # from here on the pass line lives only in memory


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _callable(namespace, name):
    solution = namespace.get("Solution")
    if name and inspect.isclass(solution) and hasattr(solution, name):
        return lambda *args: getattr(solution(), name)(*args)
    if name and callable(namespace.get(name)):
        return namespace[name]
    own = [v for v in namespace.values()
           if inspect.isfunction(v) and v.__code__.co_filename == "solution.py"]
    if not own:
        sys.exit(f"no function {name!r} to call")
    return own[0]


def _main(program, tests, name, timeout, nonce):
    out = sys.stdout
    sys.stdout = open(os.devnull, "w")  # what the solution prints must not bury the pass line
    namespace = {"__name__": "__solution__"}
    try:
        exec(compile(program, "solution.py", "exec"), namespace)
    except SystemExit as exc:
        sys.exit(f"exited while loading: {exc.code!r}")
    call = _callable(namespace, name)
    signal.signal(signal.SIGALRM, _alarm)
    for i, (given, want) in enumerate(tests):
        args = [json.loads(line) for line in given.split("\\n") if line.strip()]
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            got = call(*args)
        except _Timeout:
            sys.exit(f"test {i}: timed out after {timeout} s")
        except SystemExit as exc:
            sys.exit(f"test {i}: exited: {exc.code!r}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if isinstance(got, tuple):
            got = list(got)
        if got != json.loads(want):
            sys.exit(f"test {i}: wrong answer")
    out.write(nonce + "\\n")
    out.flush()


_main(**PAYLOAD)
"""

#: What LeetCode (and LiveCodeBench's grader) imports before a functional solution runs.
LEETCODE_IMPORTS = (
    "from typing import *\n"
    "from collections import *\n"
    "from itertools import *\n"
    "from functools import *\n"
    "from heapq import *\n"
    "from bisect import *\n"
    "from math import *\n"
    "from string import *\n"
    "import bisect, collections, functools, heapq, itertools, math, re, string\n"
)


@register("code_tests", "1")
def code_tests(completion: str, item: dict[str, Any]) -> Verdict:
    """Code: 1 if the completion's program passes all the item's tests in the sandbox, else 0."""
    code = extract_code(completion)
    if not code.strip():
        return Verdict(0.0, None, [NO_ANSWER], detail={"status": "no_code"})
    nonce = secrets.token_hex(16)
    harness, seconds = build_harness(code, item, nonce)
    result = run_python(harness, timeout=seconds)
    passed = result.ok and result.stdout.strip().endswith(nonce)
    flags = [SANDBOX_ERROR] if result.status == "error" else []
    return Verdict(float(passed), code, flags, detail=_detail(result, passed))


def extract_code(completion: str) -> str:
    """The last ```python block, else the last fenced block of any language, else the raw text.

    A fence left open (a truncated generation) counts, running to the end of the text.
    """
    blocks = _FENCE.findall(completion)
    python = [body for lang, body in blocks if lang.strip().lower() in _PYTHON]
    if python:
        return python[-1]
    return blocks[-1][1] if blocks else completion


def build_harness(code: str, item: dict[str, Any], nonce: str) -> tuple[str, float]:
    """The sandbox's main.py for this item, and the wall-clock seconds it gets."""
    timeout = float(item.get("timeout", 6.0))
    if item.get("test") and item.get("entry_point"):
        payload = {"program": humaneval_program(code, item), "test": item["test"],
                   "entry": item["entry_point"], "nonce": nonce}
        return f"PAYLOAD = {payload!r}\n{_CHECK_RUNNER}", timeout
    if item.get("tests"):
        tests = _test_list(item["tests"])
        pairs = [(t["input"], t["output"]) if isinstance(t, dict) else (t[0], t[1]) for t in tests]
        seconds = min(timeout * len(pairs) + 5.0, MAX_SECONDS)
        if is_functional(item, tests):
            payload = {"program": LEETCODE_IMPORTS + code, "tests": pairs, "name": item.get("func_name"),
                       "timeout": timeout, "nonce": nonce}
            return f"PAYLOAD = {payload!r}\n{_CALL_RUNNER}", seconds
        payload = {"program": code, "tests": pairs, "timeout": timeout, "nonce": nonce}
        return f"PAYLOAD = {payload!r}\n{_IO_RUNNER}", seconds
    raise ValueError(f"item {item.get('id')!r} has neither test + entry_point nor tests")


def is_functional(item: dict[str, Any], tests: list[Any]) -> bool:
    """A call-based item: it names a function, or its tests say `testtype: functional`."""
    return bool(item.get("func_name")) or any(
        isinstance(t, dict) and t.get("testtype") == "functional" for t in tests)


def humaneval_program(code: str, item: dict[str, Any]) -> str:
    """The prompt plus the completion: a whole function redefines the prompt's stub, a body continues it.

    The prompt comes first either way, for its imports and helper functions. A body whose first
    line lost its indentation is indented under the prompt's signature.
    """
    prompt, entry = item.get("prompt", ""), item["entry_point"]
    if re.search(rf"^def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        return f"{prompt}\n\n{code}"
    first = next((line for line in code.splitlines() if line.strip()), "")
    body = code if first[:1].isspace() else textwrap.indent(code, "    ")
    return prompt + body


def _test_list(tests: Any) -> list[Any]:
    """The tests: a list of {input, output[, testtype]} or of pairs, or that list as JSON text."""
    return json.loads(tests) if isinstance(tests, str) else list(tests)


def _detail(result: SandboxResult, passed: bool) -> dict[str, Any]:
    """The sandbox status and the last line of stderr (the exception, or the failing test)."""
    lines = result.stderr.strip().splitlines()
    detail: dict[str, Any] = {"status": result.status, "passed": passed,
                              "returncode": result.returncode, "error": lines[-1] if lines else ""}
    if result.error:
        detail["sandbox_error"] = result.error
    return detail
