"""Run-end notifications: a toast when a run finishes or fails while the TUI is open, and, when the
user asks for it, a terminal bell and/or a desktop notification (OSC 9).

Only transitions the app sees live are announced: the app compares each pushed run row with the
row it held before (`ended`), and a run is announced only when the app knew it queued or running,
so runs that had already ended when the app loaded them (or that ended while the daemon was away
and were reloaded with `status`) stay quiet, and so do runs that arrive already ended (an imported
bundle's: the daemon pushes them as new rows). A submitted run is pushed as queued at once. A cancelled run is
not announced: someone cancelled it on purpose, or a failed dependency took it down, and that
failure was announced itself.

The alert (bell, OSC 9, both or off; off by default) is a TUI preference, kept in
`TIX_HOME/tui.json` under `alert`: per workspace like everything else in TIX_HOME, kept across
sessions, and written by the TUI itself without the daemon (config.yaml is the daemon's and is
edited by hand). ctrl+g cycles it. The escape sequence is built here only, from tix's own words
and the run's names with every control character removed, so a run named `\\x1b]52;...` cannot
make the terminal obey it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tui.format import CONTROLS, TERMINAL, duration, last_line, run_seconds, visible

#: What ctrl+g cycles through, in order; `off` is the default.
ALERTS = ("off", "bell", "osc9", "both")
ALERT_WORDS = {"off": "off (toasts only)", "bell": "terminal bell", "osc9": "desktop notification (OSC 9)",
               "both": "terminal bell and desktop notification (OSC 9)"}
SETTINGS_FILE = "tui.json"
#: Announced end states (a cancel is someone's own doing; see the module docstring).
ANNOUNCED = frozenset({"succeeded", "failed"})
OSC9_MOST = 200
"""Characters of an OSC 9 message at most: desktop notifiers show one or two lines."""


def ended(before: dict[str, dict[str, Any]], rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pushed `rows` that are a live end: succeeded or failed now, queued or running in
    `before` (the app's rows until this push)."""
    out = []
    for row in rows:
        old = before.get(row.get("id", ""))
        if old is not None and old.get("state") not in TERMINAL and row.get("state") in ANNOUNCED:
            out.append(row)
    return out


def message(run: dict[str, Any], now: float) -> str:
    """`run train-1a2b (tiny-lab/rl) finished in 3m12s` or `... failed: <the error's last line>`,
    names with their control characters made visible."""
    who = visible(f"run {run.get('id')} ({run.get('experiment') or '-'}/{run.get('name') or '-'})")
    if run.get("state") == "succeeded":
        took = duration(run_seconds(run, now))
        return f"{who} finished" + (f" in {took}" if took else "")
    reason = last_line(run.get("error") or "") or "no error recorded"
    return f"{who} failed: {reason}"


def alert_sequence(mode: str, text: str) -> str:
    """What the terminal is sent for one announced run: BEL and/or `ESC ] 9 ; text BEL`, with every
    control character of `text` removed (a run's name is data; only tix writes controls here)."""
    out = ""
    if mode in ("bell", "both"):
        out += "\a"
    if mode in ("osc9", "both"):
        clean = CONTROLS.sub("", visible(text))[:OSC9_MOST]
        out += f"\x1b]9;tix: {clean}\a"
    return out


# -- the setting ---------------------------------------------------------------------------------
def load_alert(home: Path) -> str:
    """The saved alert mode; `off` when the file is missing, unreadable or says something else."""
    try:
        value = json.loads((home / SETTINGS_FILE).read_text()).get("alert")
    except (OSError, ValueError, AttributeError):
        return "off"
    return value if value in ALERTS else "off"


def save_alert(home: Path, mode: str) -> None:
    """Write `alert` into tui.json, keeping any other key there (other TUI preferences), atomically."""
    path = home / SETTINGS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data["alert"] = mode
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SETTINGS_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


class Notifier:
    """Announces run ends for the app: a toast each, and the alert the user chose.

    `toast` is the app's notify; `out` writes raw text to the terminal (the app's driver; a test
    collects it). Both are given so this module needs no Textual app to be tested."""

    def __init__(self, home: Path, toast: Callable[..., None], out: Callable[[str], None],
                 clock: Callable[[], float]) -> None:
        self.home = home
        self.toast = toast
        self.out = out
        self.clock = clock
        self.mode = load_alert(home)
        self.announced = 0
        """Runs announced so far (tests wait on it)."""

    def announce(self, runs: list[dict[str, Any]]) -> None:
        now = self.clock()
        for run in runs:
            text = message(run, now)
            failed = run.get("state") == "failed"
            self.toast(text, severity="error" if failed else "information", timeout=10 if failed else 6)
            self.announced += 1
            if self.mode != "off":
                self.out(alert_sequence(self.mode, text))

    def cycle(self) -> str:
        """The next alert mode, saved; returns the toast that says what it is now and where it is kept."""
        self.mode = ALERTS[(ALERTS.index(self.mode) + 1) % len(ALERTS)]
        try:
            save_alert(self.home, self.mode)
        except OSError as exc:
            return f"run-end alert: {ALERT_WORDS[self.mode]} (not saved: {exc})"
        where = self.home / SETTINGS_FILE
        return f"run-end alert: {ALERT_WORDS[self.mode]} (ctrl+g changes it; kept in {where})"
