"""What the cluster looks like to a Slurm user, for the GPU panel and `tix daemon status`.

With `executor: slurm` the daemon sits on a login node whose own GPUs (if any) run nothing of
tix's, so the `gpus` op shows the cluster instead: one `sinfo` call, node-oriented (one line per
node and partition), summed up per partition and once per node for the totals (a node listed in
several partitions counts once there). A failing sinfo is one line in the answer, never an
exception: the panel must keep drawing while the controller is down.

sinfo is asked at most every `SinfoCache.ttl` seconds, whatever the number of clients polling
(a shared controller serves many users), and only from a thread: it may take seconds to answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.daemon.executors.slurm import CommandError, run_cmd

#: Node-oriented sinfo, every field ended by `|` (no width: nothing is padded or cut).
SINFO_FIELDS = ("NodeList", "Partition", "Available", "StateCompact", "Gres", "GresUsed", "CPUsState")
SINFO_ARGV = ["sinfo", "-h", "-N", "-O", ",".join(f"{name}:|" for name in SINFO_FIELDS)]
SINFO_TIMEOUT = 8.0
"""Below the CLI's 10 s socket timeout, so `tix daemon status` shows sinfo's failure, not its own."""
CACHE_SECONDS = 5.0
#: Node states (StateCompact, less its flag characters) that can take a new job.
USABLE = frozenset({"idle", "mix", "mixed", "alloc", "allocated", "comp", "completing", "plnd", "planned"})
#: Flags after a state that keep jobs off the node: `*` not responding, `$` maintenance reservation.
UNUSABLE_FLAGS = frozenset("*$")
_PARENS = re.compile(r"\([^)]*\)")


# -- parsing sinfo's lines --------------------------------------------------------------------
def gpu_count(gres: str) -> int:
    """GPUs in a Gres or GresUsed value: `gpu:2`, `gpu:a100:4(S:0-1)`, `gpu:tesla:1(IDX:0)`,
    `gpu:a100:2(IDX:0,2),gpu:v100:1(IDX:3),shard:8`, `(null)`. Other gres (shard, mps) are left out;
    a gpu item without a number is one GPU."""
    total = 0
    for item in _PARENS.sub("", gres).split(","):
        parts = item.strip().split(":")
        if parts[0] != "gpu":
            continue
        count = parts[-1] if len(parts) > 1 else ""
        if count.isdigit():
            total += int(count)
        elif len(parts) <= 2:  # `gpu` or `gpu:TYPE`
            total += 1
    return total


def cpu_counts(text: str) -> dict[str, int | None]:
    """CPUsState `A/I/O/T` (allocated, idle, other, total) as alloc, idle and total."""
    parts = text.strip().split("/")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return {"cpus_alloc": None, "cpus_idle": None, "cpus_total": None}
    return {"cpus_alloc": int(parts[0]), "cpus_idle": int(parts[1]), "cpus_total": int(parts[3])}


def usable(state: str) -> bool:
    """Whether a node in this StateCompact state (`mix`, `idle~`, `down*`, `drain`) takes new jobs."""
    base = state.rstrip("*~#%!@^-$+").lower()
    return base in USABLE and not set(state[len(base):]) & UNUSABLE_FLAGS


def parse_node_lines(out: str) -> list[dict[str, Any]]:
    """`SINFO_ARGV` output -> one dict per node and partition; lines of another shape are skipped."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < len(SINFO_FIELDS) or not cells[0]:
            continue
        node, partition, avail, state, gres, used, cpus = cells[:len(SINFO_FIELDS)]
        gpus, gpus_used = gpu_count(gres), gpu_count(used)
        rows.append({"node": node, "partition": partition.rstrip("*"), "default": partition.endswith("*"),
                     "avail": avail, "state": state, "gres": gres, "gres_used": used, "gpus": gpus,
                     "gpus_used": gpus_used, "gpus_free": max(gpus - gpus_used, 0) if usable(state) else 0,
                     **cpu_counts(cpus)})
    return rows


# -- summing up -------------------------------------------------------------------------------
def partitions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per partition, in sinfo's order: nodes, node states, GPUs total, used and free (free counts
    only nodes that take jobs, and nothing in a partition that is not up)."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        part = found.setdefault(row["partition"], {
            "name": row["partition"], "default": row["default"], "avail": row["avail"], "nodes": 0,
            "states": {}, "gpus": 0, "gpus_used": 0, "gpus_free": 0})
        part["nodes"] += 1
        part["states"][row["state"]] = part["states"].get(row["state"], 0) + 1
        part["gpus"] += row["gpus"]
        part["gpus_used"] += row["gpus_used"]
        part["gpus_free"] += row["gpus_free"] if row["avail"] == "up" else 0
    return list(found.values())


def nodes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each node once, with every partition it is in."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["node"] in found:
            found[row["node"]]["partitions"].append(row["partition"])
            continue
        keep = {k: v for k, v in row.items() if k not in ("node", "partition", "default", "avail")}
        found[row["node"]] = {"name": row["node"], "partitions": [row["partition"]], **keep}
    return list(found.values())


def totals(node_rows: list[dict[str, Any]]) -> dict[str, int]:
    """The cluster's nodes and GPUs, each node once."""
    return {"nodes": len(node_rows), "gpus": sum(n["gpus"] for n in node_rows),
            "gpus_used": sum(n["gpus_used"] for n in node_rows),
            "gpus_free": sum(n["gpus_free"] for n in node_rows)}


def cluster(timeout: float = SINFO_TIMEOUT) -> dict[str, Any]:
    """Partitions, nodes and totals now, with `error` the one line of a failed sinfo (else None).
    Blocking: call it in a thread."""
    try:
        out = run_cmd(SINFO_ARGV, timeout)
    except CommandError as exc:
        message = str(exc)
        error = message if message.startswith("sinfo") else f"sinfo: error: {message}"
        return {"partitions": [], "nodes": [], "totals": totals([]), "error": error, "asked_at": time.time()}
    rows = parse_node_lines(out)
    node_rows = nodes(rows)
    return {"partitions": partitions(rows), "nodes": node_rows, "totals": totals(node_rows), "error": None,
            "asked_at": time.time()}


class SinfoCache:
    """`cluster()` at most every `ttl` seconds; callers that arrive while it runs wait for its
    answer instead of asking sinfo again. Thread-safe (the daemon calls `get` from threads)."""

    def __init__(self, ttl: float = CACHE_SECONDS, ask: Callable[[], dict[str, Any]] = cluster) -> None:
        self.ttl = ttl
        self.ask = ask
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._last is None or time.monotonic() - self._last[0] >= self.ttl:
                self._last = (time.monotonic(), self.ask())
            return self._last[1]


# -- tix's own jobs ---------------------------------------------------------------------------
def job_row(run: dict[str, Any], slurm_state: str | None) -> dict[str, Any]:
    """One run the daemon watches on Slurm, as the panel lists it: where it runs or why it waits."""
    return {"run": run["id"], "name": run.get("name"), "experiment": run.get("experiment"),
            "job_id": run.get("job_id"), "state": run.get("state"), "slurm_state": slurm_state,
            "node": run.get("node"), "reason": run.get("reason")}
