"""`Result.arrow()` through the shared-memory arena (engine/client/arena.py, engine/daemon/arena.py)
with a real daemon: the batches are read in place from the arena, every type and dictionary comes
through as over the socket, a region is reused once its table is gone, a result bigger than the
arena spills onto the socket, the file leaves /dev/shm at once, and the daemon attaches nothing
but a tix arena of this user (the client then reads from the socket)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pyarrow as pa
import pytest

from engine.client import arena as client_arena
from engine.client import connect
from engine.client.connection import Client, RequestFailed
from engine.workspace import Workspace
from tests.integration.test_api import TYPES, duckdb_own, same

pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system")

ROWS = "SELECT i, i * 0.5 AS half, 'row ' || (i % 7) AS label FROM range(1000000) t(i)"


def inside(table: pa.Table, arena: client_arena.ClientArena) -> bool:
    """Whether every data buffer of the table's big columns lies in the arena's mapping."""
    low, high = arena.whole.address, arena.whole.address + arena.capacity
    buffers = [b for column in table.columns for chunk in column.chunks for b in chunk.buffers()
               if b is not None and b.size > 4096]
    return bool(buffers) and all(low <= b.address and b.address + b.size <= high for b in buffers)


def test_arrow_reads_the_batches_in_place_and_reuses_the_region(ws: Workspace) -> None:
    with connect(ws.home) as db:
        first = db.sql(ROWS).arrow()
        arena = db.client.arena[1]
        assert arena is not None and inside(first, arena)
        assert not list(Path(client_arena.SHM).glob(f"tix-arena-{os.getpid()}-*"))  # unlinked at once
        assert same(first, duckdb_own(ROWS))
        held = arena.capacity - sum(end - start for start, end in arena.extents())
        assert held >= first.nbytes - 1024  # the table owns its regions ...
        offsets = sorted(b.address for c in first.columns for ch in c.chunks for b in ch.buffers() if b)
        del first
        gc.collect()
        assert arena.free == [(0, arena.capacity)]  # ... until it is gone (freed then, not later)
        again = db.sql(ROWS).arrow()
        assert sorted(b.address for c in again.columns for ch in c.chunks for b in ch.buffers() if b) == offsets
        socket_only = db.sql(ROWS).reader().read_all()  # reader() stays on the socket
        assert not inside(socket_only, arena) and same(socket_only, again)
    assert db.client.arena is None  # closed: the arena lives on only through `again`
    assert inside(again, arena) and same(again, socket_only)


def test_every_type_comes_through_the_arena_as_over_the_socket(ws: Workspace,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    big_types = f"SELECT t.*, r.i FROM ({TYPES}) t, range(20000) r(i)"  # big enough to be placed
    with connect(ws.home) as db:
        placed = db.sql(big_types).arrow()
        assert inside(placed.select(["i"]), db.client.arena[1])
        monkeypatch.setenv("TIX_ARENA", "0")
    with connect(ws.home) as db:
        over_socket = db.sql(big_types).arrow()
        assert db.client.arena == (db.client.sock, None)
    assert same(placed, over_socket) and same(placed, duckdb_own(big_types))
    assert pa.types.is_dictionary(placed.schema.field("level").type)  # the ENUM's dictionary came too


def test_a_result_bigger_than_the_arena_spills_onto_the_socket(ws: Workspace,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_arena, "CAPACITY", 4 << 20)
    monkeypatch.setattr(client_arena, "WARM", 2 << 20)
    with connect(ws.home) as db:
        table = db.sql(ROWS).arrow()  # 23 MB: a few batches placed, the rest inline
        arena = db.client.arena[1]
        assert arena.capacity == 4 << 20
        placed = [b for c in table.columns for ch in c.chunks for b in ch.buffers()
                  if b is not None and arena.whole.address <= b.address < arena.whole.address + arena.capacity]
        assert placed and table.num_rows == 1_000_000
        assert same(table, duckdb_own(ROWS))


def test_a_failure_halfway_through_the_arena_says_why_and_frees_what_came(ws: Workspace) -> None:
    query = "SELECT CASE WHEN i < 1500000 THEN i ELSE error('boom') END AS i FROM range(2000000) t(i)"
    with connect(ws.home) as db:
        with pytest.raises(RequestFailed, match=r"^Invalid Input Error: boom$"):
            db.sql(query).arrow()
        gc.collect()
        arena = db.client.arena[1]
        assert arena.extents() == [(0, arena.capacity)]
        assert db.sql("SELECT 2 AS two").fetchall() == [(2,)]


@pytest.mark.parametrize(("name", "size", "why"), [
    ("/tmp/tix-arena-x", 1 << 20, "is not a tix arena in /dev/shm"),
    ("/dev/shm/other", 1 << 20, "is not a tix arena in /dev/shm"),
    ("/dev/shm/tix-arena-missing", 1 << 20, "cannot open"),
    (None, 12345, "is not this user's 12345-byte arena"),  # the size the client says is checked
])
def test_the_daemon_attaches_only_a_tix_arena_of_this_user(ws: Workspace, name: str | None, size: int,
                                                           why: str) -> None:
    real = client_arena.ClientArena(capacity=1 << 20)
    try:
        with Client(ws) as client, pytest.raises(RequestFailed, match=why):
            client.request("arena_attach", path=name or real.path, size=size, warm=0)
    finally:
        real.unlink()


def test_without_an_arena_arrow_reads_the_socket(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon cannot open the client's file (as on another host through `ssh -L`)."""
    monkeypatch.setattr(client_arena, "SHM", "/tmp")  # a path the daemon refuses
    monkeypatch.setattr(client_arena.os.path, "isdir", lambda p: True)
    with connect(ws.home) as db:
        table = db.sql(ROWS).arrow()
        assert db.client.arena == (db.client.sock, None)
        assert same(table, duckdb_own(ROWS))
    assert not list(Path("/tmp").glob(f"tix-arena-{os.getpid()}-*"))  # the file did not stay


def test_the_arena_free_list_merges_and_gives_back_past_warm() -> None:
    arena = client_arena.ClientArena(capacity=8 << 20, warm=1 << 20)
    try:
        a = arena.claim(0, 3 << 20)
        b = arena.claim(3 << 20, 1 << 20)
        c = arena.claim(5 << 20, 2 << 20)
        assert arena.extents() == [(4 << 20, 5 << 20), (7 << 20, 8 << 20)]
        assert arena.grant() == [[4 << 20, 1 << 20], [7 << 20, 1 << 20]]
        with pytest.raises(ValueError, match="outside the granted extents"):
            arena.claim(2 << 20, 4096)
        memoryview(a).cast("B")  # the buffers are readable views of the mapping
        del b
        assert arena.extents() == [(3 << 20, 5 << 20), (7 << 20, 8 << 20)]
        del a, c
        assert arena.extents() == [(0, 8 << 20)]
    finally:
        arena.unlink()
