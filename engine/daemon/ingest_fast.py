"""Bulk parsing of a window of JSON lines in C++ (pyarrow's JSON reader, DuckDB's JSON functions).

Parsing each line with Python's `json` made the daemon's ingest 3.6x slower than DuckDB's own
`read_json`, and parsing each line once per check and field group with DuckDB's JSON functions
left it 2x. Now pyarrow's multi-threaded reader parses a window once: metric lines with their
values object as a struct, sample lines with the fields' types (their other keys, `extra`, are
what DuckDB's `json_merge_patch` leaves of the line). A window pyarrow refuses (a malformed
line, a field whose JSON type changes between lines) goes line by line through DuckDB's JSON
functions: the window's bytes become one Arrow string array without a copy (line boundaries
come from a vectorised newline scan) and an in-memory DuckDB connection checks and parses
each line. Either way the rows come back as Arrow tables ready for `IngestBatch.extend`.

Only "clean" lines take these paths: metric lines, and sample lines whose fields already have
the types the tables want. Every other line (other events, odd types, malformed JSON, blank
lines) is returned for the Python path, which keeps its exact rules (coercions, `extra`,
bad-line counting), so behaviour does not depend on which path a line took.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from storage.store import INGEST_SCHEMAS

_local = threading.local()

_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_INT64 = r"-?(?:0|[1-9][0-9]{0,17})"
#: A minified values object whose values are all plain numbers: anything else (null, strings,
#: booleans, nesting) goes to the Python path and its coercions. A regex on the text is several
#: times cheaper than asking DuckDB for each value's JSON type.
_NUMBERS_OBJECT = rf'\{{(?:"(?:[^"\\]|\\.)*":{_NUMBER},?)*\}}'
#: Stage 1: the window's clean metric lines, values still JSON text.
_METRIC_LINES_SQL = rf"""
CREATE OR REPLACE TEMP TABLE metric_lines AS
WITH p AS (
    SELECT i, from_json(line, '{{"type": "VARCHAR", "t": "JSON", "step": "JSON", "values": "JSON"}}') AS x
    FROM lines WHERE json_valid(line) AND left(ltrim(line), 1) = '{{'
)
SELECT i,
       CASE WHEN x.t::VARCHAR <> 'null' AND x.t::DOUBLE >= 0 AND x.t::DOUBLE < 1e11 THEN x.t::DOUBLE END AS t,
       CASE WHEN x.step::VARCHAR <> 'null' THEN x.step::BIGINT END AS step,
       x."values" AS v
FROM p
WHERE x.type = 'metric'
  AND (x.t IS NULL OR regexp_full_match(x.t::VARCHAR, '{_NUMBER}|null'))
  AND (x.step IS NULL OR regexp_full_match(x.step::VARCHAR, '{_INT64}|null'))
  AND regexp_full_match(x."values"::VARCHAR, '{_NUMBERS_OBJECT}')
"""

_SAMPLE_KEYS = ("benchmark", "item_id", "sample_idx", "prompt", "completion", "extracted",
                "verdict", "tokens", "finish_reason", "flags")
_TEXT = ("benchmark", "item_id", "prompt", "completion", "extracted", "finish_reason")
_INTS = ("sample_idx", "tokens")
_STRINGS_ARRAY = r'\[(?:"(?:[^"\\]|\\.)*",?)*\]'


def _samples_sql(extra_keys: list[str]) -> str:
    """Text fields must be strings, counts small integers, the verdict a number and flags a list
    of strings (or absent/null): anything else goes to the Python path, which coerces. Long text
    is type-checked with `json_type` and read once with `json_extract_string`; short fields come
    as JSON, whose first character shows the type. `extra` is rebuilt from the window's other
    keys (`extra_keys`), which copies only them, not the whole line."""
    short = [k for k in _SAMPLE_KEYS if k not in _LONG]
    col = {k: f"x[{n + 1}]::VARCHAR" for n, k in enumerate(short)}
    null = {k: f"coalesce({c}, 'null') = 'null'" for k, c in col.items()}
    clean = [f"coalesce(left({col[k]}, 1), 'n') IN ('\"', 'n')" for k in _TEXT if k not in _LONG]
    clean += [f"coalesce(y[{n + 1}], 'NULL') IN ('VARCHAR', 'NULL')" for n in range(len(_LONG))]
    clean += [f"({null[k]} OR regexp_full_match({col[k]}, '-?(?:0|[1-9][0-9]{{0,8}})'))" for k in _INTS]
    clean.append(f"({null['verdict']} OR regexp_full_match({col['verdict']}, '{_NUMBER}'))")
    clean.append(f"({null['flags']} OR regexp_full_match({col['flags']}, '{_STRINGS_ARRAY}'))")
    text = {k: f"s[{n + 1}]" for n, k in enumerate(_TEXT)}
    fields = [f"{text[k]} AS {k}" for k in _TEXT]
    fields += [f"CASE WHEN NOT {null[k]} THEN {col[k]}::INTEGER END AS {k}" for k in _INTS]
    fields.append(f"CASE WHEN NOT {null['verdict']} THEN {col['verdict']}::DOUBLE END AS verdict")
    fields.append(f"CASE WHEN NOT {null['flags']} THEN from_json({col['flags']}, '[\"VARCHAR\"]') END "
                  "AS flags")
    entries = ", ".join(f"{{'key': '{k}', 'value': e[{n + 1}]}}" for n, k in enumerate(extra_keys))
    present = f"list_filter([{entries}], lambda v: v.value IS NOT NULL)"
    fields.append(f"nullif(to_json(map_from_entries({present})), '{{}}') AS extra" if extra_keys
                  else "NULL::VARCHAR AS extra")
    extra_paths = ", ".join(f"'$.\"{k}\"'" for k in extra_keys)
    return f"""
