"""The daemon's background refresh (engine/daemon/refresher.py): after samples land and ingest goes
quiet, `paired_stats`, `flip_stats`, `run_items` and the in-memory items equal an on-demand full
refresh; repeated pokes make one refresh; a stop interrupts a refresh in flight promptly."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from typing import Any

import duckdb
import pytest

from engine.analysis import paired, stats
from engine.analysis.paired import PairedCache
from engine.daemon.refresher import Refresher, refresh_all
from storage import Store
from tests.unit.test_paired import assert_same, item_lab, rerecord

TABLES = {"paired_stats": "experiment, model, benchmark", "flip_stats": "ALL",
          "run_items": "run_id, benchmark, item_id"}


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: store.con.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall() for t, order in TABLES.items()}


def on_demand_from_scratch(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """What a fresh daemon's on-demand refresh writes when every cache is forgotten: a full read."""
    for table in ("paired_stats_source", "run_items_source", "run_items", "paired_stats", "flip_stats",
                  "flip_stats_source", "flip_stats_runs"):
        store.con.execute(f"DELETE FROM {table}")
    cache, cur = PairedCache(), store.con.cursor()
    cache.refresh_table(cur)
    cache.refresh_flips(cur)
    return snapshot(store)


def flipped(store: Store, run_id: str, bench: str, items: list[int]) -> dict[int, float]:
    """The items' verdicts turned over (a rescore that changes them)."""
    found = dict(store.con.execute("SELECT item_id, verdict FROM sample_rows WHERE run_id = ? AND benchmark = ?",
                                   [run_id, bench]).fetchall())
    return {i: 1.0 - found[f"i{i:03d}"] for i in items}


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_background_refresh_equals_an_on_demand_one() -> None:
    """Startup warms everything; new records of a tuned model's and of the base's runs, each poked
    five times, make one refresh each, after which the tables and the in-memory items (and their
    bootstrap replicates at `ti`'s defaults) are those a full on-demand refresh computes."""
    store = item_lab(n=80)
    cache = PairedCache()
    refresher = Refresher(partial(refresh_all, cache), store.con.cursor, quiet=0.05)

    async def scenario() -> list[dict[str, list[tuple[Any, ...]]]]:
        refresher.start()
        await until(lambda: refresher.refreshes == 1 and not refresher.state()["pending"])
        seen = [snapshot(store)]
        for run_id, bench, verdicts in (("eval-rl", "m1", [3, 4]), ("eval-base", "o1", [2])):
            rerecord(store, run_id, bench, flipped(store, run_id, bench, verdicts))
            for _ in range(5):
                refresher.poke()
            want = len(seen) + 1
            await until(lambda want=want: refresher.refreshes == want and not refresher.state()["pending"])
            seen.append(snapshot(store))
        await refresher.stop()
        return seen

    seen = asyncio.run(scenario())
    assert refresher.refreshes == 3 and refresher.last_error is None
    assert seen[0] != seen[1] != seen[2]  # each step changed the tables
    cur = store.con.cursor()
    cur.execute("BEGIN TRANSACTION")
    want = paired.load(cur, str(cur.execute(paired.SIGNATURE_SQL).fetchall()[0][0]))
    cur.execute("ROLLBACK")
    warmed = cache.data._replicates[(stats.BOOT, stats.SEED)]  # before assert_same draws others
    assert set(warmed) == {s.stratum for s in cache.data.segments}
    assert_same(cache.data, want)
    assert seen[-1] == on_demand_from_scratch(store)


def test_a_request_during_a_background_refresh_waits_for_it() -> None:
    """An on-demand refresh (as `ti` makes) blocks on the cache's lock while the background one runs,
    then finds the table current: one read, not two."""
    store = item_lab(n=40)
    cache, reads = PairedCache(), []
    real_load = paired.load

    def counted(*args: Any) -> Any:
        reads.append(threading.current_thread().name)
        time.sleep(0.3)  # a long read: the request below arrives in the middle of it
        return real_load(*args)

    paired.load = counted
    try:
        refresher = Refresher(partial(refresh_all, cache), store.con.cursor, quiet=0.0)

        async def scenario() -> None:
            refresher.start()
            await until(lambda: refresher.state()["running"])
            await asyncio.to_thread(cache.refresh_table, store.con.cursor())
            await refresher.stop()

        asyncio.run(scenario())
    finally:
        paired.load = real_load
    assert len(reads) == 1 and refresher.refreshes == 1


def test_stop_interrupts_a_refresh_in_flight() -> None:
    """A refresh still running after the grace period is interrupted (DuckDB cancels the query)
    and stop returns at once after: the daemon's shutdown never hangs on it."""
    con = duckdb.connect()

    def slow(cur: Any, cancelled: threading.Event) -> None:
        cur.execute("SELECT count(*) FROM range(1000000000000) a WHERE a % 7 = 3").fetchall()

    refresher = Refresher(slow, con.cursor, quiet=0.0, grace=0.2)

    async def scenario() -> float:
        refresher.start()
        await until(lambda: refresher.state()["running"])
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await refresher.stop()
        return time.monotonic() - t0

    took = asyncio.run(scenario())
    assert took < 2.0, took
    assert refresher.refreshes == 0 and "Interrupt" in (refresher.last_error or "")
    assert con.execute("SELECT 42").fetchall() == [(42,)]  # the connection is usable after


@pytest.mark.parametrize("pokes", [1, 30])
def test_pokes_while_ingest_goes_on_wait_for_quiet_or_max_stale(pokes: int) -> None:
    """One poke refreshes `quiet` after it; pokes closer together than `quiet` (ingest that never
    pauses) refresh once `max_stale` after the first, then once more when they stop."""
    done: list[float] = []
    refresher = Refresher(lambda cur, cancelled: done.append(time.monotonic()), duckdb.connect().cursor,
                          quiet=0.3, max_stale=1.0)

    async def scenario() -> float:
        refresher.start()
        await until(lambda: len(done) == 1)
        t0 = time.monotonic()
        for _ in range(pokes):
            refresher.poke()
            await asyncio.sleep(0.05)
        await until(lambda: not refresher.state()["pending"] and not refresher.state()["running"])
        await refresher.stop()
        return done[1] - t0

    waited = asyncio.run(scenario())
    if pokes == 1:
        assert len(done) == 2 and 0.25 < waited < 0.9, (done, waited)
    else:  # 30 pokes over 1.5 s: refreshed at max_stale (quiet alone: >= 1.8 s), and after the last
        assert len(done) == 3 and 0.95 < waited < 1.5, (done, waited)
