"""Issue 25, item 4: a running run cancelled, then resumed, completes its experiment. Its cancel
took its dependants down (`dependency X cancelled`); `tix resume RUN --with-dependants` queues
them again with it, a plain resume says which stay down, and resuming a dependant whose
dependency is still cancelled is refused with the command that helps (it would be cancelled
again at once)."""

from __future__ import annotations

from engine.client.connection import Client
from engine.workspace import Workspace
from tests.conftest import probe, run_state, wait_state, wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}


def cancelled_chain(client: Client, name: str) -> tuple[dict, dict, dict]:
    """A running probe and two runs downstream of it, the running one then cancelled."""
    top = probe(f"{name}-train", steps=30, sleep=0.05)
    mid = probe(f"{name}-eval", deps=[top["id"]])
    low = probe(f"{name}-analyse", deps=[mid["id"]])
    client.request("submit", experiment={"name": f"exp-{name}"}, runs=[top, mid, low])
    wait_state(client, top["id"], {"running"})
    wait_until(lambda: run_state(client, top["id"])["progress"])
    client.request("cancel", target=top["id"])
    assert wait_state(client, top["id"], TERMINAL)["state"] == "cancelled"
    for run in (mid, low):
        down = wait_state(client, run["id"], TERMINAL)
        assert down["state"] == "cancelled" and down["error"].startswith("dependency ")
    return top, mid, low


def test_resume_with_dependants_completes_the_experiment(ws: Workspace, tix, client: Client) -> None:
    top, mid, low = cancelled_chain(client, "a")
    refused = tix("resume", mid["id"])  # alone it would be cancelled again at once
    assert refused.returncode == 2
    assert f"depends on {top['id']}, which is cancelled" in refused.stderr
    assert f"tix resume {top['id']} --with-dependants" in refused.stderr
    assert run_state(client, mid["id"])["state"] == "cancelled"
    done = tix("resume", top["id"], "--with-dependants", "--wait", timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{mid['id']}  queued (resuming: its dependency was resumed)" in done.stdout
    assert f"{low['id']}  queued" in done.stdout
    assert {run_state(client, r["id"])["state"] for r in (top, mid, low)} == {"succeeded"}


def test_plain_resume_says_which_runs_stay_down(ws: Workspace, tix, client: Client) -> None:
    top, mid, low = cancelled_chain(client, "b")
    result = client.request("resume", id=top["id"])
    assert result["dependants"] == [] and result["left"] == [mid["id"], low["id"]]
    assert wait_state(client, top["id"], TERMINAL, timeout=60)["state"] == "succeeded"
    assert {run_state(client, r["id"])["state"] for r in (mid, low)} == {"cancelled"}
    again = client.request("resume", id=mid["id"], dependants=True)  # its dependency is fine now
    assert again["dependants"] == [low["id"]]
    assert wait_state(client, low["id"], TERMINAL, timeout=60)["state"] == "succeeded"
