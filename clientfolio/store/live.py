"""Rows for the living-portfolio tables: checked, typed, and written by one shared sequence.

The store never looks inside a fitted state or a customer's state.  It checks column names
and types, turns pandas values into the store's types and back (so both backends hand out
identical frames), and runs the statements of one per-event update (`run_commit`) in the
same order on DuckDB and PostgreSQL, the way `merge.run_merge` does for imports.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from clientfolio.core.errors import EventAlreadyApplied, SchemaError, StoreError
from clientfolio.store.schema import (
    ACTION_TABLES, CUSTOMER_STATE_KEY, LIVE_TABLES, PORTFOLIO_STATES, PREDICTION_TABLES, TABLES, WEBHOOK_TABLES,
    base_type,
)

TEXT, DOUBLE, BIGINT, INTEGER, BOOLEAN, TIMESTAMP = (
    "TEXT", "DOUBLE PRECISION", "BIGINT", "INTEGER", "BOOLEAN", "TIMESTAMP")
# Column types as each engine's catalog names them, mapped to the types clientfolio writes.
_CATALOG_TYPES = {
    "varchar": TEXT, "text": TEXT, "double": DOUBLE, "double precision": DOUBLE, "bigint": BIGINT,
    "integer": INTEGER, "boolean": BOOLEAN, "timestamp": TIMESTAMP, "timestamp without time zone": TIMESTAMP,
}
_ARROW = {TEXT: pa.string(), DOUBLE: pa.float64(), BIGINT: pa.int64(), INTEGER: pa.int32(), BOOLEAN: pa.bool_(),
          TIMESTAMP: pa.timestamp("us")}
# The same types as DuckDB's CSV reader names them.
DUCKDB_TYPES = {TEXT: "VARCHAR", DOUBLE: "DOUBLE", BIGINT: "BIGINT", INTEGER: "INTEGER", BOOLEAN: "BOOLEAN",
                TIMESTAMP: "TIMESTAMP"}
# Lower-case snake names, at most 63 characters (PostgreSQL's limit): the same column on both engines.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The string dtype this pandas gives text columns ('str' on pandas 3, object before).
_TEXT_DTYPE = pd.Series(["a"]).dtype
# The dtype `normalize` gives each type when no value is missing.
_READ_DTYPES = {DOUBLE: np.dtype("float64"), BIGINT: np.dtype("int64"), INTEGER: np.dtype("int64"),
                BOOLEAN: np.dtype("bool"), TIMESTAMP: np.dtype("datetime64[us]"), TEXT: _TEXT_DTYPE}
# Up to this many rows a statement is run once per row with parameters; more go through a bulk path.
SMALL_BATCH = 8  # rows: beyond this, bulk paths (Arrow, COPY) beat one statement per row

Types = dict[str, str]


def now_utc() -> datetime:
    """The current time as the store keeps times: UTC, without a zone."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def table_types(table: str) -> Types:
    """Column -> SQL type of a canonical, live, actions or webhook table with fixed columns."""
    cols = (TABLES.get(table) or LIVE_TABLES.get(table) or ACTION_TABLES.get(table) or PREDICTION_TABLES.get(table)
            or WEBHOOK_TABLES[table])[0]
    return {c: base_type(t) for c, t in cols}


def catalog_type(table: str, column: str, db_type: str) -> str:
    """The clientfolio type of a column as the engine's catalog reports it."""
    t = _CATALOG_TYPES.get(db_type.lower())
    if t is None:
        raise StoreError(f"{table}.{column} has type {db_type}, which clientfolio does not write; "
                         "replace the table with replace_customer_state")
    return t


def quote(name: str) -> str:
    """A column name as SQL (names are checked against `_NAME` before they get here)."""
    return f'"{name}"'


def sql_type(dtype: Any) -> str:
    """The store type for a pandas column: float -> DOUBLE PRECISION, int -> BIGINT, bool, datetime, else TEXT."""
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if pd.api.types.is_integer_dtype(dtype):
        return BIGINT
    if pd.api.types.is_float_dtype(dtype):
        return DOUBLE
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return TIMESTAMP
    return TEXT


