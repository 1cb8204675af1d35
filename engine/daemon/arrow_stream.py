"""The `sql_arrow` op: a read-only query's whole result as an Arrow IPC stream on the socket.

JSON rows lose DuckDB's types (a DECIMAL or a TIMESTAMP arrives as text) and cost a Python
object per cell; a million rows become a million dicts. This op answers with Arrow instead:

    request   {"id": 7, "op": "sql_arrow", "args": {"query": "...", "params": [...], "batch_rows": N}}
    refused   {"id": 7, "ok": false, "error": "<the one line `tix sql` prints>", "code": "refused"}
    or        {"id": 7, "ok": true, "result": {"stream": "arrow", "columns": [...], "types": [...]}}\\n
              <Arrow IPC stream: schema, record batches, end-of-stream marker>
              {"id": 7, "ok": true, "result": {"rows": N, "batches": K}}\\n   (the trailer)

A query that fails after its first rows were sent ends its stream early and says why in the
trailer ({"ok": false, "error": ..., "code": "query_error"}). With an arena (after `arena_attach`,
args "arena": [[offset, length], ...], the extents free for this request) the header says
"arena": true and the IPC stream comes as frames: a line {"at": [offset, length]} for messages
written into the arena, or {"inline": length} and then the bytes; then the trailer.

Both the socket and memory the client maps, each where it is the better one. The socket carries
every stream `Result.reader()` reads batch by batch, and everything where the daemon cannot open
the client's arena (another host through `ssh -L`, no /dev/shm, TIX_ARENA=0): it needs no RAM
for a 10 GB result, leaves nothing behind when a client dies mid-read, holds back a slow reader
(the daemon keeps a few batches, never the result) and hands batches over as they come. But it
copies each batch twice (into the kernel, out of it): for 2M rows x 3 columns (51 MiB) on this
2-core box, the daemon's streaming code through a socketpair inside one process, with no daemon
at all (bench/api.py, "the socket floor"), took 1.9-2.4x DuckDB's own `to_arrow_table()`. So a
whole result (`Result.arrow()`) goes into the client's shared-memory arena where it can
(engine/daemon/arena.py, engine/client/arena.py): the batch is copied once, into pages written
before, and the client reads it in place (1.43-1.50x, median). Measured first and rejected: a
memfd per result (fresh pages to fault in and free: 22 core-ms against 17-20 for the socket), a
pipe fed with vmsplice (14 core-ms, but the daemon must keep each batch until the client has
read it, which nothing tells it), an O_TMPFILE on disk.

Why threads that write to the socket themselves: the daemon is one asyncio loop that also
ingests and schedules. The first version handed each batch to the loop (`writer.writelines`,
`drain`): the loop copied every batch into its transport buffer and woke for every 200 KB the
socket took, 2.2-4x DuckDB's own. Now one thread (`pump`) checks and opens the query on a cursor
of its own (a refusal or error is its one line), writes the header, and sends the batches that
a producer thread frames (`_Prefetch`, up to two batches ahead, so DuckDB computes the next batch
while this one travels) with blocking sends on a duplicate of the connection's descriptor
(Arrow's buffers go to the kernel without a copy; DuckDB, pyarrow and `send` release the GIL);
the loop only awaits it. Nothing else writes to the connection meanwhile: the loop first lets
its transport's buffer empty, the connection gets no pushes (`sql_arrow` is refused on a
subscribed one) and no stop notice (`Daemon.streaming`). A 10 GB result never sits whole in the
daemon's memory, and blocks neither other clients nor ingest. The cursor reads one snapshot
inside a transaction that is rolled back, as `tix sql` does (storage.store.check_read_only).

What it costs (bench/api.py): half of DuckDB's Arrow conversion was page faults. glibc mapped
each batch's buffers afresh and unmapped them once sent, so the daemon faulted 6,500-6,900
pages per 2M-row result and spent 50-60 core-ms where DuckDB's own `to_arrow_table()` spent
31; `keep_freed_memory` has the heap keep them (300-500 faults, 35-50 core-ms). What is left
over DuckDB's own work is the read-only check and the query's start (2 core-ms, before the
first row), the two copies (7 in the daemon, 6-10 in the client) and the threads' handoffs: the
API needs about 1.7x DuckDB's own CPU. Where DuckDB's own has two idle cores to itself (17-20
ms on this box), that bounds the API at about 1.5x or above; where the cores are shared the
ratio measured 1.05-1.9x (median over 11 alternating rounds, load average 4).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import queue
import socket
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc

from engine.client.protocol import encode
from engine.daemon.arena import Placement
from storage.store import ReadOnlyQueryError, check_read_only

log = logging.getLogger("tix.daemon")

#: Rows per Arrow batch: DuckDB hands out at most a vector group (122,880 rows) at a time anyway.
BATCH_ROWS = 122_880


class _Parts:
    """A write-only file for pyarrow's IPC writer that keeps what it is given until taken.

    Body buffers arrive as pyarrow Buffers pointing into the batch (no copy: they go to the
    socket as they are); small metadata pieces as bytes, which `_Sender` joins into one send."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[Any] = []

    def write(self, data: Any) -> int:
        self.parts.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> list[Any]:
        parts, self.parts = self.parts, []
        return parts


