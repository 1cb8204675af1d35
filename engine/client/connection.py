"""The client side of the daemon protocol, used by the CLI, the TUI and scripts.

It never opens the database. When no daemon answers on the workspace socket it starts one,
detached in its own session, and waits for the socket to accept connections.
"""

from __future__ import annotations

import collections
import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.client.protocol import decode, encode
from engine.events import tail_text
from engine.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa


STREAMED_OPS = frozenset({"sql_arrow"})
"""Ops answered by an Arrow IPC stream after their header line (`Client.stream`, not `request`)."""


class DaemonUnavailable(Exception):
    """No daemon could be reached or started."""


class RequestFailed(Exception):
    """The daemon refused a request; `code` is refused, query_error, not_found, bad_request or internal."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def start_daemon(ws: Workspace) -> None:
    """Launch `python -m engine.daemon.server --detach` and reap the launcher (the daemon is its child)."""
    ws.ensure()
    launcher = subprocess.run(
        [sys.executable, "-m", "engine.daemon.server", "--home", str(ws.home), "--detach"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True, timeout=60, text=True,
    )
    if launcher.returncode != 0:
        reason = (launcher.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise DaemonUnavailable(f"the daemon could not start: {reason} (log: {ws.log})")


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


class Client:
    """One connection to the daemon; `request` is synchronous, `pushes` yields subscribed events."""

    def __init__(self, ws: Workspace | None = None, autostart: bool = True, timeout: float = 120.0) -> None:
        self.ws = ws or Workspace.resolve()
        self.timeout = timeout
        self.sock = self._open(autostart)
        self.buffer = bytearray()
        self.ids = itertools.count(1)
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.arena: tuple[socket.socket, Any] | None = None
        """(the connection it is attached to, its ClientArena or None when it could not be)."""
        self.streaming = False
        """True from an Arrow stream's request until its trailer is read. A request made while it
        is set (a stream left half read, or interrupted) goes on a new connection: the old one
        still has the stream's bytes coming. (A JSON answer left unread needs no such care: it is
        one line, skipped by its id.)"""

    def _open(self, autostart: bool) -> socket.socket:
        try:
            return _connect(str(self.ws.socket), self.timeout)
        except OSError:
            if not autostart:
                raise DaemonUnavailable(f"no daemon is running for {self.ws.home}") from None
        start_daemon(self.ws)
        return self._wait_for_socket(deadline=time.time() + 30)

    def _wait_for_socket(self, deadline: float) -> socket.socket:
        while time.time() < deadline:
            try:
                return _connect(str(self.ws.socket), self.timeout)
            except OSError:
                time.sleep(0.05)
        reason = tail_text(self.ws.log, 400).splitlines()[-1:] or ["no log"]
        raise DaemonUnavailable(f"the daemon did not start within 30 s ({self.ws.log}: {reason[0]})")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the arena's memory goes once no table points into it."""
        self.sock.close()
        self.arena = None

    def request(self, op: str, **args: Any) -> Any:
        """Send one request and return its result; raises RequestFailed with the daemon's reason."""
        if op in STREAMED_OPS:
            raise ValueError(f"{op} answers with an Arrow stream: use Client.stream")
        return self._answer(self._send(op, args))

    def _send(self, op: str, args: dict[str, Any]) -> int:
        if self.streaming:
            self.reconnect()
        request_id = next(self.ids)
        self.streaming = op in STREAMED_OPS
        self.sock.sendall(encode({"id": request_id, "op": op, "args": args}))
        return request_id

    def _answer(self, request_id: int) -> Any:
        """The result of request `request_id` (pushes that arrive first are kept for `pushes`)."""
        while True:
            message = self._read()
            if "push" in message:
                self.pending.append(message)
            elif message.get("id") == request_id:
                break
        if not message.get("ok"):
            self.streaming = False  # a refusal, or the trailer of a failed stream: nothing follows
            raise RequestFailed(str(message.get("error")), str(message.get("code", "internal")))
        return message.get("result")

    def reconnect(self) -> None:
        """A fresh connection (the daemon ends whatever the old one was in the middle of)."""
        self.sock.close()
        self.sock = self._open(autostart=True)
        self.buffer.clear()
        self.pending.clear()
        self.streaming = False

    def stream(self, op: str, **args: Any) -> pa.RecordBatchReader:
        """Send a request answered by an Arrow IPC stream (`sql_arrow`); its batches, read from
        the socket as they are consumed. Refusals raise RequestFailed here, before any row; a
        failure halfway raises it from the reader. Read the reader to its end before the next
        request on this client (a request sent earlier abandons it, on a new connection)."""

        if op not in STREAMED_OPS:
            raise ValueError(f"{op} answers with one JSON line: use Client.request")
        request_id = self._send(op, args)
        self._answer(request_id)
        return self._rest_of_stream(request_id)

    def _rest_of_stream(self, request_id: int) -> pa.RecordBatchReader:
        """The Arrow IPC stream after its header line, then its trailer."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        batches = ipc.open_stream(_SocketReader(self))

        def rest() -> Iterator[pa.RecordBatch]:
            yield from batches
            self._answer(request_id)  # the trailer: a failure after the first rows raises here
            self.streaming = False

        return pa.RecordBatchReader.from_batches(batches.schema, rest())

    def table(self, op: str, **args: Any) -> pa.Table:
        """The whole result of a streamed op (`sql_arrow`) as a Table. Its batches are written by
        the daemon into this connection's shared-memory arena and read in place where it can
        (engine/client/arena.py); otherwise, or with TIX_ARENA=0, read from the socket."""
        if self.streaming:
            self.reconnect()
        arena = self._attached_arena()
        if arena is None:
            return self.stream(op, **args).read_all()
        request_id = self._send(op, {**args, "arena": arena.grant()})
        header = self._answer(request_id)
        if not header.get("arena"):
            return self._rest_of_stream(request_id).read_all()
        return self._placed(request_id, arena, header)

    def _attached_arena(self) -> Any:
        """This connection's arena: made and attached on first use (None where it cannot be)."""
        if self.arena is not None and self.arena[0] is self.sock:
            return self.arena[1]
        from engine.client.arena import open_arena

        made, arena = open_arena(), None
        if made is not None:
            try:
                self.request("arena_attach", path=made.path, size=made.capacity, warm=made.warm)
                arena = made
            except RequestFailed:  # another host (ssh -L), or a daemon that will not: the socket
                pass
            finally:
                made.unlink()
        self.arena = (self.sock, arena)
        return arena

    def _placed(self, request_id: int, arena: Any, header: dict[str, Any]) -> pa.Table:
        """Read an arena-framed result: {"at": [offset, length]} lines for IPC messages in the
        arena, {"inline": length} lines followed by the bytes, then the trailer. pyarrow's IPC
        reader reads the frames as one stream (dictionaries included), each body in place."""
        import pyarrow.ipc as ipc

        frames = _FrameReader(self, arena, request_id)
        table = ipc.open_stream(frames).read_all()
        while not frames.done:  # the end-of-stream marker came before the trailer
            frames.next_frame()
        self.streaming = False
        if not frames.trailer.get("ok"):
            raise RequestFailed(str(frames.trailer.get("error")), str(frames.trailer.get("code", "internal")))
        return table

    def _read(self) -> dict[str, Any]:
        while (end := self.buffer.find(b"\n")) < 0:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise DaemonUnavailable("the daemon closed the connection")
            self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return decode(line)

    def subscribe(self) -> None:
        self.request("subscribe")

    def pushes(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Pushed messages as they arrive; with `timeout`, stops after that long without one."""
        self.sock.settimeout(timeout)
        try:
            while True:
                while self.pending:
                    yield self.pending.popleft()
                try:
                    yield self._read()
                except TimeoutError:
                    return
        finally:
            self.sock.settimeout(self.timeout)


class _ArrowSource:
    """What pyarrow's IPC reader needs of a Python file: sized reads, no seeking, nothing to close."""

    closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        pass

    @staticmethod
    def sized(size: int) -> None:
        if size < 0:
            raise ValueError("an Arrow stream is read in sized pieces")


class _FrameReader(_ArrowSource):
    """A read-only file over an arena-framed result (Client._placed): each read is a slice of the
    current frame, an arena region or inline bytes, without a copy (a read across two frames,
    which whole IPC messages never need, is joined). Empty once the trailer line has come."""

    def __init__(self, client: Client, arena: Any, request_id: int) -> None:
        self.client, self.arena, self.request_id = client, arena, request_id
        self.frame: pa.Buffer | None = None
        self.pos = 0
        self.done = False
        self.trailer: dict[str, Any] = {}

    def read(self, size: int = -1) -> Any:
        self.sized(size)
        pieces = []
        while size > 0:
            if self.frame is None or self.pos >= self.frame.size:
                if self.done or not self.next_frame():
                    break
                continue
            n = min(size, self.frame.size - self.pos)
            pieces.append(self.frame.slice(self.pos, n))
            self.pos, size = self.pos + n, size - n
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(p.to_pybytes() for p in pieces)

    def next_frame(self) -> bool:
        """The next frame as the current one; False at the trailer (kept in `trailer`)."""
        import pyarrow as pa

        message = self.client._read()
        if "at" in message:
            self.frame = self.arena.claim(*message["at"])
        elif "inline" in message:
            self.frame = pa.py_buffer(_SocketReader(self.client).read(int(message["inline"])))
        elif message.get("id") == self.request_id:
            self.trailer, self.done, self.frame = message, True, None
            return False
        self.pos = 0
        return True


class _SocketReader(_ArrowSource):
    """A read-only file over the client's socket for pyarrow's IPC reader: what `_read` already
    buffered first, then exactly the bytes asked for, received straight into an Arrow buffer (a
    batch's body is one allocation and no copy), and nothing beyond the stream's end marker."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def read(self, size: int = -1) -> Any:
        self.sized(size)
        buffered = self.client.buffer
        if len(buffered) >= size:
            data = bytes(buffered[:size])
            del buffered[:size]
            return data
        import pyarrow as pa

        out = pa.allocate_buffer(size)  # aligned, not zero-filled: Arrow reads the batch in place
        view = memoryview(out).cast("B")
        got = len(buffered)
        view[:got] = buffered
        buffered.clear()
        while got < size:
            n = self.client.sock.recv_into(view[got:])
            if not n:
                raise DaemonUnavailable("the daemon closed the connection in the middle of a result")
            got += n
        return out


def daemon_running(ws: Workspace) -> bool:
    """True when a daemon answers on the socket (starts nothing)."""
    try:
        with Client(ws, autostart=False, timeout=5) as client:
            client.request("ping")
        return True
    except (DaemonUnavailable, OSError, RequestFailed):
        return False
