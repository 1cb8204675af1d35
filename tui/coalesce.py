"""Fold bursts of "something changed" into one fetch at a time (toolong's `can_replace` idea).

A run streaming 50 events a second makes the daemon send a notice every tick; each notice asks
for a fetch. Cancelling the fetch in flight for the newest one could starve (a new notice always
arrives first), and running one per notice piles up requests. Instead one fetch runs at a time
and any number of requests made meanwhile fold into exactly one more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.dom import DOMNode


class Coalesced:
    """Call it to request a fetch; `fetch` runs in a worker of `owner`, never twice at once."""

    def __init__(self, owner: DOMNode, fetch: Callable[[], Awaitable[None]], group: str) -> None:
        self.owner = owner
        self.fetch = fetch
        self.group = group
        self.running = False
        self.again = False
        self.runs = 0
        """Fetches completed (tests and the bench wait on it)."""

    def __call__(self) -> None:
        if self.running:
            self.again = True
            return
        self.running = True
        self.owner.run_worker(self._loop(), group=self.group, exit_on_error=False)

    async def _loop(self) -> None:
        try:
            while True:
                self.again = False
                await self.fetch()
                self.runs += 1
                if not self.again:
                    return
        finally:
            self.running = False