class ArrowStream:
    """One query's result, produced batch by batch on a cursor of its own (call from threads)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, query: str, params: Sequence[Any] = (),
                 batch_rows: int = BATCH_ROWS) -> None:
        self.cursor = cursor
        self.query = query
        self.params = list(params)
        self.batch_rows = batch_rows
        self.sink = _Parts()
        self.reader: pa.RecordBatchReader | None = None
        self.writer: ipc.RecordBatchStreamWriter | None = None
        self.header: dict[str, Any] = {}
        self.rows = 0
        self.batches = 0
        self.done = False
        self.placement: Placement | None = None
        """The client's arena for this request (engine/daemon/arena.py), or None: all on the socket."""

    def open(self) -> None:
        """Refuse anything `tix sql` refuses, then start the query in a read-only snapshot."""
        check_read_only(self.cursor, self.query, self.params)
        self.cursor.execute("SET TimeZone = 'UTC'")
        self.cursor.execute("BEGIN TRANSACTION")
        relation = self.cursor.sql(self.query, params=self.params or None)
        self.reader = relation.to_arrow_reader(self.batch_rows)
        self.writer = ipc.new_stream(self.sink, self.reader.schema)
        self.header = {"stream": "arrow", "columns": list(relation.columns),
                       "types": [str(t) for t in relation.types], "arena": self.placement is not None}

    def next_parts(self) -> list[Any] | None:
        """The IPC bytes of the next batch (the schema comes with the first), the end-of-stream
        marker after the last, then None."""
        if self.done or self.reader is None or self.writer is None:
            return None
        try:
            batch = self.reader.read_next_batch()
        except StopIteration:
            return self.finish()
        self.writer.write_batch(batch)
        self.rows += batch.num_rows
        self.batches += 1
        return self.sink.take()

    def finish(self) -> list[Any]:
        """End the IPC stream (also after a failure, so the client's reader stops cleanly)."""
        if not self.done and self.writer is not None:
            self.done = True
            self.writer.close()
        return self.sink.take()

    def close(self) -> None:
        """Roll the snapshot back and close the cursor (safe to call twice, and from any thread)."""
        with contextlib.suppress(duckdb.Error):
            self.cursor.execute("ROLLBACK")
        with contextlib.suppress(duckdb.Error):
            self.cursor.close()


def one_line(message: str) -> str:
    """DuckDB messages span lines (a caret under the query); keep them on one, as `sql` does."""
    parts = [p.strip() for p in message.splitlines() if p.strip() and set(p.strip()) != {"^"}]
    return " | ".join(parts)


def pump(stream: ArrowStream, fileno: int, header: dict[str, Any], stopping: Callable[[], bool]) -> None:
    """In a thread: open the query, then write its header line, IPC stream and trailer line to the
    client connection `fileno` (through a duplicate descriptor, closed at the end); a refused or
    wrong query gets its one error line instead. Raises ConnectionError when the client goes away
    or the daemon stops halfway."""
    keep_freed_memory()
    out = _Sender(socket.socket(fileno=os.dup(fileno)), stopping)
    try:
        failure = opened(stream)
        if failure is not None:
            out.send([encode({"id": header.get("id"), **failure})])
            return
        out.send([encode({**header, "result": stream.header})])
        stream_batches(stream, out, header.get("id"))
    finally:
        out.sock.close()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""mallopt's parameter numbers (glibc's malloc.h)."""

_malloc_tuned = False


def keep_freed_memory(mmap_below: int = 32 << 20, trim_above: int = 32 << 20) -> None:
    """Let glibc's malloc reuse the memory of the batches before instead of mapping fresh pages
    (once per process; a no-op without glibc).

    DuckDB builds each Arrow batch in malloc'd buffers that are freed once the batch is sent.
    By default glibc gives allocations of a few MB their own mapping and returns it on free, so
    every batch faulted its pages in again: 13,500 page faults and half of the conversion's CPU
    for 2M rows (55 core-ms instead of 29, measured in process), the daemon at 60 core-ms where
    DuckDB's own `to_arrow_table()` took 31. Allocations under `mmap_below` now come from the
    heap, and the heap keeps up to `trim_above` free bytes for the next batch (so the daemon's
    memory stays within a few batches of its peak, not of a whole result)."""
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl, macOS: their allocator decides
        return
    mallopt(M_MMAP_THRESHOLD, mmap_below)
    mallopt(M_TRIM_THRESHOLD, trim_above)


def opened(stream: ArrowStream) -> dict[str, Any] | None:
    """Open the stream's query; None, or the error line's fields (as the `sql` op words them)."""
    try:
        stream.open()
    except ReadOnlyQueryError as exc:
        return {"ok": False, "code": "refused", "error": str(exc)}
    except duckdb.Error as exc:
        return {"ok": False, "code": "query_error", "error": one_line(str(exc))}
    except Exception as exc:  # noqa: BLE001 - told to the client, logged, the daemon goes on
        log.error("sql_arrow failed:\n%s", traceback.format_exc())
        return {"ok": False, "code": "internal", "error": f"internal error: {type(exc).__name__}: {exc}"}
    return None


def stream_batches(stream: ArrowStream, out: _Sender, request_id: Any) -> None:
    """The IPC stream's pieces as the producer frames them, then the trailer line. Into an arena
    the batches are made and copied in this thread, one after the other: on 2 cores the producer
    thread's overlap cost more than it saved there (45 against 40 core-ms for 2M rows)."""
    batches = _Prefetch(stream) if stream.placement is None else _Serial(stream)
    send = out.send if stream.placement is None else functools.partial(_send_placed, stream.placement, out)
    try:
        try:
            for parts in batches:
                send(parts)
            trailer: dict[str, Any] = {"ok": True, "result": {"rows": stream.rows, "batches": stream.batches}}
        except QueryFailed as exc:
            send(stream.finish())  # the producer has stopped: the writer is this thread's now
            trailer = {"ok": False, "code": "query_error", "error": one_line(str(exc))}
        out.send([encode({"id": request_id, **trailer})])
    finally:
        batches.close()