def state_types(df: pd.DataFrame) -> Types:
    """Columns and store types for a whole customer_state frame (customer_id first, always text)."""
    names = [str(c) for c in df.columns]
    bad = [c for c in names if not _NAME.fullmatch(c)]
    if bad:
        raise SchemaError(f"customer_state: column names must be lower-case letters, digits and '_' (at most 63, "
                          f"not starting with a digit); rename {bad}")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise SchemaError(f"customer_state: columns {dup} appear more than once")
    if CUSTOMER_STATE_KEY not in names:
        raise SchemaError(f"customer_state: the frame has no '{CUSTOMER_STATE_KEY}' column (one row per customer)")
    types = {CUSTOMER_STATE_KEY: TEXT}
    types.update({c: sql_type(df[c].dtype) for c in names if c != CUSTOMER_STATE_KEY})
    return types


def create_state_table(types: Types, table: str) -> str:
    """CREATE TABLE for customer_state with the given columns (the key is added by the caller)."""
    defs = [f"{quote(c)} {t}{' NOT NULL' if c == CUSTOMER_STATE_KEY else ''}" for c, t in types.items()]
    return f"CREATE TABLE {table} ({', '.join(defs)})"


def check_state_ids(rows: pd.DataFrame) -> None:
    """customer_state has one row per customer: no missing and no repeated ids."""
    ids = rows["customer_id"]
    if ids.isna().any() or ids.duplicated().any():
        dup = ids[ids.duplicated()].head(3).tolist()
        raise SchemaError(f"customer_state: customer_id must be given once per row; found {int(ids.isna().sum())} "
                          f"missing and {int(ids.duplicated().sum())} repeated (e.g. {dup})")


@dataclass
class Rows:
    """Rows checked against a table's types: a typed frame for bulk writes, or plain Python
    tuples for a few rows (a per-event update should not pay pandas' per-column cost)."""

    types: Types
    frame: pd.DataFrame | None = None
    tuples: list[tuple] | None = None

    def __len__(self) -> int:
        return len(self.tuples) if self.tuples is not None else len(self.frame)  # type: ignore[arg-type]

    def column(self, name: str) -> list:
        """One column's values as plain Python values."""
        if self.tuples is not None:
            i = list(self.types).index(name)
            return [r[i] for r in self.tuples]
        return [r[0] for r in py_rows(self.frame[[name]])]  # type: ignore[index]

    def with_column(self, name: str, values: Sequence[Any]) -> "Rows":
        """The same rows with one column's values replaced (values already of the column's type)."""
        if self.tuples is not None:
            i = list(self.types).index(name)
            return Rows(self.types, tuples=[r[:i] + (v,) + r[i + 1:] for r, v in zip(self.tuples, values)])
        return Rows(self.types, frame=self.frame.assign(**{name: _to_store_type(  # type: ignore[union-attr]
            pd.Series(list(values), dtype=object), self.types[name])}))


def rows_for(df: pd.DataFrame, types: Types, what: str, defaults: dict[str, Any] | None = None) -> Rows:
    """`df` checked and typed for a table with columns `types` (see `conform`); few rows stay tuples."""
    if len(df) > SMALL_BATCH:
        return Rows(types, frame=conform(df, types, what, defaults))
    _check_columns(df, types, what)
    defaults = defaults or {}
    values = df.to_numpy(dtype=object)  # one conversion for all columns: far cheaper than one per column
    pos = {c: i for i, c in enumerate(df.columns)}
    cols = []
    for c, t in types.items():
        vals = values[:, pos[c]].tolist() if c in pos else [defaults.get(c)] * len(df)
        try:
            cols.append([_scalar(v, t) for v in vals])
        except (ValueError, TypeError, OverflowError) as exc:
            raise SchemaError(f"{what}: column '{c}' must hold {_KIND[t]}: {str(exc).splitlines()[0]}") from None
    return Rows(types, tuples=list(zip(*cols)))


