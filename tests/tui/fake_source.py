"""A stand-in for the daemon connection: canned answers per op, for screen tests that are about
the look of what the daemon says rather than about the daemon (sizes, numbers, tabs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import App

from tui.source import SourceError

Answer = dict[str, Any] | list[Any] | Callable[[dict[str, Any]], Any]


class FakeSource:
    """`request(op, **args)` answers from `answers[op]` (a value, or a function of the args);
    an op it has no answer for fails as a daemon would fail an unknown op."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.connected = True

    async def request(self, op: str, **args: Any) -> Any:
        self.asked.append((op, args))
        if op not in self.answers:
            raise SourceError(f"unknown op {op!r}")
        answer = self.answers[op]
        return answer(args) if callable(answer) else answer


class ScreenHost(App[None]):
    """An app that shows one screen over a FakeSource, with `runs` and a fixed clock as TixApp has."""

    def __init__(self, make: Callable[[], Any], runs: list[dict[str, Any]], now: float) -> None:
        super().__init__()
        self.make = make
        self.runs = {r["id"]: r for r in runs}
        self.clock = lambda: now

    def on_mount(self) -> None:
        self.push_screen(self.make())


def metrics_answer(series: dict[str, list[tuple[int, float]]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`run_metrics` over `series` (name -> [(step, value)]), honouring since_step."""
    def answer(args: dict[str, Any]) -> dict[str, Any]:
        since = args.get("since_step")
        rows = sorted((step, name, value) for name, points in series.items() for step, value in points
                      if since is None or step >= since)
        last = max((r[0] for r in rows), default=None)
        return {"run_id": args["id"], "names": sorted(series), "rows": [list(r) for r in rows],
                "last_step": last, "truncated": False}
    return answer


def log_answer(streams: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`run_log` whose streams hold `streams` (stdout, stderr, events); each asked once from 0."""
    def answer(args: dict[str, Any]) -> dict[str, Any]:
        wanted = ("stdout", "stderr") if args["stream"] == "both" else (args["stream"],)
        offsets = args.get("offsets") or {}
        chunks = [{"stream": s, "text": streams.get(s, "")[offsets.get(s, 0):], "start": 0,
                   "offset": len(streams.get(s, "")), "size": len(streams.get(s, ""))} for s in wanted]
        return {"run_id": args["id"], "state": "succeeded", "chunks": chunks}
    return answer


NO_SAMPLES = {"rows": [], "total": 0, "all": 0, "benchmarks": {}}
NO_RESULTS = {"benchmarks": [], "shift": []}
