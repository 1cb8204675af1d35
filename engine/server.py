"""The tix daemon: the only process that opens the database.

Run by clients on demand (`python -m engine.server --home DIR --detach`), it serves JSON-line
requests on `TIX_HOME/tix.sock` (mode 0600), pushes run changes to subscribed clients, and ticks
the scheduler. It exits after `idle_timeout` seconds with nothing queued or running and no
client connected, closing DuckDB so other tools can open the file. Workers survive it: a new
daemon adopts them and ingests from the stored offsets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import duckdb
import yaml

from engine import __version__
from engine.gpus import gpu_count
from engine.protocol import MAX_LINE, decode, encode
from engine.scheduler import Scheduler
from engine.settings import DaemonSettings
from engine.workspace import Workspace
from storage.store import ReadOnlyQueryError, Store, readonly_query

log = logging.getLogger("tix.daemon")


class RequestError(Exception):
    """A request the daemon refuses; `code` tells the client which exit status to use."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


class Daemon:
    """Socket server + scheduler loop around one Store."""

    def __init__(self, ws: Workspace, store: Store, settings: DaemonSettings,
                 ready: Callable[[str], None] = lambda _: None) -> None:
        self.ws = ws
        self.ready = ready
        self.store = store
        self.settings = settings
        gpus = settings.gpus if settings.gpus is not None else gpu_count()
        self.scheduler = Scheduler(store, ws, settings, gpus)
        self.clients: set[asyncio.StreamWriter] = set()
        self.subscribers: set[asyncio.StreamWriter] = set()
        self.started = time.time()
        self.idle_since = time.time()
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.ops: dict[str, Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[Any]]] = {
            "ping": self.op_ping, "status": self.op_status, "run": self.op_run,
            "submit": self.op_submit, "cancel": self.op_cancel, "resume": self.op_resume, "sql": self.op_sql,
            "schema": self.op_schema, "subscribe": self.op_subscribe, "shutdown": self.op_shutdown,
            "import_scores": self.op_import_scores, "ti": self.op_ti,
        }

    # -- main loop ---------------------------------------------------------------------------
    async def serve(self) -> None:
        self.scheduler.recover()
        with contextlib.suppress(FileNotFoundError):
            self.ws.socket.unlink()
        server = await asyncio.start_unix_server(self.handle, path=str(self.ws.socket), limit=MAX_LINE)
        os.chmod(self.ws.socket, 0o600)
        self.ready("ok")
        log.info("daemon %s pid %d serving %s (gpus=%d)", __version__, os.getpid(), self.ws.socket,
                 self.scheduler.gpu_total)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await self.run_ticks()
        finally:
            server.close()
            for writer in list(self.clients):
                writer.close()
            with contextlib.suppress(FileNotFoundError):
                self.ws.socket.unlink()

    async def run_ticks(self) -> None:
        while not self.stopping.is_set():
            self.tick()
            if self.idle_expired():
                log.info("idle for %.0fs: exiting", self.settings.idle_timeout)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.tick)
            self.wake.clear()

    def tick(self) -> None:
        try:
            changed = self.scheduler.tick()
        except Exception:  # noqa: BLE001 - the daemon must outlive a bad tick; the log says why
            log.error("scheduler tick failed:\n%s", traceback.format_exc())
            return
        self.broadcast(changed)

    def idle_expired(self) -> bool:
        if self.clients or self.scheduler.busy():
            self.idle_since = time.time()
            return False
        return time.time() - self.idle_since >= self.settings.idle_timeout

    def broadcast(self, run_ids: set[str]) -> None:
        if not run_ids or not self.subscribers:
            return
        for run_id in sorted(run_ids):
            run = self.store.run(run_id)
            message = encode({"push": "run", "run": run})
            for writer in list(self.subscribers):
                self._push(writer, message)

    def _push(self, writer: asyncio.StreamWriter, message: bytes) -> None:
        if writer.is_closing():
            self.subscribers.discard(writer)
            return
        writer.write(message)

    # -- connections -------------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        try:
            while not reader.at_eof():
                try:
                    line = await reader.readline()
                except (ConnectionError, ValueError):
                    break
                if line.strip():
                    writer.write(encode(await self.dispatch(line, writer)))
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.clients.discard(writer)
            self.subscribers.discard(writer)
            self.idle_since = time.time()
            writer.close()

    async def dispatch(self, line: bytes, writer: asyncio.StreamWriter) -> dict[str, Any]:
        request_id = None
        try:
            request = decode(line)
            request_id = request.get("id")
            op = self.ops.get(str(request.get("op")))
            if op is None:
                raise RequestError(f"unknown op {request.get('op')!r}")
            result = await op(request.get("args") or {}, writer)
            return {"id": request_id, "ok": True, "result": result}
        except RequestError as exc:
            return {"id": request_id, "ok": False, "error": str(exc), "code": exc.code}
        except ValueError as exc:
            return {"id": request_id, "ok": False, "error": f"bad request: {exc}", "code": "bad_request"}
        except Exception as exc:  # noqa: BLE001 - report, log, keep serving
            log.error("request failed:\n%s", traceback.format_exc())
            return {"id": request_id, "ok": False, "code": "internal",
                    "error": f"internal error: {type(exc).__name__}: {exc} (see {self.ws.log})"}

    # -- operations --------------------------------------------------------------------------
    async def op_ping(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": __version__, "home": str(self.ws.home),
                "uptime": round(time.time() - self.started, 1), "clients": len(self.clients),
                "gpus": self.scheduler.gpu_total, "cpu_slots": self.settings.cpu_slots,
                "idle_timeout": self.settings.idle_timeout, "runs": self.store.count_runs(),
                "host": socket.gethostname()}

    async def op_status(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> list[dict[str, Any]]:
        where, params = [], []
        if args.get("experiment"):
            where.append("id IN (SELECT run_id FROM experiment_runs WHERE experiment = ?)")
            params.append(args["experiment"])
        if args.get("states"):
            states = [str(s) for s in args["states"]]
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(states)
        if args.get("ids"):
            ids = [str(i) for i in args["ids"]]
            where.append(f"id IN ({', '.join('?' for _ in ids)})")
            params.extend(ids)
        return self.store.runs(" AND ".join(where), params, limit=args.get("limit"))

    async def op_run(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return self.store.run(self.resolve_run(str(args.get("id", ""))))

    def resolve_run(self, ref: str) -> str:
        """A run id from its full id or a unique prefix."""
        if not ref:
            raise RequestError("no run id given")
        rows = self.store.con.execute(
            "SELECT id FROM runs WHERE id = ? OR starts_with(id, ?) ORDER BY id LIMIT 6", [ref, ref]
        ).fetchall()
        ids = [r[0] for r in rows]
        if ref in ids:
            return ref
        if not ids:
            raise RequestError(f"no run matches {ref!r} (see `tix status`)", "not_found")
        if len(ids) > 1:
            raise RequestError(f"{ref!r} is ambiguous: {', '.join(ids[:5])}", "bad_request")
        return ids[0]

    async def op_submit(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> list[dict[str, Any]]:
        runs = args.get("runs")
        if not isinstance(runs, list) or not all(isinstance(r, dict) and "id" in r for r in runs):
            raise RequestError("submit needs a list of planned runs")
        result = self.scheduler.submit(args.get("experiment"), runs)
        self.wake.set()
        return result

    async def op_cancel(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> list[str]:
        target = str(args.get("target", ""))
        if target in self.store.experiment_names():
            ids = self.store.experiment_run_ids(target)
        else:
            ids = [self.resolve_run(target)]
        done = self.scheduler.cancel(ids)
        self.broadcast(self.scheduler.changed)
        self.scheduler.changed.clear()
        self.wake.set()
        return done

    async def op_resume(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        run_id = self.resolve_run(str(args.get("id", "")))
        problem = self.scheduler.resume(run_id)
        if problem:
            raise RequestError(problem)
        self.wake.set()
        return self.store.run(run_id)

    async def op_sql(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        params = args.get("params") or []
        if not isinstance(params, list) or not all(p is None or isinstance(p, (str, int, float, bool))
                                                    for p in params):
            raise RequestError("sql params must be a list of scalars")
        cursor = self.store.con.cursor()
        try:
            return await asyncio.to_thread(readonly_query, cursor, str(args.get("query", "")),
                                           int(args.get("max_rows", 10_000)), params)
        except ReadOnlyQueryError as exc:
            raise RequestError(str(exc), "refused") from None
        except duckdb.Error as exc:
            raise RequestError(one_line(str(exc)), "query_error") from None

    async def op_import_scores(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        return apply_import(self.store, args)

    async def op_ti(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """TI of every tuned model (engine.ti), computed here so clients need no numpy."""
        return await asyncio.to_thread(run_ti, self.store.con.cursor(), args)

    async def op_schema(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> list[dict[str, str]]:
        return self.store.schema()

    async def op_subscribe(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        self.subscribers.add(writer)
        return {"subscribed": ["run"]}

    async def op_shutdown(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        self.stopping.set()
        self.wake.set()
        return {"stopping": True, "workers_left_running": len(self.scheduler.active)}


def run_ti(cursor: duckdb.DuckDBPyConnection, args: dict[str, Any]) -> dict[str, Any]:
    """The `ti` op on a cursor of its own (run in a thread, like `sql`): args experiment,
    variant (v1|v2), sigma (pooled, per-model or {math, other, non}); closes the cursor."""
    from engine import ti

    variant, experiment = args.get("variant"), args.get("experiment")
    if variant not in (None, "v1", "v2") or not isinstance(experiment, (str, type(None))):
        raise RequestError("ti: variant must be v1 or v2 and experiment a name")
    try:
        sigma = ti.check_sigma(args.get("sigma"))
        return ti.report(lambda sql, params: _dict_rows(cursor, sql, params), experiment, variant, sigma)
    except ti.UnknownExperiment as exc:
        raise RequestError(str(exc), "not_found") from None
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    finally:
        cursor.close()


def _dict_rows(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor.execute(sql, params or None)
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def apply_import(store: Store, args: dict[str, Any]) -> dict[str, int]:
    """Store scores the client validated line by line (engine.imports). Checked again here, since
    any script may send the op, and a base model outside the file must have scores already."""
    experiment, models, scores = check_import(args)
    whole = bool(args.get("whole_experiment"))
    own = {m["model"] for m in models}
    known = set() if whole else set(store.experiment_models(experiment)) - own
    for m in models:
        base = m.get("base_model")
        if base and base not in own and base not in known:
            raise RequestError(f"base model {base!r} has no scores in experiment {experiment!r}", "not_found")
    return store.replace_imports(experiment, str(args.get("source") or ""), models, scores, whole)


def check_import(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """The experiment, models and scores of an `import_scores` request, or a RequestError."""
    from engine.imports import GROUPS, NAME

    experiment, models, scores = args.get("experiment"), args.get("models"), args.get("scores")
    if not isinstance(experiment, str) or not NAME.fullmatch(experiment):
        raise RequestError(f"bad experiment name {experiment!r}: letters, digits, '.', '_' and '-'")
    if not isinstance(models, list) or not isinstance(scores, list) or not scores:
        raise RequestError("import_scores needs non-empty lists `models` and `scores`")
    names = {m.get("model") for m in models if isinstance(m, dict)}
    if len(names) != len(models) or not all(isinstance(n, str) and n for n in names):
        raise RequestError("every imported model needs a unique non-empty name")
    if not all(isinstance(m.get("base_model"), (str, type(None))) and _opt_int(m.get("position"))
               for m in models):
        raise RequestError("an imported model's base_model must be a name or null, its position a line")
    seen: set[tuple[str, str]] = set()
    for s in scores:
        if not isinstance(s, dict) or s.get("model") not in names or s.get("group") not in GROUPS:
            raise RequestError(f"bad score row {s!r}: model must be imported, "
                               f"group one of {', '.join(GROUPS)}")
        value, key = s.get("value"), (s["model"], s.get("benchmark"))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise RequestError(f"bad score row {s!r}: value must be a percent in 0-100")
        if not isinstance(key[1], str) or not key[1] or key in seen or not _opt_int(s.get("line")):
            raise RequestError(f"bad score row {s!r}: missing or duplicate benchmark")
        seen.add(key)
    return experiment, models, scores


def _opt_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def one_line(message: str) -> str:
    """DuckDB messages span lines (a caret under the query); keep them on one."""
    parts = [p.strip() for p in message.splitlines() if p.strip() and set(p.strip()) != {"^"}]
    return " | ".join(parts)


# -- process entry --------------------------------------------------------------------------------
def acquire_lock(ws: Workspace) -> int | None:
    """Hold `daemon.lock` for the daemon's life; None when another daemon holds it."""
    fd = os.open(ws.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def run_daemon(ws: Workspace, settings: DaemonSettings, ready: Callable[[str], None]) -> int:
    """Run until idle or stopped; 0 also when another daemon already serves this workspace."""
    lock = acquire_lock(ws)
    if lock is None:
        log.info("another daemon holds %s", ws.lock)
        ready("ok: already running")
        return 0
    try:
        store = Store.open(ws.db)
    except duckdb.Error as exc:
        message = f"cannot open {ws.db}: {one_line(str(exc))}"
        log.error(message)
        ready(message)
        return 1
    try:
        asyncio.run(Daemon(ws, store, settings, ready).serve())
    finally:
        store.close()
        os.close(lock)
    return 0


def detach(log_file: Path) -> Callable[[str], None]:
    """Fork; the parent exits once the child reports ready (0) or why it could not start (1).

    This lets `tix` say at once why no daemon came up instead of waiting for a socket.
    """
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        message = os.read(read_end, 4096).decode(errors="replace")
        if not message.startswith("ok"):
            print(message or "the daemon exited during start-up", file=sys.stderr)
        os._exit(0 if message.startswith("ok") else 1)
    os.close(read_end)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for fd in (1, 2):  # release the launcher's pipes: the starting client waits for their EOF
        os.dup2(log_fd, fd)
    os.close(log_fd)

    def ready(message: str) -> None:
        nonlocal write_end
        if write_end >= 0:
            os.write(write_end, message.encode())
            os.close(write_end)
            write_end = -1

    return ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.server", description="the tix daemon")
    parser.add_argument("--home", help="workspace folder (default TIX_HOME or ~/.tix)")
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    args = parser.parse_args(argv)
    ws = Workspace.resolve(args.home).ensure()
    logging.basicConfig(filename=ws.log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = DaemonSettings.load(ws.config)
    except (ValueError, OSError, yaml.YAMLError) as exc:
        log.error("cannot start: %s", exc)
        print(f"cannot start: {one_line(str(exc))}", file=sys.stderr)
        return 1
    ready = detach(ws.log) if args.detach else (lambda _: None)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = run_daemon(ws, settings, ready)
    ready("the daemon stopped during start-up")
    return code


if __name__ == "__main__":
    sys.exit(main())
