"""`tix status --json` latency with 1,000 runs in the database.

Fills a fresh workspace with 1,000 runs (directly through the Store, before any daemon runs),
starts the daemon, then times (a) the `status` request over the socket and (b) the whole
`tix status --json` command as a user runs it (process start, connect, request, JSON print).

Run: `make bench` or `python bench/status.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import timed  # bench/common.py (scripts run as `python bench/NAME.py`)

from engine.client.connection import Client
from engine.experiments.plan import make_run
from engine.workspace import Workspace
from storage import Store


def fill(ws: Workspace, n: int) -> None:
    store = Store.open(ws.db)
    for i in range(n):
        run = make_run("probe", f"r{i}", "bench", {"i": i}, [])
        store.insert_run({**run, "state": "succeeded", "progress": 1.0})
    store.close()



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    n = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.resolve(Path(tmp) / "home").ensure()
        fill(ws, n)
        env = {**os.environ, "TIX_HOME": str(ws.home)}
        os.environ["TIX_HOME"] = str(ws.home)
        with Client(ws) as client:
            assert len(client.request("status")) == n
            request_ms = timed(lambda: client.request("status"), 30)
            cli_ms = timed(lambda: subprocess.run([sys.executable, "-m", "engine.cli", "status", "--json"],
                                                  env=env, check=True, capture_output=True), 10)
            client.request("shutdown")
    print(f"runs in database: {n}")
    print(f"status request over the socket: median {statistics.median(request_ms):.1f} ms, "
          f"max {max(request_ms):.1f} ms (30 calls)")
    print(f"`tix status --json` command:    median {statistics.median(cli_ms):.0f} ms, "
          f"max {max(cli_ms):.0f} ms (10 runs, process start included)")


if __name__ == "__main__":
    main()