def rows_from_records(records: Sequence[dict], types: Types, what: str,
                      defaults: dict[str, Any] | None = None) -> Rows:
    """Rows given as dicts (column -> value), checked and typed like `rows_for` -- without a DataFrame, for the
    few rows of a per-event update.  Keys the table lacks are an error; columns a record lacks are NULL
    (or their value in `defaults`)."""
    defaults = defaults or {}
    extra = sorted({k for r in records for k in r} - set(types))
    if extra:
        raise SchemaError(f"{what}: columns {extra} are not in the table (it has {list(types)})")
    out = []
    for r in records:
        row = []
        for c, t in types.items():
            try:
                row.append(_scalar(r[c] if c in r else defaults.get(c), t))
            except (ValueError, TypeError, OverflowError) as exc:
                raise SchemaError(f"{what}: column '{c}' must hold {_KIND[t]}: {str(exc).splitlines()[0]}") from None
        out.append(tuple(row))
    return Rows(types, tuples=out)


def _scalar(v: Any, t: str) -> Any:
    """One value in its store type as a plain Python value: the same rules as `_to_store_type`."""
    if _missing(v):
        return None
    if t == TEXT:
        return v if isinstance(v, str) else str(v)
    if t == DOUBLE:
        return float(v)
    if t in (BIGINT, INTEGER):
        if isinstance(v, str):
            v = pd.to_numeric(v)  # '5' -> 5, '5.5' -> 5.5 (refused below), 'x' -> ValueError
        if isinstance(v, (bool, int, np.integer, np.bool_)):
            return int(v)
        f = float(v)
        if not f.is_integer():
            raise ValueError(f"cannot safely cast non-equivalent {f!r} to a whole number")
        return int(f)
    if t == BOOLEAN:
        if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)):
            return bool(v)
        raise TypeError("Need to pass bool-like values")
    if type(v) is datetime and v.tzinfo is None:
        return v
    ts = v if isinstance(v, pd.Timestamp) else pd.to_datetime(v, utc=True, format="ISO8601")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return (ts.floor("us") if ts.nanosecond else ts).to_pydatetime()


def _check_columns(df: pd.DataFrame, types: Types, what: str) -> None:
    if df.columns.has_duplicates:
        raise SchemaError(f"{what}: columns {sorted(set(df.columns[df.columns.duplicated()]))} appear more than once")
    extra = [c for c in df.columns if c not in types]
    if extra:
        raise SchemaError(f"{what}: columns {extra} are not in the table (it has {list(types)})")


def conform(df: pd.DataFrame, types: Types, what: str, defaults: dict[str, Any] | None = None) -> pd.DataFrame:
    """The frame with exactly the columns of `types`, in order, each in its store type.

    Columns the table lacks are an error (nothing is dropped silently); columns the frame lacks
    are NULL (or their value in `defaults`).  Values that do not fit the type raise SchemaError
    naming the column.
    """
    _check_columns(df, types, what)
    out = {}
    for c, t in types.items():
        s = df[c] if c in df.columns else pd.Series([(defaults or {}).get(c)] * len(df), dtype=object)
        try:
            out[c] = _to_store_type(s, t)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SchemaError(f"{what}: column '{c}' must hold {_KIND[t]}: {str(exc).splitlines()[0]}") from None
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


_KIND = {TEXT: "text", DOUBLE: "numbers", BIGINT: "whole numbers", INTEGER: "whole numbers",
         BOOLEAN: "true/false values", TIMESTAMP: "date-times"}


def _to_store_type(s: pd.Series, t: str) -> pd.Series:
    s = s.reset_index(drop=True)
    if t == DOUBLE:
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            s = pd.to_numeric(s.astype(object).where(s.notna(), None))
        return s.astype("float64")
    if t in (BIGINT, INTEGER):
        if not pd.api.types.is_numeric_dtype(s.dtype):
            s = pd.to_numeric(s.astype(object).where(s.notna(), None))
        return s.astype("Int64")
    if t == BOOLEAN:
        return s.astype(object).where(s.notna(), None).astype("boolean")
    if t == TIMESTAMP:
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        elif not pd.api.types.is_datetime64_dtype(s.dtype):
            s = pd.to_datetime(s.astype(object).where(s.notna(), None), utc=True, format="ISO8601")
            s = s.dt.tz_localize(None)
        return s.astype("datetime64[us]")
    return _text(s)