WITH p AS (
    SELECT i, line, json_extract(line, [{_paths(short)}]) AS x, json_type(line, [{_paths(_LONG)}]) AS y
    FROM lines WHERE json_valid(line) AND left(ltrim(line), 1) = '{{'
), c AS (
    SELECT i, line, x FROM p WHERE {' AND '.join(clean)}
)
SELECT i, {', '.join(fields)}
FROM (SELECT *, json_extract_string(line, [{_paths(_TEXT)}]) AS s,
             {f"json_extract(line, [{extra_paths}])" if extra_keys else "NULL"} AS e FROM c)
"""


def _paths(keys: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"'$.{k}'" for k in keys)


_LONG = ("prompt", "completion")
_KNOWN = ", ".join(f"'{k}'" for k in _SAMPLE_KEYS)
_EXTRA_KEYS_SQL = f"""SELECT DISTINCT unnest(list_filter(json_keys(line), lambda k: k NOT IN ({_KNOWN})))
FROM lines WHERE json_valid(line) AND left(ltrim(line), 1) = '{{'"""
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\- ]+")


def line_starts(body: bytes) -> np.ndarray:
    """Byte position of each line's start in a window that ends with a newline (plus its end)."""
    newlines = np.flatnonzero(np.frombuffer(body, np.uint8) == 10)
    return np.concatenate(([0], newlines + 1)).astype(np.int64)


