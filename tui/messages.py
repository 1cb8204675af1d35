"""Messages the app sends to its screens, named as facts (house style: harlequin).

The app owns the one connection to the daemon. It reads the daemon's pushes and hands them to the
screens that listen (`TixApp.listen`) in batches, one message per burst, so a flood of pushes is
one redraw. None of them bubble: a screen that does not handle one simply ignores it.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class RunsLoaded(Message, bubble=False):
    """The app (re)loaded every run from the daemon (`status`): rebuild from `app.runs`."""


class RunsPushed(Message, bubble=False):
    """Run rows the daemon pushed since the last batch (the latest row per run)."""

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.runs = runs


class RunEventsPushed(Message, bubble=False):
    """What ingest stored for followed runs (`run_events` notices): fetch what you show."""

    def __init__(self, notices: list[dict[str, Any]]) -> None:
        super().__init__()
        self.notices = notices


class ConnectionChanged(Message, bubble=False):
    """The daemon went away (online False, with why) or is back (refresh everything); `stopped`:
    it was stopped on purpose, and the app waits for `r` instead of starting it again."""

    def __init__(self, online: bool, reason: str = "", stopped: bool = False) -> None:
        super().__init__()
        self.online = online
        self.reason = reason
        self.stopped = stopped
