"""The one small interface every store backend implements, and the merge SQL they share.

An import hands the store staged rows (DuckDB temp tables named `inc_<table>`,
with a `__file` column saying which input file each row came from).  The
store merges them in ONE transaction: new keys are inserted, changed rows
replace the stored ones, identical rows are counted as duplicates.  If
anything fails, or the process dies, the transaction is rolled back and the
store is exactly as before.
"""

from __future__ import annotations

import abc
import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from clientfolio.store.live import STATE_LIST_TYPES, normalize, state_meta, table_types
from clientfolio.store.schema import MIGRATIONS, TABLES
from clientfolio.store.tx import Transaction

# "Rows of these customers" with the ids as ONE list parameter, on both engines: one `?` per id made
# statements of up to a million parameters, which took longer to parse than to run.
IDS_IN = "customer_id IN (SELECT unnest(CAST(? AS TEXT[])))"


@dataclass
class MergeCounts:
    """Per input file: rows inserted, replaced, and identical to what was stored."""

    new: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    updated: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    same: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    linked: int = 0
    expired_events: int = 0  # events past the retention period, deleted in the same transaction


@dataclass
class ImportLogRow:
    import_id: int
    file_no: int
    started_at: Any
    finished_at: Any
    file: str
    file_sha256: str | None
    layout: str
    target: str
    rows_in: int
    rows_stored: int
    rows_new: int
    rows_updated: int
    rows_rejected: int
    rows_deduplicated: int
    rejects_path: str | None
    notes: str


