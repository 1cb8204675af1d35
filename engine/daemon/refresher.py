"""The daemon's caches refreshed in the background once ingest goes quiet (issue 27).

`run_items`, `paired_stats`, `flip_stats`, the in-memory paired items and the TI's bootstrap
replicates (engine.analysis.paired) are filled from `sample_rows` on demand, before a query that
reads them. After a bulk ingest that made a daemon's first `ti` wait 0.8-1.8 s and its first
`tix flips` 1.5 s at paper scale (1.1M samples), most of it re-aggregating every run's samples.
So the daemon does the same refresh here, in a thread, once no samples have landed for `quiet`
seconds (and at startup, where the in-memory items are always cold), and at least every
`max_stale` seconds while ingest never pauses. The work is the on-demand refresh itself
(PairedCache.current, refresh_flips, the replicates `ti` would compute), under the cache's lock:
a request that arrives meanwhile waits for it and then finds everything current, and the numbers
are those an on-demand refresh gives (tests/unit/test_refresher.py). Ingest and other ops go on:
they use other connections, and nothing here runs on the event loop's thread.

A stop waits for a refresh in flight for at most `grace` seconds, then interrupts its query
(DuckDB rolls the transaction back; the daemon's exit refresh does what is left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("tix.refresher")

QUIET_S = 1.5
"""Seconds without new samples before the background refresh: a bulk ingest or a streaming eval
lands batches every tick (0.5 s), so this waits for it to pause instead of refreshing per batch."""
MAX_STALE_S = 60.0
"""While ingest never pauses (a long eval streaming samples), refresh at least this often: each
refresh is then small (only the models whose runs grew are read again). Not much more often: during
a bulk ingest each such refresh (2-5 s of CPU at paper scale) slows the ingest it runs beside."""
STOP_GRACE_S = 3.0
"""How long a stop lets a refresh in flight finish (its work is not lost) before interrupting it."""


class Cursor(Protocol):
    """The DuckDB cursor a refresh runs on (typed here: this module imports no duckdb)."""

    def interrupt(self) -> None: ...
    def close(self) -> None: ...


Work = Callable[[Any, threading.Event], Any]
"""A refresh: (cursor, cancelled) -> anything; run in a thread."""


def refresh_all(cache: Any, cur: Any, cancelled: threading.Event) -> None:
    """What an on-demand refresh does before `ti` and `flips`, all of it: `run_items` and
    `paired_stats` with the in-memory items, `flip_stats`, then the bootstrap replicates of every
    segment at `ti`'s defaults (the numbers `ti` computes on its first call), and the snapshot the
    next daemon starts from (engine.analysis.paired_snapshot). Stops between steps once `cancelled`
    is set."""
    from engine.analysis import stats

    data = cache.current(cur)
    if cancelled.is_set():
        return
    cache.refresh_flips(cur)
    for segment in range(len(data.segments)):
        if cancelled.is_set():
            return
        data.replicates(segment, stats.BOOT, stats.SEED)
    cache.save(cur)


class Refresher:
    """Coalesces ingest's pokes into one background refresh after a quiet spell (see the module)."""

    def __init__(self, work: Work, cursor: Callable[[], Cursor], quiet: float = QUIET_S,
                 max_stale: float = MAX_STALE_S, grace: float = STOP_GRACE_S) -> None:
        self.work, self.cursor = work, cursor
        self.quiet, self.max_stale, self.grace = quiet, max_stale, grace
        self.last_poke = 0.0
        self.dirty_since: float | None = None
        self.wake = asyncio.Event()
        self.cancelled = threading.Event()
        self.task: asyncio.Task[None] | None = None
        self.inflight: asyncio.Future[Any] | None = None
        self.active: Cursor | None = None
        self.refreshes = 0
        self.last_s: float | None = None
        self.last_error: str | None = None

    def poke(self) -> None:
        """Samples (or anything the caches read) landed: refresh once they stop landing."""
        now = time.monotonic()
        self.last_poke = now
        if self.dirty_since is None:
            self.dirty_since = now
        self.wake.set()

    def start(self) -> None:
        """Begin (on the event loop); the first refresh warms the daemon's cold caches."""
        self.task = asyncio.create_task(self._loop(), name="tix-refresher")
        self.poke()

    def state(self) -> dict[str, Any]:
        """What the `refresh_state` op answers (bench/scale.py waits on `pending` and `running`)."""
        return {"pending": self.dirty_since is not None, "running": self.inflight is not None,
                "refreshes": self.refreshes, "last_s": self.last_s, "last_error": self.last_error}

    async def _loop(self) -> None:
        while not self.cancelled.is_set():
            await self.wake.wait()
            await self._until_quiet()
            if self.cancelled.is_set():
                return
            self.dirty_since = None
            await self._refresh()

    async def _until_quiet(self) -> None:
        """Sleep until `quiet` seconds after the last poke, or `max_stale` after the first."""
        while not self.cancelled.is_set() and self.dirty_since is not None:
            due = min(self.last_poke + self.quiet, self.dirty_since + self.max_stale)
            left = due - time.monotonic()
            if left <= 0:
                break
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=left)
        self.wake.clear()

    async def _refresh(self) -> None:
        cursor = self.active = self.cursor()
        started = time.perf_counter()
        self.inflight = asyncio.ensure_future(asyncio.to_thread(self.work, cursor, self.cancelled))
        try:
            await asyncio.shield(self.inflight)
            self.refreshes += 1
            self.last_s, self.last_error = time.perf_counter() - started, None
            log.info("background refresh of the paired and flip caches: %.2f s", self.last_s)
        except Exception as exc:  # noqa: BLE001 - an interrupted or failed refresh; on-demand covers it
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if not self.cancelled.is_set():
                log.error("background refresh failed:\n%s", traceback.format_exc())
        finally:
            self.inflight, self.active = None, None
            cursor.close()

    async def stop(self) -> None:
        """Let a refresh in flight finish for up to `grace` s, then interrupt its query until its
        thread returns (DuckDB checks the interrupt as a query runs; a step between queries is short)."""
        self.cancelled.set()
        self.wake.set()
        inflight = self.inflight
        if inflight is not None:
            await asyncio.wait({inflight}, timeout=self.grace)
            while not inflight.done():
                if self.active is not None:
                    with contextlib.suppress(Exception):
                        self.active.interrupt()
                await asyncio.wait({inflight}, timeout=0.05)
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.task, timeout=1.0)
