"""The tix daemon: the only process that opens the database.

Run by clients on demand (`python -m engine.daemon.server --home DIR --detach`), it serves JSON-line
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
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import yaml

from engine import __version__
from engine.client.protocol import MAX_LINE, decode, encode
from engine.daemon import arrow_stream, bundle_ops, compare_ops, flips_ops, refresher
from engine.daemon.arena import Arena, ArenaError, Placement
from engine.daemon.arrow_stream import BATCH_ROWS, ArrowStream
from engine.daemon.executors import slurm_info
from engine.daemon.gpus import DETECTION, gpu_stats, schedulable
from engine.daemon.ingest import EventSummary
from engine.daemon.resource_ops import resources
from engine.daemon.runlog import read_chunk, streams_for
from engine.daemon.scheduler import Scheduler
from engine.daemon.settings import DaemonSettings
from engine.events import STDERR_FILE, STDOUT_FILE
from engine.workspace import Workspace
from storage.bundles import BundleError
from storage.store import ReadOnlyQueryError, Store, readonly_query, run_metrics, run_results, run_samples

if TYPE_CHECKING:
    from engine.analysis.paired import PairedCache

log = logging.getLogger("tix.daemon")
PAIRED_READERS = re.compile(r"paired_|flip|run_items", re.IGNORECASE)
"""A query naming these reads `paired_stats` or `run_items` (`flips` and `flip_summary` read both since
migration 0008): the daemon refreshes them first (0006)."""
FLIP_READERS = re.compile(r"flip", re.IGNORECASE)
"""A query naming these reads `flip_stats` (through `flip_summary`, 0009): refreshed first too."""
MAX_BOOT = 100_000
PAIRED_SNAPSHOT = "paired.npz"
"""The paired items and TI replicates a daemon leaves for the next, in TIX_HOME/cache."""


def refresh_for(cache: PairedCache, cursor: duckdb.DuckDBPyConnection, query: str) -> None:
    """Bring what `query` reads of the daemon's caches up to date: `paired_stats` and `run_items`,
    and `flip_stats` for a query naming flips (a no-op when nothing changed)."""
    if PAIRED_READERS.search(query):
        cache.refresh_table(cursor)
        if FLIP_READERS.search(query):
            cache.refresh_flips(cursor)


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
        self.scheduler = Scheduler(store, ws, settings, schedulable(settings.gpus))
        self.clients: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[Any]] = set()
        """The connection tasks, awaited at a stop so none is cancelled mid-read (asyncio logs those)."""
        self.subscribers: set[asyncio.StreamWriter] = set()
        #: Runs each client follows closely (`subscribe` with `runs`): it gets run_events pushes.
        self.watchers: dict[asyncio.StreamWriter, set[str]] = {}
        self.arenas: dict[asyncio.StreamWriter, Arena] = {}
        """Each connection's shared-memory arena, once attached (engine/daemon/arena.py)."""
        self.streaming: set[asyncio.StreamWriter] = set()
        """Connections in the middle of an Arrow stream (`sql_arrow`): no notice may cut into one."""
        self.log_sizes: dict[str, tuple[int, int]] = {}
        self.started = time.time()
        self.idle_since = time.time()
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.sinfo = slurm_info.SinfoCache()
        """The cluster as sinfo last showed it (the `gpus` op on Slurm; a few seconds old at most)."""
        self.paired: PairedCache | None = None
        """Every tuned model's items paired with its base's, and the `paired_stats` table they fill
        (engine.analysis.paired), reloaded only when the stored items change."""
        self.paired_lock = threading.Lock()
        self.refresher = refresher.Refresher(self.refresh_in_background, self.store.con.cursor)
        """Refreshes those caches in a thread once ingest has been quiet (engine/daemon/refresher.py)."""
        self.ops: dict[str, Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[Any]]] = {
            "ping": self.op_ping, "status": self.op_status, "run": self.op_run,
            "submit": self.op_submit, "cancel": self.op_cancel, "resume": self.op_resume, "sql": self.op_sql,
            "schema": self.op_schema, "subscribe": self.op_subscribe, "shutdown": self.op_shutdown,
            "import_scores": self.op_import_scores, "ti": self.op_ti,
            "run_metrics": self.op_run_metrics, "run_log": self.op_run_log,
            "run_samples": self.op_run_samples, "run_results": self.op_run_results, "gpus": self.op_gpus,
            "resources": self.op_resources,
            "sql_total": self.op_sql_total, "sql_export": self.op_sql_export,
            "sql_page": self.op_sql_page,
            "sql_arrow": self.op_sql_arrow, "arena_attach": self.op_arena_attach,
            "export_bundle": self.op_export_bundle,
            "import_bundle": self.op_import_bundle,
            "flips": self.op_flips, "flip_item": self.op_flip_item,
            "run_config": self.op_run_config, "run_diff": self.op_run_diff,
            "compare_evals": self.op_compare_evals, "refresh_state": self.op_refresh_state,
        }

    # -- main loop ---------------------------------------------------------------------------
    async def serve(self) -> None:
        self.scheduler.recover()
        with contextlib.suppress(FileNotFoundError):
            self.ws.socket.unlink()
        server = await asyncio.start_unix_server(self.handle, path=str(self.ws.socket), limit=MAX_LINE)
        os.chmod(self.ws.socket, 0o600)
        self.ready("ok")
        self.refresher.start()
        log.info("daemon %s pid %d serving %s (gpus=%d, executor=%s)", __version__, os.getpid(),
                 self.ws.socket, self.scheduler.gpu_total, self.settings.executor)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, f"signal {sig.name}")
        try:
            await self.run_ticks()
        finally:
            server.close()
            for writer in list(self.clients):
                writer.close()
            if self.handlers:  # each ends on the EOF of its closed connection
                await asyncio.wait(list(self.handlers), timeout=5)
            with contextlib.suppress(FileNotFoundError):
                self.ws.socket.unlink()
            await self.refresher.stop()
            self.refresh_paired_on_exit()
            self.scheduler.close()

    def stop(self, reason: str) -> None:
        """A deliberate stop (`tix daemon stop`, SIGTERM): one INFO line, and every client is told,
        so a TUI waits to be asked instead of starting a daemon again (it does after a crash)."""
        if self.stopping.is_set():
            return
        log.info("stopping (%s); %d worker(s) left running, the next daemon adopts them", reason,
                 len(self.scheduler.active))
        notice = encode({"push": "stopping", "reason": reason})
        for writer in list(self.clients - self.streaming):
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(notice)
        self.stopping.set()
        self.wake.set()

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
        if self.scheduler.ingested:  # samples or scores landed: the caches go stale
            self.refresher.poke()
        self.push_run_events()

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
            self.watchers.pop(writer, None)
            return
        writer.write(message)

    def push_run_events(self) -> None:
        """Tell each client following a run what ingest stored for it and whether its logs grew.

        The notice is small ({"push": "run_events", "run_id", "metrics", "samples", "events",
        "logs"}: line counts and log sizes); the client fetches what it shows with run_metrics,
        run_samples and run_log, so a burst of lines costs one notice per tick.
        """
        ingested, self.scheduler.ingested = self.scheduler.ingested, {}
        watched = {run_id for runs in self.watchers.values() for run_id in runs}
        for run_id in sorted(watched):
            notice = self._run_notice(run_id, ingested.get(run_id))
            if notice is None:
                continue
            message = encode(notice)
            for writer, runs in list(self.watchers.items()):
                if run_id in runs:
                    self._push(writer, message)

    def _run_notice(self, run_id: str, summary: EventSummary | None) -> dict[str, Any] | None:
        sizes = self._log_sizes(run_id) if summary or run_id in self.scheduler.active else None
        grew = sizes is not None and sizes != self.log_sizes.get(run_id)
        if sizes is not None:
            self.log_sizes[run_id] = sizes
        if summary is None and not grew:
            return None
        metrics = summary.metric_lines if summary else 0
        return {"push": "run_events", "run_id": run_id, "metrics": metrics,
                "samples": summary.sample_lines if summary else 0,
                "events": (summary.lines - metrics) if summary else 0,
                "logs": None if sizes is None else {"stdout": sizes[0], "stderr": sizes[1]}}

    def _log_sizes(self, run_id: str) -> tuple[int, int]:
        run_dir = self.ws.run_dir(run_id)
        sizes = []
        for name in (STDOUT_FILE, STDERR_FILE):
            try:
                sizes.append((run_dir / name).stat().st_size)
            except OSError:
                sizes.append(0)
        return sizes[0], sizes[1]

    # -- connections -------------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            while not reader.at_eof():
                try:
                    line = await reader.readline()
                except (ConnectionError, ValueError):
                    break
                if line.strip():
                    await self.answer(await self.dispatch(line, writer), writer)
        except ConnectionError:
            pass
        finally:
            self.handlers.discard(task)  # type: ignore[arg-type]
            self.clients.discard(writer)
            self.subscribers.discard(writer)
            self.watchers.pop(writer, None)
            arena = self.arenas.pop(writer, None)
            if arena is not None:
                arena.close()
            self.idle_since = time.time()
            writer.close()

    async def answer(self, response: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """Write one response line; a streamed result (`sql_arrow`) is a header line, the Arrow
        IPC stream and a trailer line (engine/daemon/arrow_stream.py)."""
        stream = response.get("result")
        if not isinstance(stream, ArrowStream):
            writer.write(encode(response))
            await writer.drain()
            return
        self.streaming.add(writer)
        try:
            while writer.transport.get_write_buffer_size():  # the thread writes next, in order
                await asyncio.sleep(0.001)
            fileno = writer.get_extra_info("socket").fileno()
            await asyncio.to_thread(arrow_stream.pump, stream, fileno, {**response, "result": stream.header},
                                    self.stopping.is_set)
        except OSError as exc:  # the client went away mid-stream (or the daemon stops): end it
            raise ConnectionError(str(exc)) from None
        finally:
            self.streaming.discard(writer)
            await asyncio.to_thread(stream.close)

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
                "gpus": self.scheduler.gpu_total, "cpu_slots": self.settings.cpu_slot_count,
                "idle_timeout": self.settings.idle_timeout, "runs": self.store.count_runs(),
                "host": socket.gethostname(), "executor": self.settings.executor}

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
        """Queue a failed or cancelled run again; `dependants`: also the runs its end took down.
        Result: the run, with `dependants` (ids queued again with it) and `left` (the runs its
        end took down that stay as they are: without `dependants`, what it would also queue)."""
        run_id = self.resolve_run(str(args.get("id", "")))
        problem, again = self.scheduler.resume(run_id, dependants=bool(args.get("dependants")))
        if problem:
            raise RequestError(problem)
        self.wake.set()
        left = [] if again else self.scheduler.taken_down(run_id)
        return {**(self.store.run(run_id) or {}), "dependants": again, "left": left}

    def paired_cache(self) -> PairedCache:
        with self.paired_lock:  # the background refresh's thread may ask first
            if self.paired is None:
                from engine.analysis.paired import PairedCache

                self.paired = PairedCache(snapshot=self.ws.cache / PAIRED_SNAPSHOT)
            return self.paired

    def refresh_in_background(self, cursor: duckdb.DuckDBPyConnection, cancelled: threading.Event) -> None:
        """The refresher's work, in its thread: what `ti` and `flips` would refresh on demand."""
        refresher.refresh_all(self.paired_cache(), cursor, cancelled)

    async def op_refresh_state(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """The background refresh: pending, running, refreshes done, last_s, last_error."""
        return self.refresher.state()

    async def refresh_paired(self, query: str) -> None:
        """Before a query that reads `paired_stats` (through `paired_deltas` or `flip_summary`), bring
        the table up to date with the items (in a thread; a no-op when nothing changed)."""
        if not PAIRED_READERS.search(query):
            return
        cursor = self.store.con.cursor()
        try:
            await asyncio.to_thread(refresh_for, self.paired_cache(), cursor, query)
        except duckdb.Error as exc:
            raise RequestError(one_line(str(exc)), "query_error") from None
        finally:
            cursor.close()

    def refresh_paired_on_exit(self) -> None:
        """Leave `paired_stats` current for whoever opens the file next (duckdb, harlequin)."""
        cursor = self.store.con.cursor()
        try:
            self.paired_cache().refresh_table(cursor)
            self.paired_cache().refresh_flips(cursor)
            self.paired_cache().save(cursor)
        except Exception:  # noqa: BLE001 - exiting anyway; the next daemon refreshes it on demand
            log.error("refreshing paired_stats at exit failed:\n%s", traceback.format_exc())
        finally:
            cursor.close()

    async def op_sql(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """A read-only query: args query, max_rows (default 10,000), params (`?` values)."""
        await self.refresh_paired(str(args.get("query", "")))
        return await self.readonly_in_thread(_query, str(args.get("query", "")),
                                             int(args.get("max_rows", 10_000)), query_params(args))

    async def op_sql_total(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """`sql` plus the full row count (the TUI's SQL console; engine/daemon/tui_ops.py): args query,
        max_rows (default 1,000), params."""
        from engine.daemon.tui_ops import sql_with_total

        max_rows = _bounded(args.get("max_rows"), 1_000, 1, 1_000_000)
        await self.refresh_paired(str(args.get("query", "")))
        return await self.readonly_in_thread(sql_with_total, str(args.get("query", "")), max_rows,
                                             query_params(args))

    async def op_sql_page(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """One page of a read-only query, sorted by a column when asked (the TUI's SQL console;
        engine/daemon/sql_paging.py): args query, params, offset, limit, sort, descending."""
        from engine.daemon.sql_paging import PageRequest, sql_page

        try:
            request = PageRequest.parse(args)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        await self.refresh_paired(request.query)
        return await self.readonly_in_thread(sql_page, request, query_params(args))

    async def op_sql_export(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Write a read-only query's whole result with DuckDB's COPY (engine/daemon/tui_ops.py): args query,
        path (absolute, on this box), format (csv | parquet), params. Result: rows, path."""
        from engine.daemon.tui_ops import export_query

        query, path, fmt = (str(args.get(k, "")) for k in ("query", "path", "format"))
        await self.refresh_paired(query)
        return await self.readonly_in_thread(export_query, query, path, fmt, query_params(args))

    async def readonly_in_thread(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        """Run `fn(store, *args)` in a thread on a connection of its own (a cursor made here, on the
        loop's thread, as `sql` does), mapping refusals and DuckDB errors to one-line answers."""
        own = Store(self.store.con.cursor(), None)
        try:
            return await asyncio.to_thread(fn, own, *args)
        except ReadOnlyQueryError as exc:
            raise RequestError(str(exc), "refused") from None
        except duckdb.Error as exc:
            raise RequestError(one_line(str(exc)), "query_error") from None
        finally:
            own.close()

    async def op_sql_arrow(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> ArrowStream:
        """A read-only query's whole result as an Arrow IPC stream (engine/daemon/arrow_stream.py):
        args query, params, batch_rows. Refused exactly as `sql` refuses, and on a connection that
        gets pushes (a push between two batches would break the stream)."""
        if writer in self.subscribers:
            raise RequestError("sql_arrow: this connection gets pushes; stream on a connection of its own")
        query, params = str(args.get("query", "")), query_params(args)
        await self.refresh_paired(query)
        batch_rows = _bounded(args.get("batch_rows"), BATCH_ROWS, 1, 1 << 20)
        stream = ArrowStream(self.store.con.cursor(), query, params, batch_rows)  # opened in its thread
        granted, arena = args.get("arena"), self.arenas.get(writer)
        if isinstance(granted, list) and arena is not None:
            stream.placement = Placement(arena, granted)
        return stream

    async def op_arena_attach(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Open the client's shared-memory arena for this connection's `sql_arrow` results
        (engine/daemon/arena.py): args path (in /dev/shm, this user's), size, warm (the bytes the
        client keeps allocated: mapped here). Result: size."""
        try:
            arena = Arena(str(args.get("path", "")), int(args.get("size") or 0), int(args.get("warm") or 0))
        except (ArenaError, ValueError, OSError) as exc:
            raise RequestError(str(exc)) from None
        old = self.arenas.pop(writer, None)
        if old is not None:
            old.close()
        self.arenas[writer] = arena
        return {"size": arena.size}

    async def op_export_bundle(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Write an experiment's bundle folder (engine/daemon/bundle_ops.py): args experiment, path
        (absolute, on this box; new or empty). Result: experiment, path, tables {table: rows}, files."""
        experiment, path = args.get("experiment"), args.get("path")
        if not isinstance(experiment, str) or not isinstance(path, str):
            raise RequestError("export_bundle needs an experiment name and a folder path")
        ti = await self.op_ti({"experiment": experiment}, writer)  # what `tix ti` prints; unknown: not_found
        try:
            return await asyncio.to_thread(bundle_ops.export, self.store.con.cursor(), experiment, Path(path),
                                           ti, __version__)
        except BundleError as exc:
            raise RequestError(str(exc)) from None
        except (duckdb.Error, OSError) as exc:
            raise RequestError(f"export failed: {one_line(str(exc))}", "failed") from None

    async def op_import_bundle(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Store a bundle folder beside this workspace's results (storage/bundles.py): args path
        (absolute), name (store the experiment under this name instead). Result: experiment,
        source, runs (new), runs_present (kept as they were), run_ids (new), rows {table: n}."""
        from engine.analysis.imports import NAME

        path, name = args.get("path"), args.get("name")
        named = name is None or (isinstance(name, str) and NAME.fullmatch(name))
        if not isinstance(path, str) or not named:
            raise RequestError(f"import_bundle needs a folder path, and a name of letters, digits, '.', '_' "
                               f"and '-' (got {name!r})")
        try:
            done = await asyncio.to_thread(bundle_ops.import_bundle, self.store.con.cursor(), Path(path),
                                           name)
        except BundleError as exc:
            raise RequestError(str(exc), "refused") from None
        except duckdb.Error as exc:
            raise RequestError(f"{path}: {one_line(str(exc))}", "bad_request") from None
        self.broadcast(set(done["run_ids"]))
        return done

    async def op_import_scores(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        done = apply_import(self.store, args)
        self.refresher.poke()
        return done

    async def op_ti(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """TI of every tuned model (engine.analysis.ti) with its intervals (engine.analysis.paired),
        computed here so clients need no numpy."""
        return await asyncio.to_thread(run_ti, self.store.con.cursor(), args, self.paired_cache())

    async def op_flips(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """A tuned model's items gained and lost against its base (engine/daemon/flips_ops.py)."""
        return await flips_ops.flips(self, args)

    async def op_flip_item(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """One item's prompt and both models' completions (engine/daemon/flips_ops.py)."""
        return await flips_ops.flip_item(self, args)

    async def op_run_config(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """A run's configuration as flat keys (engine/daemon/compare_ops.py)."""
        return await compare_ops.config_op(self, args)

    async def op_run_diff(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """The configuration keys two runs differ in (engine/daemon/compare_ops.py)."""
        return await compare_ops.diff_op(self, args)

    async def op_compare_evals(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Eval runs' scores side by side with their models' paired deltas (engine/daemon/compare_ops.py)."""
        return await compare_ops.evals_op(self, args)

    async def op_schema(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> list[dict[str, str]]:
        return self.store.schema()

    async def op_subscribe(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Run pushes for every run; with `runs` (a list of ids, [] = none), also run_events pushes
        for exactly those runs (the list replaces the connection's previous one)."""
        self.subscribers.add(writer)
        runs = args.get("runs")
        if runs is None:
            return {"subscribed": ["run"]}
        if not isinstance(runs, list):
            raise RequestError("subscribe: runs must be a list of run ids")
        ids = sorted({self.resolve_run(str(r)) for r in runs})
        if ids:
            self.watchers[writer] = set(ids)
        else:
            self.watchers.pop(writer, None)
        return {"subscribed": ["run", "run_events"], "runs": ids}

    # -- run detail (the TUI's curves, log tail and samples browser) -------------------------
    async def op_run_metrics(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """args id, since_step (steps >= it; absent = all), names (absent = all), max_rows."""
        run_id = self.resolve_run(str(args.get("id", "")))
        since, names = args.get("since_step"), args.get("names") or []
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
            raise RequestError("run_metrics: since_step must be a step number")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RequestError("run_metrics: names must be a list of metric names")
        max_rows = _bounded(args.get("max_rows"), 200_000, 1, 1_000_000)
        return await asyncio.to_thread(run_metrics, self.store.con.cursor(), run_id, since, names, max_rows)

    async def op_run_log(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """args id, stream (both|stdout|stderr|events), offsets ({stream: byte offset}; a stream
        left out gets its tail), max_bytes. Result: run_id, state, chunks [{stream, text, start,
        offset (ask from here next), size}]."""
        run = self.store.run(self.resolve_run(str(args.get("id", ""))))
        assert run is not None
        streams = streams_for(str(args.get("stream") or "both"))
        offsets = args.get("offsets") or {}
        if not isinstance(offsets, dict) or not all(
                v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in offsets.values()):
            raise RequestError("run_log: offsets must map a stream to a byte offset")
        max_bytes = _bounded(args.get("max_bytes"), 64 << 10, 1 << 10, 4 << 20)
        run_dir = Path(run["run_dir"] or self.ws.run_dir(run["id"]))
        chunks = await asyncio.to_thread(
            lambda: [read_chunk(run_dir, s, offsets.get(s), max_bytes) for s in streams])
        return {"run_id": run["id"], "state": run["state"], "chunks": chunks}

    async def op_run_samples(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """args id, query (text anywhere in the sample), benchmark, verdict (correct|wrong|unscored),
        flag, limit (<= 1000), offset. Result: rows, total (matching), all, benchmarks {name: n}."""
        run_id = self.resolve_run(str(args.get("id", "")))
        filters = {k: args.get(k) for k in ("query", "benchmark", "verdict", "flag")}
        if not all(v is None or isinstance(v, str) for v in filters.values()):
            raise RequestError("run_samples: query, benchmark, verdict and flag must be text")
        limit = _bounded(args.get("limit"), 100, 0, 1000)
        offset = _bounded(args.get("offset"), 0, 0, 1 << 40)
        return await asyncio.to_thread(run_samples, self.store.con.cursor(), run_id, filters["query"],
                                       filters["benchmark"], filters["verdict"], filters["flag"],
                                       limit, offset)

    async def op_run_results(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """args id. Result: benchmarks [{benchmark, group, accuracy, n, live, items, stderr, outputs,
        no_answer, truncated, unclosed_think}] and shift [{scope, benchmark, group, pca_d, kl, ...}]."""
        run_id = self.resolve_run(str(args.get("id", "")))
        return await asyncio.to_thread(run_results, self.store.con.cursor(), run_id)

    async def op_gpus(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Each schedulable GPU with utilisation, memory, the runs holding it and every compute
        process on it (for the GPU panel and `tix daemon status`).

        Result: gpus [{index, name, util, mem_used, mem_total, temperature, detected, scheduled,
        runs: [{id, name, kind, experiment, state, pid}], processes: [{pid, user, used, command,
        run}] (tix's first, then other users' by memory), foreign_used (bytes), blocked (other
        users hold more than foreign_gpu_mib: not handed out)}], scheduled (GPUs the scheduler
        uses), allowlist (the gpus setting's list, else None), detected, source (nvml, stand-in,
        nvidia-smi or none), override (the gpus setting is set), how (how detection works),
        foreign_gpu_mib, processes_age (seconds since NVML was asked; None: no process list),
        processes_error. With executor slurm, the cluster instead (`_slurm_gpus`).
        """
        if self.settings.executor == "slurm":
            return await self._slurm_gpus()
        snapshot, view = self.scheduler.gpu_view()
        if snapshot is not None and snapshot.source != "none" and not snapshot.error:
            stats, source = list(snapshot.devices), snapshot.source
        else:
            stats, source = await asyncio.to_thread(gpu_stats)
        by_index = {row["index"]: row for row in stats}
        holders = self._gpu_holders()
        ids = self.scheduler.gpu_ids
        rows = []
        for index in sorted(set(ids) | set(by_index)):
            row = by_index.get(index) or {"index": index, "name": None, "util": None, "mem_used": None,
                                          "mem_total": None, "temperature": None}
            procs = view.get(index) or {"processes": [], "foreign_used": 0, "blocked": False}
            rows.append({**row, "detected": index in by_index, "scheduled": index in ids,
                         "runs": holders.get(index, []), **procs})
        listed = snapshot is not None and snapshot.source != "none"
        return {"gpus": rows, "scheduled": len(ids), "detected": len(stats), "source": source,
                "override": self.settings.gpus is not None, "how": DETECTION,
                "allowlist": self.settings.gpus if isinstance(self.settings.gpus, list) else None,
                "foreign_gpu_mib": self.settings.foreign_gpu_mib,
                "processes_age": round(time.monotonic() - snapshot.taken, 1) if listed else None,
                "processes_error": snapshot.error if snapshot is not None else None}

    async def _slurm_gpus(self) -> dict[str, Any]:
        """The `gpus` op on Slurm: this login node's GPUs run nothing of tix's, the cluster's do.

        Result: source "slurm", partitions [{name, default, avail, nodes, states {state: nodes},
        gpus, gpus_used, gpus_free}], nodes [{name, partitions, state, gres, gres_used, gpus,
        gpus_used, gpus_free, cpus_alloc, cpus_idle, cpus_total}], totals {nodes, gpus, gpus_used,
        gpus_free} (each node once), error (sinfo's one line, else None), asked_at, and jobs
        [{run, name, experiment, job_id, state, slurm_state, node, reason}]: tix's own.
        """
        cluster = await asyncio.to_thread(self.sinfo.get)
        return {"source": "slurm", **cluster, "jobs": self._slurm_jobs()}

    def _slurm_jobs(self) -> list[dict[str, Any]]:
        """The runs this daemon watches that have a Slurm job id, by job id."""
        watched = {run_id: a for run_id, a in self.scheduler.active.items()
                   if a.executor.name == "slurm" and a.stored.get("job_id")}
        if not watched:
            return []
        runs = self.store.runs(f"id IN ({', '.join('?' for _ in watched)})", list(watched))
        rows = []
        for run in runs:
            active = watched[run["id"]]
            rows.append(slurm_info.job_row(run, active.executor.status(active.handle).state))
        return sorted(rows, key=lambda r: (len(str(r["job_id"])), str(r["job_id"])))

    def _gpu_holders(self) -> dict[int, list[dict[str, Any]]]:
        active = {run_id: a.gpus for run_id, a in self.scheduler.active.items() if a.gpus}
        if not active:
            return {}
        runs = {r["id"]: r for r in self.store.runs(
            f"id IN ({', '.join('?' for _ in active)})", list(active))}
        holders: dict[int, list[dict[str, Any]]] = {}
        for run_id, gpus in sorted(active.items()):
            run = runs.get(run_id) or {}
            brief = {k: run.get(k) for k in ("name", "kind", "experiment", "state", "pid")}
            for gpu in gpus:
                holders.setdefault(gpu, []).append({"id": run_id, **brief})
        return holders

    async def op_resources(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        """Each worker's CPU %, RSS and threads, and the CPU slots (engine.daemon.resource_ops)."""
        return await resources(self.scheduler, self.store, self.settings)

    async def op_shutdown(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        self.stop(f"{args.get('reason') or 'tix daemon stop'}, from pid {peer_pid(writer)}")
        return {"stopping": True, "workers_left_running": len(self.scheduler.active)}


def peer_pid(writer: asyncio.StreamWriter) -> int | str:
    """The pid of the process at the other end of a client connection (who asked for a stop)."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    except (OSError, AttributeError):
        return "?"


def query_params(args: dict[str, Any]) -> list[Any]:
    """The `?` values of a query request: a list of scalars, else a one-line refusal."""
    params = args.get("params") or []
    if not isinstance(params, list) or not all(p is None or isinstance(p, (str, int, float, bool))
                                                for p in params):
        raise RequestError("sql params must be a list of scalars")
    return params


def _query(store: Store, query: str, max_rows: int, params: list[Any]) -> dict[str, Any]:
    return readonly_query(store.con.cursor(), query, max_rows, params)


def run_ti(cursor: duckdb.DuckDBPyConnection, args: dict[str, Any],
           cache: PairedCache | None = None) -> dict[str, Any]:
    """The `ti` op on a cursor of its own (run in a thread, like `sql`): args experiment,
    variant (v1|v2), sigma (pooled, per-model or {math, other, non}), boot (bootstrap replicates,
    default 2,000; 0: no intervals); closes the cursor. `cache`: the daemon's paired items."""
    from engine.analysis import paired, stats, ti

    variant, experiment = args.get("variant"), args.get("experiment")
    if variant not in (None, "v1", "v2") or not isinstance(experiment, (str, type(None))):
        raise RequestError("ti: variant must be v1 or v2 and experiment a name")
    boot = _bounded(args.get("boot"), stats.BOOT, 0, MAX_BOOT)
    try:
        sigma = ti.check_sigma(args.get("sigma"))
        done = ti.report(lambda sql, params: _dict_rows(cursor, sql, params), experiment, variant, sigma)
        data = (cache or paired.PairedCache()).current(cursor)
        paired.attach(done["results"], data, boot)
        return done
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
    """Store scores the client validated line by line (engine.analysis.imports). Checked again here, since
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
    from engine.analysis.imports import GROUPS, NAME

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


def _bounded(value: Any, default: int, low: int, high: int) -> int:
    """An integer argument within [low, high]; absent = default; nonsense is a bad request."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"expected a whole number, got {value!r}")
    return min(max(value, low), high)


def _opt_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def one_line(message: str) -> str:
    """DuckDB messages span lines (a caret under the query); keep them on one."""
    parts = [p.strip() for p in message.splitlines() if p.strip() and set(p.strip()) != {"^"}]
    return " | ".join(parts)


# -- process entry --------------------------------------------------------------------------------
LOCK_WAIT_S = 30.0
"""How long a starting daemon waits for a daemon that is shutting down (its socket already gone,
its database still being closed) to release the lock, instead of giving up at once."""


def acquire_lock(ws: Workspace, wait: float = LOCK_WAIT_S) -> int | None:
    """Hold `daemon.lock` for the daemon's life; None when another daemon holds it and serves (its
    socket exists) or has not let go within `wait` seconds. A client that starts a daemon right
    after a stop (the old one removes its socket first, then closes the database) gets the new
    daemon, not a 30 s timeout."""
    deadline = time.monotonic() + wait
    while (fd := _try_lock(ws)) is None and not ws.socket.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return fd


def _try_lock(ws: Workspace) -> int | None:
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
        for statement in settings.database_settings():
            store.con.execute(statement)
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
    parser = argparse.ArgumentParser(prog="python -m engine.daemon.server", description="the tix daemon")
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
