"""Actions on one run that several screens offer: cancel (after a question) and resume/retry.

The dashboard and the run detail both bind `c` and `r` to these, so they live apart from either
screen (neither screen module imports the other for them). Every toast says what the daemon
did, from its answer: a cancel of a running run stops it (SIGTERM) and the runs waiting for it
are cancelled when it ends; resuming a run whose cancel took its dependants down offers to queue
them again with it (the daemon's `resume` with `dependants`); resuming a dependant whose
dependency is still cancelled offers to resume that dependency with everything it took down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen

from tui.format import TERMINAL, count_label, visible
from tui.source import Source, SourceError
from tui.widgets.confirm import Answer, Confirm

DOWN = ("failed", "cancelled")
"""The states a run can be resumed from."""


def runs_of(screen: Screen[Any]) -> dict[str, dict[str, Any]]:
    return getattr(screen.app, "runs", {})


def waiting_on(runs: dict[str, dict[str, Any]], run_id: str) -> list[str]:
    """Unfinished runs that depend on `run_id`, directly or not (a cancel takes them down too)."""
    found: dict[str, None] = {}
    frontier = {run_id}
    while frontier:
        frontier = {r["id"] for r in runs.values() if frontier & set(r.get("deps") or [])
                    and r["id"] not in found and r.get("state") not in TERMINAL}
        found.update(dict.fromkeys(sorted(frontier)))
    return list(found)


def taken_down(runs: dict[str, dict[str, Any]], run_id: str) -> list[str]:
    """Runs that ended because `run_id` did (`dependency X cancelled`), at any depth: what the
    daemon queues again with `resume ... dependants` (engine.daemon.scheduler.taken_down)."""
    found: dict[str, None] = {}
    frontier = {run_id}
    while frontier:
        frontier = {r["id"] for r in runs.values() if frontier & set(r.get("deps") or [])
                    and r["id"] not in found and r.get("state") in DOWN
                    and str(r.get("error") or "").startswith("dependency ")}
        found.update(dict.fromkeys(sorted(frontier)))
    return list(found)


def dead_root(runs: dict[str, dict[str, Any]], run: dict[str, Any]) -> dict[str, Any] | None:
    """The failed or cancelled run upstream of `run` that took it down (the highest one whose own
    dependencies are alive); None when every dependency is alive."""
    for dep_id in run.get("deps") or []:
        dep = runs.get(dep_id)
        if dep is not None and dep.get("state") in DOWN:
            return dead_root(runs, dep) or dep
    return None


def ids_line(ids: list[str], most: int = 3) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


# -- cancel ------------------------------------------------------------------------------------------
def ask_cancel(screen: Screen[Any], run: dict[str, Any] | None) -> None:
    """Cancel `run` after a question answered with `y` (the dashboard's and the run detail's `c`)."""
    if run is None or run.get("state") not in ("queued", "running"):
        screen.notify("only queued or running runs can be cancelled", severity="warning")
        return
    after = waiting_on(runs_of(screen), run["id"])
    verb = "stop" if run["state"] == "running" else "cancel"
    where = f"{run.get('experiment') or '-'}/{run.get('name') or '-'}"
    question = f"Cancel {run['id']} ({where}, {run['state']})?\n" + (
        f"{count_label(len(after), 'run')} waiting for it will be cancelled too: {ids_line(after)}."
        if after else "No run waits for it.")
    answers = (Answer("y", f"{verb} it", True), Answer("n", "keep it", False))
    screen.app.push_screen(Confirm(question, answers), lambda yes: yes and screen.run_worker(
        run_action(screen, "cancel", {"target": run["id"]}, lambda done: cancelled_note(run, done, after)),
        group="actions"))


def cancelled_note(run: dict[str, Any], done: list[str], after: list[str]) -> str:
    """What the cancel did: a queued run is cancelled at once, a running one is sent SIGTERM."""
    if not done:
        return f"{run['id']} had already ended: nothing to cancel"
    what = f"stopping {run['id']} (SIGTERM sent)" if run["state"] == "running" else f"cancelled {run['id']}"
    later = f"; {count_label(len(after), 'run')} waiting for it will be cancelled" if after else ""
    return what + later + (f" (r on it resumes it{' with them' if after else ''})")


# -- resume ------------------------------------------------------------------------------------------
def resume(screen: Screen[Any], run: dict[str, Any] | None) -> None:
    """Queue a failed run again (retry) or a cancelled one (resume): the same daemon op. With
    runs its end took down, ask whether they go too; a run whose dependency is down offers that
    dependency instead (alone, it would be cancelled again at once)."""
    if run is None or run.get("state") not in DOWN:
        screen.notify("only failed runs can be retried and cancelled ones resumed", severity="warning")
        return
    runs = runs_of(screen)
    root = dead_root(runs, run)
    if root is not None:
        ask_resume_root(screen, run, root, taken_down(runs, root["id"]))
        return
    down = taken_down(runs, run["id"])
    if not down:
        send_resume(screen, run, False)
        return
    end = "cancel" if run["state"] == "cancelled" else "failure"
    question = (f"Resume {run['id']} ({run['state']})?\n"
                f"Its {end} took down {count_label(len(down), 'run')}: {ids_line(down)}.")
    answers = (Answer("y", f"resume it and those {len(down)}", "all"), Answer("o", "only it", "one"),
               Answer("n", "no", None))
    screen.app.push_screen(Confirm(question, answers),
                           lambda choice: choice and send_resume(screen, run, choice == "all"))


def ask_resume_root(screen: Screen[Any], run: dict[str, Any], root: dict[str, Any], down: list[str]) -> None:
    question = (f"{run['id']} waits for {root['id']}, which is {root['state']}: queued alone, it would be "
                f"cancelled again at once.\nResume {root['id']} and the "
                f"{count_label(len(down), 'run')} its end took down ({ids_line(down)})?")
    answers = (Answer("y", f"resume {root['id']} and those {len(down)}", True), Answer("n", "no", False))
    screen.app.push_screen(Confirm(question, answers), lambda yes: yes and send_resume(screen, root, True))


def send_resume(screen: Screen[Any], run: dict[str, Any], dependants: bool) -> None:
    screen.run_worker(run_action(screen, "resume", {"id": run["id"], "dependants": dependants},
                                 lambda done: resumed_note(run, done)), group="actions")


def resumed_note(run: dict[str, Any], done: dict[str, Any]) -> str:
    """What the daemon queued: the run, the dependants that went with it, and those left down."""
    verb = "retrying failed" if run["state"] == "failed" else "resuming cancelled"
    text = f"{verb} run {run['id']}: queued again, it continues from what it recorded"
    again, left = list(done.get("dependants") or []), list(done.get("left") or [])
    if again:
        text += f"; queued with it: {ids_line(again)}"
    if left:
        text += f"; not queued: {ids_line(left)}, which its end took down (r on it again offers them)"
    return text


async def run_action(screen: Screen[Any], op: str, args: dict[str, Any],
                     note: Callable[[Any], str]) -> None:
    """One request for a run action; the toast says what the daemon did, or why it refused."""
    source: Source = screen.source  # type: ignore[attr-defined]
    try:
        result = await source.request(op, **args)
    except SourceError as exc:
        screen.notify(visible(f"{op} refused: {exc}"), severity="error")
        return
    message = note(result)
    if message:
        screen.notify(message)
