"""The TUI's only way to the data: an asyncio client of the daemon's socket.

The TUI process never opens DuckDB and never imports torch: every screen asks the daemon through
`Source.request(op, **args)` (the ops of engine/daemon/server.py, JSON lines as engine/client/protocol.py
describes) and reacts to what the daemon pushes (`Source.pushes`). Requests and pushes share one
connection; a reader task routes responses to their waiting request by id and pushes to a queue,
so a slow screen never blocks another. When the daemon goes away the source says so
(`connected` turns False, waiting requests fail with DaemonGone) and `connect()` can be called
again: the app keeps retrying and shows a banner meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from engine.client.connection import start_daemon
from engine.client.protocol import MAX_LINE, decode, encode
from engine.workspace import Workspace


class SourceError(Exception):
    """The daemon refused a request; the message is its one-line reason."""

    def __init__(self, message: str, code: str = "internal") -> None:
        super().__init__(message)
        self.code = code


class DaemonGone(SourceError):
    """No daemon answers (not started, stopped, or the connection dropped)."""

    def __init__(self, message: str = "the daemon is not reachable") -> None:
        super().__init__(message, "unavailable")


class Source:
    """One connection to the daemon: requests by id, pushes in a queue, reconnect on demand."""

    def __init__(self, ws: Workspace, autostart: bool = True) -> None:
        self.ws = ws
        self.autostart = autostart
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.subscribed = False

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, subscribe: bool = True) -> None:
        """Open the connection (starting the daemon when allowed) and subscribe to run pushes."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.ws.socket), limit=MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if not self.autostart:
                raise DaemonGone() from exc
            await asyncio.to_thread(start_daemon, self.ws)
            reader, writer = await asyncio.open_unix_connection(str(self.ws.socket), limit=MAX_LINE)
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read(reader))
        if subscribe:
            await self.request("subscribe")
            self.subscribed = True

    async def request(self, op: str, **args: Any) -> Any:
        """Send one request and await its result; SourceError with the daemon's reason on refusal."""
        if not self.connected:
            raise DaemonGone()
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        assert self._writer is not None
        self._writer.write(encode({"id": request_id, "op": op, "args": args}))
        await self._writer.drain()
        message = await future
        if not message.get("ok"):
            raise SourceError(str(message.get("error")), str(message.get("code", "internal")))
        return message.get("result")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = decode(line)
                if "push" in message:
                    self.pushes.put_nowait(message)
                elif (future := self._waiting.pop(message.get("id"), None)) and not future.done():
                    future.set_result(message)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            self._drop()

    def _drop(self) -> None:
        """The connection is gone: fail every waiting request, tell listeners through a push."""
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self.subscribed = False
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(DaemonGone("the daemon closed the connection"))
        self._waiting.clear()
        self.pushes.put_nowait({"push": "disconnected"})

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
        self._writer = None
