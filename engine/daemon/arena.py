"""The daemon's side of a client's shared-memory arena: whole results written where the client
reads them in place (`Result.arrow()`; engine/client/arena.py has the client's side and says why).

The client makes a file in /dev/shm (its own, mode 0600), asks `arena_attach` with its path and
size, and unlinks it once attached: from then on only the two open descriptors keep it. Each
`sql_arrow` request that wants its batches there grants the arena's free extents for this one
request (`arena`: [[offset, length], ...]); the daemon writes each batch's IPC message into the
first granted extent it fits (aligned to 64 bytes) and tells the client where
(engine/daemon/arrow_stream.py frames it). Within the arena's warm part (the first 256 MiB,
which the client keeps allocated) the daemon maps the file and copies with one memcpy; past it
with `pwritev`, which costs more (measured in one process for 2M rows, 51 MiB: 40 core-ms with
memcpy into pages written before, 56 with pwritev into the same pages: the page cache's
per-page work) but maps nothing. The warm part's pages are the client's, shared: the daemon's
RSS counts those it has written (at most 256 MiB per connected client), until the connection
ends. A full /dev/shm is an error (the batch is then sent inline over the socket), never a
SIGBUS (posix_fallocate first). Nothing here is needed for correctness: a
batch that does not fit, or an arena that cannot be attached (another host through `ssh -L`, no
/dev/shm), goes over the socket as before.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Sequence
from typing import Any

SHM = "/dev/shm"
ALIGN = 64
"""Arrow's buffer alignment: a batch placed at a multiple of it is read in place."""


class ArenaError(ValueError):
    """An arena the daemon will not attach (one line, told to the client)."""


class Arena:
    """A client's arena, open for writing (one per connection). Its first `warm` bytes (the part
    the client never gives back to the system) are also mapped here: a batch is copied there
    with one memcpy, after `posix_fallocate` has made sure once per 2 MiB chunk that the pages
    exist (so a full /dev/shm is an error, not a SIGBUS). Past `warm`, `pwritev` (no mapping)."""

    CHUNK = 2 << 20

    def __init__(self, path: str, size: int, warm: int) -> None:
        self.fd = _open_checked(path, size)
        self.size, self.warm = size, max(0, min(warm, size)) // mmap.PAGESIZE * mmap.PAGESIZE
        try:
            self.map = mmap.mmap(self.fd, self.warm) if self.warm else None
        except OSError:
            os.close(self.fd)
            raise
        self.allocated = bytearray(-(-self.warm // self.CHUNK))

    def write(self, parts: list[Any], offset: int, length: int) -> bool:
        """`parts` (`length` bytes) at `offset`; False when /dev/shm has no room for them."""
        if self.map is not None and offset + length <= self.warm:
            if not self._allocate(offset, length):
                return False
            try:
                with memoryview(self.map) as view:
                    for part in parts:
                        data = memoryview(part).cast("B")
                        view[offset:offset + data.nbytes] = data
                        offset += data.nbytes
            except ValueError:  # the connection closed meanwhile (the daemon stops): nothing to write to
                return False
            return True
        try:
            return os.pwritev(self.fd, [memoryview(p).cast("B") for p in parts], offset) == length
        except OSError:  # ENOSPC
            return False

    def _allocate(self, offset: int, length: int) -> bool:
        for chunk in range(offset // self.CHUNK, (offset + length - 1) // self.CHUNK + 1):
            if not self.allocated[chunk]:
                start = chunk * self.CHUNK
                try:
                    os.posix_fallocate(self.fd, start, min(self.CHUNK, self.warm - start))
                except OSError:
                    return False
                self.allocated[chunk] = 1
        return True

    def close(self) -> None:
        """Unmap and close (a write still in flight, when the daemon stops, keeps the mapping
        until it ends)."""
        if self.map is not None:
            with contextlib.suppress(BufferError):
                self.map.close()
            self.map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open_checked(path: str, size: int) -> int:
    """The client's file, opened read-write: a regular file directly in /dev/shm, of this user,
    of the size the client says (so a wrong or foreign path is refused, not written)."""
    if os.path.dirname(path) != SHM or not os.path.basename(path).startswith("tix-arena-"):
        raise ArenaError(f"arena_attach: {path!r} is not a tix arena in {SHM}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ArenaError(f"arena_attach: cannot open {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_size != size:
        os.close(fd)
        raise ArenaError(f"arena_attach: {path} is not this user's {size}-byte arena")
    return fd


class Placement:
    """Where one request's batches go: the extents the client granted, used front to back."""

    def __init__(self, arena: Arena, granted: Sequence[Sequence[int]]) -> None:
        self.arena = arena
        self.free = _extents(granted, arena.size)

    def put(self, parts: list[Any]) -> tuple[int, int] | None:
        """Write `parts` (one or more whole IPC messages) contiguously into the arena; (offset,
        length), or None when no granted extent holds them or the write fails (send them inline)."""
        length = sum(memoryview(p).nbytes for p in parts)
        for i, (start, end) in enumerate(self.free):
            offset = -(-start // ALIGN) * ALIGN
            if offset + length > end:
                continue
            if not self.arena.write(parts, offset, length):
                return None
            self.free[i] = (offset + length, end)
            return offset, length
        return None


def _extents(granted: Sequence[Sequence[int]], size: int) -> list[tuple[int, int]]:
    """The granted [offset, length] pairs as (start, end) inside the arena; others are dropped."""
    out = []
    for pair in granted[:256]:
        try:
            start, length = int(pair[0]), int(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if start >= 0 and length > 0 and start + length <= size:
            out.append((start, start + length))
    return out
