"""Actions on one run that several screens offer: cancel (after a y/n question) and resume/retry.

The dashboard and the run detail both bind `c` and `r` to these, so they live apart from either
screen (neither screen module imports the other for them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen

from tui.format import count_label
from tui.source import Source, SourceError
from tui.widgets.confirm import Confirm


def ask_cancel(screen: Screen[Any], run: dict[str, Any] | None) -> None:
    """Cancel `run` after a y/n question (the dashboard's and the run detail's `c`)."""
    if run is None or run.get("state") not in ("queued", "running"):
        screen.notify("only queued or running runs can be cancelled", severity="warning")
        return
    question = (f"Cancel {run['id']} ({run.get('experiment') or '-'}/{run.get('name') or '-'}, "
                f"{run['state']})?\nRuns that depend on it are cancelled too.")
    screen.app.push_screen(Confirm(question), lambda yes: yes and screen.run_worker(
        run_action(screen, "cancel", {"target": run["id"]}, cancelled_note), group="actions"))


def resume(screen: Screen[Any], run: dict[str, Any] | None) -> None:
    """Queue a failed run again (retry) or a cancelled one (resume): the same daemon op."""
    if run is None or run.get("state") not in ("failed", "cancelled"):
        screen.notify("only failed runs can be retried and cancelled ones resumed", severity="warning")
        return
    verb = "retrying failed" if run["state"] == "failed" else "resuming cancelled"
    screen.notify(f"{verb} run {run['id']}: queued again, it continues from what it recorded")
    screen.run_worker(run_action(screen, "resume", {"id": run["id"]}, lambda _r: ""), group="actions")


async def run_action(screen: Screen[Any], op: str, args: dict[str, Any],
                     note: Callable[[Any], str]) -> None:
    """One request for a run action; the daemon's push shows the effect, errors show as a toast."""
    source: Source = screen.source  # type: ignore[attr-defined]
    try:
        result = await source.request(op, **args)
    except SourceError as exc:
        screen.notify(f"{op} failed: {exc}", severity="error")
        return
    message = note(result)
    if message:
        screen.notify(message)


def cancelled_note(ids: list[str]) -> str:
    return f"cancel sent to {count_label(len(ids), 'run')}" if ids else "nothing to cancel (already ended)"

