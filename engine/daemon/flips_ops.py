"""The daemon's `flips` and `flip_item` ops: the TUI's flips view (engine/analysis/flip_items.py).

`flips` answers what `tix flips EXPERIMENT --model MODEL` and its `--items` print (the same views,
with `paired_stats` and `flip_stats` brought up to date first, as the `sql` op does before a
query naming `flip_summary`); `flip_item` one item's prompt and both models' completions. Both run in a thread
on a cursor of their own (Daemon.readonly_in_thread), so ingest and other clients go on meanwhile.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol

from engine.analysis import flip_items
from storage.store import Store


class Daemon(Protocol):
    """What these ops use of engine.daemon.server's Daemon (a protocol, not an import: the server
    imports this module, and importing it back would close a cycle)."""

    async def refresh_paired(self, query: str) -> None: ...

    async def readonly_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any: ...

FLIPS_ARGS = ("experiment", "model")
ITEM_ARGS = ("experiment", "model", "benchmark", "item_id")


def texts(op: str, args: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The named arguments, each a non-empty text; ValueError (the daemon answers `bad request: ...`)
    naming the first one that is not."""
    values = [args.get(n) for n in names]
    for name, value in zip(names, values, strict=True):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{op}: {name} must be a name (got {value!r}); needs {', '.join(names)}")
    return [str(v) for v in values]


async def flips(daemon: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    """args experiment, model. Result: experiment, model, base_model, benchmarks [{benchmark, items,
    gained, lost, net, mcnemar_p}], items [{benchmark, item_id, change, base_verdict, model_verdict,
    base_run, model_run}]."""
    experiment, model = texts("flips", args, FLIPS_ARGS)
    await daemon.refresh_paired("flip_summary")
    return await daemon.readonly_in_thread(_found, daemon, flip_items.model_flips, experiment, model)


async def flip_item(daemon: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    """args experiment, model, benchmark, item_id; model_run and base_run (as a `flips` item row names
    them: the samples are then read by run, fast at any size). Result: prompt, gold, and base and
    model, each {name, run_id, verdict, correct, samples [{sample_idx, completion, extracted,
    verdict, tokens, finish_reason, flags}]}."""
    fields = texts("flip_item", args, ITEM_ARGS)
    runs = None
    if args.get("model_run") is not None or args.get("base_run") is not None:
        runs = tuple(texts("flip_item", args, ("model_run", "base_run")))
    return await daemon.readonly_in_thread(_found, daemon, flip_items.item_pair, *fields, runs)


def _found(store: Store, daemon: Daemon, fn: Any, *args: Any) -> dict[str, Any]:
    """`fn(cursor, *args)` on the thread's own connection; an unknown model or item is `not_found`.
    RequestError is taken from the daemon's own module: run as `python -m engine.daemon.server`, that
    module is `__main__`, and an imported engine.daemon.server's class would not be the one it catches."""
    try:
        return fn(store.con, *args)
    except flip_items.NotFound as exc:
        refusal = sys.modules[type(daemon).__module__].RequestError
        raise refusal(str(exc), "not_found") from None
