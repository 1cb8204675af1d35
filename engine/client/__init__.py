"""The client side of the daemon: `api` (`connect`: tix's results in Python as Arrow tables),
`connection` (Client, starting a daemon) and `protocol` (the wire format).

Imported by the CLI, the TUI, notebooks and scripts; the daemon imports `protocol` only. Nothing
here imports the daemon, the database layer or an ML library; `from engine.client import
connect` loads `api` (and pyarrow) only when asked, so the CLI and the TUI start as fast as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.client.api import Database, Result, TIResult, connect

__all__ = ["Database", "Result", "TIResult", "connect"]


def __getattr__(name: str) -> Any:
    """`connect` and the result classes, imported on first use (PEP 562)."""
    if name in __all__:
        from engine.client import api

        return getattr(api, name)
    raise AttributeError(f"module 'engine.client' has no attribute {name!r}")