def _text(s: pd.Series) -> pd.Series:
    if s.dtype == _TEXT_DTYPE and s.dtype != object:
        return s
    if isinstance(s.dtype, pd.StringDtype) or (
            s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")):
        return s.astype(object).where(s.notna(), None).astype(_TEXT_DTYPE)
    vals = [None if _missing(v) else (v if isinstance(v, str) else str(v)) for v in s.tolist()]
    return pd.Series(vals, dtype=object).astype(_TEXT_DTYPE)


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def normalize(df: pd.DataFrame, types: Types) -> pd.DataFrame:
    """A frame read from either engine in one set of dtypes: float64, int64 (Int64 with
    missing values), bool (boolean with missing values), datetime64[us], and pandas' text dtype."""
    out = {}
    for c, t in types.items():
        s = df[c].reset_index(drop=True) if c in df.columns else pd.Series([], dtype=object)
        if s.dtype == _READ_DTYPES[t] and s.dtype != object:
            out[c] = s  # already right (DuckDB hands most columns over so): no copy of a million values
            continue
        if t == DOUBLE:
            s = s.astype("float64")
        elif t in (BIGINT, INTEGER):
            s = s.astype("Int64")
            s = s if s.hasnans else s.astype("int64")
        elif t == BOOLEAN:
            s = s.astype("boolean")
            s = s if s.hasnans else s.astype("bool")
        elif t == TIMESTAMP:
            s = pd.to_datetime(s).astype("datetime64[us]")
        else:
            s = _text(s)
        out[c] = s
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


def frame_from_rows(rows: list[tuple], types: Types) -> pd.DataFrame:
    """Rows fetched as Python values, in the dtypes `normalize` gives (built column by column
    with numpy, which is much cheaper than pandas casts for the few rows of a point read)."""
    cols = list(zip(*rows)) if rows else [() for _ in types]
    data: dict[str, Any] = {}
    for (c, t), vals in zip(types.items(), cols):
        has_null = any(v is None for v in vals)
        if t == DOUBLE:
            data[c] = np.array([np.nan if v is None else v for v in vals], dtype="float64")
        elif t in (BIGINT, INTEGER):
            data[c] = pd.array(list(vals), dtype="Int64") if has_null else np.array(vals, dtype="int64")
        elif t == BOOLEAN:
            data[c] = pd.array(list(vals), dtype="boolean") if has_null else np.array(vals, dtype="bool")
        elif t == TIMESTAMP:
            data[c] = np.array([np.datetime64("NaT") if v is None else v for v in vals], dtype="datetime64[us]")
        else:
            data[c] = pd.array(list(vals), dtype=_TEXT_DTYPE) if _TEXT_DTYPE != object else np.array(vals, dtype=object)
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def py_rows(df: pd.DataFrame) -> list[tuple]:
    """The rows of a conformed frame as plain Python values (None for missing) for parameters."""
    cols = []
    for c in df.columns:
        vals = df[c].tolist()
        cols.append([None if _missing(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)
                     for v in vals])
    return list(zip(*cols)) if cols else []


def to_arrow(df: pd.DataFrame, types: Types) -> pa.Table:
    """A conformed frame as an Arrow table with the store's types (for DuckDB to scan in bulk)."""
    schema = pa.schema([(c, _ARROW[t]) for c, t in types.items()])
    return pa.Table.from_pandas(df[list(types)], schema=schema, preserve_index=False)


def tuples_to_arrow(tuples: list[tuple], types: Types) -> pa.Table:
    """Typed row tuples (`Rows.tuples`) as an Arrow table with the store's types: DuckDB binds a VALUES list of
    many rows of a wide table slowly (a grouped update's 32 customer_state rows: tens of ms), and scans this fast."""
    cols = list(zip(*tuples)) if tuples else [() for _ in types]
    return pa.Table.from_arrays([pa.array(list(v), type=_ARROW[t]) for v, t in zip(cols, types.values())],
                                names=list(types))


def insert_sql(table: str, columns: Iterable[str]) -> str:
    """INSERT with one `?` parameter per column."""
    cols = list(columns)
    return f"INSERT INTO {table} ({', '.join(quote(c) for c in cols)}) VALUES ({', '.join('?' * len(cols))})"


def insert_rows_sql(table: str, columns: Iterable[str], n: int) -> str:
    """INSERT of `n` rows in ONE statement (a VALUES list): one round trip for a few rows."""
    cols = list(columns)
    one = f"({', '.join('?' * len(cols))})"
    return f"INSERT INTO {table} ({', '.join(quote(c) for c in cols)}) VALUES {', '.join([one] * n)}"


def delete_few_sql(table: str, key: Sequence[str], n: int) -> str:
    """DELETE the rows of `n` keys in ONE statement (`k IN (...)`, or ORs of the key columns)."""
    if len(key) == 1:
        if n == 1:  # `k = ?`: DuckDB finds the row through the table's index
            return f"DELETE FROM {table} WHERE {quote(key[0])} = ?"
        return f"DELETE FROM {table} WHERE {quote(key[0])} IN ({', '.join('?' * n)})"
    one = "(" + " AND ".join(f"{quote(k)} = ?" for k in key) + ")"
    return f"DELETE FROM {table} WHERE " + " OR ".join([one] * n)


def delete_sql(table: str, key: Sequence[str], *, many: bool) -> str:
    """DELETE the rows whose key is given: one key per call, or lists of keys (one text[] per key column)."""
    if not many:
        return f"DELETE FROM {table} WHERE " + " AND ".join(f"{quote(k)} = ?" for k in key)
    keys = ", ".join(f"unnest(CAST(? AS TEXT[])) AS {quote(k)}" for k in key)
    on = " AND ".join(f"{table}.{quote(k)} = k.{quote(k)}" for k in key)
    return f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM (SELECT {keys}) k WHERE {on})"


