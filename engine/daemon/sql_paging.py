"""One page of a read-only query, optionally sorted by one of its columns: the `sql_page` op,
which the TUI's SQL console pages with (`]` / `[`) and sorts with (`s`).

Why offset/limit over a wrapped query, not a cursor kept open per connection: the daemon keeps
no state between requests (a client that reconnects, or a second console, finds nothing stale;
a cursor held open would pin a transaction and its snapshot, and its memory, until the client
came back), any page can be reached directly (back, or a jump after a sort), and a sort has to
run the query again anyway. The cost is running the query once per page; DuckDB stops a plain
scan at `offset + limit` rows and sorts with a top-N heap, so page 2 of `samples` is as quick as
page 1. Pages are consistent because DuckDB preserves a subquery's order (insertion order, or
the query's own ORDER BY) under `LIMIT ... OFFSET`, and a sort breaks ties by every column, left
to right, so the order is total (rows that tie on all of them are alike) and no row shows on two
pages or none. (Breaking ties by the row's number in the unsorted result, `row_number() OVER ()`,
kept the query's order among ties but made the window hold every row: 0.8 s for a sorted page of
1M samples against 0.2 s, under load.)

The user's query is checked exactly as the `sql` op checks it (`read_only_transaction`: one
SELECT or EXPLAIN, no writing operator anywhere in its plan), with the same words on refusal;
only then is it wrapped. EXPLAIN cannot be a subquery, so it comes back whole as one page.

Column names come from `DESCRIBE` of the user's query: wrapping renames duplicates (`id`, `id`
become `id`, `id_1`), and the console shows the names the query gives. The sort column is sent
as its position and ordered by it (`ORDER BY #n`), so no name, duplicate or odd, needs quoting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from storage.store import _cell, read_only_transaction

PAGE_ROWS = 1_000
"""Rows per page when the client does not say."""
MAX_PAGE_ROWS = 10_000
"""The most rows one page may hold: a page travels as one JSON line."""
EXPLAIN = re.compile(r"^\s*EXPLAIN\b", re.IGNORECASE)


@dataclass(frozen=True)
class PageRequest:
    """What the `sql_page` op was asked for: the query and its `?` values, the first row (0-based),
    how many rows, and the column position to sort by (None: the query's own order)."""

    query: str
    offset: int = 0
    limit: int = PAGE_ROWS
    sort: int | None = None
    descending: bool = False

    @classmethod
    def parse(cls, args: dict[str, Any]) -> PageRequest:
        """The op's arguments checked: a ValueError says which one is wrong and what it was."""
        offset, limit, sort = args.get("offset", 0), args.get("limit", PAGE_ROWS), args.get("sort")
        if not _whole(offset) or offset < 0:
            raise ValueError(f"sql_page: offset must be a whole number >= 0, got {offset!r}")
        if not _whole(limit) or not 1 <= limit <= MAX_PAGE_ROWS:
            raise ValueError(f"sql_page: limit must be a whole number from 1 to {MAX_PAGE_ROWS:,}, "
                             f"got {limit!r}")
        if sort is not None and (not _whole(sort) or sort < 0):
            raise ValueError(f"sql_page: sort must be a column position >= 0, got {sort!r}")
        return cls(str(args.get("query", "")), offset, limit, sort, bool(args.get("descending", False)))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sql_page(store: Any, request: PageRequest, params: Sequence[Any] = ()) -> dict[str, Any]:
    """Rows `offset` to `offset + limit` of a read-only query (sorted when asked), on a cursor of
    `store`'s own. Result: columns, types, rows, offset, truncated (more rows follow), sort,
    descending, pageable (False for EXPLAIN: one page, no sort). Raises what `readonly_query`
    raises (refused or failed query)."""
    with read_only_transaction(store.con.cursor(), request.query, params) as cur:
        if EXPLAIN.match(request.query):
            return _whole_explain(cur, request, params)
        body = request.query.strip().rstrip(";").rstrip()
        names = [row[0] for row in cur.execute(f"DESCRIBE {body}\n", list(params) or None).fetchall()]
        cur.execute(paged_sql(body, request, len(names)), list(params) or None)
        description = cur.description or []
        rows = cur.fetchmany(request.limit + 1)
    return {"columns": names if len(names) == len(description) else [d[0] for d in description],
            "types": [str(d[1]) for d in description],
            "rows": [[_cell(v) for v in r] for r in rows[:request.limit]],
            "offset": request.offset, "truncated": len(rows) > request.limit, "sort": request.sort,
            "descending": request.descending, "pageable": True}


def paged_sql(body: str, request: PageRequest, columns: int) -> str:
    """The user's query (of `columns` columns) as a subquery, one page of it, sorted by a column
    when asked. The newline keeps a trailing `-- comment` from eating the parenthesis."""
    page = f"LIMIT {request.limit + 1} OFFSET {request.offset}"  # one more: whether more follow
    if request.sort is None:
        return f"SELECT * FROM ({body}\n) AS q {page}"
    if request.sort >= columns:
        raise duckdb.InvalidInputException(
            f"sort: the result has {columns} columns, there is no column {request.sort + 1}")
    order = "DESC NULLS LAST" if request.descending else "ASC NULLS LAST"
    ties = ", ".join(f"#{i} ASC NULLS LAST" for i in range(1, columns + 1))
    return f"SELECT * FROM ({body}\n) AS q ORDER BY #{request.sort + 1} {order}, {ties} {page}"


def _whole_explain(cur: duckdb.DuckDBPyConnection, request: PageRequest,
                   params: Sequence[Any]) -> dict[str, Any]:
    """EXPLAIN's plan (a few rows) as the only page: it cannot be wrapped, paged or sorted."""
    cur.execute(request.query, list(params) or None)
    description = cur.description or []
    rows = cur.fetchmany(MAX_PAGE_ROWS + 1) if request.offset == 0 else []
    return {"columns": [d[0] for d in description], "types": [str(d[1]) for d in description],
            "rows": [[_cell(v) for v in r] for r in rows[:MAX_PAGE_ROWS]], "offset": request.offset,
            "truncated": len(rows) > MAX_PAGE_ROWS, "sort": None, "descending": False, "pageable": False}