def _lines_table(body: bytes, starts: np.ndarray) -> pa.Table | None:
    """The window's lines as one Arrow string array over the same bytes (each keeps its
    newline, which JSON allows as whitespace); None when the bytes are not UTF-8."""
    n = len(starts) - 1
    lines = pa.StringArray.from_buffers(n, pa.py_buffer(starts.astype(np.int32)), pa.py_buffer(body))
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        return None
    table = pa.table({"i": pa.array(np.arange(n, dtype=np.int64)), "line": lines})
    # Several record batches, so DuckDB's threads share the parsing (one batch is one thread's).
    return pa.Table.from_batches(table.to_batches(max_chunksize=max(64, n // 8)))


def _connection() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per thread, used only to parse (it never sees the database)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(":memory:")
    return con


def parse_metrics(body: bytes, starts: np.ndarray, run_id: str) -> tuple[pa.Table, np.ndarray]:
    """Metric rows of the window's clean metric lines, and the indices of the lines they came from.

    The values objects are read as a struct of the window's metric names (a trainer logs the
    same few names on every line), which parses several times faster than a map.
    """
    whole = _metrics_arrow(body, starts)
    if whole is not None:
        parsed, names = whole
        return _metric_rows(parsed, names, run_id), parsed["i"].to_numpy()
    return _metrics_duckdb(body, starts, run_id)


#: The fields of an event line that a metric row needs; every other key is inferred (and ignored).
_EVENT_OPTIONS = pj.ParseOptions(
    explicit_schema=pa.schema([("type", pa.string()), ("t", pa.float64()), ("step", pa.int64())]),
    unexpected_field_behavior="infer")
_OPEN, _NEWLINE = ord("{"), ord("\n")


def _metrics_arrow(body: bytes, starts: np.ndarray) -> tuple[pa.Table, list[str]] | None:
    """The window's clean metric lines parsed once by pyarrow (columns i, t, step, v), or None
    when the window must take the line-by-line path.

    pyarrow refuses the whole window on a malformed line, a field whose JSON type changes from
    line to line (a string step, a boolean time), a duplicate key or a value too big for a
    double, so whatever it returns parsed exactly as Python's `json` would. Its rows map to
    lines only when each non-empty line starts an object (then it yields one row, or more and
    the count differs); empty lines yield none. A values field that is null and one that is
    absent look the same in a struct, so lines with the text `null` go to the Python path (which
    stores a null value as a row); so do values that are not numbers (its coercions).
    """
    read = _read_whole(body, starts, _EVENT_OPTIONS)
    if read is None:
        return None
    table, index = read
    values = table.column("values").combine_chunks() if "values" in table.column_names else None
    if values is not None and not pa.types.is_struct(values.type):
        return None  # values that are not objects: the Python path decides
    clean = pc.equal(table.column("type"), "metric").fill_null(False).to_numpy(zero_copy_only=False)
    names, columns, gaps = [], [], np.zeros(len(clean), bool)
    for k in range(values.type.num_fields if values is not None else 0):
        column, name = values.field(k), values.type.field(k).name
        valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            names.append(name)
            columns.append(column.cast(pa.float64(), safe=False))
            gaps |= ~valid
        else:  # a boolean, string or nested value: the Python path coerces it
            clean &= ~valid
    if np.any(gaps & clean):  # absent or null? Only the text says (a trainer's steady state has no gaps)
        clean[_lines_with(body, starts, index, b"null")] = False
    keep = pa.array(clean)
    t = table.column("t")
    t = pc.if_else(pc.and_(pc.greater_equal(t, 0), pc.less(t, 1e11)), t, None)
    v = pa.StructArray.from_arrays(columns, names) if names else pa.nulls(len(clean), pa.struct([]))
    parsed = pa.table({"i": index, "t": t, "step": table.column("step"), "v": v}).filter(keep)
    return parsed, names


def _read_whole(body: bytes, starts: np.ndarray,
                options: pj.ParseOptions) -> tuple[pa.Table, np.ndarray] | None:
    """The window read by pyarrow, and the lines its rows came from; None when it refuses the
    window or its rows might not map one to one onto lines.

    pyarrow skips empty lines and reads `{..}{..}` as two rows, so each line must be empty or
    start an object (which yields one row, or more and the count differs).
    """
    first = np.frombuffer(body, np.uint8)[starts[:-1]]
    objects = first == _OPEN
    if not np.all(objects | ((first == _NEWLINE) & (np.diff(starts) == 1))):
        return None
    try:
        body.decode()  # Python's json refuses bad UTF-8 (a malformed line); pyarrow does not check
        longest = int(np.diff(starts).max()) if len(starts) > 1 else 0
        blocks = pj.ReadOptions(block_size=max(1 << 20, longest + 1))  # a line must fit in a block
        table = pj.read_json(pa.BufferReader(body), read_options=blocks, parse_options=options)
    except (UnicodeDecodeError, pa.ArrowInvalid):
        return None
    index = np.flatnonzero(objects)
    return (table, index) if table.num_rows == len(index) else None


def _lines_with(body: bytes, starts: np.ndarray, index: np.ndarray, text: bytes) -> np.ndarray:
    """Rows (positions in `index`, the lines that made rows) whose line contains `text`."""
    found = np.array([m.start() for m in re.finditer(re.escape(text), body)], np.int64)
    lines = np.searchsorted(starts, found, side="right") - 1
    return np.searchsorted(index, lines)


def _metrics_duckdb(body: bytes, starts: np.ndarray, run_id: str) -> tuple[pa.Table, np.ndarray]:
    """`parse_metrics` line by line with DuckDB's JSON functions: a window pyarrow refused."""
    lines = _lines_table(body, starts)
    if lines is None:
        return _empty("metrics"), np.empty(0, np.int64)
    con = _connection()
    con.register("lines", lines)
    try:
        con.execute(_METRIC_LINES_SQL)
        keys = con.execute("SELECT DISTINCT unnest(json_keys(v)) FROM metric_lines").fetchall()
        names = [key for (key,) in keys]
        structure = json.dumps({name: "DOUBLE" for name in names}).replace("'", "''")
        parsed = con.sql(f"SELECT i, t, step, from_json(v, '{structure}') AS v FROM metric_lines")
        parsed = parsed.to_arrow_table().combine_chunks()
    except duckdb.Error:  # e.g. names equal but for case: the whole window takes the Python path
        return _empty("metrics"), np.empty(0, np.int64)
    finally:
        con.unregister("lines")
    if [f.name for f in parsed.schema.field("v").type] != names:  # a name DuckDB's struct changed
        return _empty("metrics"), np.empty(0, np.int64)  # (a NUL in it): the Python path
    return _metric_rows(parsed, names, run_id), parsed["i"].to_numpy()


def _metric_rows(parsed: pa.Table, names: list[str], run_id: str) -> pa.Table:
    """One row per (line, name) present in the line's values; `names` are the struct's fields."""
    values = parsed["v"].combine_chunks()
    times = _timestamps(parsed["t"])  # once for the window: a line's names share its time
    parts = []
    for k, name in enumerate(names):  # by position: a name may hold what a lookup by name trips on
        column = values.field(k)
        present = pc.is_valid(column)
        n = pc.sum(present).as_py() or 0
        if n:  # pa.repeat, not a Python list of n strings (that took a third of the window's time)
            parts.append(pa.Table.from_arrays(
                [_constant(run_id, n), parsed["step"].filter(present), _constant(name, n),
                 column.filter(present), times.filter(present)], schema=INGEST_SCHEMAS["metrics"]))
    return pa.concat_tables(parts) if parts else _empty("metrics")


def _constant(text: str, n: int) -> pa.Array:
    """n copies of one string, as an Arrow array."""
    return pa.repeat(pa.scalar(text, pa.string()), n)


def parse_samples(body: bytes, starts: np.ndarray, run_id: str, offset: int) -> tuple[pa.Table, np.ndarray]:
    """Sample rows of the window's clean lines, and those lines' indices."""
    parsed = _samples_arrow(body, starts)
    if parsed is None:
        parsed = _samples_duckdb(body, starts)
    if parsed.num_rows == 0:
        return _empty("samples"), np.empty(0, np.int64)
    idx = parsed["i"].to_numpy()
    schema = INGEST_SCHEMAS["samples"]
    columns = {"run_id": _constant(run_id, len(idx)),
               "offset": pa.array(starts[idx] + offset, pa.int64())}
    arrays = [columns[f.name] if f.name in columns else parsed[f.name].cast(f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema), idx


_SAMPLE_TYPES = {"sample_idx": pa.int64(), "tokens": pa.int64(), "verdict": pa.float64(),
                 "flags": pa.list_(pa.string())}
_SAMPLE_OPTIONS = pj.ParseOptions(
    explicit_schema=pa.schema([(k, _SAMPLE_TYPES.get(k, pa.string())) for k in _SAMPLE_KEYS]),
    unexpected_field_behavior="ignore")
#: RFC 7396: a patch's null removes the key, so what is left of a line is its `extra`.
_EXTRA_SQL = f"""SELECT i, nullif(json_merge_patch(line, '{json.dumps(dict.fromkeys(_SAMPLE_KEYS))}'), '{{}}')
FROM lines WHERE left(line, 1) = '{{' ORDER BY i"""


def _samples_arrow(body: bytes, starts: np.ndarray) -> pa.Table | None:
    """Every line of the window as a sample (columns i, the fields, extra), read by pyarrow with
    the fields' types, or None when the window must take the line-by-line path.

    pyarrow refuses a window where a field has another JSON type (a number item_id, a string
    flags), which the Python path coerces; an integer beyond INTEGER is null, as there. The
    other keys, `extra`, are what is left of each line once the fields are removed (DuckDB's
    `json_merge_patch`: one more parse, not one per key).
    """
    read = _read_whole(body, starts, _SAMPLE_OPTIONS)
    lines = _lines_table(body, starts) if read is not None else None
    if lines is None:
        return None
    table, index = read
    con = _connection()
    con.register("lines", lines)
    try:
        extra = con.sql(_EXTRA_SQL).to_arrow_table()
    except duckdb.Error:  # e.g. NaN, which yyjson refuses and Python's json reads
        return None
    finally:
        con.unregister("lines")
    if not np.array_equal(extra.column(0).to_numpy(), index):
        return None
    columns = {k: table.column(k) for k in _SAMPLE_KEYS}
    for k in _INTS:
        column = columns[k]
        fits = pc.and_(pc.greater(column, -(2**31)), pc.less(column, 2**31))
        columns[k] = pc.if_else(fits, column, None).cast(pa.int32())
    return pa.table({"i": index, **columns, "extra": extra.column(1)})


def _samples_duckdb(body: bytes, starts: np.ndarray) -> pa.Table:
    """`_samples_arrow` line by line with DuckDB's JSON functions: only the clean lines' rows."""
    lines = _lines_table(body, starts)
    if lines is None:
        return _empty("samples")
    con = _connection()
    con.register("lines", lines)
    try:
        keys = sorted(k for (k,) in con.execute(_EXTRA_KEYS_SQL).fetchall())
        if not all(_PLAIN_KEY.fullmatch(k) for k in keys):  # a key needing quotes: the Python path
            return _empty("samples")
        return con.sql(_samples_sql(keys)).to_arrow_table().combine_chunks()
    except duckdb.Error:  # a type DuckDB rejects: the whole window takes the Python path
        return _empty("samples")
    finally:
        con.unregister("lines")


def _timestamps(seconds: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Unix seconds as timestamps, a missing or nonsense time being now (as the Python path)."""
    now = datetime.now(UTC).timestamp()
    filled = pc.fill_null(seconds, now)
    return pc.cast(pc.multiply(filled, 1e6), pa.int64(), safe=False).cast(pa.timestamp("us"))


def _empty(table: str) -> pa.Table:
    return INGEST_SCHEMAS[table].empty_table()
