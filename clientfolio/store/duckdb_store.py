"""The embedded default store: one DuckDB file, nothing to install."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from clientfolio.core.errors import StoreError
from clientfolio.store.base import ImportLogRow, MergeCounts, Store, migration_statements
from clientfolio.store.live import (
    BUMP_VERSION,
    SMALL_BATCH, Rows, Types, catalog_type, check_state_ids, conform, create_state_table, delete_few_sql,
    delete_sql, frame_from_rows,
    insert_rows_sql, insert_sql, normalize, now_utc, prepare_live, quote, run_commit, state_row, state_types, table_types, to_arrow,
    tuples_to_arrow,
)
from clientfolio.store.merge import run_merge
from clientfolio.store.schema import LATEST, customer_state_key
from clientfolio.store.tx import Transaction

STATE_CHUNK = 100_000  # customer_state rows typed and written at a time by replace_customer_state

# A bulk import -- at least BULK_INDEX_ROWS incoming orders, and at least as many as are stored -- drops
# the lookup indexes on transactions and builds them again once it is committed: keeping them up to
# date row by row cost about twice as much (most of it in COMMIT: 5 CPU-seconds at 3M orders against
# 2.6 s to build them, and growing faster than the orders).  The statements that build them are kept
# in live_meta (REBUILD_KEY) by the transaction that drops them, so a process killed in between leaves
# a note that the next open of the store acts on; the data itself is written atomically as before.
BULK_INDEX_ROWS = 100_000
REBUILD_KEY = "indexes_to_rebuild"


class DuckDBStore(Store):
    """Canonical tables in a DuckDB file (``clientfolio.duckdb`` by default)."""

    kind = "duckdb"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            hint = " (is another clientfolio process using it?)" if "lock" in msg.lower() else ""
            raise StoreError(f"{self.path}: cannot open the store: {msg}{hint}") from None
        self.con.execute("SET TimeZone = 'UTC'")
        # DuckDB's own progress bar writes to stdout mid-line (into piped output and logs); our commands show theirs
        self.con.execute("SET enable_progress_bar = false")
        self._types: Types | None = None  # customer_state's columns, read once
        self._migrate()
        self._rebuild_indexes()  # left to build by an import that was killed

    def _migrate(self) -> None:
        con = self.con
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
        # fetchall, not fetchone: DuckDB refuses register() while a result is half read
        current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
        if current > LATEST:
            raise StoreError(f"{self.path}: the store has schema version {current}, newer than this clientfolio "
                             f"({LATEST}); upgrade clientfolio")
        stmts = migration_statements(current, "duckdb")
        if not stmts:
            return
        con.execute("BEGIN TRANSACTION")
        try:
            for version, sql in stmts:
                con.execute(sql)
            for version in sorted({v for v, _ in stmts}):
                con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, datetime.now(timezone.utc).replace(tzinfo=None)])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{self.path}: migration failed: {exc}") from None

    def staging(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def query(self, sql: str, params: list | tuple | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def fetch(self, sql: str, params: list | tuple | None = None) -> tuple[list[str], list[tuple]]:
        cur = self.con.execute(sql, params or [])
        return [d[0] for d in cur.description] if cur.description else [], cur.fetchall() if cur.description else []

    def apply_import(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: list[str],
        log: Callable[[MergeCounts], list[ImportLogRow]],
    ) -> MergeCounts:
        assert con is self.con
        set_aside = "transactions" in tables and self._set_aside_indexes()
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                counts = run_merge(lambda s: con.execute(s), lambda s: con.execute(s).fetchall(), tables, log,
                                   dialect="duckdb")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            if set_aside:
                # A failure here must not hide the import's own outcome: the note stays, the next open builds them.
                with contextlib.suppress(duckdb.Error):
                    self._rebuild_indexes()
        return counts

    def _set_aside_indexes(self) -> bool:
        """Drop the lookup indexes on transactions before a bulk import (see BULK_INDEX_ROWS); True if dropped."""
        con = self.con
        incoming = con.execute("SELECT count(*) FROM inc_transactions").fetchall()[0][0]
        if incoming < BULK_INDEX_ROWS or incoming < con.execute("SELECT count(*) FROM transactions").fetchall()[0][0]:
            return False
        rows = con.execute("SELECT index_name, sql FROM duckdb_indexes() WHERE table_name = 'transactions' "
                           "AND database_name = current_database() AND schema_name = current_schema() "
                           "AND NOT is_unique AND NOT is_primary ORDER BY index_name").fetchall()
        if not rows or any(not sql for _, sql in rows):
            return False
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("INSERT INTO live_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET value = excluded.value", [REBUILD_KEY, json.dumps([[n, sql] for n, sql in rows])])
            for name, _ in rows:
                con.execute(f'DROP INDEX "{name}"')
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return True

    def _rebuild_indexes(self) -> None:
        """Build the indexes a bulk import set aside (named in live_meta), and clear the note, in one transaction."""
        con = self.con
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'live_meta' "
                           "AND database_name = current_database() AND schema_name = current_schema()").fetchall()[0][0]:
            return  # a store from before the living portfolio's tables: nothing was ever set aside
        note = con.execute("SELECT value FROM live_meta WHERE key = ?", [REBUILD_KEY]).fetchall()
        if not note:
            return
        have = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes() WHERE "
                                          "database_name = current_database() AND schema_name = current_schema()"
                                          ).fetchall()}
        con.execute("BEGIN TRANSACTION")
        try:
            for name, sql in json.loads(note[0][0]):
                if name not in have:
                    con.execute(sql)
            con.execute("DELETE FROM live_meta WHERE key = ?", [REBUILD_KEY])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def save_memberships(self, memberships: pd.DataFrame) -> None:
        con = self.con
        df = memberships[["customer_id", "segment_kind", "segment", "as_of"]]
        con.register("__snapshot", df)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM segment_memberships WHERE EXISTS (SELECT 1 FROM __snapshot s "
                        "WHERE s.as_of = segment_memberships.as_of AND s.segment_kind = segment_memberships.segment_kind)")
            con.execute("INSERT INTO segment_memberships SELECT customer_id, segment_kind, segment, as_of FROM __snapshot")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("__snapshot")

    # --- the living portfolio ------------------------------------------------------------------

    def save_state(self, meta: dict[str, Any], body: str) -> int:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            state_id = con.execute("SELECT coalesce(max(state_id), 0) + 1 FROM portfolio_states").fetchall()[0][0]
            row = state_row(meta, int(state_id), body)
            con.execute("UPDATE portfolio_states SET is_current = FALSE WHERE is_current")
            con.execute(insert_sql("portfolio_states", table_types("portfolio_states")), row)
            con.execute(BUMP_VERSION)
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            _refused(exc, "save_state")
            raise
        return int(state_id)

    def replace_customer_state(self, df: pd.DataFrame) -> None:
        # Typed, converted to Arrow and inserted STATE_CHUNK rows at a time: a million customers' rows
        # (~80 columns) are never held twice more, as a conformed copy and an Arrow copy of the whole frame.
        types = state_types(df)
        check_state_ids(conform(df[["customer_id"]], {"customer_id": types["customer_id"]}, "customer_state"))
        con = self.con
        cols = ", ".join(quote(c) for c in types)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DROP TABLE customer_state")
            con.execute(create_state_table(types, "customer_state"))
            for lo in range(0, len(df), STATE_CHUNK):
                part = df.iloc[lo:lo + STATE_CHUNK]
                con.register("__customer_state_new", to_arrow(conform(part, types, "customer_state"), types))
                try:
                    con.execute(f"INSERT INTO customer_state ({cols}) SELECT {cols} FROM __customer_state_new")
                finally:
                    con.unregister("__customer_state_new")
            for stmt in customer_state_key("customer_state", "duckdb"):
                con.execute(stmt.removeprefix("duckdb: "))
            con.execute(BUMP_VERSION)
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            _refused(exc, "replace_customer_state")
            raise
        finally:
            self._types = None

    def read_customer_state(self, customer_ids: list[str] | None = None) -> pd.DataFrame:
        types = self._state_types()
        cols = ", ".join(quote(c) for c in types)
        if customer_ids is not None and len(customer_ids) <= SMALL_BATCH:
            # `customer_id IN (?, ...)` goes through the index; few rows are cheaper as Python values
            ids = [str(i) for i in customer_ids]
            if not ids:
                return frame_from_rows([], types)
            rows = self.con.execute(f"SELECT {cols} FROM customer_state WHERE customer_id IN "
                                    f"({', '.join('?' * len(ids))}) ORDER BY customer_id", ids).fetchall()
            return frame_from_rows(rows, types)
        if customer_ids is None:
            df = self.con.execute(f"SELECT {cols} FROM customer_state ORDER BY customer_id").df()
        else:
            df = self.con.execute(f"SELECT {cols} FROM customer_state WHERE customer_id IN "
                                  "(SELECT unnest(CAST(? AS TEXT[]))) ORDER BY customer_id",
                                  [[str(i) for i in customer_ids]]).df()
        return normalize(df, types)

    def _state_types(self) -> Types:
        # DuckDB allows one writing process per file, so the columns only change through this object.
        if self._types is None:
            rows = self.con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'customer_state' "
                "AND schema_name = current_schema() AND database_name = current_database() ORDER BY column_index"
            ).fetchall()
            self._types = {c: catalog_type("customer_state", c, t) for c, t in rows}
        return dict(self._types)

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
        now = now_utc()
        batch = prepare_live(state_rows=state_rows, changes=changes, outbox=outbox, event_keys=event_keys,
                             meta=meta, transactions=transactions, events=events, delete_orders=delete_orders,
                             predictions=predictions, predictions_for=predictions_for, now=now,
                             expect_version=expect_version,
                             new_customers=new_customers)
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            ids = run_commit(_Writer(self), batch, now)
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            _refused(exc, "commit_live")
            raise
        return ids

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        con = self.con

        def run(sql: str, params: Sequence[Any]) -> list[tuple]:
            cur = con.execute(sql, list(params))
            return cur.fetchall() if cur.description else []

        con.execute("BEGIN TRANSACTION")
        try:
            yield Transaction(_Writer(self), run)
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            _refused(exc, "transaction")
            raise

    def mark_outbox(self, message_ids: Sequence[str], *, delivered: bool, at: datetime | None = None) -> int:
        ids = [str(m) for m in message_ids]
        if not ids:
            return 0
        sets = "attempts = attempts + 1" + (", delivered_at = ?" if delivered else "")
        params = ([at or now_utc()] if delivered else []) + [ids]
        rows = self.con.execute(f"UPDATE outbox SET {sets} WHERE message_id IN (SELECT unnest(CAST(? AS TEXT[]))) "
                                "RETURNING message_id", params).fetchall()
        return len(rows)

    @property
    def default_rejects_dir(self) -> Path:
        return self.path.with_name(self.path.stem + ".rejects")

    def close(self) -> None:
        self.con.close()

    def reader(self) -> DuckDBStore:
        """A cursor on the same database (DuckDB runs its queries in parallel with this connection's and
        releases the GIL while it does): reads only, from one other thread.  Sees what is committed."""
        other = object.__new__(DuckDBStore)
        other.path, other.url, other._types = self.path, self.url, None
        other.con = self.con.cursor()
        other.con.execute("SET TimeZone = 'UTC'")
        other.con.execute("SET enable_progress_bar = false")
        return other

    def release_memory(self) -> None:
        """Close and reopen the file, keeping the memory limit and spill directory.

        An import keeps in memory the lookup indexes it extended (about 70 bytes per stored order,
        ~3.5 GB at 50M orders) for as long as its connection lives; a reopened file loads them only
        when a write needs them, so a long analysis after a big import does not carry them.
        """
        if str(self.path) in ("", ":memory:") or str(self.path).startswith(":memory:"):
            return  # an in-memory database would be lost on closing: nothing to reopen
        limit, spill = self.con.execute("SELECT current_setting('memory_limit'), "
                                        "current_setting('temp_directory')").fetchall()[0]
        self.con.execute("CHECKPOINT")
        self.con.close()
        self.con = duckdb.connect(str(self.path))
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")
        text = lambda v: "'" + str(v).replace("'", "''") + "'"  # noqa: E731 - the settings just read back
        self.con.execute(f"SET memory_limit = {text(limit)}")
        if spill:
            with contextlib.suppress(duckdb.Error):
                self.con.execute(f"SET temp_directory = {text(spill)}")
        self._types = None


class _Writer:
    """run_commit's statements on DuckDB: parameters row by row for a few rows, Arrow for many."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.con = store.con

    def lock(self) -> None:
        pass  # one writing process per DuckDB file

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        if len(rows) == 1:
            self.con.execute(sql, rows[0])  # a third cheaper than executemany for one row
        else:
            self.con.executemany(sql, rows)

    def delete_keys(self, table: str, key: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        if len(rows) <= SMALL_BATCH:  # one statement; `key IN (?, ...)` finds the rows through the index
            self.con.execute(delete_few_sql(table, key, len(rows)), [v for r in rows for v in r])
        else:
            self.con.execute(delete_sql(table, key, many=True), [list(col) for col in zip(*rows)])

    def insert(self, table: str, rows: Rows) -> None:
        if rows.tuples is not None and len(rows.tuples) <= SMALL_BATCH:
            if rows.tuples:  # one multi-row statement
                self.con.execute(insert_rows_sql(table, rows.types, len(rows.tuples)),
                                 [v for r in rows.tuples for v in r])
            return
        # many rows (a grouped update's tuples, or a frame): scanned from Arrow
        arrow = tuples_to_arrow(rows.tuples, rows.types) if rows.tuples is not None else to_arrow(rows.frame, rows.types)
        self.con.register("__live_rows", arrow)
        try:
            cols = ", ".join(quote(c) for c in rows.types)
            self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM __live_rows")
        finally:
            self.con.unregister("__live_rows")

    def state_types(self) -> Types:
        return self.store._state_types()


def _refused(exc: BaseException, what: str) -> None:
    """Re-raise a database refusal (a NOT NULL, key or check violation) as a StoreError."""
    if isinstance(exc, duckdb.Error):
        msg = str(exc).splitlines()[0]
        raise StoreError(f"{what}: the store refused the rows, nothing was written: {msg}") from exc