class Store(abc.ABC):
    """A place the canonical tables live: a DuckDB file or a PostgreSQL database."""

    url: str
    kind: str

    @abc.abstractmethod
    def staging(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection where an import stages and cleans its rows."""

    @abc.abstractmethod
    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        """Run a read-only query and return a DataFrame."""

    @abc.abstractmethod
    def apply_import(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: list[str],
        log: Callable[[MergeCounts], list[ImportLogRow]],
    ) -> MergeCounts:
        """Merge the staged `inc_<table>` tables and write the import log, atomically."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def release_memory(self) -> None:
        """Give back memory the connection keeps after a bulk write (DuckDB: indexes an import built); no-op here."""

    def reader(self) -> Store | None:
        """A second connection to the same data for reads from another thread while this one works, or None
        when the backend has none to offer (then reads run in turn, on this connection).  Close it when done."""
        return None

    @property
    @abc.abstractmethod
    def default_rejects_dir(self) -> Path: ...

    @abc.abstractmethod
    def save_memberships(self, memberships: pd.DataFrame) -> None:
        """Store a segment snapshot, replacing rows of the same dates and segment kinds (atomically)."""

    # --- the living portfolio: fitted states, per-customer state, change log, outbox -------------

    @abc.abstractmethod
    def save_state(self, meta: dict[str, Any], body: str) -> int:
        """Store a fitted state (JSON text) as the new current one and return its state_id.

        `meta` holds cutoff, format, reason and optionally created_at (default now), fingerprint,
        transactions and customers.  The previous current state stops being current in the same
        transaction.
        """

    def load_state(self, state_id: int | None = None) -> tuple[dict[str, Any], str] | None:
        """A stored state as (meta, body): the current one when `state_id` is None; None if there is none."""
        cols = [c for c in STATE_LIST_TYPES]
        where, params = ("is_current", []) if state_id is None else ("state_id = ?", [int(state_id)])
        df = self.query(f"SELECT {', '.join(cols)}, body FROM portfolio_states WHERE {where} "
                        "ORDER BY state_id DESC LIMIT 1", params)
        if df.empty:
            return None
        body = str(df["body"].iloc[0])
        meta = normalize(df, STATE_LIST_TYPES)
        return state_meta(meta.iloc[0].tolist(), cols), body

    def list_states(self) -> pd.DataFrame:
        """Every stored state's meta (no body), oldest first."""
        df = self.query(f"SELECT {', '.join(STATE_LIST_TYPES)} FROM portfolio_states ORDER BY state_id")
        return normalize(df, STATE_LIST_TYPES)

    @abc.abstractmethod
    def replace_customer_state(self, df: pd.DataFrame) -> None:
        """Replace the whole customer_state table by `df` (one row per customer_id), atomically.

        The columns are the frame's (float -> DOUBLE PRECISION, int -> BIGINT, bool -> BOOLEAN,
        datetime -> TIMESTAMP (UTC), else TEXT) and may differ from the stored ones.  If anything
        fails, the old table stays as it was.
        """

    @abc.abstractmethod
    def read_customer_state(self, customer_ids: list[str] | None = None) -> pd.DataFrame:
        """All rows of customer_state, or those of the given ids, ordered by customer_id.

        Dtypes are the same on every backend: float64, int64 (Int64 when a value is missing),
        bool (boolean when missing), datetime64[us] and pandas' text dtype.
        """

    def customer_state_columns(self) -> list[str]:
        """The columns customer_state has now, in order (customer_id first)."""
        return list(self._state_types())

    @abc.abstractmethod
    def _state_types(self) -> dict[str, str]:
        """customer_state's columns and their clientfolio SQL types, from the catalog."""

    @abc.abstractmethod
    def commit_live(
        self,
        *,
        state_rows: pd.DataFrame | None,
        changes: pd.DataFrame | None,
        outbox: pd.DataFrame | None,
        event_keys: Sequence[str] = (),
        meta: dict[str, str] | None = None,
        transactions: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
        delete_orders: Sequence[tuple[str, str]] = (),
        expect_version: str | None = None,
        new_customers: list[tuple] | None = None,
        predictions: pd.DataFrame | None = None,
        predictions_for: Sequence[str] = (),
    ) -> list[int]:
        """Write one live update in ONE transaction, all or nothing; return the new change ids.

        In order: delete the transaction rows of the (source, order_id) pairs in `delete_orders`;
        store the canonical `transactions` / `events` rows (a stored row with the same key is
        replaced, as an import does); upsert `state_rows` by customer_id (columns the frame lacks
        are NULL; columns the table lacks are an error); append `changes` with change ids
        max+1, max+2, ... in row order; append `outbox` rows, whose `change_id` column gives the
        position of their row in `changes` (message_id defaults to msg_<change_id>_<transition>_<action>);
        record `event_keys` as applied; upsert `meta`; replace the `predictions` rows of the customers in
        `predictions_for` by the rows of `predictions` (a live update's churn risk and next order).  Raises EventAlreadyApplied (writing
        nothing) when an event key was applied before, StoreError when the database refuses a row.

        Every commit raises the store's version counter (live_meta ``store_version``) by one; with
        `expect_version` it writes only if the counter still has that value (else StoreMoved, nothing
        written).  `new_customers`: the customers rows to add for unknown customers (as
        `new_customer_rows` gives them) instead of deriving them from `transactions`.
        """

    def fetch(self, sql: str, params: list | tuple | None = None) -> tuple[list[str], list[tuple]]:
        """(column names, rows as tuples of Python values) of a query: `query` without a DataFrame, for the
        point reads of a per-event update."""
        df = self.query(sql, params)
        return list(df.columns), list(df.itertuples(index=False, name=None))

    def applied_event_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these event keys are already applied."""
        keys = [str(k) for k in keys]
        done: set[str] = set()
        for i in range(0, len(keys), 1000):
            part = keys[i:i + 1000]
            _, rows = self.fetch(f"SELECT event_key FROM applied_events WHERE event_key IN "
                                 f"({', '.join('?' * len(part))})", part)
            done.update(str(r[0]) for r in rows)
        return done

    def read_changes(
        self,
        since: datetime | None = None,
        customer_id: str | None = None,
        segment_kind: str | None = None,
        cause: str | None = None,
        limit: int | None = None,
        recorded_since: datetime | None = None,
    ) -> pd.DataFrame:
        """The change log ordered by change_id, filtered by any of: changed_at >= since, customer,
        segment kind, cause ('behaviour', 'time' or 'refit'), recorded_at >= recorded_since (what
        was logged after a moment, e.g. the previous analysis); at most `limit` rows."""
        conds, params = [], []
        if since is not None:
            conds.append("changed_at >= ?")
            params.append(_utc(since))
        if recorded_since is not None:
            conds.append("recorded_at >= ?")
            params.append(_utc(recorded_since))
        for col, val in (("customer_id", customer_id), ("segment_kind", segment_kind), ("cause", cause)):
            if val is not None:
                conds.append(f"{col} = ?")
                params.append(str(val))
        sql = "SELECT * FROM segment_changes" + (" WHERE " + " AND ".join(conds) if conds else "")
        sql += " ORDER BY change_id" + (f" LIMIT {int(limit)}" if limit is not None else "")
        return normalize(self.query(sql, params), table_types("segment_changes"))

    def read_outbox(self, undelivered_only: bool = True, limit: int | None = None) -> pd.DataFrame:
        """Outbox messages ordered by change_id, message_id: by default only those not yet delivered."""
        sql = "SELECT * FROM outbox" + (" WHERE delivered_at IS NULL" if undelivered_only else "")
        sql += " ORDER BY change_id, message_id" + (f" LIMIT {int(limit)}" if limit is not None else "")
        return normalize(self.query(sql), table_types("outbox"))

    @abc.abstractmethod
    def mark_outbox(self, message_ids: Sequence[str], *, delivered: bool, at: datetime | None = None) -> int:
        """Count one delivery attempt for each message, and mark it delivered (at `at`, default now)
        when `delivered`; returns how many messages were found."""

    def get_meta(self, key: str) -> str | None:
        """A live_meta value (e.g. the last sweep date), or None when it was never set."""
        df = self.query("SELECT value FROM live_meta WHERE key = ?", [key])
        return None if df.empty else str(df["value"].iloc[0])

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager["Transaction"]:
        """A `Transaction` whose statements commit together when the block ends, or roll back on error."""

    def next_import_id(self) -> int:
        v = self.query("SELECT coalesce(max(import_id), 0) + 1 AS n FROM imports")["n"].iloc[0]
        return int(v)

    def table(self, name: str) -> pd.DataFrame:
        """A whole canonical table as a DataFrame (for tests and small stores)."""
        if name not in TABLES and name != "imports":
            raise ValueError(f"unknown table {name!r}; use one of {list(TABLES) + ['imports']}")
        return self.query(f"SELECT * FROM {name}")

    def schema_version(self) -> int:
        return int(self.query("SELECT max(version) AS v FROM schema_version")["v"].iloc[0])

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _utc(t: datetime) -> datetime:
    """A time as the store keeps it: UTC without a zone (a zone-aware time is converted)."""
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def migration_statements(current: int, dialect: str) -> list[tuple[int, str]]:
    """Statements to bring a store from `current` to the latest schema version."""
    out = []
    for version, _title, stmts in sorted(MIGRATIONS, key=lambda m: m[0]):  # in number order, however listed
        if version <= current:
            continue
        for s in stmts:
            engine, sep, rest = s.partition(": ")
            if sep and engine in ("postgresql", "duckdb"):
                if engine != dialect:
                    continue
                s = rest
            out.append((version, s))
    return out


def merge_statements(table: str, inc: str) -> dict[str, str]:
    """SQL (both dialects) to count and merge staged rows `inc` into `table`."""
    cols, key = TABLES[table]
    names = [c for c, _ in cols]
    on = " AND ".join(f"t.{k} = i.{k}" for k in key)
    on_target = " AND ".join(f"{table}.{k} = i.{k}" for k in key)
    counts = (
        f"SELECT i.__file AS file_no, "
        f"count(*) FILTER (WHERE t.row_hash IS NULL) AS new, "
        f"count(*) FILTER (WHERE t.row_hash IS NOT NULL AND t.row_hash <> i.row_hash) AS updated, "
        f"count(*) FILTER (WHERE t.row_hash = i.row_hash) AS same "
        f"FROM {inc} i LEFT JOIN {table} t ON {on} GROUP BY i.__file"
    )
    if table == "customers":
        # Customers arrive from several files (orders, customer lists): keep what is known.
        keep = [c for c in names if c not in key and c not in ("row_hash", "import_id", "source")]
        sets = ", ".join(f"{c} = coalesce(i.{c}, {table}.{c})" for c in keep)
        update = (f"UPDATE {table} SET {sets}, row_hash = i.row_hash, import_id = i.import_id "
                  f"FROM {inc} i WHERE {on_target} AND {table}.row_hash <> i.row_hash")
        delete = None
    else:
        update = None
        delete = (f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {inc} i WHERE {on_target} "
                  f"AND i.row_hash <> {table}.row_hash)")
    insert_all = f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join('i.' + n for n in names)} FROM {inc} i"
    insert = f"{insert_all} WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {on})"
    return {"counts": counts, "update": update, "delete": delete, "insert": insert, "insert_all": insert_all}


# Link rows keyed by e-mail to the customer id a customers file gives that e-mail.
RESOLVE_INCOMING = (
    "UPDATE {inc} SET customer_id = c.customer_id FROM customers c "
    "WHERE {inc}.customer_id IS NULL AND {inc}.email IS NOT NULL AND c.email = {inc}.email"
)
FALLBACK_EMAIL = "UPDATE {inc} SET customer_id = email WHERE customer_id IS NULL AND email IS NOT NULL"
RELINK_STORED = (
    "UPDATE transactions SET customer_id = c.customer_id FROM customers c "
    "WHERE transactions.customer_id = transactions.email AND c.email = transactions.email "
    "AND c.customer_id <> c.email"
)
DROP_EMAIL_KEYED = (
    "DELETE FROM customers WHERE customer_id = email AND EXISTS "
    "(SELECT 1 FROM customers c WHERE c.email = customers.email AND c.customer_id <> c.email)"
)
INSERT_LOG = (
    "INSERT INTO imports (import_id, file_no, started_at, finished_at, file, file_sha256, layout, target, rows_in, "
    "rows_stored, rows_new, rows_updated, rows_rejected, rows_deduplicated, rejects_path, notes) "
    "VALUES ({})"
)
LOG_FIELDS = list(ImportLogRow.__dataclass_fields__)
