"""The daemon's background refresh (engine/daemon/refresher.py) in a real daemon process: it warms the
caches on its own after starting, `ti` then reads them, and a stop leaves the file current."""

from __future__ import annotations

import duckdb
import psutil

from engine.analysis import paired
from engine.client.connection import Client
from engine.workspace import Workspace
from storage import Store
from tests.conftest import wait_until
from tests.unit.test_paired import item_lab


def test_a_new_daemon_refreshes_its_caches_unasked(ws: Workspace) -> None:
    ws.ensure()
    store = Store.open(ws.db)
    item_lab(n=40, store=store)
    store.close()
    with Client(ws) as client:
        state = wait_until(lambda: (s := client.request("refresh_state"))["refreshes"] and not s["pending"]
                           and not s["running"] and s)
        assert state["last_error"] is None
        assert "background refresh of the paired and flip caches" in ws.log.read_text()
        ti = {(o["model"], b): d["paired"] for o in client.request("ti", experiment="exp")["results"]
              for b, d in o["benchmarks"].items()}
        pid = client.request("ping")["pid"]
        client.request("shutdown")
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", timeout=15)
    con = duckdb.connect(str(ws.db))
    try:
        signature = con.execute(paired.SIGNATURE_SQL).fetchall()[0][0]
        assert con.execute("SELECT signature FROM paired_stats_source").fetchall() == [(signature,)]
        assert con.execute("SELECT signature FROM flip_stats_source").fetchall() == [(signature,)]
        stored = {(m, b): d for m, b, d in con.execute("SELECT model, benchmark, delta FROM paired_stats").fetchall()}
    finally:
        con.close()
    assert stored and {k: d["delta"] for k, d in ti.items() if d} == stored
