"""The Python API's Arrow path against today's JSON path and DuckDB's own, plus the daemon's memory.

A scratch workspace gets 2M metric rows (3 columns: step BIGINT, name VARCHAR, value DOUBLE),
written straight into a fresh database before any daemon starts. Then the same
`SELECT step, name, value FROM metrics` into a pyarrow Table four ways:

- DuckDB's own, in this process: `duckdb.connect(db, read_only=True).sql(q).to_arrow_table()`
  on a byte copy of the database file made before the daemon started (the daemon holds the
  file's lock while it runs);
- the API: `engine.client.connect(home).sql(q).arrow()` (the daemon's `sql_arrow` op, its
  batches written into the client's shared-memory arena: engine/client/arena.py);
- the socket floor: the daemon's streaming code (ArrowStream, its prefetch thread and sender)
  writing to a socketpair that a thread of this process reads with the client's socket reader,
  with no daemon, request or second process: the best a result carried over the socket can do;
- today's JSON path: `Client.request("sql", ...)`, rows turned into a Table (best of 3).

The first three alternate over `--rounds` rounds after a warm-up of each, so all see the same
load on a shared box; the best and the median are printed, and their ratios, with the CPU each
used (core-ms: every thread of this process, plus the daemon's for the API) and the load
average. DuckDB's own runs in the process that filled the database, whose heap is warm (a fresh
process faults its result's pages in: 55 core-ms instead of 30); that is its fastest case.

Then a fresh daemon serves a 10M-row result (`range(10M)` with a string and a double column,
about 240 MB as Arrow) that the client reads batch by batch and drops; a thread samples the
daemon's RSS every 10 ms: its peak, against its RSS before, shows the result never sat whole in
the daemon's memory. The same for a 10M-row table stored in the database (DuckDB's buffer pool
caches what it read, so expect more there), and for the generated one read whole with
`.arrow()` (the arena's warm part, 256 MiB of the client's shared pages, counts in the daemon's
RSS once written; the rest is written without mapping it).

Run: `make bench` or `python bench/api.py [--rows N] [--big N]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.ipc as ipc

from engine.client import connect
from engine.client.connection import Client, _SocketReader
from engine.daemon.arrow_stream import ArrowStream, _Sender, keep_freed_memory, stream_batches
from engine.workspace import Workspace
from storage import Store

QUERY = "SELECT step, name, value FROM metrics"
BIG_QUERY = "SELECT i AS step, 'loss' AS name, i * 0.5 AS value FROM range({n}) t(i)"
STORED_BIG = "SELECT step, name, value FROM big"


def fill(db: Path, rows: int, big: int) -> None:
    """`rows` metric rows (one Arrow insert) and a `big` table of `big` rows, before any daemon."""
    store = Store.open(db)
    rng = np.random.default_rng(0)
    names = np.array(["loss", "reward", "kl", "learning_rate"])
    table = pa.table({"run_id": pa.array(["train-bench"] * rows), "step": np.arange(rows, dtype=np.int64),
                      "name": pa.array(names[np.arange(rows) % 4]), "value": rng.normal(size=rows)})
    store.con.register("_bench", table)
    store.con.execute("INSERT INTO metrics (run_id, step, name, value) SELECT * FROM _bench")
    store.con.unregister("_bench")
    store.con.execute(f"CREATE TABLE big AS {BIG_QUERY.format(n=big)}")
    store.close()


def best(fn: Callable[[], pa.Table], repeat: int = 3) -> tuple[float, pa.Table]:
    """Fastest of `repeat` calls in milliseconds, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    assert result is not None
    return min(times), result


class Timed:
    """Wall time and CPU time (core-ms: every thread of this process, plus the daemon's when
    `daemon` is given) of each round of one way, in milliseconds."""

    def __init__(self, daemon: psutil.Process | None = None) -> None:
        self.daemon = daemon
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.daemon_cpu: list[float] = []

    def __call__(self, fn: Callable[[], pa.Table]) -> pa.Table:
        d0, c0, t0 = self.daemon_seconds(), time.process_time(), time.perf_counter()
        result = fn()
        wall, own, daemon = time.perf_counter() - t0, time.process_time() - c0, self.daemon_seconds() - d0
        self.wall.append(wall * 1000)
        self.cpu.append((own + daemon) * 1000)
        self.daemon_cpu.append(daemon * 1000)
        return result

    def daemon_seconds(self) -> float:
        if self.daemon is None:
            return 0.0
        times = self.daemon.cpu_times()
        return times.user + times.system


