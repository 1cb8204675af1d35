"""The paired items a daemon leaves on disk for the next (engine.analysis.paired_snapshot): a new
cache starts from them without reading the items, with every array, row and replicate identical;
after new samples it updates from them as the daemon would have; a snapshot of another database
state, another format or a damaged file is ignored (the items are read again)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from engine.analysis import paired, paired_snapshot
from engine.analysis.paired import PairedCache
from engine.daemon.refresher import refresh_all
from tests.unit.test_paired import assert_same, item_lab, rerecord, ti


def full_read(store) -> paired.PairedData:
    cur = store.con.cursor()
    cur.execute("BEGIN TRANSACTION")
    try:
        return paired.load(cur, str(cur.execute(paired.SIGNATURE_SQL).fetchall()[0][0]))
    finally:
        cur.execute("ROLLBACK")


def saved_cache(store, path: Path) -> PairedCache:
    """A daemon's cache after its background refresh, which saves the snapshot."""
    import threading

    cache = PairedCache(snapshot=path)
    refresh_all(cache, store.con.cursor(), threading.Event())
    return cache


def no_reads(monkeypatch) -> list[str]:
    """Fail the test if the items are read from the database (a full or incremental load)."""
    calls: list[str] = []
    monkeypatch.setattr(paired, "load", lambda *a: calls.append("load") or pytest.fail("items read again"))
    return calls


def test_a_new_cache_starts_from_the_snapshot_with_the_same_numbers(tmp_path, monkeypatch) -> None:
    store = item_lab(n=80)
    path = tmp_path / "paired.npz"
    before = saved_cache(store, path)
    assert path.is_file() and not before.save(store.con.cursor())  # unchanged: not written twice
    want_ti = ti(store, before)
    no_reads(monkeypatch)
    again = PairedCache(snapshot=path)
    got = again.current(store.con.cursor())
    assert got.replicated() == before.data.replicated() > 0  # the replicates came along
    assert_same(got, before.data)
    assert ti(store, again) == want_ti


def test_new_samples_after_the_snapshot_update_from_it(tmp_path, monkeypatch) -> None:
    """The samples a worker wrote while no daemon ran: the next one starts from the snapshot and reads
    only the changed model again, and gets what a full read gives."""
    store = item_lab(n=80)
    path = tmp_path / "paired.npz"
    saved_cache(store, path)
    rerecord(store, "eval-rl", "m1", {3: 1.0, 4: 0.0, 70: 1.0})
    updates = []
    real_update = paired.update
    monkeypatch.setattr(paired, "update", lambda *a: updates.append(real_update(*a)) or updates[-1])
    got = PairedCache(snapshot=path).current(store.con.cursor())
    assert len(updates) == 1 and updates[0] is not None  # incremental, from the snapshot
    assert_same(got, full_read(store))


def test_a_snapshot_of_another_database_state_is_ignored(tmp_path, caplog) -> None:
    store = item_lab(n=60)
    path = tmp_path / "paired.npz"
    saved_cache(store, path)
    other = item_lab(seed=1, n=60)  # the same shape and counts, other verdicts
    cache = PairedCache(snapshot=path)
    assert_same(cache.current(other.con.cursor()), full_read(other))
    assert cache.saved is None  # nothing was taken from the file

    saved_cache(store, path)
    for damage in (b"not a zip", path.read_bytes()[: path.stat().st_size // 2]):  # a save cut short
        path.write_bytes(damage)
        with caplog.at_level(logging.WARNING, logger="tix.paired"):
            damaged = PairedCache(snapshot=path).current(store.con.cursor())
        assert_same(damaged, full_read(store))
        assert "ignoring the paired snapshot" in caplog.text and not path.exists()  # not read again


def test_a_snapshot_of_another_format_is_ignored(tmp_path, monkeypatch) -> None:
    store = item_lab(n=40)
    path = tmp_path / "paired.npz"
    saved_cache(store, path)
    monkeypatch.setattr(paired_snapshot, "FORMAT", paired_snapshot.FORMAT + 1)
    stamp = paired_snapshot.stamp(store.con.cursor())
    assert paired_snapshot.read(path, stamp) is None
    monkeypatch.undo()
    assert paired_snapshot.read(path, stamp) is not None
    assert paired_snapshot.read(path, None) is None  # a database whose paired_stats were never written


def test_the_file_holds_no_pickles(tmp_path) -> None:
    store = item_lab(n=30)
    path = tmp_path / "paired.npz"
    saved_cache(store, path)
    with np.load(path, allow_pickle=False) as z:  # raises on an object array
        assert {"meta", "segment", "rep_base"} <= set(z.files)
