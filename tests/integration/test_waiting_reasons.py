"""Issue 25, item 5: a queued run says why it waits, as the daemon sees it: for a CPU slot (its
dependency succeeded minutes ago, so never `waiting for build-...`), or for the dependencies that
have not succeeded yet, with their state."""

from __future__ import annotations

import pytest

from engine.client.connection import Client
from engine.workspace import Workspace
from tests.conftest import probe, run_state, wait_state, wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}


def test_a_queued_run_says_what_it_waits_for(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIX_CPU_SLOTS", "1")
    build = probe("build", steps=1)
    with Client(ws) as client:
        client.request("submit", experiment=None, runs=[build])
        assert wait_state(client, build["id"], TERMINAL)["state"] == "succeeded"
        blocker = probe("blocker", steps=400, sleep=0.05)
        after_build = probe("after-build", deps=[build["id"]])
        after_blocker = probe("after-blocker", deps=[blocker["id"]])
        client.request("submit", experiment=None, runs=[blocker])
        wait_state(client, blocker["id"], {"running"})
        client.request("submit", experiment=None, runs=[after_build, after_blocker])
        slot = wait_until(lambda: (r := run_state(client, after_build["id"]))["progress_text"] and r)
        assert slot["state"] == "queued" and slot["progress_text"] == "waiting for a CPU slot (1 of 1 in use)"
        dep = wait_until(lambda: (r := run_state(client, after_blocker["id"]))["progress_text"] and r)
        assert dep["progress_text"] == f"waiting for {blocker['id']} (running)"
        client.request("cancel", target=blocker["id"])
        wait_state(client, blocker["id"], TERMINAL)
        assert wait_state(client, after_build["id"], TERMINAL)["state"] == "succeeded"
