"""Daemon-side helpers for the TUI's SQL console: a capped result with its column types and
the total row count.

The `sql` op answers at most `max_rows` rows and a `truncated` flag; a results grid capped at
1,000 rows should still say how many rows the query has ("1,000 of 48,213 rows"). Counting
needs a second pass over the query (`SELECT count(*) FROM (query)`, which DuckDB plans without
materialising the rows), and only when the first pass was truncated.

Registered by engine/daemon/server.py as the `sql_total` op (same arguments and errors as `sql`; the
result adds `total`). The TUI falls back to two `sql` requests (no types) when a
daemon does not know the op yet.

`export_query` (the `sql_export` op) writes a query's whole result to a CSV or Parquet file
with DuckDB's COPY, for the console's export; without it the TUI fetches the rows and writes
them itself (pyarrow for Parquet), at most 200,000 rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from storage.store import ReadOnlyQueryError, Store, read_only_transaction, readonly_query


def count_query(query: str) -> str:
    """`query` wrapped in a count; the newline keeps a trailing `-- comment` from eating the paren
    (and DuckDB's LINE numbers match the query's)."""
    body = query.strip().rstrip(";").rstrip()
    return f"SELECT count(*) FROM ({body}\n) AS counted"


def sql_with_total(store: Store, query: str, max_rows: int = 1_000,
                   params: Sequence[Any] = ()) -> dict[str, Any]:
    """`readonly_query`'s result plus `total`: the query's full row count (None where it cannot be
    counted, e.g. EXPLAIN). Raises what `readonly_query` raises (refused or failed query)."""
    result = readonly_query(store.con.cursor(), query, max_rows, params)
    result["total"] = len(result["rows"])
    if result["truncated"]:
        try:
            counted = readonly_query(store.con.cursor(), count_query(query), 1, params)
            result["total"] = int(counted["rows"][0][0])
        except (duckdb.Error, ReadOnlyQueryError):
            result["total"] = None
    return result


EXPORT_FORMATS = {"csv": "FORMAT csv, HEADER", "parquet": "FORMAT parquet"}


def export_query(store: Store, query: str, path: str, fmt: str, params: Sequence[Any] = ()) -> dict[str, Any]:
    """Write a read-only query's whole result to `path` with DuckDB's COPY (the `sql_export` op).

    The client would otherwise fetch every row as JSON (a line per result, bounded by the
    protocol's line size) and lose DuckDB's types (DECIMAL, DATE, TIMESTAMP travel as text);
    COPY streams any size and keeps them. `path` must be absolute: the daemon's working
    directory is not the client's. Returns {"rows": written, "path": path}.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {', '.join(EXPORT_FORMATS)}")
    if not path.startswith("/"):
        raise ValueError(f"export path must be absolute, got {path!r}")
    body = query.strip().rstrip(";").rstrip()
    target = path.replace("'", "''")
    with read_only_transaction(store.con.cursor(), query, params) as cur:
        written = cur.execute(f"COPY ({body}\n) TO '{target}' ({EXPORT_FORMATS[fmt]})",
                              list(params) or None).fetchone()
    return {"rows": int(written[0]) if written else 0, "path": path}
