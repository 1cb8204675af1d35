"""A client's shared-memory arena: `Result.arrow()`'s batches written by the daemon straight into
memory this process reads them from in place (engine/daemon/arena.py has the daemon's side).

Over the socket a result is copied twice: into the kernel by the daemon, out of it by the client.
On 2 cores that alone put a 2M-row query at 1.8-2.4x DuckDB's own `to_arrow_table()`, and the
daemon's streaming code through a socketpair inside one process (no daemon at all, bench/api.py
"the socket floor") was no faster. Here the daemon copies each batch once, with `pwritev`, into
pages of a /dev/shm file this client maps, and the client wraps them as Arrow buffers without a
copy. Pages that were written once stay allocated, so a later result reuses them without page
faults: a notebook that runs a query again pays only DuckDB's conversion and the one copy.

Memory: the arena is sparse (`capacity` is address space); a page costs memory once written. A
batch's region is the client's until every Arrow buffer over it is gone (then it is free for the
next result); the first `warm` bytes stay allocated for reuse, freed regions above are returned
to the system (MADV_REMOVE). The file is unlinked as soon as the daemon has opened it, so
nothing is left in /dev/shm when either process dies. Without /dev/shm, or when the daemon
cannot open the file (another host through `ssh -L`), `arrow()` reads from the socket as before;
`Result.reader()` always does (a streamed result is read batch by batch and dropped).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import mmap
import os
import secrets
import threading

import pyarrow as pa

SHM = "/dev/shm"
CAPACITY = 64 << 30
"""Address space reserved per arena (sparse: only written pages use memory)."""
WARM = 256 << 20
"""Bytes at the arena's start kept allocated when free, for the next result."""
MIN_EXTENT = 64 << 10
"""Free extents smaller than this are not offered to the daemon (a batch would not fit)."""


class ClientArena:
    """This process's arena for one daemon connection (see the module)."""

    def __init__(self, capacity: int | None = None, warm: int | None = None) -> None:
        capacity = CAPACITY if capacity is None else capacity
        warm = WARM if warm is None else warm
        self.path = os.path.join(SHM, f"tix-arena-{os.getpid()}-{secrets.token_hex(8)}")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, capacity)
            self.map = mmap.mmap(fd, capacity)
        except OSError:
            self.unlink()
            raise
        finally:
            os.close(fd)
        self.capacity, self.warm = capacity, warm
        self.whole = pa.py_buffer(self.map)
        self.free: list[tuple[int, int]] = [(0, capacity)]  # (start, end), sorted, merged
        self.released: collections.deque[tuple[int, int]] = collections.deque()
        """Regions whose buffers are gone, freed at the next grant or claim: a buffer may die in
        any thread, or in a garbage collection while the free list is being changed."""
        self.lock = threading.Lock()

    def unlink(self) -> None:
        """Remove the file's name (the daemon has opened it, or will not): the pages live on while
        either process maps or holds it."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def grant(self) -> list[list[int]]:
        """The free extents the daemon may write this request's batches into, lowest first (the
        warm pages are reused first)."""
        with self.lock:
            self._free_released()
            return [[start, end - start] for start, end in self.free if end - start >= MIN_EXTENT][:256]

    def extents(self) -> list[tuple[int, int]]:
        """The free (start, end) extents now."""
        with self.lock:
            self._free_released()
            return list(self.free)

    def claim(self, offset: int, length: int) -> pa.Buffer:
        """The region the daemon wrote, as an Arrow buffer that gives it back once unreferenced."""
        with self.lock:
            self._free_released()
            i = bisect.bisect_right(self.free, (offset, self.capacity + 1)) - 1
            if i < 0 or not (self.free[i][0] <= offset and offset + length <= self.free[i][1]):
                raise ValueError(f"the daemon wrote outside the granted extents: {offset}+{length}")
            start, end = self.free.pop(i)
            pieces = [(a, b) for a, b in ((start, offset), (offset + length, end)) if b > a]
            self.free[i:i] = pieces
        return pa.foreign_buffer(self.whole.address + offset, length, base=_Region(self, offset, length))

    def release(self, offset: int, length: int) -> None:
        """A region's buffers are gone (any thread): freed now, or at the next grant or claim when
        the free list is being changed (by another thread, or by this one in a garbage collection
        that ran inside a locked section)."""
        self.released.append((offset, length))
        if self.lock.acquire(blocking=False):
            try:
                self._free_released()
            finally:
                self.lock.release()

    def _free_released(self) -> None:
        """Free the released regions, each merged with its neighbours; the pages of a region past
        `warm` go back to the system. Under the lock."""
        while self.released:
            offset, length = self.released.popleft()
            start, end = offset, offset + length
            i = bisect.bisect_left(self.free, (start, end))
            if i > 0 and self.free[i - 1][1] == start:
                i -= 1
                start = self.free.pop(i)[0]
            if i < len(self.free) and self.free[i][0] == end:
                end = self.free.pop(i)[1]
            self.free.insert(i, (start, end))
            self._return(max(offset, self.warm), offset + length)

    def _return(self, start: int, end: int) -> None:
        """Give back the whole pages of [start, end) (its partial end pages may hold a neighbour)."""
        page = mmap.PAGESIZE
        low, high = -(-start // page) * page, end // page * page
        if high > low:
            with contextlib.suppress(OSError, ValueError):
                self.map.madvise(mmap.MADV_REMOVE, low, high - low)


class _Region:
    """Owns one region while Arrow buffers point into it (pyarrow keeps it as their base)."""

    def __init__(self, arena: ClientArena, offset: int, length: int) -> None:
        self.arena, self.offset, self.length = arena, offset, length

    def __del__(self) -> None:
        self.arena.release(self.offset, self.length)


def open_arena() -> ClientArena | None:
    """A new arena, or None where shared memory is off (TIX_ARENA=0) or unavailable."""
    if os.environ.get("TIX_ARENA", "1") == "0" or not os.path.isdir(SHM):
        return None
    try:
        return ClientArena()
    except OSError:
        return None