INLINE_BELOW = 64 << 10
"""IPC pieces smaller than this (the schema, the end marker, a tiny batch) go on the socket even
with an arena: they would only fragment it."""


def _send_placed(placement: Placement, out: _Sender, parts: list[Any]) -> None:
    """Arena framing: a line {"at": [offset, length]} for IPC messages written into the client's
    arena, or {"inline": length} followed by the messages' bytes."""
    length = sum(memoryview(p).nbytes for p in parts)
    where = placement.put(parts) if length >= INLINE_BELOW else None
    if where is not None:
        out.send([encode({"at": list(where)})])
    else:
        out.send([encode({"inline": length}), *parts])


class QueryFailed(Exception):
    """The query failed after its stream began (DuckDB's message): told in the trailer. Kept
    apart from OSError, which from the socket means the client went away."""


class _Prefetch:
    """The stream's batches, produced ahead in a thread of their own: DuckDB computes the next
    batch while the socket carries this one (serialised, the two took 28 ms of 2M rows' 42 ms;
    overlapped, about their maximum). At most `depth` batches wait; iterating re-raises the
    producer's error; `close` stops and joins the producer."""

    def __init__(self, stream: ArrowStream, depth: int = 2) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.produce, args=(stream,), name="tix-arrow-batches",
                                       daemon=True)
        self.thread.start()

    def produce(self, stream: ArrowStream) -> None:
        try:
            for parts in _Serial(stream):
                if not self.put(parts):
                    return
            self.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the sender, which re-raises it
            self.put(exc)

    def put(self, item: Any) -> bool:
        """Queue `item` unless the sender gave up (checked every 0.1 s of a full queue)."""
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.queue.put(item, timeout=0.1)
                return True
        return False

    def __iter__(self) -> Iterator[list[Any]]:
        while (item := self.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class _Serial:
    """The stream's batches made when asked for, in the caller's thread (what _Prefetch does in a
    thread of its own), with the same errors."""

    def __init__(self, stream: ArrowStream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[list[Any]]:
        while True:
            try:
                parts = self.stream.next_parts()
            except (duckdb.Error, pa.ArrowException, OSError) as exc:  # DuckDB's error through Arrow's
                raise QueryFailed(str(exc)) from None  # C stream arrives as a plain OSError
            if parts is None:
                return
            yield parts

    def close(self) -> None:
        pass


class _Sender:
    """Blocking sends that give up when the daemon stops (checked every second of waiting)."""

    def __init__(self, sock: socket.socket, stopping: Callable[[], bool]) -> None:
        self.sock = sock
        self.sock.settimeout(1.0)  # the descriptor stays non-blocking: the loop shares it
        with contextlib.suppress(OSError):  # a whole batch in flight, not 200 KB at a time (capped
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)  # by net.core.wmem_max)
        self.stopping = stopping

    def send(self, parts: list[Any]) -> None:
        """Each part whole; small pieces (IPC metadata, lines) joined into one send."""
        small: list[bytes] = []
        for part in parts:
            if isinstance(part, bytes) and len(part) < 1 << 16:
                small.append(part)
                continue
            self._all(b"".join(small))
            small = []
            self._all(part)
        self._all(b"".join(small))

    def _all(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            try:
                sent = self.sock.send(view)
            except TimeoutError:
                if self.stopping():
                    raise ConnectionAbortedError("the daemon is stopping") from None
                continue
            view = view[sent:]
