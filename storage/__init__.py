"""tix storage: the DuckDB schema, its numbered migrations and the typed `Store`.

Only the daemon opens the database (DuckDB allows one read-write process per file); this
package therefore imports no textual, torch, trl or vllm.
"""

from storage.store import ReadOnlyQueryError, Store

__all__ = ["ReadOnlyQueryError", "Store"]