UPSERT_META = "INSERT INTO live_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
NEXT_CHANGE_ID = "SELECT coalesce(max(change_id), 0) + 1 FROM segment_changes"
# The next change id, kept in live_meta by every commit that writes changes: one key lookup instead of
# max(change_id), which DuckDB answers by scanning the change log (milliseconds per million changes, and
# growing).  Missing (a store from before, or never written): max(change_id) + 1 once.  Ids an erasure
# deleted are not given out again (outbox message ids are built from them).
NEXT_CHANGE_KEY = "next_change_id"
# A counter every write that can change what a live update reads (a live commit, an import, a new state, a
# replaced customer_state, an erasure or correction, next-change dates) raises by one in its own transaction.
# A buffered LivePortfolio (clientfolio.live.memory) remembers the value its in-memory copy was read at and
# writes only if the store still stands there (compare-and-set in the same transaction): never a result
# computed from data another writer has changed since.
VERSION_KEY = "store_version"
BUMP_VERSION = (f"INSERT INTO live_meta (key, value) VALUES ('{VERSION_KEY}', '1') ON CONFLICT (key) DO UPDATE "
                "SET value = CAST(CAST(live_meta.value AS BIGINT) + 1 AS TEXT)")
# Moves the counter from the expected value to the next one; no row when the store moved on.
CAS_VERSION = f"UPDATE live_meta SET value = ? WHERE key = '{VERSION_KEY}' AND value = ? RETURNING key"


class StoreMoved(StoreError):
    """The store changed since a buffered LivePortfolio read it (another writer); nothing was written."""


# --- fitted states -------------------------------------------------------------------------------

STATE_META = [c for c, _ in PORTFOLIO_STATES if c not in ("state_id", "is_current", "body")]
STATE_LIST_TYPES = {c: base_type(t) for c, t in PORTFOLIO_STATES if c != "body"}


def state_row(meta: dict[str, Any], state_id: int, body: str) -> tuple:
    """The portfolio_states row for a new current state (created_at defaults to now)."""
    unknown = sorted(set(meta) - set(STATE_META) - {"state_id", "is_current"})
    if unknown:
        raise SchemaError(f"save_state: unknown meta keys {unknown}; use {STATE_META}")
    if not isinstance(body, str):
        raise SchemaError(f"save_state: the body must be JSON text, got {type(body).__name__}")
    row = dict(meta)
    row.setdefault("created_at", now_utc())
    types = {c: table_types("portfolio_states")[c] for c in STATE_META}
    values = rows_for(pd.DataFrame([{c: row.get(c) for c in STATE_META}]), types, "save_state").column
    return (state_id, *(values(c)[0] for c in STATE_META), True, body)