def rounds(home: Path, copy: Path, n: int) -> tuple[Timed, Timed, Timed, pa.Table, pa.Table]:
    """DuckDB's own (on `copy`), the API and the socket floor (`through_socketpair`), alternating
    after a warm-up of each: their wall and CPU times per round, and the last tables."""
    con = duckdb.connect(str(copy), read_only=True)
    keep_freed_memory()  # as the daemon's streaming thread does
    with connect(home) as db:
        own_t, api_t, floor_t = Timed(), Timed(psutil.Process(db.client.request("ping")["pid"])), Timed()
        own, api = con.sql(QUERY).to_arrow_table(), db.sql(QUERY).arrow()
        floor = through_socketpair(con)
        for _ in range(n):
            own = own_t(lambda: con.sql(QUERY).to_arrow_table())
            api = api_t(lambda: db.sql(QUERY).arrow())
            floor = floor_t(lambda: through_socketpair(con))
    con.close()
    assert floor.equals(own)
    return own_t, api_t, floor_t, own, api


def through_socketpair(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The socket floor: the daemon's streaming code (ArrowStream, its prefetch thread and sender)
    writing to a socketpair that a thread of this process reads with the client's reader into a
    Table. No daemon, request, event loop or second process: what the API's transport costs by
    itself. Its time over DuckDB's own is the best the API can do over a socket on this box."""
    sender, receiver = socket.socketpair()
    got: list[pa.Table] = []
    reader = threading.Thread(target=lambda: got.append(
        ipc.open_stream(_SocketReader(SimpleNamespace(buffer=bytearray(), sock=receiver))).read_all()))
    reader.start()
    stream = ArrowStream(con.cursor(), QUERY)
    try:
        stream.open()
        stream_batches(stream, _Sender(sender, lambda: False), 0)
    finally:
        stream.close()
        reader.join()
        sender.close()
        receiver.close()
    return got[0]


def json_path(client: Client, rows: int) -> pa.Table:
    """What a script does today: the `sql` op's JSON rows, turned into a Table."""
    result = client.request("sql", query=QUERY, max_rows=rows)
    columns = list(zip(*result["rows"], strict=True))
    return pa.table({name: pa.array(col) for name, col in zip(result["columns"], columns, strict=True)})


class PeakRss:
    """The daemon's resident memory, sampled every 10 ms in a thread while a result streams."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def stop(self) -> tuple[float, float]:
        self.running = False
        self.thread.join()
        return self.before / 2**20, self.peak / 2**20


def serve_big(home: Path, query: str) -> str:
    """Stream `query` through a fresh daemon, batch by batch; its RSS before and at peak."""
    ws = Workspace.resolve(str(home))
    with Client(ws) as client:
        pid = client.request("ping")["pid"]
        meter = PeakRss(pid)
        rows, size, t0 = 0, 0, time.perf_counter()
        for batch in client.stream("sql_arrow", query=query):
            rows += batch.num_rows
            size += batch.nbytes
        seconds = time.perf_counter() - t0
        before, peak = meter.stop()
        hwm = vm_hwm(pid)
        shutdown(client)
    return (f"{rows:,} rows ({size / 2**20:,.0f} MiB as Arrow) in {seconds:.2f} s; daemon RSS "
            f"{before:,.0f} MiB before, peak {peak:,.0f} MiB (+{peak - before:,.0f} MiB; "
            f"VmHWM {hwm:,.0f} MiB)")


def serve_big_table(home: Path, query: str) -> str:
    """`.arrow()` of `query` through a fresh daemon (its batches in the client's arena, which the
    daemon maps up to its warm part): the daemon's RSS before and at peak, shared pages included."""
    with connect(home) as db:
        pid = db.client.request("ping")["pid"]
        meter = PeakRss(pid)
        t0 = time.perf_counter()
        table = db.sql(query).arrow()
        seconds = time.perf_counter() - t0
        before, peak = meter.stop()
        rows, size = table.num_rows, table.nbytes
        del table
        shutdown(db.client)
    return (f"{rows:,} rows ({size / 2**20:,.0f} MiB as Arrow) in {seconds:.2f} s; daemon RSS "
            f"{before:,.0f} MiB before, peak {peak:,.0f} MiB (+{peak - before:,.0f} MiB, the arena's "
            f"shared pages it wrote included)")


def vm_hwm(pid: int) -> float:
    """The kernel's record of the process's peak resident memory (catches what sampling misses)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def shutdown(client: Client) -> None:
    """Stop the daemon and wait for its process to end (it holds DuckDB's lock until then)."""
    process = psutil.Process(client.request("ping")["pid"])
    client.request("shutdown")
    process.wait(timeout=30)


def report(args: argparse.Namespace, own: pa.Table, times: tuple[Timed, Timed, Timed], json_ms: float,
           load: tuple[float, float]) -> None:
    """The three ways' times, and the CPU each used: on a box whose cores are all busy with the
    query, the API's CPU over the cores bounds its wall time from below."""
    own_t, api_t, floor_t = times
    mid = statistics.median
    own_best, api_best, own_mid, api_mid = min(own_t.wall), min(api_t.wall), mid(own_t.wall), mid(api_t.wall)
    cores = os.cpu_count() or 1
    print(f"{args.rows:,} rows x 3 columns ({own.nbytes / 2**20:.0f} MiB) into a pyarrow Table "
          f"({args.rounds} alternating rounds: best, median; load average {load[0]:.1f} before, "
          f"{load[1]:.1f} after, {cores} cores):")
    print(f"  DuckDB's own to_arrow_table(), in process : {own_best:7.1f} ms, {own_mid:7.1f} ms  "
          f"(CPU {mid(own_t.cpu):.0f} core-ms)")
    print(f"  engine.client connect().sql().arrow()     : {api_best:7.1f} ms, {api_mid:7.1f} ms  "
          f"({api_best / own_best:.2f}x, {api_mid / own_mid:.2f}x DuckDB's own; CPU {mid(api_t.cpu):.0f} "
          f"core-ms, {mid(api_t.daemon_cpu):.0f} of them the daemon's)")
    floor_best, floor_mid = min(floor_t.wall), mid(floor_t.wall)
    print(f"  the socket floor (no daemon: see above)   : {floor_best:7.1f} ms, {floor_mid:7.1f} ms  "
          f"({floor_best / own_best:.2f}x, {floor_mid / own_mid:.2f}x DuckDB's own; "
          f"CPU {mid(floor_t.cpu):.0f} core-ms)")
    print(f"  JSON `sql` op + pa.table (today), best of 3: {json_ms:7.1f} ms "
          f"({json_ms / own_best:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tix-bench-api-") as tmp:
        home = Path(tmp) / "home"
        ws = Workspace.resolve(str(home)).ensure()
        fill(ws.db, args.rows, args.big)
        copy = Path(tmp) / "copy.duckdb"
        shutil.copyfile(ws.db, copy)
        load = os.getloadavg()[0]
        own_t, api_t, floor_t, own, api = rounds(home, copy, args.rounds)
        with connect(home) as db:
            json_ms, js = best(lambda: json_path(db.client, args.rows))
            shutdown(db.client)
        assert api.equals(own) and js.num_rows == own.num_rows
        report(args, own, (own_t, api_t, floor_t), json_ms, (load, os.getloadavg()[0]))
        print(f"10M-row result, generated : {serve_big(home, BIG_QUERY.format(n=args.big))}")
        print(f"10M-row result, stored    : {serve_big(home, STORED_BIG)}")
        print(f"10M-row result, .arrow()  : {serve_big_table(home, BIG_QUERY.format(n=args.big))}")


if __name__ == "__main__":
    main()