def state_meta(row: Sequence[Any], columns: Sequence[str]) -> dict[str, Any]:
    """A portfolio_states row (without its body) as a dict of plain Python values."""
    out = {}
    for c, v in zip(columns, row):
        if isinstance(v, pd.Timestamp):
            v = v.to_pydatetime()
        elif isinstance(v, np.generic):
            v = v.item()
        out[c] = None if _missing(v) else v
    return out


# --- one per-event (or refit) commit -----------------------------------------------------------------

@dataclass
class LiveBatch:
    """What one commit_live writes, checked and typed (change ids are assigned inside the transaction)."""

    transactions: Rows | None = None
    events: Rows | None = None
    delete_orders: list[tuple[str, str]] = field(default_factory=list)
    state_rows: pd.DataFrame | list[dict] | None = None  # typed inside the transaction, against the stored columns
    changes: Rows | None = None
    outbox: Rows | None = None
    event_keys: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    expect_version: str | None = None  # write only if the store's version counter still has this value
    new_customers: list[tuple] | None = None  # customers rows to add (if unknown) instead of deriving them
    predictions: Rows | None = None
    predictions_for: list[str] = field(default_factory=list)


def prepare_live(
    *,
    state_rows: pd.DataFrame | None,
    changes: pd.DataFrame | None,
    outbox: pd.DataFrame | None,
    event_keys: Sequence[str],
    meta: dict[str, str] | None,
    transactions: pd.DataFrame | None,
    events: pd.DataFrame | None,
    delete_orders: Sequence[tuple[str, str]],
    now: datetime,
    expect_version: str | None = None,
    new_customers: list[tuple] | None = None,
    predictions: pd.DataFrame | None = None,
    predictions_for: Sequence[str] = (),
) -> LiveBatch:
    """Check and type everything commit_live was given, before the transaction starts."""
    b = LiveBatch(delete_orders=[(str(s), str(o)) for s, o in delete_orders], event_keys=[str(k) for k in event_keys],
                  meta=dict(meta or {}), expect_version=None if expect_version is None else str(expect_version),
                  new_customers=new_customers)
    if VERSION_KEY in b.meta:
        raise SchemaError(f"commit_live: meta key {VERSION_KEY!r} is kept by the store itself")
    dup = sorted(k for k, n in Counter(b.event_keys).items() if n > 1)
    if dup:
        raise SchemaError(f"commit_live: event keys {dup} are given more than once")
    bad = {k: v for k, v in b.meta.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise SchemaError(f"commit_live: meta keys and values must be text, got {bad}")
    for name in ("transactions", "events"):
        df = transactions if name == "transactions" else events
        if df is not None and len(df):
            setattr(b, name, rows_for(df, table_types(name), f"commit_live {name}"))
    if isinstance(state_rows, list):  # a few rows as dicts: a per-event update
        ids = [r.get(CUSTOMER_STATE_KEY) for r in state_rows]
        if any(i is None for i in ids) or len(set(ids)) != len(ids):
            raise SchemaError(f"commit_live state_rows: '{CUSTOMER_STATE_KEY}' must be given once per row")
        b.state_rows = state_rows or None
    elif state_rows is not None and len(state_rows):
        if CUSTOMER_STATE_KEY not in state_rows.columns:
            raise SchemaError(f"commit_live state_rows: no '{CUSTOMER_STATE_KEY}' column")
        ids = state_rows[CUSTOMER_STATE_KEY]
        if ids.isna().any() or ids.duplicated().any():
            raise SchemaError(f"commit_live state_rows: '{CUSTOMER_STATE_KEY}' must be given once per row, "
                              f"found {int(ids.isna().sum())} missing and {int(ids.duplicated().sum())} repeated")
        b.state_rows = state_rows
    b.predictions_for = sorted({str(c) for c in predictions_for})
    if predictions is not None and len(predictions):
        b.predictions = rows_for(predictions, table_types("predictions"), "commit_live predictions")
        unknown = sorted(set(b.predictions.column("customer_id")) - set(b.predictions_for))
        if unknown:
            raise SchemaError(f"commit_live predictions: rows of customers not in predictions_for: {unknown[:5]}")
    if changes is not None and len(changes):
        # change_id is assigned in the transaction; a value given for it is overwritten
        b.changes = (rows_from_records(changes, table_types("segment_changes"), "commit_live changes",
                                       {"recorded_at": now, "change_id": 0}) if isinstance(changes, list) else
                     rows_for(changes, table_types("segment_changes"), "commit_live changes",
                              {"recorded_at": now, "change_id": 0}))
    if outbox is not None and len(outbox):
        n = 0 if b.changes is None else len(b.changes)
        if n == 0:
            raise SchemaError("commit_live outbox: outbox rows refer to change rows by position ('change_id'), "
                              "but no changes were given")
        b.outbox = rows_for(outbox, table_types("outbox"), "commit_live outbox", {"created_at": now, "attempts": 0})
        if any(p is None or not 0 <= p < n for p in b.outbox.column("change_id")):
            raise SchemaError(f"commit_live outbox: 'change_id' must be the position (0..{n - 1}) of a row in "
                              f"`changes`; {n} change rows were given")
    return b


class LiveWriter(Protocol):
    """What `run_commit` needs from a backend, inside a transaction the backend opened."""

    def lock(self) -> None:
        """Serialise live writers (PostgreSQL: an advisory lock; DuckDB has one writer)."""

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    def executemany(self, sql: str, rows: list[tuple]) -> None: ...

    def delete_keys(self, table: str, key: Sequence[str], rows: list[tuple]) -> None:
        """Delete the rows of `table` whose key columns equal one of `rows`."""

    def insert(self, table: str, rows: Rows) -> None:
        """Insert checked rows."""

    def state_types(self) -> Types:
        """The stored customer_state's columns and types."""


def run_commit(db: LiveWriter, b: LiveBatch, now: datetime) -> list[int]:
    """The statements of one commit_live, in order; the backend wraps them in one transaction."""
    db.lock()
    if b.expect_version is not None:
        # first statement after the lock: the version row stays locked (PostgreSQL) until the commit
        if not db.fetch(CAS_VERSION, [str(int(b.expect_version) + 1), b.expect_version]):
            raise StoreMoved(f"the store changed since it was read (expected version {b.expect_version}); "
                             "nothing was written")
    else:
        db.executemany(BUMP_VERSION, [()])
    if b.event_keys:
        marks = ", ".join("?" * len(b.event_keys))
        done = sorted(r[0] for r in db.fetch(f"SELECT event_key FROM applied_events WHERE event_key IN ({marks})",
                                            b.event_keys))
        if done:
            raise EventAlreadyApplied(done)
    if b.delete_orders:
        db.delete_keys("transactions", ("source", "order_id"), b.delete_orders)
    for table, rows in (("transactions", b.transactions), ("events", b.events)):
        if rows is not None:
            key = TABLES[table][1]
            db.delete_keys(table, key, list(zip(*(rows.column(k) for k in key))))
            db.insert(table, rows)
    if b.new_customers is not None:
        _insert_customers(db, b.new_customers)
    elif b.transactions is not None:
        _insert_new_customers(db, b.transactions)
    if b.state_rows is not None:
        what = "commit_live state_rows (replace_customer_state adds columns)"
        state = (rows_from_records(b.state_rows, db.state_types(), what) if isinstance(b.state_rows, list)
                 else rows_for(b.state_rows, db.state_types(), what))
        db.delete_keys("customer_state", (CUSTOMER_STATE_KEY,), [(v,) for v in state.column(CUSTOMER_STATE_KEY)])
        db.insert("customer_state", state)
    if b.predictions_for:
        db.delete_keys("predictions", ("customer_id",), [(c,) for c in b.predictions_for])
        if b.predictions is not None:
            db.insert("predictions", b.predictions)
    ids: list[int] = []
    meta = dict(b.meta)
    if b.changes is not None:
        kept = db.fetch("SELECT value FROM live_meta WHERE key = ?", [NEXT_CHANGE_KEY])
        first = int(kept[0][0]) if kept else int(db.fetch(NEXT_CHANGE_ID)[0][0])
        ids = list(range(first, first + len(b.changes)))
        db.insert("segment_changes", b.changes.with_column("change_id", ids))
        meta[NEXT_CHANGE_KEY] = str(first + len(b.changes))
    if b.outbox is not None:
        change_ids = [ids[p] for p in b.outbox.column("change_id")]
        # One change can be "left A" and "entered B" for the same action: the transition keeps the ids apart.
        auto = [f"msg_{c}_{t}_{a}" for c, t, a in zip(change_ids, b.outbox.column("transition"),
                                                      b.outbox.column("action"))]
        given = b.outbox.column("message_id")
        ob = b.outbox.with_column("change_id", change_ids).with_column(
            "message_id", [m if m is not None else a for m, a in zip(given, auto)])
        db.insert("outbox", ob)
    if b.event_keys:
        db.insert("applied_events", rows_from_records([{"event_key": k} for k in b.event_keys],
                                                     table_types("applied_events"), "event_keys", {"applied_at": now}))
    if meta:
        db.executemany(UPSERT_META, list(meta.items()))
    return ids


def new_customer_rows(transactions: Rows) -> list[tuple]:
    """A `customers` row per customer of these order lines, derived as an import derives them.

    An import inserts a customers row for every new customer id of its transactions (first seen
    at the first line, e-mail, country and the latest consent given with an order); orders posted
    live get the same, so customer lists, exports and erasure find a customer who only ever
    ordered through the Python API or the service.
    """
    by: dict[str, dict[str, Any]] = {}
    cols = ("customer_id", "email", "ts", "country", "consent_marketing", "source", "import_id")
    for cid, email, ts, country, consent, source, import_id in zip(*(transactions.column(c) for c in cols)):
        if cid is None:
            continue
        d = by.setdefault(cid, {"email": None, "first_seen": ts, "country": None, "consent": None, "consent_ts": None,
                                "source": None, "import_id": import_id})
        d["email"] = email if d["email"] is None or (email is not None and email > d["email"]) else d["email"]
        d["country"] = country if d["country"] is None or (country is not None and country > d["country"]) \
            else d["country"]
        d["source"] = source if d["source"] is None or (source is not None and source > d["source"]) else d["source"]
        d["first_seen"] = min(d["first_seen"], ts)
        if d["consent_ts"] is None or ts > d["consent_ts"]:
            d["consent"], d["consent_ts"] = consent, ts
    names = [c for c, _ in TABLES["customers"][0]]
    out = []
    for cid, d in by.items():
        consent = None if d["consent"] is None else str(bool(d["consent"])).lower()
        digest = hashlib.md5("|".join(v for v in (cid, d["email"], d["country"], consent) if v is not None)
                             .encode()).hexdigest()
        row = {"customer_id": cid, "email": d["email"], "first_seen": d["first_seen"], "country": d["country"],
               "consent_marketing": d["consent"], "source": d["source"], "row_hash": digest,
               "import_id": d["import_id"]}
        out.append(tuple(row.get(n) for n in names))
    return out


def _insert_new_customers(db: LiveWriter, transactions: Rows) -> None:
    """Insert the customers rows of order lines whose customer the store does not know yet."""
    _insert_customers(db, new_customer_rows(transactions))


def _insert_customers(db: LiveWriter, rows: list[tuple]) -> None:
    """Insert these customers rows (`new_customer_rows`) whose customer the store does not know yet."""
    if not rows:
        return
    ids = [r[0] for r in rows]
    known: set[str] = set()
    for i in range(0, len(ids), 1000):
        part = ids[i:i + 1000]
        known |= {r[0] for r in db.fetch(f"SELECT customer_id FROM customers WHERE customer_id IN "
                                         f"({', '.join('?' * len(part))})", part)}
    new = [r for r in rows if r[0] not in known]
    if new:
        db.insert("customers", Rows(table_types("customers"), tuples=new))
